//! Cluster figures (issue 8 item 6): three `weir serve` processes (this
//! build's binary) on 127.0.0.1 formed with `weir cluster`, mosquitto as
//! the broker.
//!
//! - **Metadata write latency**: `PUT /streams/{name}` on a follower —
//!   validated there, proposed through raft (forwarded to the leader),
//!   committed on a majority, applied and mirrored before the answer.
//! - **Failover time**: a rule forwards sequence-numbered events; the node
//!   running it is killed with SIGKILL; the time from the kill to the first
//!   output of an event published after the kill (so it went through the
//!   new primary). Repeated, the killed node restarted in between.
//!
//! `cargo bench --bench cluster` runs 5 failovers and 50 writes;
//! `-- --test` (CI) 1 and 5. Needs mosquitto; skips without it.

#[path = "../tests/brokers.rs"]
#[allow(dead_code)]
mod brokers;
#[path = "../tests/util.rs"]
#[allow(dead_code)]
mod util;

use std::time::{Duration, Instant};

use serde_json::json;

use brokers::{runtime, Mosquitto, Publisher, Subscriber};
use util::{free_port, Server};

/// One node: REST server, cluster address, data directory.
struct Node {
    server: Option<Server>,
    addr: String,
    dir: std::path::PathBuf,
}

impl Node {
    fn start(dir: std::path::PathBuf, broker: u16, addr: String) -> Node {
        let etc = dir.join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let conf = format!("default:\n  server: tcp://127.0.0.1:{broker}\n  qos: 1\n  clientid: weir-bench-src\n");
        std::fs::write(etc.join("mqtt_source.yaml"), conf).unwrap();
        let server =
            Server::start_with(&dir.join("data"), &["--etc-dir", etc.to_str().unwrap(), "--cluster-listen", &addr]);
        Node { server: Some(server), addr, dir }
    }

    fn rest(&self) -> &Server {
        self.server.as_ref().expect("a running node")
    }

    fn id(&self) -> Option<u64> {
        self.server.as_ref().map(|s| s.call("GET", "/cluster/status", None).json()["id"].as_u64().unwrap_or(0))
    }
}

fn post(n: &Node, path: &str, body: serde_json::Value) {
    let r = n.rest().call("POST", path, Some(&body.to_string()));
    assert!(r.status < 300, "POST {path}: {} {}", r.status, r.body);
}

/// Index of the node running rule `id` (from the placement), once placed
/// and running there.
fn primary(nodes: &[Node], id: &str) -> Option<usize> {
    let live: Vec<usize> = (0..nodes.len()).filter(|i| nodes[*i].server.is_some()).collect();
    let st = nodes[live[0]].rest().call("GET", "/cluster/status", None).json();
    let p = st["placement"][id][0]["primary"].as_u64()?;
    let i = live.into_iter().find(|i| nodes[*i].id() == Some(p))?;
    let rs = nodes[i].rest().call("GET", &format!("/rules/{id}/status"), None);
    (rs.status == 200 && rs.json()["status"] == "running").then_some(i)
}

fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let test = std::env::args().any(|a| a == "--test");
    let (failovers, writes) = if test { (1, 5) } else { (5, 50) };
    let root = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start_in(root.path()) else { return };
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| Node::start(root.path().join(n), broker.port, format!("127.0.0.1:{}", free_port())))
        .collect();
    post(&nodes[0], "/cluster/init", json!(null));
    for i in 1..3 {
        post(&nodes[i], "/cluster/join", json!({"addr": nodes[0].addr}));
    }

    // Metadata write latency on a follower.
    let leader = nodes[0].rest().call("GET", "/cluster/status", None).json()["leader"].as_u64();
    let follower = (0..3).find(|i| nodes[*i].id() != leader).unwrap();
    let mut lat = Vec::new();
    for i in 0..writes {
        let sql = format!("CREATE STREAM m{i} (x bigint) WITH (DATASOURCE=\"bench/m{i}\")");
        let t = Instant::now();
        post(&nodes[follower], "/streams", json!({ "sql": sql }));
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "metadata write (POST /streams on a follower, {writes} writes): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );

    post(&nodes[1], "/streams", json!({"sql": "CREATE STREAM s (seq bigint) WITH (DATASOURCE=\"bench/in\")"}));
    post(
        &nodes[2],
        "/rules",
        json!({"id": "fwd", "sql": "SELECT seq FROM s", "options": {"qos": 2, "checkpointInterval": 200},
            "actions": [{"mqtt": {"server": format!("tcp://127.0.0.1:{}", broker.port), "topic": "bench/out",
                "qos": 1, "sendSingle": true, "idField": "_id", "clientId": "weir-bench-sink"}}]}),
    );
    let rt = runtime();
    let mut sub = rt.block_on(Subscriber::start(broker.port, "bench-sub", "bench/out", 1, false));
    let publisher = rt.block_on(async { Publisher::new(broker.port, "bench-pub") });
    let mut seq = 0u64;
    let mut times = Vec::new();
    for _ in 0..failovers {
        let on = wait_for(Duration::from_secs(30), "the rule running", || primary(&nodes, "fwd"));
        // Outputs flow through `on`.
        rt.block_on(async {
            loop {
                publisher.publish("bench/in", 1, json!({"seq": seq}).to_string()).await;
                seq += 1;
                if tokio::time::timeout(Duration::from_millis(20), sub.next_json()).await.is_ok() {
                    break;
                }
            }
        });
        nodes[on].server.take().unwrap().kill();
        let killed = Instant::now();
        let after = seq;
        let took = rt.block_on(async {
            loop {
                publisher.publish("bench/in", 1, json!({"seq": seq}).to_string()).await;
                seq += 1;
                if let Ok(m) = tokio::time::timeout(Duration::from_millis(20), sub.next_json()).await {
                    if m["seq"].as_u64().unwrap_or(0) >= after {
                        return killed.elapsed();
                    }
                }
                assert!(killed.elapsed() < Duration::from_secs(60), "no output after the kill");
            }
        });
        println!("failover: first output through the new primary {:.0} ms after kill -9", took.as_secs_f64() * 1e3);
        times.push(took);
        // Back as a member, so the next failover has a standby.
        let (dir, addr) = (nodes[on].dir.clone(), nodes[on].addr.clone());
        nodes[on] = Node::start(dir, broker.port, addr);
        wait_for(Duration::from_secs(30), "the node live again", || {
            let st = nodes[on].rest().call("GET", "/cluster/status", None).json();
            st["members"].as_array().is_some_and(|m| m.len() == 3 && m.iter().all(|x| x["live"] == true)).then_some(())
        });
    }
    times.sort();
    println!(
        "failover over {} kills: median {:.0} ms, max {:.0} ms (target < 3000 ms)",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3
    );
}
