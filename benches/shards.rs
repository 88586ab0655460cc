//! A sharded rule on three nodes against the same rule on one node (issue 8
//! item 6).
//!
//! Both sides run this build's `weir serve` on 127.0.0.1 with a fresh
//! mosquitto, the same stream, SQL and input:
//!
//! - **one node**: a one-node cluster (`weir cluster init`) running the
//!   rule with `shards: 1` (an ordinary rule);
//! - **three nodes**: three nodes formed with `init`/`join` running it with
//!   `shards: 3`: each shard reads a third of the input through an MQTT
//!   shared subscription, sends rows to their key's shard over the
//!   node-to-node exchange and keeps its state replicated to a standby;
//!   checkpoints are aligned across nodes.
//!
//! The rule counts and sums per device over 500 ms tumbling windows
//! (`qos: 2`, checkpoint every second); its MQTT sink sends one message per
//! window per shard, each row carrying the emission id (`idField`). After a
//! warm-up (events of device `warm` counted, so the input is subscribed),
//! publisher connections publish the events at QoS 1 as fast as they can;
//! the figure is the time from the first publish to the moment the
//! deduplicated outputs count every event, and the CPU time (user + sys,
//! `/proc/<pid>/stat`) of the weir processes, mosquitto and this process
//! (publishers and subscriber) over that time. Every device's count and sum
//! is checked exactly, so each figure is of a correct run. Before the weir
//! nodes start, the same publishers publish the same events to a topic
//! nobody reads: the publisher-and-broker ceiling.
//!
//! Two loads: as fast as possible (the publisher-and-broker ceiling measured
//! first), and paced below one node's capacity (the per-event CPU cost
//! without a backlog; the nodes' idle CPU, measured before, is also
//! subtracted).
//!
//! Then, on a fresh cluster, the failover of a sharded rule (module
//! [`failover`]): kill -9 of a node running a shard, then of the raft
//! leader, under a steady input; kill to the first output covering an
//! event published after the kill.
//!
//! `cargo bench --bench shards` runs 300,000 events per side as fast as
//! possible in the order one, three, three, one, then 80,000 at 8,000/s on
//! one and three, then 5 kills; `-- --test` (CI) 3,000 events per case,
//! one and three, and one kill; `-- failover` only the kills.
//! `WEIR_BENCH_SHARD_EVENTS`, `WEIR_BENCH_SHARD_PACED`,
//! `WEIR_BENCH_SHARD_RATE`, `WEIR_BENCH_SHARD_KILLS` and
//! `WEIR_BENCH_SHARD_KILL_RATE` (2,000/s) set the counts and the paces. Needs mosquitto; skips without it.

#[path = "../tests/brokers.rs"]
#[allow(dead_code)]
mod brokers;
#[path = "../tests/cluster.rs"]
#[allow(dead_code, unused_imports)]
mod cluster;
#[path = "shards/failover.rs"]
mod failover;
#[path = "../tests/util.rs"]
#[allow(dead_code)]
mod util;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::json;

use brokers::{runtime, Mosquitto, Publisher};
use cluster::{form, sees_all_live, start_member, wait_until, Member, NAMES};
use tokio::sync::{mpsc, watch};
use util::created;

/// Distinct keys of the GROUP BY.
const DEVICES: u64 = 1000;
/// Publisher connections (one rumqttc client each, 100 in flight).
const PUBLISHERS: u64 = 2;
/// Warm-up events (device `warm`), counted before the measured run.
const WARM: u64 = 30;
/// How long the nodes' CPU without input is measured.
const IDLE: Duration = Duration::from_secs(3);

