//! Exactly-once figures (issue 5 item 6).
//!
//! - **Ingest-log append throughput**: a [`IngestLog`] on RocksDB (fsync
//!   on every durable write) takes appends of 1, 64 or 1024 payloads
//!   (~90-byte JSON events) from 16 concurrent writers for a fixed time;
//!   its group commit writes every append waiting at a moment in one
//!   batch with one fsync. The baseline, in the same run, makes the same
//!   writes without group commit: one `write(sync = true)` per append, one
//!   after the other (what a source that logs each message itself does).
//! - **Recovery time**: `weir serve` (this build's binary) with the kill
//!   loop's two `qos: 2` rules (`tests/recovery.rs`, checkpoint every
//!   200 ms) reading from mosquitto; the process is killed with SIGKILL,
//!   an event is published while it is down, and it is restarted. Measured
//!   from the kill to the first output after the restart (the restored
//!   epoch sent again) and to the output of the event published during
//!   the outage (restore, replay, one checkpoint).
//!
//! `cargo bench --bench exactly_once` runs 2 s per throughput case and 5
//! kills; `-- --test` (CI) 50 ms per case and 1 kill. The recovery part
//! needs mosquitto and skips without it.

#[path = "../tests/brokers.rs"]
#[allow(dead_code)]
mod brokers;
#[path = "../tests/recovery.rs"]
#[allow(dead_code, unused_imports)]
mod recovery;
#[path = "../tests/util.rs"]
#[allow(dead_code)]
mod util;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::state::{rule_prefix, IngestLog, RocksBackend, Space, StateBackend, Write};

use brokers::{runtime, Mosquitto, Publisher, Subscriber};

/// Concurrent writers of the group-commit case.
const WRITERS: usize = 16;

fn payloads(n: usize, from: u64) -> Vec<Payload> {
    (0..n as u64)
        .map(|i| {
            let text =
                format!(r#"{{"deviceId":"d{}","temperature":21.5,"humidity":40.1,"seq":{}}}"#, i % 100, from + i);
            Payload { data: PayloadData::Bytes(text.into_bytes()), ts: 0, meta: None }
        })
        .collect()
}

/// Appends and events per second.
struct Rate {
    appends: f64,
    events: f64,
}

/// Group commit: `WRITERS` tasks append batches of `batch` for `span`.
fn group_commit(rt: &tokio::runtime::Runtime, backend: Arc<dyn StateBackend>, batch: usize, span: Duration) -> Rate {
    rt.block_on(async move {
        let log = IngestLog::open(backend, &format!("gc{batch}"), 0, u64::MAX).unwrap();
        let (stop, count) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (log, stop, count) = (log.clone(), stop.clone(), count.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        log.append(payloads(batch, 0)).await.unwrap();
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        tokio::time::sleep(span).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let n = count.load(Ordering::Relaxed) as f64;
        Rate { appends: n / secs, events: n * batch as f64 / secs }
    })
}

/// Baseline: the same entries (encoded the same way), one synced write
/// per append, in sequence.
fn one_fsync_per_append(backend: &dyn StateBackend, batch: usize, span: Duration) -> Rate {
    let mut prefix = rule_prefix(&format!("base{batch}"));
    prefix.extend_from_slice(&0u16.to_be_bytes());
    let start = Instant::now();
    let mut seq = 0u64;
    while start.elapsed() < span {
        let bytes = weir_runtime::state::codec::encode(&payloads(batch, 0)).unwrap();
        let mut key = prefix.clone();
        key.extend_from_slice(&seq.to_be_bytes());
        backend.write(vec![Write::Put(Space::IngestLog, key, bytes)], true).unwrap();
        seq += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Rate { appends: seq as f64 / secs, events: (seq * batch as u64) as f64 / secs }
}

fn ingest_log(span: Duration) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let backend: Arc<dyn StateBackend> = Arc::new(RocksBackend::open(dir.path()).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("ingest log append, RocksDB with fsync, {} ms per case:", span.as_millis());
    println!("| payloads per append | group commit ({WRITERS} writers) appends/s | events/s | one fsync per append appends/s | events/s | events/s ratio |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for batch in [1, 64, 1024] {
        let g = group_commit(&rt, backend.clone(), batch, span);
        let b = one_fsync_per_append(backend.as_ref(), batch, span);
        println!(
            "| {batch} | {:.0} | {:.0} | {:.0} | {:.0} | x{:.1} |",
            g.appends,
            g.events,
            b.appends,
            b.events,
            g.events / b.events
        );
    }
}

/// The seq of an output of rule `pass` (ids in `_id`).
fn seq_of(payload: &[u8]) -> Option<i64> {
    serde_json::from_slice::<serde_json::Value>(payload).ok()?["seq"].as_i64()
}

fn recovery(kills: usize) {
    let root = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start_in(root.path()) else { return };
    let port = broker.port;
    let rt = runtime();
    let mut sub = rt.block_on(Subscriber::start(port, "recovery-sub", "kill/out/pass", 1, false));
    let publisher = rt.block_on(async { Publisher::new(port, "recovery-pub") });
    let mut server = recovery::start_rules(root.path(), port);
    let mut seq = 0i64;
    let (mut first, mut fresh) = (Vec::new(), Vec::new());
    for _ in 0..kills {
        // Outputs flow: an event goes through before the kill.
        rt.block_on(async {
            publisher.publish("kill/in", 1, json!({ "seq": seq }).to_string()).await;
            while seq_of(&sub.next().await.1) != Some(seq) {}
        });
        seq += 1;
        // Let a checkpoint commit after it, so the restored epoch holds it,
        // and take every output still on its way: what comes next is from
        // the restarted process.
        rt.block_on(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            while tokio::time::timeout(Duration::from_millis(200), sub.next()).await.is_ok() {}
        });
        let killed = Instant::now();
        server.kill();
        rt.block_on(publisher.publish("kill/in", 1, json!({ "seq": seq }).to_string()));
        server = recovery::serve(root.path(), &recovery::source_yaml(port));
        let mut first_out = None;
        rt.block_on(async {
            loop {
                let (_, payload) = sub.next().await;
                first_out.get_or_insert_with(|| killed.elapsed());
                if seq_of(&payload) == Some(seq) {
                    break;
                }
            }
        });
        first.push(first_out.unwrap_or_default());
        fresh.push(killed.elapsed());
        seq += 1;
    }
    server.kill();
    let ms = |v: &mut Vec<Duration>| {
        v.sort();
        (v[v.len() / 2].as_secs_f64() * 1e3, v[v.len() - 1].as_secs_f64() * 1e3)
    };
    let ((f50, fmax), (n50, nmax)) = (ms(&mut first), ms(&mut fresh));
    println!("recovery, kill -9 of `weir serve` ({kills} kills, qos 2, checkpointInterval 200 ms):");
    println!("  kill -> first output after restart: median {f50:.0} ms, max {fmax:.0} ms");
    println!("  kill -> output of an event published while down: median {n50:.0} ms, max {nmax:.0} ms");
}

fn main() {
    let test = std::env::args().any(|a| a == "--test");
    let (span, kills) = if test { (Duration::from_millis(50), 1) } else { (Duration::from_secs(2), 5) };
    ingest_log(span);
    recovery(kills);
}
