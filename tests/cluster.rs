//! Three `weir serve` processes formed into a cluster with the CLI (issue
//! 8): metadata written on any node reaches all, a rule runs on exactly one
//! node, and after `kill -9` of that node the rule runs on another within
//! seconds.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::brokers::{runtime, Publisher, Subscriber};
use crate::util::{free_port, start_rumqttd, weir_bin, Server};

/// A cluster node: its REST server and its cluster address.
struct Member {
    server: Server,
    addr: String,
}

fn start_member(root: &std::path::Path, name: &str, broker: u16) -> Member {
    let dir = root.join(name);
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("mqtt_source.yaml"), format!("default:\n  server: tcp://127.0.0.1:{broker}\n")).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let server =
        Server::start_with(&dir.join("data"), &["--etc-dir", etc.to_str().unwrap(), "--cluster-listen", &addr]);
    Member { server, addr }
}

/// `weir cluster <args> --host <node>`.
fn cli(m: &Member, args: &[&str]) -> String {
    let out = Command::new(weir_bin()).arg("cluster").args(args).args(["--host", &m.server.url]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "weir cluster {args:?}: {text}");
    text
}

/// Waits (up to `limit`) until `f` holds.
fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Index of the member the cluster placed rule `id` on, once placed.
fn placed_on(members: &[Option<Member>], id: &str) -> Option<usize> {
    let statuses: Vec<(usize, serde_json::Value)> = members
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((i, m.as_ref()?.server.call("GET", "/cluster/status", None).json())))
        .collect();
    let primary = statuses.iter().find_map(|(_, s)| s["placement"][id][0]["primary"].as_u64())?;
    statuses.iter().find(|(_, s)| s["id"].as_u64() == Some(primary)).map(|(i, _)| *i)
}

/// Whether every live member reports rule `id` running (the status of a
/// rule placed elsewhere is asked of the node running it).
fn running_everywhere(members: &[Option<Member>], id: &str) -> bool {
    members.iter().flatten().all(|m| {
        let st = m.server.call("GET", &format!("/rules/{id}/status"), None);
        st.status == 200 && st.json()["status"] == "running"
    })
}

#[test]
fn a_rule_moves_to_another_node_after_kill_9() {
    let broker = free_port();
    start_rumqttd(broker);
    let root = tempfile::tempdir().unwrap();
    let mut members: Vec<Option<Member>> =
        ["a", "b", "c"].iter().map(|n| Some(start_member(root.path(), n, broker))).collect();
    // Form the cluster with the CLI, joining through different members.
    let [Some(a), Some(b), Some(c)] = &members[..] else { unreachable!() };
    cli(a, &["init"]);
    cli(b, &["join", &a.addr]);
    cli(c, &["join", &b.addr]);
    let status: serde_json::Value = serde_json::from_str(&cli(c, &["status"])).unwrap();
    assert_eq!(status["members"].as_array().unwrap().len(), 3, "{status}");

    // Metadata written on one node is on every node.
    let r = b.server.call(
        "POST",
        "/streams",
        Some(r#"{"sql":"CREATE STREAM s (seq bigint) WITH (DATASOURCE=\"in/seq\", FORMAT=\"json\")"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    for x in [a, b, c] {
        wait_until(Duration::from_secs(10), "the stream on every node", || {
            x.server.call("GET", "/streams", None).json() == json!(["s"])
        });
    }
    let rule = json!({"id": "fwd", "sql": "SELECT seq FROM s",
        "actions": [{"mqtt": {"server": format!("tcp://127.0.0.1:{broker}"), "topic": "out/seq", "sendSingle": true}}]});
    let r = c.server.call("POST", "/rules", Some(&rule.to_string()));
    assert_eq!(r.status, 201, "{}", r.body);
    wait_until(Duration::from_secs(20), "the rule placed and running", || {
        placed_on(&members, "fwd").is_some() && running_everywhere(&members, "fwd")
    });
    let first = placed_on(&members, "fwd").unwrap();

    let rt = runtime();
    let moved_after = rt.block_on(async {
        let mut sub = Subscriber::start(broker, "cluster-test-sub", "out/seq", 0, false).await;
        let publisher = Publisher::new(broker, "cluster-test-pub");
        let mut seq = 0u64;
        // Until outputs flow through the first node.
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                publisher.publish("in/seq", 0, json!({"seq": seq}).to_string()).await;
                seq += 1;
                if let Ok(m) = tokio::time::timeout(Duration::from_millis(50), sub.next_json()).await {
                    assert!(m["seq"].is_u64(), "{m}");
                    break;
                }
            }
        })
        .await
        .expect("outputs through the first node");
        // kill -9 the node running the rule; outputs must resume.
        members[first].take().unwrap().server.kill();
        let killed_at = Instant::now();
        let first_after = seq;
        let moved_after = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                publisher.publish("in/seq", 0, json!({"seq": seq}).to_string()).await;
                seq += 1;
                if let Ok(m) = tokio::time::timeout(Duration::from_millis(50), sub.next_json()).await {
                    if m["seq"].as_u64().unwrap_or(0) >= first_after {
                        return killed_at.elapsed();
                    }
                }
            }
        })
        .await
        .expect("outputs resume on another node");
        moved_after
    });
    let now = placed_on(&members, "fwd").expect("placed");
    assert_ne!(now, first);
    wait_until(Duration::from_secs(10), "the status from every node", || running_everywhere(&members, "fwd"));
    eprintln!("failover: first output from the new node {} ms after kill -9", moved_after.as_millis());
    // The survivors agree on the placement.
    let placements: Vec<serde_json::Value> = members
        .iter()
        .flatten()
        .map(|m| m.server.call("GET", "/cluster/status", None).json()["placement"].clone())
        .collect();
    assert!(placements.windows(2).all(|w| w[0] == w[1]), "{placements:?}");
}
