//! Failover of a sharded rule: three nodes, a `shards: 3` rule on 200 ms
//! processing-time windows fed at a steady pace; `kill -9` of a node
//! running a shard (not the raft leader), then of the leader, in turn, the
//! killed node restarted in between. Measured per kill: the time to the
//! first output that covers an event published after the kill (each row
//! carries `max(v)`, and `v` is the publish sequence), and the time until
//! every shard is placed on a live node and running again. Before each
//! kill, the same first-output time without a kill (a window plus the
//! checkpoint that releases it) is the baseline. At the end every device's
//! count and sum is checked exactly: the kills lose and repeat nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::brokers::{runtime, Mosquitto, Publisher};
use super::cluster::{form, leader_of, sees_all_live, start_member, start_member_at, wait_until, Member, NAMES};
use super::util::created;
use super::{all_running, event, expected, loadavg, subscribe, warm_up, Outputs};

/// What one kill took.
struct Kill {
    /// The killed node was the raft leader.
    leader: bool,
    /// Shards the killed node was the primary of.
    shards: Vec<usize>,
    /// Publish to first output without a kill, just before.
    baseline: Duration,
    /// Kill to every shard running again.
    running: Duration,
    /// Kill to the first output covering an event published after it.
    output: Duration,
}

/// Runs `kills` failovers (a shard's node, then the leader, in turn) on a
/// fresh broker and cluster under `rate` events/s and prints each and the
/// median and max.
pub(crate) fn run(kills: usize, rate: u64) {
    let root = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start_in(root.path()) else { return };
    let port = broker.port;
    let mut members: Vec<Option<Member>> = NAMES.iter().map(|n| Some(start_member(root.path(), n, port))).collect();
    form(&members);
    wait_until(Duration::from_secs(30), "every member live", || members.iter().flatten().all(|m| sees_all_live(m, 3)));
    let on = members[0].as_ref().unwrap();
    let stream = json!({"sql": "CREATE STREAM fo (dev STRING, v BIGINT) WITH (DATASOURCE=\"fo/in\", FORMAT=\"json\")"});
    created(&on.server, "/streams", &stream.to_string());
    let rule = json!({"id": "fo",
        "sql": "SELECT dev, count(*) AS c, sum(v) AS s, max(v) AS m FROM fo GROUP BY dev, TumblingWindow(ms, 200)",
        "options": {"qos": 2, "checkpointInterval": 200, "shards": 3},
        "actions": [{"mqtt": {"server": format!("tcp://127.0.0.1:{port}"), "topic": "fo/out", "qos": 1,
            "sendSingle": false, "idField": "_id", "clientId": "weir-bench-failover-sink"}}]});
    created(&on.server, "/rules", &rule.to_string());
    wait_until(Duration::from_secs(60), "every shard running", || all_running(&members, "fo", 3));

    let rt = runtime();
    let mut sub = rt.block_on(subscribe(port, "bench-failover-sub", "fo/out"));
    let mut out = Outputs::default();
    rt.block_on(warm_up(port, "fo/in", &mut out, &mut sub));
    let warm = out.counted();

    // The steady input: event i (`v` = i) at i / rate s, `published` the
    // number handed to the client so far.
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let input = rt.spawn({
        let (published, stop) = (published.clone(), stop.clone());
        async move {
            let p = Publisher::new(port, "bench-failover-pub");
            let start = tokio::time::Instant::now();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep_until(start + Duration::from_micros(i * 1_000_000 / rate)).await;
                // Whatever is due (a late wake-up publishes the backlog).
                let due = start.elapsed().as_micros() as u64 * rate / 1_000_000 + 1;
                while i < due {
                    p.publish("fo/in", 1, event(i)).await;
                    i += 1;
                    published.store(i, Ordering::Release);
                }
            }
            p
        }
    });

    let mut done = Vec::new();
    for k in 0..kills {
        wait_until(Duration::from_secs(60), "every shard running", || all_running(&members, "fo", 3));
        // Outputs are current: the first output covering an event
        // published now, without a kill (past the warm-up's `v` = 0).
        let mark = published.load(Ordering::Acquire).max(1);
        let t = Instant::now();
        rt.block_on(first_output_from(&mut out, &mut sub, mark));
        let baseline = t.elapsed();

        let leader = leader_of(&members).expect("a leader");
        let primaries = shard_members(&members);
        // Shard 1's node unless it leads; then another shard's node.
        let victim = if k % 2 == 0 {
            [1, 0, 2].iter().map(|s| primaries[*s]).find(|m| *m != leader).expect("a shard off the leader")
        } else {
            leader
        };
        let shards: Vec<usize> = (0..3).filter(|s| primaries[*s] == victim).collect();
        members[victim].take().unwrap().server.kill();
        let killed = Instant::now();
        let after = published.load(Ordering::Acquire);
        let (running, output) = std::thread::scope(|s| {
            let members = &members;
            let running = s.spawn(move || {
                wait_until(Duration::from_secs(60), "every shard running after the kill", || {
                    all_running(members, "fo", 3)
                });
                killed.elapsed()
            });
            rt.block_on(first_output_from(&mut out, &mut sub, after));
            let output = killed.elapsed();
            (running.join().expect("the running poll"), output)
        });
        let kill = Kill { leader: victim == leader, shards, baseline, running, output };
        println!(
            "shards failover {}: kill -9 of {} (primary of shard(s) {:?}): every shard running after {:.0} ms, \
             first output of an event published after the kill at {:.0} ms (baseline without a kill {:.0} ms)",
            k + 1,
            if kill.leader { "the raft leader" } else { "a follower" },
            kill.shards,
            ms(kill.running),
            ms(kill.output),
            ms(kill.baseline)
        );
        done.push(kill);
        members[victim] = Some(start_member_at(root.path(), NAMES[victim], port, &members));
    }

    // Every event exactly once, kills included.
    stop.store(true, Ordering::Relaxed);
    let mut p = rt.block_on(input).expect("the input");
    let events = published.load(Ordering::Acquire);
    rt.block_on(p.wait_acked(events));
    let until = Instant::now() + Duration::from_secs(60);
    while out.counted() < events + warm {
        assert!(Instant::now() < until, "{} of {events} events counted in 60 s", out.counted() - warm);
        rt.block_on(out.drain(&mut sub, 100));
    }
    rt.block_on(out.drain(&mut sub, 1000));
    assert!(out.conflicts.is_empty(), "ids with two payloads: {:?}", &out.conflicts[..out.conflicts.len().min(3)]);
    let mut want = expected(events);
    want.insert("warm".into(), (warm, 0));
    assert_eq!(out.totals(), want, "every event counted exactly once across the kills");

    let mut outputs: Vec<Duration> = done.iter().map(|k| k.output).collect();
    let mut running: Vec<Duration> = done.iter().map(|k| k.running).collect();
    let mut baseline: Vec<Duration> = done.iter().map(|k| k.baseline).collect();
    println!(
        "shards failover summary, {} kills, {events} events at {rate}/s counted exactly once: kill -9 -> first \
         output median {:.0} ms, max {:.0} ms; -> every shard running median {:.0} ms, max {:.0} ms; baseline \
         median {:.0} ms; load average {}",
        done.len(),
        ms(median(&mut outputs)),
        ms(*outputs.last().unwrap()),
        ms(median(&mut running)),
        ms(*running.last().unwrap()),
        ms(median(&mut baseline)),
        loadavg()
    );
    drop(members);
    drop(broker);
}

/// Drains outputs until one covers event `seq` or later (60 s at most).
async fn first_output_from(out: &mut Outputs, sub: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>, seq: u64) {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.newest.is_none_or(|n| n < seq) {
        assert!(tokio::time::Instant::now() < until, "no output covering event {seq} in 60 s");
        out.drain_one(sub, until).await;
    }
}

/// The member index of each shard's primary (shard order).
fn shard_members(members: &[Option<Member>]) -> Vec<usize> {
    let ids: Vec<Option<u64>> = members
        .iter()
        .map(|m| m.as_ref().and_then(|m| m.server.call("GET", "/cluster/status", None).json()["id"].as_u64()))
        .collect();
    let st = members.iter().flatten().next().unwrap().server.call("GET", "/cluster/status", None).json();
    st["placement"]["fo"]
        .as_array()
        .expect("a placement")
        .iter()
        .map(|p| ids.iter().position(|i| i.is_some() && *i == p["primary"].as_u64()).expect("a live primary"))
        .collect()
}

/// Sorts `d` and returns its median.
fn median(d: &mut [Duration]) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
