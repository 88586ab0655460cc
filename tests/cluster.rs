//! Three `weir serve` processes formed into a cluster with the CLI (issue
//! 8): metadata written on any node reaches all, a rule runs on exactly one
//! node, and after `kill -9` of that node the rule runs on another within
//! seconds — with exactly-once output for a `qos: 2` rule.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::brokers::{runtime, Mosquitto, Publisher, Subscriber};
use crate::util::{created, free_port, start_rumqttd, weir_bin, Server};

/// Cluster tests start three nodes each and time leases and failovers:
/// they run one at a time, so that two of them do not starve each other
/// of the machine's cores.
pub(crate) fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A cluster node: its REST server and its cluster address.
pub(crate) struct Member {
    pub(crate) server: Server,
    pub(crate) addr: String,
}

pub(crate) fn start_member(root: &std::path::Path, name: &str, broker: u16) -> Member {
    start_on(root, name, broker, format!("127.0.0.1:{}", free_port()), None)
}

/// The names of the three members the cluster tests start.
pub(crate) const NAMES: [&str; 3] = ["a", "b", "c"];

/// Starts the three members `a`, `b` and `c` (not yet a cluster).
pub(crate) fn start_members(root: &std::path::Path, broker: u16) -> Vec<Option<Member>> {
    NAMES.iter().map(|n| Some(start_member(root, n, broker))).collect()
}

/// Restarts member `name` on its data directory and cluster address (it
/// rejoins by itself) and waits until the others see it live.
pub(crate) fn start_member_at(root: &std::path::Path, name: &str, broker: u16, members: &[Option<Member>]) -> Member {
    let addr = std::fs::read_to_string(root.join(name).join("cluster_addr")).unwrap();
    let m = start_on(root, name, broker, addr, None);
    wait_until(Duration::from_secs(30), "the restarted node live again", || {
        members.iter().flatten().chain([&m]).all(|o| sees_all_live(o, 3))
    });
    m
}

/// Starts `weir serve` for member `name` with its raft peer on `addr`,
/// advertised as `advertise` (a proxy the test controls) if given.
pub(crate) fn start_on(
    root: &std::path::Path,
    name: &str,
    broker: u16,
    addr: String,
    advertise: Option<String>,
) -> Member {
    let dir = root.join(name);
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    // QoS 1 and a fixed client id: the session survives a move of the rule.
    std::fs::write(
        etc.join("mqtt_source.yaml"),
        format!("default:\n  server: tcp://127.0.0.1:{broker}\n  qos: 1\n  clientid: weir-eo-src\n"),
    )
    .unwrap();
    std::fs::write(dir.join("cluster_addr"), &addr).unwrap();
    let mut args = vec!["--etc-dir", etc.to_str().unwrap(), "--cluster-listen", &addr];
    if let Some(a) = &advertise {
        args.extend(["--cluster-advertise", a]);
    }
    let server = Server::start_with(&dir.join("data"), &args);
    Member { server, addr: advertise.unwrap_or(addr) }
}

/// Forms a cluster of `members`: the first inits, the others join it.
pub(crate) fn form(members: &[Option<Member>]) {
    let mut live = members.iter().flatten();
    let first = live.next().expect("a member");
    cli(first, &["init"]);
    for m in live {
        cli(m, &["join", &first.addr]);
    }
}

/// Creates stream `name` (`<name>/in`) on `on_stream` and, on `on_rule`, a
/// `qos: 2` rule `name` forwarding its `seq` to `<name>/out` on the broker
/// at `port`, each output carrying its id in `_id`.
pub(crate) fn create_exactly_once_rule(on_stream: &Member, on_rule: &Member, name: &str, port: u16) {
    let stream = json!({"sql": format!("CREATE STREAM {name} () WITH (DATASOURCE=\"{name}/in\", FORMAT=\"json\")")});
    created(&on_stream.server, "/streams", &stream.to_string());
    let rule = json!({"id": name, "sql": format!("SELECT seq FROM {name}"),
        "options": {"qos": 2, "checkpointInterval": 200},
        "actions": [{"mqtt": {"server": format!("tcp://127.0.0.1:{port}"), "topic": format!("{name}/out"), "qos": 1,
            "sendSingle": true, "idField": "_id", "clientId": format!("weir-{name}-sink")}}]});
    created(&on_rule.server, "/rules", &rule.to_string());
}