fn main() {
    let test = std::env::args().any(|a| a == "--test");
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let events = env("WEIR_BENCH_SHARD_EVENTS").unwrap_or(if test { 3_000 } else { 300_000 });
    let paced = env("WEIR_BENCH_SHARD_PACED").unwrap_or(if test { 3_000 } else { 80_000 });
    let rate = env("WEIR_BENCH_SHARD_RATE").unwrap_or(if test { 3_000 } else { 8_000 });
    let limit = if test { Duration::from_secs(60) } else { Duration::from_secs(600) };
    let kills = env("WEIR_BENCH_SHARD_KILLS").unwrap_or(if test { 1 } else { 5 }) as usize;
    let kill_rate = env("WEIR_BENCH_SHARD_KILL_RATE").unwrap_or(2_000);
    if std::env::args().any(|a| a == "failover") {
        failover::run(kills, kill_rate);
        return;
    }
    println!("shards bench: {DEVICES} devices, {PUBLISHERS} publishers; load average {}", loadavg());
    // Sides alternate (one, three, three, one) so a drift of the machine's
    // load weighs on both.
    let burst: &[u32] = if test { &[1, 3] } else { &[1, 3, 3, 1] };
    let loads = burst
        .iter()
        .map(|n| (*n, Load { events, rate: None }))
        .chain([1, 3].map(|n| (n, Load { events: paced, rate: Some(rate) })));
    let mut results: BTreeMap<(Option<u64>, u32), Vec<Run>> = BTreeMap::new();
    for (nodes, load) in loads {
        let Some(run) = run_side(nodes, load, limit) else { return };
        run.print();
        results.entry((load.rate, nodes)).or_default().push(run);
    }
    let mean = |key: (Option<u64>, u32), f: &dyn Fn(&Run) -> f64| {
        let r = &results[&key];
        r.iter().map(f).sum::<f64>() / r.len() as f64
    };
    let speed = |r: &Run| r.load.events as f64 / r.wall.as_secs_f64();
    let cpu = |r: &Run| r.weir_cpu.iter().sum::<f64>() / r.load.events as f64 * 1e6;
    let net = |r: &Run| r.net_cpu() * 1e6;
    println!(
        "shards summary, as fast as possible ({} runs per side): one node {:.0} events/s, {:.1} weir CPU-s per M \
         events; three nodes {:.0} events/s, {:.1} weir CPU-s per M events; throughput three/one {:.2}, CPU per \
         event three/one {:.2}",
        results[&(None, 1)].len(),
        mean((None, 1), &speed),
        mean((None, 1), &cpu),
        mean((None, 3), &speed),
        mean((None, 3), &cpu),
        mean((None, 3), &speed) / mean((None, 1), &speed),
        mean((None, 3), &cpu) / mean((None, 1), &cpu),
    );
    let p = Some(rate);
    println!(
        "shards summary, paced at {rate} events/s: weir CPU-s per M events one node {:.1} ({:.1} net of idle), \
         three nodes {:.1} ({:.1} net of idle); three/one {:.2} ({:.2} net of idle); load average {}",
        mean((p, 1), &cpu),
        mean((p, 1), &net),
        mean((p, 3), &cpu),
        mean((p, 3), &net),
        mean((p, 3), &cpu) / mean((p, 1), &cpu),
        mean((p, 3), &net) / mean((p, 1), &net),
        loadavg()
    );
    failover::run(kills, kill_rate);
}

/// What the publishers send: `events` events, as fast as they can or at
/// `rate` events/s.
#[derive(Clone, Copy)]
struct Load {
    events: u64,
    rate: Option<u64>,
}

/// The figures of one side's run.
struct Run {
    nodes: u32,
    load: Load,
    /// Publishers alone (to a topic nobody reads), events/s; as fast as
    /// they can only.
    publish_only: Option<f64>,
    /// First publish to the last event counted in the outputs.
    wall: Duration,
    /// First publish to the last publish acknowledged by the broker.
    acked: Duration,
    /// CPU seconds per weir node over `wall`.
    weir_cpu: Vec<f64>,
    /// CPU seconds per second of all weir nodes without input.
    idle: f64,
    /// Per weir node, its busiest thread over `wall`: name, CPU seconds.
    busiest: Vec<(String, f64)>,
    mosquitto_cpu: f64,
    /// This process: publishers and subscriber.
    clients_cpu: f64,
    /// Peak resident memory per node, KiB.
    weir_hwm: Vec<u64>,
    outputs: usize,
}

