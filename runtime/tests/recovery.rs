//! A rule with `qos: 2` survives being torn down: its window state and the
//! ingest-log position come back from the last committed checkpoint, so no
//! event is lost or counted twice.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{start_rule, Collect};
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{RunningRule, Source, SourceSender};
use weir_runtime::state::{MemoryBackend, StateBackend};

/// Sends the given events, then waits for the rule to stop.
struct Events(Vec<i64>);

impl Source for Events {
    fn run(self: Box<Self>, mut out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            for v in self.0 {
                let data = PayloadData::Bytes(format!("{{\"v\":{v}}}").into_bytes());
                assert!(out.send(vec![Payload { data, ts: out.now_ms(), meta: None }]).await);
            }
            out.stopped().await;
        })
    }
}

/// Runs the rule on `events` until a checkpoint covering all of them has
/// committed, then drops it without a clean stop.
fn run_until_committed(backend: Arc<dyn StateBackend>, events: Vec<i64>, out: Collect) {
    let n = events.len() as u64;
    run(backend, Box::new(Events(events)), n, out, false)
}

/// Runs the rule on `events` until they are decoded, then stops it cleanly
/// (a last checkpoint, then the end of the input).
fn run_and_stop(backend: Arc<dyn StateBackend>, events: Vec<i64>, out: Collect) {
    let n = events.len() as u64;
    run(backend, Box::new(Events(events)), n, out, true)
}

