//! A sharded rule in one process: three shards, each fed a third of the
//! events (as MQTT shared subscriptions split them), exchange rows by key
//! so every device is counted on one shard, commit checkpoints together,
//! and roll back together: torn down after a commit and started again
//! from it, they count every event exactly once.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{wait_for, Collect};
use tokio::sync::mpsc;
use weir_planner::{parse_statement, plan, Catalog, PhysicalPlan, RuleOptions, Statement};
use weir_runtime::clock::SystemClock;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{RunningRule, Source, SourceSender};
use weir_runtime::shard::{check_shardable, LocalShards};
use weir_runtime::state::{MemoryBackend, StateBackend};
use weir_runtime::Registry;

const SHARDS: u32 = 3;
const DEVICES: usize = 12;

fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    let sql = r#"CREATE STREAM s (dev STRING, v BIGINT) WITH (DATASOURCE="s")"#;
    let Statement::Create(def) = parse_statement(sql).unwrap() else { unreachable!() };
    catalog.insert(*def);
    catalog
}

fn rule_plan(sql: &str) -> Result<PhysicalPlan, String> {
    let options = RuleOptions::from_json(&serde_json::json!({"qos": 2, "checkpointInterval": 30})).unwrap();
    plan("r", sql, &catalog(), &options, Registry::builtins()).map_err(|e| e.to_string())
}

/// Count and sum per device over 50 ms windows.
fn counting_plan() -> PhysicalPlan {
    rule_plan("SELECT dev, count(*) AS c, sum(v) AS s FROM s GROUP BY dev, TumblingWindow(ms, 50)").unwrap()
}

/// Sends `{"dev": ..., "v": ...}` for each event it is given; counts those
/// the rule accepted (durable in its ingest log: what a broker would no
/// longer redeliver).
struct Fed(mpsc::UnboundedReceiver<(usize, i64)>, Arc<AtomicU64>);

impl Source for Fed {
    fn run(
        mut self: Box<Self>,
        mut out: SourceSender,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            while let Some((dev, v)) = self.0.recv().await {
                let data = PayloadData::Bytes(format!("{{\"dev\":\"d{dev}\",\"v\":{v}}}").into_bytes());
                if !out.send(vec![Payload { data, ts: out.now_ms(), meta: None }]).await {
                    return;
                }
                self.1.fetch_add(1, Ordering::AcqRel);
            }
            out.stopped().await;
        })
    }
}

/// The three shards, each with its own store, input and sink.
struct Shards {
    rules: Vec<RunningRule>,
    inputs: Vec<mpsc::UnboundedSender<(usize, i64)>>,
    commit: Arc<weir_runtime::shard::LocalCommit>,
    /// Events the shards' sources accepted.
    accepted: Arc<AtomicU64>,
}

fn start(stores: &[Arc<dyn StateBackend>], outs: &[Collect], restore: u64) -> Shards {
    let plan = counting_plan();
    let mut local = LocalShards::new(SHARDS, restore);
    let mut rules = Vec::new();
    let mut inputs = Vec::new();
    let accepted = Arc::new(AtomicU64::new(0));
    for i in 0..SHARDS {
        let (tx, rx) = mpsc::unbounded_channel();
        inputs.push(tx);
        let mut shard_plan = plan.clone();
        shard_plan.rule_id = format!("r#{i}");
        let rule = RunningRule::start_shard(
            &shard_plan,
            Registry::builtins(),
            Arc::new(SystemClock),
            vec![Box::new(Fed(rx, accepted.clone()))],
            vec![("sink_collect_0".into(), Box::new(outs[i as usize].clone()))],
            stores[i as usize].clone(),
            local.shard(i),
        )
        .unwrap();
        rules.push(rule);
    }
    Shards { rules, inputs, commit: local.commit(), accepted }
}

/// Feeds events `from..to` (event k: device k % DEVICES, value k), dealt
/// round-robin over the shards' inputs.
fn feed(s: &Shards, from: usize, to: usize) {
    for k in from..to {
        s.inputs[k % s.inputs.len()].send((k % DEVICES, k as i64)).unwrap();
    }
}

