//! Exactly-once through `weir serve` killed with SIGKILL (issue 5): the
//! file sink's visible output equals a run without failures, and a damaged
//! checkpoint stops the rule with a status message that names it.
//!
//! Real mosquitto (skipped with a note when it is not installed), the kill
//! loop's helpers (`recovery.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use weir_runtime::state::{rule_prefix, RocksBackend, Space, StateBackend, Write};

use crate::brokers::{runtime, Mosquitto, Publisher};
use crate::recovery::{serve, source_yaml, Rng};
use crate::util::{created, Server};

/// Events published in all.
const EVENTS: i64 = 600;
/// Kill/restart rounds.
const ROUNDS: i64 = 4;

/// Creates stream `s` on `kill/in` (QoS 1 source with a persistent
/// session) and rule `id` writing `sql`'s rows to the file `out`, one line
/// each, with `qos: 2`; waits until its source is connected.
fn file_rule(server: &Server, id: &str, sql: &str, out: &Path) {
    let stream = r#"CREATE STREAM s () WITH (DATASOURCE="kill/in", FORMAT="JSON", CONF_KEY="pass")"#;
    created(server, "/streams", &json!({ "sql": stream }).to_string());
    let rule = json!({"id": id, "sql": sql, "options": {"qos": 2, "checkpointInterval": 200},
        "actions": [{"file": {"path": out.to_str().unwrap(), "sendSingle": true}}]});
    created(server, "/rules", &rule.to_string());
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.call("GET", &format!("/rules/{id}/status"), None).json()["source_s_0_connection_status"] != json!(1) {
        assert!(Instant::now() < deadline, "rule {id}'s source did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// What a reader sees: the visible parts of `out` (`out.<epoch>`), in
/// name order, concatenated.
fn visible(out: &Path) -> String {
    let dir = out.parent().unwrap();
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir(dir) else { return String::new() };
    let mut parts: Vec<_> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| {
            f.strip_prefix(&name).is_some_and(|r| r.starts_with('.') && r[1..].bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    parts.sort();
    parts.iter().map(|p| std::fs::read_to_string(dir.join(p)).unwrap()).collect()
}

fn publish_range(rt: &tokio::runtime::Runtime, publisher: &Publisher, from: i64, to: i64) {
    rt.block_on(async {
        for i in from..to {
            publisher.publish("kill/in", 1, json!({ "seq": i }).to_string()).await;
        }
    });
}

#[test]
fn file_sink_parts_after_kill_9_equal_a_failure_free_run() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start_in(dir.path()) else { return };
    let port = broker.port;
    let out = dir.path().join("sink/out.txt");
    let mut rng = Rng::new("file sink kill -9", "WEIR_KILL_SEED");
    let rt = runtime();
    let mut publisher = rt.block_on(async { Publisher::new(port, "file-kill-pub") });
    let mut server = serve(dir.path(), &source_yaml(port));
    file_rule(&server, "tofile", "SELECT seq FROM s", &out);
    let per_round = EVENTS / ROUNDS;
    for round in 0..ROUNDS {
        publish_range(&rt, &publisher, round * per_round, (round + 1) * per_round);
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        server.kill();
        server = serve(dir.path(), &source_yaml(port));
    }
    rt.block_on(publisher.wait_acked(EVENTS as u64));
    let want: String = (0..EVENTS).map(|i| format!("{}\n", json!({ "seq": i }))).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while visible(&out).len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Time for anything late (a duplicate would show here).
    std::thread::sleep(Duration::from_millis(1000));
    let got = visible(&out);
    server.kill();
    let lines: Vec<&str> = got.lines().collect();
    let mut sorted = lines.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        (lines.len(), sorted.len()),
        (EVENTS as usize, EVENTS as usize),
        "every event once: {} lines, {} distinct",
        lines.len(),
        sorted.len()
    );
    assert_eq!(got, want, "the parts in order are the failure-free output");
}

/// Flips a byte in the middle of the window operator's newest snapshot in
/// the node's RocksDB (`<data>/state`).
fn damage_window_snapshot(data: &Path) {
    let db = RocksBackend::open(&data.join("state")).unwrap();
    let prefix = rule_prefix("win");
    let (key, mut value) = db
        .scan(Space::Checkpoints, &prefix)
        .unwrap()
        .into_iter()
        // Operator snapshots (the sinks' held outputs use ids from 2^20).
        .rfind(|(k, _)| u32::from_be_bytes(k[prefix.len()..prefix.len() + 4].try_into().unwrap()) < 1 << 20)
        .expect("a window snapshot in the checkpoint");
    let mid = value.len() / 2;
    value[mid] ^= 0x10;
    db.write(vec![Write::Put(Space::Checkpoints, key, value)], true).unwrap();
}

#[test]
fn damaged_checkpoint_stops_the_rule_with_a_status_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start_in(dir.path()) else { return };
    let rt = runtime();
    let publisher = rt.block_on(async { Publisher::new(broker.port, "corrupt-pub") });
    let server = serve(dir.path(), &source_yaml(broker.port));
    let out = dir.path().join("sink/win.txt");
    file_rule(&server, "win", "SELECT collect(seq) AS seqs FROM s GROUP BY COUNTWINDOW(3)", &out);
    // One window out (its epoch committed), two events in the next one.
    publish_range(&rt, &publisher, 0, 5);
    let deadline = Instant::now() + Duration::from_secs(30);
    while visible(&out).is_empty() {
        assert!(Instant::now() < deadline, "no window output");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(600));
    server.kill();

    damage_window_snapshot(&dir.path().join("data"));
    let server = serve(dir.path(), &source_yaml(broker.port));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let st = server.call("GET", "/rules/win/status", None).json();
        if st["status"] != json!("running") && st["message"].as_str().is_some_and(|m| !m.is_empty()) {
            break st;
        }
        assert!(Instant::now() < deadline, "the rule did not refuse to start: {st}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let message = status["message"].as_str().unwrap();
    assert_eq!(status["status"], json!("stopped by error"), "{status}");
    assert!(
        message.contains("cannot restore") && message.contains("checkpoint") && message.contains("checksum mismatch"),
        "{message}"
    );
}
