//! A sharded rule on a three-node cluster (issue 8): `"shards": 3` splits
//! a keyed window aggregation over the nodes. Each shard reads a third of
//! the input through an MQTT shared subscription, rows meet their key's
//! shard over the node-to-node exchange, and checkpoints are aligned
//! across nodes. After `kill -9` of a node running a shard, and then of the
//! raft leader, the rule rolls back as a whole to its committed checkpoint
//! and goes on: every event is counted exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::brokers::{runtime, Mosquitto, Publisher, Subscriber};
use crate::cluster::{
    assert_placements_agree, form, leader_of, one_at_a_time, sees_all_live, start_member_at, start_members, wait_until,
    Member, Outputs, NAMES,
};
use crate::util::created;

const DEVICES: u64 = 12;

/// Creates stream `sh` and the three-shard rule `sh` counting and summing
/// per device over 500 ms windows, its outputs to `sh/out` with their ids.
fn create_sharded_rule(on: &Member, port: u16) {
    let stream = json!({"sql": "CREATE STREAM sh (dev STRING, v BIGINT) WITH (DATASOURCE=\"sh/in\", FORMAT=\"json\")"});
    created(&on.server, "/streams", &stream.to_string());
    let rule = json!({"id": "sh",
        "sql": "SELECT dev, count(*) AS c, sum(v) AS s FROM sh GROUP BY dev, TumblingWindow(ms, 500)",
        "options": {"qos": 2, "checkpointInterval": 200, "shards": 3},
        "actions": [{"mqtt": {"server": format!("tcp://127.0.0.1:{port}"), "topic": "sh/out", "qos": 1,
            "sendSingle": true, "idField": "_id", "clientId": "weir-sh-sink"}}]});
    created(&on.server, "/rules", &rule.to_string());
}

/// A rule that cannot run split is refused, with the reason.
fn refuses_rules_that_cannot_be_split(on: &Member) {
    let push = json!({"sql": "CREATE STREAM hp (dev STRING) WITH (TYPE=\"httppush\", DATASOURCE=\"/hp\")"});
    created(&on.server, "/streams", &push.to_string());
    for (sql, why) in [
        ("SELECT dev, count(*) FROM sh GROUP BY dev, SlidingWindow(ss, 1)", "tumbling and hopping"),
        ("SELECT count(*) FROM sh GROUP BY TumblingWindow(ss, 1)", "GROUP BY keys"),
        ("SELECT dev, count(*) FROM hp GROUP BY dev, TumblingWindow(ss, 1)", "shared subscriptions"),
    ] {
        let rule = json!({"id": "nope", "sql": sql, "actions": [{"log": {}}], "options": {"qos": 2, "shards": 2}});
        let r = on.server.call("POST", "/rules", Some(&rule.to_string()));
        assert!(r.status == 400 && r.body.contains(why), "{sql}: {} {}", r.status, r.body);
    }
}

/// The primary node id of each shard of rule `id`, as `m` sees it.
fn shard_primaries(m: &Member, id: &str) -> Vec<u64> {
    let st = m.server.call("GET", "/cluster/status", None).json();
    st["placement"][id].as_array().map(|s| s.iter().filter_map(|p| p["primary"].as_u64()).collect()).unwrap_or_default()
}

/// The member index of each node id.
fn member_ids(members: &[Option<Member>]) -> BTreeMap<u64, usize> {
    members
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((m.as_ref()?.server.call("GET", "/cluster/status", None).json()["id"].as_u64()?, i)))
        .collect()
}

/// Whether all three shards are placed on live members and each of those
/// members reports the rule running.
fn all_shards_running(members: &[Option<Member>]) -> bool {
    let ids = member_ids(members);
    let Some(first) = members.iter().flatten().next() else { return false };
    let primaries = shard_primaries(first, "sh");
    primaries.len() == 3
        && primaries.iter().all(|p| {
            ids.get(p)
                .and_then(|i| members[*i].as_ref())
                .is_some_and(|m| m.server.call("GET", "/rules/sh/status", None).json()["status"] == "running")
        })
}