/// Whether member `m` sees `n` members, all live.
pub(crate) fn sees_all_live(m: &Member, n: usize) -> bool {
    let st = m.server.call("GET", "/cluster/status", None).json();
    st["members"].as_array().is_some_and(|ms| ms.len() == n && ms.iter().all(|x| x["live"] == true))
}

/// `weir cluster <args> --host <node>`.
pub(crate) fn cli(m: &Member, args: &[&str]) -> String {
    let out = Command::new(weir_bin()).arg("cluster").args(args).args(["--host", &m.server.url]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "weir cluster {args:?}: {text}");
    text
}

/// Waits (up to `limit`) until `f` holds.
pub(crate) fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Index of the member the cluster placed rule `id` on, once placed.
pub(crate) fn placed_on(members: &[Option<Member>], id: &str) -> Option<usize> {
    let statuses: Vec<(usize, serde_json::Value)> = members
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((i, m.as_ref()?.server.call("GET", "/cluster/status", None).json())))
        .collect();
    let primary = statuses.iter().find_map(|(_, s)| s["placement"][id][0]["primary"].as_u64())?;
    statuses.iter().find(|(_, s)| s["id"].as_u64() == Some(primary)).map(|(i, _)| *i)
}

/// Index of the member that is the raft leader, as the members see it.
pub(crate) fn leader_of(members: &[Option<Member>]) -> Option<usize> {
    let statuses: Vec<(usize, serde_json::Value)> = members
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((i, m.as_ref()?.server.call("GET", "/cluster/status", None).json())))
        .collect();
    let leader = statuses.iter().find_map(|(_, s)| s["leader"].as_u64())?;
    statuses.iter().find(|(_, s)| s["id"].as_u64() == Some(leader)).map(|(i, _)| *i)
}

/// Whether every live member reports rule `id` running, in its status, in
/// `/rules/status/all` and in the rule list (for a rule placed elsewhere,
/// as the node running it says).
pub(crate) fn running_everywhere(members: &[Option<Member>], id: &str) -> bool {
    members.iter().flatten().all(|m| {
        let st = m.server.call("GET", &format!("/rules/{id}/status"), None);
        let all = m.server.call("GET", "/rules/status/all", None).json();
        let list = m.server.call("GET", "/rules", None).json();
        let listed = list.as_array().is_some_and(|l| l.iter().any(|r| r["id"] == id && r["status"] == "running"));
        st.status == 200 && st.json()["status"] == "running" && all[id]["status"] == "running" && listed
    })
}