/// Runs the rule until `n` events are decoded, then stops it cleanly or
/// kills it once two more checkpoints have committed.
fn run(backend: Arc<dyn StateBackend>, source: Box<dyn Source>, n: u64, out: Collect, clean_stop: bool) {
    actix::System::new().block_on(async move {
        let rule = start_rule(source, out, backend).unwrap();
        // Wait until the events are through the decoder and a checkpoint
        // taken after them has committed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let seen =
            |r: &RunningRule| r.metrics().iter().find(|m| m.name == "op_2_decoder").map_or(0, |m| m.records_in());
        while seen(&rule) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "events not processed: {:?}",
                rule.metrics().iter().map(|m| (m.name.clone(), m.records_in())).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if clean_stop {
            rule.stop().await;
            return;
        }
        let target = rule.committed_epoch() + 2;
        while rule.committed_epoch() < target {
            assert!(tokio::time::Instant::now() < deadline, "no checkpoint committed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Dropping the system kills the rule without a clean stop.
        drop(rule);
    });
}

#[test]
fn count_window_resumes_from_checkpoint_without_loss_or_duplicates() {
    let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let out = Collect::default();
    run_until_committed(backend.clone(), vec![1, 2, 3, 4, 5], out.clone());
    assert_eq!(out.deduplicated().0, vec![r#"[{"vs":[1,2,3]}]"#]);
    // Restarted: events 4 and 5 are in the restored window, 6..9 are new.
    // Outputs of the restored epoch may come again, with the same ids.
    run_until_committed(backend, vec![6, 7, 8, 9], out.clone());
    assert_eq!(out.deduplicated().0, vec![r#"[{"vs":[1,2,3]}]"#, r#"[{"vs":[4,5,6]}]"#, r#"[{"vs":[7,8,9]}]"#]);
    assert!(out.0.lock().unwrap().iter().all(|(id, _)| id.starts_with("r1/")), "every output carries an id");
}

/// A corrupt checkpoint stops the rule from starting with a clear error; it
/// never runs on bad state or panics.
#[test]
fn corrupt_checkpoint_is_a_clear_error() {
    use weir_runtime::state::{rule_prefix, Space, Write};
    let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let out = Collect::default();
    run_until_committed(backend.clone(), vec![1, 2, 3, 4, 5], out);
    // Garbage in place of every operator snapshot of the rule.
    let snapshots = backend.scan(Space::Checkpoints, &rule_prefix("r1")).unwrap();
    assert!(!snapshots.is_empty());
    backend
        .write(snapshots.into_iter().map(|(k, _)| Write::Put(Space::Checkpoints, k, vec![0xff, 0xfe])).collect(), true)
        .unwrap();
    let err = actix::System::new().block_on(async move {
        start_rule(Box::new(Events(vec![])), Collect::default(), backend)
            .err()
            .expect("a corrupt checkpoint must not start")
    });
    assert!(err.message.contains("cannot restore") && err.message.contains("corrupt"), "{}", err.message);
}

/// A clean stop takes a last checkpoint: nothing is sent twice or lost, and
/// no id changes meaning across the restart.
#[test]
fn clean_stop_then_restart_is_exactly_once() {
    let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let out = Collect::default();
    run_and_stop(backend.clone(), vec![1, 2, 3, 4], out.clone());
    assert_eq!(out.deduplicated().0, vec![r#"[{"vs":[1,2,3]}]"#]);
    run_and_stop(backend, vec![5, 6, 7], out.clone());
    assert_eq!(out.deduplicated().0, vec![r#"[{"vs":[1,2,3]}]"#, r#"[{"vs":[4,5,6]}]"#]);
}

/// A rewindable source over a fixed input (like a file): it starts where
/// the restored checkpoint says and sends at most `upto` events of it.
struct Rewindable {
    input: Vec<i64>,
    upto: usize,
    started_at: Arc<Mutex<Option<u64>>>,
}

impl Source for Rewindable {
    fn run(self: Box<Self>, mut out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let from = out.resume_position();
            *self.started_at.lock().unwrap() = Some(from);
            for (i, v) in self.input.iter().enumerate().take(self.upto).skip(from as usize) {
                let data = PayloadData::Bytes(format!("{{\"v\":{v}}}").into_bytes());
                assert!(out.send_at(vec![Payload { data, ts: out.now_ms(), meta: None }], i as u64 + 1).await);
            }
            out.stopped().await;
        })
    }

    fn rewindable(&self) -> bool {
        true
    }
}

/// A rewindable source is checkpointed by position, not through the
/// ingest log: killed after 5 of 9 events, the restored rule has it resume
/// at the checkpointed position, and the output is exactly once.
#[test]
fn rewindable_source_resumes_from_its_checkpointed_position() {
    let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let out = Collect::default();
    let input: Vec<i64> = (1..=9).collect();
    let started_at = Arc::new(Mutex::new(None));
    let first = Rewindable { input: input.clone(), upto: 5, started_at: started_at.clone() };
    run(backend.clone(), Box::new(first), 5, out.clone(), false);
    assert_eq!(*started_at.lock().unwrap(), Some(0));
    assert_eq!(out.deduplicated().0, vec![r#"[{"vs":[1,2,3]}]"#]);
    assert!(
        backend.scan(weir_runtime::state::Space::IngestLog, b"").unwrap().is_empty(),
        "nothing goes through the ingest log"
    );
    let second = Rewindable { input, upto: 9, started_at: started_at.clone() };
    // The restored position is 5: everything sent before the kill was in a
    // committed checkpoint (the kill waits for two commits after it).
    run(backend, Box::new(second), 4, out.clone(), false);
    assert_eq!(*started_at.lock().unwrap(), Some(5));
    assert_eq!(out.deduplicated().0, vec![r#"[{"vs":[1,2,3]}]"#, r#"[{"vs":[4,5,6]}]"#, r#"[{"vs":[7,8,9]}]"#]);
}

/// Every committed epoch records where each source was: the positions are
/// written by the source's feed before its barrier enters the graph, so a
/// commit (which waits for the barrier at the sinks) always finds them.
/// A commit without them would make a restore replay the whole log.
#[test]
fn every_commit_records_the_source_positions() {
    let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let events: Vec<i64> = (1..=30).collect();
    // One payload per send: 30 log entries, many checkpoints (20 ms).
    run_until_committed(backend.clone(), events, Collect::default());
    let record = weir_runtime::checkpoint::latest_commit(backend.as_ref(), "r1").unwrap().expect("a commit");
    assert_eq!(record.offsets, vec![30], "the commit covers all 30 entries of the source's log");
}