/// (count, sum) per device over the outputs, deduplicated by id.
fn totals(out: &Outputs) -> BTreeMap<String, (u64, u64)> {
    let mut t = BTreeMap::new();
    for v in out.by_id.values() {
        let e = t.entry(v["dev"].as_str().expect("dev").to_string()).or_insert((0, 0));
        e.0 += v["c"].as_u64().expect("c");
        e.1 += v["s"].as_u64().expect("s");
    }
    t
}

fn expected(events: u64) -> BTreeMap<String, (u64, u64)> {
    let mut t = BTreeMap::new();
    for i in 0..events {
        let e = t.entry(format!("d{}", i % DEVICES)).or_insert((0, 0));
        e.0 += 1;
        e.1 += i;
    }
    t
}

#[test]
fn a_sharded_rule_counts_exactly_once_across_kill_9() {
    let _serial = one_at_a_time();
    const EVENTS: u64 = 1200;
    let root = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start_in(root.path()) else { return };
    let port = broker.port;
    let mut members = start_members(root.path(), port);
    form(&members);
    wait_until(Duration::from_secs(20), "three live members", || members.iter().flatten().all(|m| sees_all_live(m, 3)));
    create_sharded_rule(members[1].as_ref().unwrap(), port);
    refuses_rules_that_cannot_be_split(members[2].as_ref().unwrap());
    wait_until(Duration::from_secs(30), "every shard running", || all_shards_running(&members));
    // The shards are spread: with three nodes, each runs one.
    let primaries = shard_primaries(members[0].as_ref().unwrap(), "sh");
    let distinct: std::collections::BTreeSet<_> = primaries.iter().collect();
    assert_eq!(distinct.len(), 3, "shards placed {primaries:?}");
    std::thread::sleep(Duration::from_millis(500));

    let rt = runtime();
    let mut out = Outputs::default();
    let mut sub = rt.block_on(Subscriber::start(port, "sh-sub", "sh/out", 1, true));
    let mut publisher = rt.block_on(async { Publisher::new(port, "sh-pub") });
    let third = EVENTS / 3;
    let mut recoveries = Vec::new();
    for round in 0..3u64 {
        rt.block_on(async {
            for i in round * third..(round + 1) * third {
                publisher.publish("sh/in", 1, json!({"dev": format!("d{}", i % DEVICES), "v": i}).to_string()).await;
            }
            publisher.wait_acked((round + 1) * third).await;
            out.drain(&mut sub, 300).await;
        });
        if round == 2 {
            break;
        }
        // kill -9 a node running a shard (not the leader), then the leader.
        let leader = leader_of(&members).expect("a leader");
        let on = match round {
            0 => (0..3).find(|i| *i != leader && members[*i].is_some()).unwrap(),
            _ => leader,
        };
        let killed = Instant::now();
        members[on].take().unwrap().server.kill();
        wait_until(Duration::from_secs(30), "every shard running after the kill", || all_shards_running(&members));
        recoveries.push(killed.elapsed());
        let back = start_member_at(root.path(), NAMES[on], port, &members);
        members[on] = Some(back);
    }
    let want = expected(EVENTS);
    let deadline = Instant::now() + Duration::from_secs(60);
    while totals(&out) != want && Instant::now() < deadline {
        rt.block_on(out.drain(&mut sub, 300));
    }
    rt.block_on(out.drain(&mut sub, 1500));
    eprintln!("sharded rule: {} outputs, {} ids, recoveries {recoveries:?}", out.received, out.by_id.len());
    assert!(out.conflicts.is_empty(), "ids with two payloads: {:?}", &out.conflicts[..out.conflicts.len().min(5)]);
    assert_eq!(totals(&out), want, "every event counted exactly once");
    assert_placements_agree(&members);
    // Dropped on any node, the rule's shards stop everywhere.
    let any = members.iter().flatten().next().unwrap();
    assert_eq!(any.server.call("DELETE", "/rules/sh", None).status, 200);
    wait_until(Duration::from_secs(20), "the rule gone from every node", || {
        members.iter().flatten().all(|m| m.server.call("GET", "/rules/sh/status", None).status == 404)
    });
    drop(broker);
}