/// (count, sum) per device over every output, deduplicated by id; checks
/// that each device is counted on one shard only.
fn totals(outs: &[Collect]) -> BTreeMap<String, (i64, i64)> {
    let mut totals = BTreeMap::new();
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for (shard, out) in outs.iter().enumerate() {
        for payload in out.deduplicated().0 {
            let rows: Vec<serde_json::Value> = serde_json::from_str(&payload).unwrap();
            for row in rows {
                let dev = row["dev"].as_str().unwrap().to_string();
                assert_eq!(*owner.entry(dev.clone()).or_insert(shard), shard, "{dev} counted on two shards");
                let t = totals.entry(dev).or_insert((0, 0));
                t.0 += row["c"].as_i64().unwrap();
                t.1 += row["s"].as_i64().unwrap();
            }
        }
    }
    totals
}

fn expected(n: usize) -> BTreeMap<String, (i64, i64)> {
    let mut m = BTreeMap::new();
    for k in 0..n {
        let t = m.entry(format!("d{}", k % DEVICES)).or_insert((0, 0));
        t.0 += 1;
        t.1 += k as i64;
    }
    m
}

fn counted(outs: &[Collect]) -> i64 {
    totals(outs).values().map(|t| t.0).sum()
}

#[test]
fn shards_count_every_key_on_one_shard() {
    let stores: Vec<Arc<dyn StateBackend>> = (0..SHARDS).map(|_| Arc::new(MemoryBackend::default()) as _).collect();
    let outs: Vec<Collect> = (0..SHARDS).map(|_| Collect::default()).collect();
    actix::System::new().block_on(async {
        let s = start(&stores, &outs, 0);
        feed(&s, 0, 600);
        wait_for("every event counted", || counted(&outs) == 600).await;
        assert!(s.commit.committed_epoch() > 0);
        for r in s.rules {
            r.stop().await;
        }
    });
    assert_eq!(totals(&outs), expected(600));
    // Every shard got some devices (12 devices hash over 3 shards).
    assert!(outs.iter().all(|o| !o.deduplicated().0.is_empty()));
}

#[test]
fn shards_roll_back_together_and_count_exactly_once() {
    let stores: Vec<Arc<dyn StateBackend>> = (0..SHARDS).map(|_| Arc::new(MemoryBackend::default()) as _).collect();
    let outs: Vec<Collect> = (0..SHARDS).map(|_| Collect::default()).collect();
    actix::System::new().block_on(async {
        // Run 1: half the events, torn down (abandoned) right after some
        // commit, with more events in flight that no commit covers yet.
        let s = start(&stores, &outs, 0);
        feed(&s, 0, 300);
        let commit = s.commit.clone();
        wait_for("a commit after the first events", || counted(&outs) >= 150).await;
        feed(&s, 300, 400);
        // Torn down once the sources took them (a broker would redeliver
        // the others): some in the log but not yet covered by a commit.
        wait_for("the sources took every event", || s.accepted.load(Ordering::Acquire) == 400).await;
        for r in s.rules {
            r.abandon().await;
        }
        let restore = commit.committed_epoch();
        assert!(restore > 0);
        // Run 2 restores every shard from the one committed epoch and
        // replays what each shard's log holds beyond it.
        let s = start(&stores, &outs, restore);
        feed(&s, 400, 800);
        wait_for("every event counted once", || counted(&outs) >= 800).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for r in s.rules {
            r.stop().await;
        }
    });
    assert_eq!(totals(&outs), expected(800));
}