impl Run {
    /// Weir CPU seconds per event, less what the nodes use without input
    /// over the same time.
    fn net_cpu(&self) -> f64 {
        (self.weir_cpu.iter().sum::<f64>() - self.idle * self.wall.as_secs_f64()) / self.load.events as f64
    }

    fn print(&self) {
        let (w, events) = (self.wall.as_secs_f64(), self.load.events);
        let how = match (self.load.rate, self.publish_only) {
            (Some(r), _) => format!("paced at {r} events/s"),
            (None, Some(p)) => format!("as fast as possible; publishers alone {p:.0} events/s"),
            (None, None) => "as fast as possible".to_string(),
        };
        let total: f64 = self.weir_cpu.iter().sum();
        let per_node: Vec<String> = self.weir_cpu.iter().map(|c| format!("{c:.2}")).collect();
        let rss: Vec<String> = self.weir_hwm.iter().map(|k| format!("{} MiB", k / 1024)).collect();
        let busiest: Vec<String> =
            self.busiest.iter().map(|(name, c)| format!("{name} {:.0}%", c / w * 100.0)).collect();
        println!(
            "shards {} node(s), {how}: {events} events in {w:.2} s = {:.0} events/s (publishers acked at {:.2} s); \
             CPU s: weir {total:.2} [{}] = {:.1} per M events ({:.1} net of {:.0} ms/s idle), mosquitto {:.2}, \
             clients {:.2}; busiest thread per node (CPU / wall) [{}]; {} output messages; peak RSS [{}]",
            self.nodes,
            events as f64 / w,
            self.acked.as_secs_f64(),
            per_node.join(", "),
            total / events as f64 * 1e6,
            self.net_cpu() * 1e6,
            self.idle * 1e3,
            self.mosquitto_cpu,
            self.clients_cpu,
            busiest.join(", "),
            self.outputs,
            rss.join(", ")
        );
    }
}