#[test]
fn a_rule_moves_to_another_node_after_kill_9() {
    let _serial = one_at_a_time();
    let broker = free_port();
    start_rumqttd(broker);
    let root = tempfile::tempdir().unwrap();
    let mut members = start_members(root.path(), broker);
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
    created(&c.server, "/rules", &rule.to_string());
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
    assert_placements_agree(&members);

    // A restart asked of a node that does not run the rule restarts it
    // where it runs.
    let started = |m: &Member| m.server.call("GET", "/rules/fwd/status", None).json()["lastStartTimestamp"].clone();
    let other = members.iter().enumerate().find_map(|(i, m)| m.as_ref().filter(|_| i != now)).unwrap();
    let before = started(other);
    std::thread::sleep(Duration::from_millis(20));
    let r = other.server.call("POST", "/rules/fwd/restart", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let after = started(other);
    assert!(after.as_i64() > before.as_i64(), "restarted on its node: {before} -> {after}");
}

/// Every live member reports the same placement and metadata index
/// (within 10 s: followers apply what the leader committed a moment
/// later).
pub(crate) fn assert_placements_agree(members: &[Option<Member>]) {
    let views = || -> Vec<(serde_json::Value, serde_json::Value)> {
        let statuses = members.iter().flatten().map(|m| m.server.call("GET", "/cluster/status", None).json());
        statuses.map(|s| (s["placement"].clone(), s["applied"].clone())).collect()
    };
    let start = Instant::now();
    let mut seen = views();
    while !seen.windows(2).all(|w| w[0] == w[1]) {
        assert!(start.elapsed() < Duration::from_secs(10), "members disagree on the placement: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
        seen = views();
    }
}

/// Outputs seen: id -> payload (without the id), and ids seen with two
/// different payloads.
#[derive(Default)]
pub(crate) struct Outputs {
    pub(crate) by_id: HashMap<String, serde_json::Value>,
    pub(crate) received: usize,
    pub(crate) conflicts: Vec<String>,
}

impl Outputs {
    pub(crate) fn take(&mut self, mut m: serde_json::Value) {
        let id = m.as_object_mut().and_then(|o| o.remove("_id")).unwrap_or_else(|| panic!("no _id in {m}"));
        let id = id.as_str().expect("a string id").to_string();
        self.received += 1;
        match self.by_id.get(&id) {
            Some(old) if *old != m => self.conflicts.push(format!("{id}: {old} then {m}")),
            Some(_) => {}
            None => {
                self.by_id.insert(id, m);
            }
        }
    }

    /// Takes what arrives for `ms`.
    pub(crate) async fn drain(&mut self, sub: &mut Subscriber, ms: u64) {
        let until = tokio::time::Instant::now() + Duration::from_millis(ms);
        while let Ok(m) = tokio::time::timeout_at(until, sub.next_json()).await {
            self.take(m);
        }
    }

    /// Takes outputs until every one of `events` sequence numbers arrived
    /// (at most 60 s), then a second more for late duplicates.
    pub(crate) async fn collect_all(&mut self, sub: &mut Subscriber, events: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while (self.seqs().len() as u64) < events && tokio::time::Instant::now() < deadline {
            self.drain(sub, 200).await;
        }
        self.drain(sub, 1000).await;
    }

    /// Every sequence number `0..events` under exactly one id, and no id
    /// with two payloads; `what` names the run in the messages.
    pub(crate) fn assert_exactly_once(&self, events: u64, what: &str) {
        eprintln!("{what}: {} received, {} distinct ids", self.received, self.by_id.len());
        let c = &self.conflicts;
        assert!(c.is_empty(), "{what}: {} ids with two payloads, e.g. {:?}", c.len(), &c[..c.len().min(5)]);
        let seqs = self.seqs();
        let missing: Vec<u64> = (0..events).filter(|s| !seqs.contains_key(s)).collect();
        let repeated: Vec<(&u64, &usize)> = seqs.iter().filter(|(_, n)| **n > 1).take(20).collect();
        // The ids of the first repeated seqs: which epochs and nodes made them.
        let ids_of = |seq: u64| -> Vec<&String> {
            self.by_id.iter().filter(|(_, v)| v["seq"].as_u64() == Some(seq)).map(|(id, _)| id).collect()
        };
        let examples: Vec<(u64, Vec<&String>)> = repeated.iter().take(3).map(|(s, _)| (**s, ids_of(**s))).collect();
        assert!(
            missing.is_empty() && repeated.is_empty(),
            "{what}: {} missing (first {:?}, last {:?}), under two ids {repeated:?}, e.g. {examples:?}",
            missing.len(),
            missing.first(),
            missing.last()
        );
    }

    /// The distinct `seq` values output, counted.
    pub(crate) fn seqs(&self) -> BTreeMap<u64, usize> {
        let mut m = BTreeMap::new();
        for v in self.by_id.values() {
            *m.entry(v["seq"].as_u64().expect("a seq")).or_insert(0) += 1;
        }
        m
    }
}

/// Exactly-once across failover: a `qos: 2` rule on a three-node cluster,
/// fed sequence-numbered events at QoS 1 through mosquitto. The node
/// running it is killed with `kill -9` while events flow and restarted (it
/// rejoins); then the raft leader is killed the same way. The
/// rule's state (checkpoints, ingest log) reached its standby before the
/// broker was acknowledged, so each promoted standby restores it: the
/// outputs, deduplicated by id, are every event exactly once, and no id
/// carries two payloads.
#[test]
fn exactly_once_across_kill_9_of_the_rules_node_and_the_leader() {
    let _serial = one_at_a_time();
    const EVENTS: u64 = 600;
    let root = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start_in(root.path()) else { return };
    let port = broker.port;
    let mut members = start_members(root.path(), port);
    form(&members);
    // One source client id wherever the rule runs (`start_on`): the broker
    // keeps the session (and what is not acknowledged yet) across nodes.
    let [Some(a), Some(b), _] = &members[..] else { unreachable!() };
    create_exactly_once_rule(a, b, "eo", port);
    wait_until(Duration::from_secs(20), "the rule placed and running", || {
        placed_on(&members, "eo").is_some() && running_everywhere(&members, "eo")
    });
    std::thread::sleep(Duration::from_millis(500));

    let rt = runtime();
    let mut out = Outputs::default();
    let mut sub = rt.block_on(Subscriber::start(port, "eo-sub", "eo/out", 1, true));
    let mut publisher = rt.block_on(async { Publisher::new(port, "eo-pub") });
    let third = EVENTS / 3;
    for round in 0..3u64 {
        // The round's events, then (but the last round) a kill while the
        // rule still works on them: acknowledged to the broker, not yet
        // checkpointed or sent.
        rt.block_on(async {
            for i in round * third..(round + 1) * third {
                publisher.publish("eo/in", 1, json!({"seq": i}).to_string()).await;
            }
            publisher.wait_acked((round + 1) * third).await;
            out.drain(&mut sub, if round == 2 { 300 } else { 30 }).await;
        });
        if round == 2 {
            break;
        }
        // kill -9 mid-stream: first the node running the rule, then the
        // raft leader (the same node or not); then bring it back (it
        // rejoins with its data) so the cluster keeps a standby.
        let on = match round {
            0 => placed_on(&members, "eo").expect("placed"),
            _ => leader_of(&members).expect("a leader"),
        };
        members[on].take().unwrap().server.kill();
        wait_until(Duration::from_secs(30), "the rule running after the kill", || {
            placed_on(&members, "eo").is_some_and(|n| n != on) && running_everywhere(&members, "eo")
        });
        let back = start_member_at(root.path(), NAMES[on], port, &members);
        members[on] = Some(back);
    }
    // Every round waited for its acknowledgements already.
    rt.block_on(out.collect_all(&mut sub, EVENTS));
    out.assert_exactly_once(EVENTS, "exactly-once failover");
    assert_placements_agree(&members);
    // The rule's status shows its ingest log (asked of any member).
    let st = members.iter().flatten().next().unwrap().server.call("GET", "/rules/eo/status", None).json();
    assert_eq!(st["source_eo_0_ingest_log_capacity"], 100_000, "{st}");
    assert!(st["source_eo_0_ingest_log_appended_total"].as_u64().is_some_and(|n| n > 0), "{st}");
    drop(broker);
}

/// A node whose disk is wiped comes back as a new member: it starts
/// without crashing, joins under a new id, the gone id is removed with
/// `weir cluster remove`, and the rule keeps running with a standby.
#[test]
fn a_wiped_node_rejoins_as_a_new_member() {
    let _serial = one_at_a_time();
    let broker = free_port();
    start_rumqttd(broker);
    let root = tempfile::tempdir().unwrap();
    let mut members = start_members(root.path(), broker);
    form(&members);
    {
        let Some(a) = &members[0] else { unreachable!() };
        let r = a.server.call(
            "POST",
            "/streams",
            Some(r#"{"sql":"CREATE STREAM w (x bigint) WITH (DATASOURCE=\"w/in\")"}"#),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let rule = json!({"id": "w", "sql": "SELECT x FROM w", "actions": [{"nop": {}}]});
        created(&a.server, "/rules", &rule.to_string());
    }
    wait_until(Duration::from_secs(20), "the rule running", || placed_on(&members, "w").is_some());
    // Wipe a node that is not the leader: kill it, delete its data.
    let gone = (0..3).find(|i| Some(*i) != leader_of(&members)).unwrap();
    let old_id = members[gone].as_ref().unwrap().server.call("GET", "/cluster/status", None).json()["id"].clone();
    members[gone].take().unwrap().server.kill();
    let name = ["a", "b", "c"][gone];
    std::fs::remove_dir_all(root.path().join(name).join("data")).unwrap();
    let fresh = start_member(root.path(), name, broker);
    let seed = members.iter().flatten().next().unwrap().addr.clone();
    cli(&fresh, &["join", &seed]);
    let new_id = fresh.server.call("GET", "/cluster/status", None).json()["id"].clone();
    assert_ne!(new_id, old_id);
    // Its copy of the metadata arrived with the join.
    wait_until(Duration::from_secs(10), "the stream on the new member", || {
        fresh.server.call("GET", "/streams", None).json() == json!(["w"])
    });
    cli(&fresh, &["remove", &old_id.to_string()]);
    members[gone] = Some(fresh);
    wait_until(Duration::from_secs(20), "three live members, the old id gone", || {
        members.iter().flatten().all(|m| {
            let st = m.server.call("GET", "/cluster/status", None).json();
            let ids: Vec<_> = st["members"].as_array().unwrap().iter().map(|x| x["id"].clone()).collect();
            ids.len() == 3
                && !ids.contains(&old_id)
                && st["members"].as_array().unwrap().iter().all(|x| x["live"] == true)
        })
    });
    wait_until(Duration::from_secs(20), "the rule running with a standby", || {
        let st = members[0].as_ref().unwrap().server.call("GET", "/cluster/status", None).json();
        st["placement"]["w"][0]["standby"].is_u64() && running_everywhere(&members, "w")
    });
}