/// Event time: every window of every device comes out of the shards as
/// it comes out of one rule instance (each shard's watermark follows the
/// rows it owns; events arrive in order per source, within the lateness).
#[test]
fn event_time_windows_match_one_instance() {
    let mut catalog = Catalog::new();
    let sql = r#"CREATE STREAM s (dev STRING, v BIGINT, ts BIGINT) WITH (DATASOURCE="s", TIMESTAMP="ts")"#;
    let Statement::Create(def) = parse_statement(sql).unwrap() else { unreachable!() };
    catalog.insert(*def);
    let options =
        RuleOptions::from_json(&serde_json::json!({"qos": 2, "checkpointInterval": 30, "isEventTime": true})).unwrap();
    let sql = "SELECT dev, count(*) AS c, sum(v) AS s, window_end() AS we FROM s GROUP BY dev, TumblingWindow(ms, 100)";
    let plan = plan("r", sql, &catalog, &options, Registry::builtins()).unwrap();
    // 600 events 5 ms apart, then one far later per device: its watermark
    // closes every window of the 600 (its own window stays open).
    let mut events: Vec<(usize, i64, i64)> =
        (0..600).map(|k| (k % DEVICES, k as i64, 1_000_000 + 5 * k as i64)).collect();
    events.extend((0..DEVICES).map(|d| (d, 0, 2_000_000)));
    let payload = |(dev, v, ts): (usize, i64, i64)| {
        let data = PayloadData::Bytes(format!("{{\"dev\":\"d{dev}\",\"v\":{v},\"ts\":{ts}}}").into_bytes());
        Payload { data, ts: 0, meta: None }
    };
    let rows = |outs: &[Collect]| -> Vec<String> {
        let mut rows: Vec<String> = outs
            .iter()
            .flat_map(|o| o.deduplicated().0)
            .flat_map(|p| serde_json::from_str::<Vec<serde_json::Value>>(&p).unwrap())
            .map(|r| r.to_string())
            .collect();
        rows.sort();
        rows
    };
    let windows = 600 * 5 / 100;
    let one = Collect::default();
    let sharded: Vec<Collect> = (0..SHARDS).map(|_| Collect::default()).collect();
    actix::System::new().block_on(async {
        let (tx, rx) = mpsc::unbounded_channel();
        let rule = RunningRule::start_with(
            &plan,
            Registry::builtins(),
            Arc::new(SystemClock),
            vec![Box::new(Raw(rx))],
            vec![("sink_collect_0".into(), Box::new(one.clone()))],
            Some(Arc::new(MemoryBackend::default())),
            Vec::new(),
        )
        .unwrap();
        for e in &events {
            tx.send(payload(*e)).unwrap();
        }
        wait_for("one instance's windows", || rows(std::slice::from_ref(&one)).len() == windows * DEVICES).await;
        rule.stop().await;

        let mut local = LocalShards::new(SHARDS, 0);
        let mut rules = Vec::new();
        let mut inputs = Vec::new();
        for i in 0..SHARDS {
            let (tx, rx) = mpsc::unbounded_channel();
            inputs.push(tx);
            let mut p = plan.clone();
            p.rule_id = format!("r#{i}");
            let store: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
            let sink: Box<dyn weir_runtime::connector::Sink> = Box::new(sharded[i as usize].clone());
            let run = local.shard(i);
            let rule = RunningRule::start_shard(
                &p,
                Registry::builtins(),
                Arc::new(SystemClock),
                vec![Box::new(Raw(rx))],
                vec![("sink_collect_0".into(), sink)],
                store,
                run,
            )
            .unwrap();
            rules.push(rule);
        }
        for (k, e) in events.iter().enumerate() {
            inputs[k % inputs.len()].send(payload(*e)).unwrap();
        }
        wait_for("the shards' windows", || rows(&sharded).len() == windows * DEVICES).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        for r in rules {
            r.stop().await;
        }
    });
    assert_eq!(rows(&sharded), rows(std::slice::from_ref(&one)));
}

/// Sends the payloads it is given.
struct Raw(mpsc::UnboundedReceiver<Payload>);

impl Source for Raw {
    fn run(
        mut self: Box<Self>,
        mut out: SourceSender,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            while let Some(p) = self.0.recv().await {
                if !out.send(vec![p]).await {
                    return;
                }
            }
            out.stopped().await;
        })
    }
}

#[test]
fn rules_that_cannot_be_split_say_why() {
    for (sql, why) in [
        ("SELECT count(*) FROM s GROUP BY TumblingWindow(ss, 1)", "GROUP BY keys"),
        ("SELECT dev, count(*) FROM s GROUP BY dev, CountWindow(5)", "tumbling and hopping"),
        ("SELECT dev, count(*) AS c FROM s GROUP BY dev, TumblingWindow(ss, 1) ORDER BY c", "ORDER BY"),
    ] {
        let e = check_shardable(&rule_plan(sql).unwrap()).unwrap_err();
        assert!(e.contains(why), "{sql}: {e}");
    }
    assert!(check_shardable(&counting_plan()).is_ok());
}