/// Runs one side on a fresh broker and fresh nodes; `None` without
/// mosquitto.
fn run_side(nodes: u32, load: Load, limit: Duration) -> Option<Run> {
    let events = load.events;
    let root = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start_in(root.path())?;
    let port = broker.port;
    let mosquitto_pid = pid_of_mosquitto(root.path());
    let rt = runtime();

    // The publisher-and-broker ceiling, before any node runs.
    let publish_only = load.rate.is_none().then(|| {
        let t = Instant::now();
        rt.block_on(publish_all(port, "bench/void", load, "void", limit));
        events as f64 / t.elapsed().as_secs_f64()
    });

    let members: Vec<Option<Member>> =
        NAMES[..nodes as usize].iter().map(|n| Some(start_member(root.path(), n, port))).collect();
    form(&members);
    wait_until(Duration::from_secs(30), "every member live", || {
        members.iter().flatten().all(|m| sees_all_live(m, nodes as usize))
    });
    let on = members[0].as_ref().unwrap();
    let stream = json!({"sql": "CREATE STREAM st (dev STRING, v BIGINT) WITH (DATASOURCE=\"st/in\", FORMAT=\"json\")"});
    created(&on.server, "/streams", &stream.to_string());
    let rule = json!({"id": "agg",
        "sql": "SELECT dev, count(*) AS c, sum(v) AS s FROM st GROUP BY dev, TumblingWindow(ms, 500)",
        "options": {"qos": 2, "checkpointInterval": 1000, "shards": nodes},
        "actions": [{"mqtt": {"server": format!("tcp://127.0.0.1:{port}"), "topic": "st/out", "qos": 1,
            "sendSingle": false, "idField": "_id", "clientId": "weir-bench-shards-sink"}}]});
    created(&on.server, "/rules", &rule.to_string());
    wait_until(Duration::from_secs(60), "every shard running", || all_running(&members, "agg", nodes));

    let mut sub = rt.block_on(subscribe(port, "bench-shards-sub", "st/out"));
    let mut out = Outputs::default();
    rt.block_on(warm_up(port, "st/in", &mut out, &mut sub));

    let pids: Vec<u32> = members.iter().flatten().map(|m| m.server.pid()).collect();
    // The nodes' CPU with the rule running and no input (raft ticks,
    // leases, empty checkpoints), to tell the per-event cost from it.
    let weir_total = || pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    let (idle0, t) = (weir_total(), Instant::now());
    std::thread::sleep(IDLE);
    let idle = (weir_total() - idle0) / t.elapsed().as_secs_f64();
    let cpu0: Vec<f64> = pids.iter().map(|p| cpu_secs(*p)).collect();
    let threads0: Vec<HashMap<u32, (String, f64)>> = pids.iter().map(|p| thread_cpu(*p)).collect();
    let (mosq0, self0) = (mosquitto_pid.map_or(0.0, cpu_secs), cpu_secs(std::process::id()));
    let start = Instant::now();
    let (wall, acked) = rt.block_on(async {
        let publishing = tokio::spawn(publish_all(port, "st/in", load, "st", limit));
        let mut acked = None;
        let until = tokio::time::Instant::now() + limit;
        while out.counted() < events + WARM {
            assert!(
                tokio::time::Instant::now() < until,
                "{nodes} node(s): {} of {events} events counted in {limit:?}",
                out.counted() - WARM
            );
            out.drain(&mut sub, 50).await;
            if acked.is_none() && publishing.is_finished() {
                acked = Some(start.elapsed());
            }
        }
        (start.elapsed(), acked.unwrap_or_else(|| start.elapsed()))
    });
    let weir_cpu: Vec<f64> = pids.iter().zip(&cpu0).map(|(p, c)| cpu_secs(*p) - c).collect();
    let busiest = pids.iter().zip(&threads0).map(|(p, t0)| busiest_thread(*p, t0)).collect();
    let mosquitto_cpu = mosquitto_pid.map_or(0.0, cpu_secs) - mosq0;
    let clients_cpu = cpu_secs(std::process::id()) - self0;
    let weir_hwm = pids.iter().map(|p| status_kib(*p, "VmHWM:")).collect();

    // Late duplicates would show here; then every device exactly.
    rt.block_on(out.drain(&mut sub, 1000));
    assert!(out.conflicts.is_empty(), "ids with two payloads: {:?}", &out.conflicts[..out.conflicts.len().min(3)]);
    let mut want = expected(events);
    want.insert("warm".into(), (WARM, 0));
    assert_eq!(out.totals(), want, "{nodes} node(s): every event counted exactly once");
    drop(members);
    drop(broker);
    Some(Run {
        nodes,
        load,
        publish_only,
        wall,
        acked,
        weir_cpu,
        idle,
        busiest,
        mosquitto_cpu,
        clients_cpu,
        weir_hwm,
        outputs: out.by_id.len(),
    })
}

/// Publishes [`WARM`] events of device `warm` to `topic` and waits until
/// the outputs count them: then the input is subscribed (a shared
/// subscription loses nothing while one member of the group is there).
async fn warm_up(port: u16, topic: &str, out: &mut Outputs, sub: &mut mpsc::UnboundedReceiver<Vec<u8>>) {
    let p = Publisher::new(port, "bench-warm");
    for _ in 0..WARM {
        p.publish(topic, 1, json!({"dev": "warm", "v": 0}).to_string()).await;
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.totals().get("warm").map_or(0, |t| t.0) < WARM {
        assert!(tokio::time::Instant::now() < until, "warm-up events not counted in 60 s");
        out.drain(sub, 200).await;
    }
}

/// The event `i`: device `d<i mod DEVICES>`, value `i`.
fn event(i: u64) -> String {
    json!({"dev": format!("d{}", i % DEVICES), "v": i}).to_string()
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

/// Publishes events `0..events` to `topic` at QoS 1 over [`PUBLISHERS`]
/// connections (events `i` with `i mod PUBLISHERS == k` on connection `k`),
/// paced in 10 ms ticks if `load` has a rate, and returns once the broker
/// acknowledged all of them.
async fn publish_all(port: u16, topic: &str, load: Load, tag: &str, limit: Duration) {
    let events = load.events;
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|k| {
            let (topic, id) = (topic.to_string(), format!("bench-pub-{tag}-{k}"));
            tokio::spawn(async move {
                let p = Publisher::new(port, &id);
                let n = (k..events).step_by(PUBLISHERS as usize).count() as u64;
                let start = tokio::time::Instant::now();
                for (j, i) in (k..events).step_by(PUBLISHERS as usize).enumerate() {
                    if let Some(rate) = load.rate {
                        // Event i is due at i / rate s; wait in 10 ms ticks.
                        let due = start + Duration::from_micros(i * 1_000_000 / rate);
                        if j % 16 == 0 && due > tokio::time::Instant::now() + Duration::from_millis(10) {
                            tokio::time::sleep_until(due).await;
                        }
                    }
                    p.publish(&topic, 1, event(i)).await;
                }
                let until = tokio::time::Instant::now() + limit;
                while p.acked() < n {
                    assert!(tokio::time::Instant::now() < until, "{id}: {} of {n} acknowledged", p.acked());
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a publisher");
    }
}

/// Outputs seen: emission id -> the rows of that message (sendSingle off:
/// one array per window and shard, every row carrying the id).
#[derive(Default)]
struct Outputs {
    by_id: HashMap<String, serde_json::Value>,
    conflicts: Vec<String>,
    /// Sum of `c` over the distinct messages.
    counted: u64,
    /// The largest `m` (a rule's `max(v)`, the newest event it covers) of
    /// any row, if the rows have one.
    newest: Option<u64>,
}

impl Outputs {
    fn take(&mut self, rows: serde_json::Value) {
        let id = rows[0]["_id"].as_str().unwrap_or_else(|| panic!("no _id in {rows}")).to_string();
        match self.by_id.get(&id) {
            Some(old) if *old != rows => self.conflicts.push(format!("{id}: {old} then {rows}")),
            Some(_) => {}
            None => {
                let rows_of = rows.as_array().expect("an array");
                self.counted += rows_of.iter().map(|r| r["c"].as_u64().expect("c")).sum::<u64>();
                self.newest = self.newest.max(rows_of.iter().filter_map(|r| r["m"].as_u64()).max());
                self.by_id.insert(id, rows);
            }
        }
    }

    fn counted(&self) -> u64 {
        self.counted
    }

    /// Takes what arrives for `ms`.
    async fn drain(&mut self, sub: &mut mpsc::UnboundedReceiver<Vec<u8>>, ms: u64) {
        let until = tokio::time::Instant::now() + Duration::from_millis(ms);
        while self.drain_one(sub, until).await {}
    }

    /// Takes the next message; false if none arrived before `until`.
    async fn drain_one(&mut self, sub: &mut mpsc::UnboundedReceiver<Vec<u8>>, until: tokio::time::Instant) -> bool {
        let Ok(m) = tokio::time::timeout_at(until, sub.recv()).await else { return false };
        let m = m.expect("the subscriber runs");
        self.take(serde_json::from_slice(&m).unwrap_or_else(|e| panic!("an output is not JSON ({e})")));
        true
    }

    /// (count, sum) per device.
    fn totals(&self) -> BTreeMap<String, (u64, u64)> {
        let mut t = BTreeMap::new();
        for row in self.by_id.values().flat_map(|rows| rows.as_array().expect("an array")) {
            let e = t.entry(row["dev"].as_str().expect("dev").to_string()).or_insert((0, 0));
            e.0 += row["c"].as_u64().expect("c");
            e.1 += row["s"].as_u64().expect("s");
        }
        t
    }
}

/// A QoS 1 subscriber on `filter` taking messages of up to 16 MiB (a
/// window's rows of one shard in one message; the tests' `Subscriber`
/// keeps rumqttc's 10 KiB default). Its session persists, so a reconnect
/// loses nothing; returns once subscribed.
async fn subscribe(port: u16, id: &str, filter: &str) -> mpsc::UnboundedReceiver<Vec<u8>> {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30)).set_clean_session(false).set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut el) = rumqttc::AsyncClient::new(o, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, mut subscribed) = watch::channel(false);
    let filter = filter.to_string();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) if !ack.session_present => {
                    let _ = client.subscribe(filter.clone(), rumqttc::QoS::AtLeastOnce).await;
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    subscribed_tx.send_replace(true);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if tx.send(p.payload.to_vec()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), subscribed.wait_for(|s| *s)).await.expect("subscribed").unwrap();
    rx
}

/// Whether rule `id` is placed with `shards` shards and every node running
/// one reports it running.
fn all_running(members: &[Option<Member>], id: &str, shards: u32) -> bool {
    let live: Vec<&Member> = members.iter().flatten().collect();
    let ids: Vec<Option<u64>> =
        live.iter().map(|m| m.server.call("GET", "/cluster/status", None).json()["id"].as_u64()).collect();
    let st = live[0].server.call("GET", "/cluster/status", None).json();
    let primaries: Vec<u64> = st["placement"][id]
        .as_array()
        .map(|s| s.iter().filter_map(|p| p["primary"].as_u64()).collect())
        .unwrap_or_default();
    primaries.len() == shards as usize
        && primaries.iter().all(|p| {
            ids.iter().position(|i| *i == Some(*p)).is_some_and(|i| {
                live[i].server.call("GET", &format!("/rules/{id}/status"), None).json()["status"] == "running"
            })
        })
}

/// User + system CPU seconds of process `pid` so far (all its threads).
fn cpu_secs(pid: u32) -> f64 {
    stat_cpu(&format!("/proc/{pid}/stat")).1
}

/// (name, user + system CPU seconds) from a `/proc/.../stat` file.
fn stat_cpu(path: &str) -> (String, f64) {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The name (which may hold spaces) is in parentheses; after it, state
    // is field 3, utime 14, stime 15.
    let (head, rest) = stat.rsplit_once(')').unwrap_or_default();
    let name = head.split_once('(').map_or("", |(_, n)| n).to_string();
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    (name, ticks as f64 / clock_ticks())
}

/// Thread id -> (name, CPU seconds) of every thread of `pid`.
fn thread_cpu(pid: u32) -> HashMap<u32, (String, f64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return HashMap::new() };
    dir.flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((tid, stat_cpu(&format!("/proc/{pid}/task/{tid}/stat"))))
        })
        .collect()
}

/// The thread of `pid` that used the most CPU since `before` was taken:
/// one near 100 % of the wall time bounds its process.
fn busiest_thread(pid: u32, before: &HashMap<u32, (String, f64)>) -> (String, f64) {
    thread_cpu(pid)
        .into_iter()
        .map(|(tid, (name, c))| (name, c - before.get(&tid).map_or(0.0, |b| b.1)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_default()
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A `kB` line of `/proc/<pid>/status`, e.g. `VmHWM:`.
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// The mosquitto started with its configuration under `root` (its process
/// id is private to the helper; its command line names the file).
fn pid_of_mosquitto(root: &std::path::Path) -> Option<u32> {
    let conf = root.join("broker").join("mosquitto.conf");
    let conf = conf.to_str()?;
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmd).contains(conf).then_some(pid)
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
