//! Damaged state in RocksDB: after a rule ran and was killed, bytes are
//! flipped in one stored value (an operator's snapshot, the held sink
//! outputs, an ingest-log entry, the commit record). The rule must refuse
//! to start with an error that names what is damaged; it never panics and
//! never restores a value that decodes to something else.

mod support;

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use support::{start_rule, wait_for, Collect, Fed};
use tokio::sync::mpsc;
use weir_runtime::state::{rule_prefix, RocksBackend, Space, StateBackend, Write};

/// Operator id of the first sink's held outputs (`graph::SINK_STATE_ID`).
const SINK_STATE: u32 = 1 << 20;

/// Runs rule `r1` on the store in `dir` with events 1..=5 until the first
/// window is out and a later checkpoint committed (4 and 5 are then in the
/// window's snapshot), then kills it.
fn run_and_kill(dir: &Path) {
    let backend: Arc<dyn StateBackend> = Arc::new(RocksBackend::open(dir).unwrap());
    let (tx, input) = mpsc::unbounded_channel();
    let out = Collect::default();
    actix::System::new().block_on(async move {
        let rule =
            start_rule(Box::new(Fed { input, acked: Arc::new(AtomicU64::new(0)) }), out.clone(), backend).unwrap();
        for v in 1..=5 {
            tx.send(v).unwrap();
        }
        wait_for("the first window", || out.deduplicated().0.len() == 1).await;
        let target = rule.committed_epoch() + 2;
        wait_for("two more checkpoints", || rule.committed_epoch() >= target).await;
        drop(rule);
    });
}

/// Flips one byte in the middle of the first stored value of `space`
/// (after the rule's prefix) whose key `pick` accepts; reopens the store.
fn flip(dir: &Path, space: Space, pick: impl Fn(&[u8]) -> bool) {
    let db = RocksBackend::open(dir).unwrap();
    let prefix = rule_prefix("r1");
    let (key, mut value) = db
        .scan(space, &prefix)
        .unwrap()
        .into_iter()
        .find(|(k, _)| pick(&k[prefix.len()..]))
        .unwrap_or_else(|| panic!("no value to damage in {}", space.name()));
    let mid = value.len() / 2;
    value[mid] ^= 0x10;
    db.write(vec![Write::Put(space, key, value)], true).unwrap();
}

/// Starts `r1` on the damaged store; returns its start error.
fn start_error(dir: &Path) -> String {
    let backend: Arc<dyn StateBackend> = Arc::new(RocksBackend::open(dir).unwrap());
    let (_tx, input) = mpsc::unbounded_channel();
    actix::System::new().block_on(async move {
        let started =
            start_rule(Box::new(Fed { input, acked: Arc::new(AtomicU64::new(0)) }), Collect::default(), backend);
        match started {
            Ok(_) => panic!("a rule on damaged state started"),
            Err(e) => {
                let e = format!("{}: {}", e.rule, e.message);
                eprintln!("start refused: {e}");
                e
            }
        }
    })
}

fn operator(tail: &[u8]) -> u32 {
    u32::from_be_bytes(tail[..4].try_into().unwrap())
}

#[test]
fn flipped_operator_snapshot_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    run_and_kill(dir.path());
    flip(dir.path(), Space::Checkpoints, |k| operator(k) < SINK_STATE);
    let e = start_error(dir.path());
    assert!(e.starts_with("r1: cannot restore") && e.contains("checkpoint") && e.contains("checksum mismatch"), "{e}");
}

#[test]
fn flipped_held_sink_outputs_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    run_and_kill(dir.path());
    // The held outputs of the restored (newest) epoch are read back.
    let db = RocksBackend::open(dir.path()).unwrap();
    let prefix = rule_prefix("r1");
    let newest = db
        .scan(Space::Checkpoints, &prefix)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k[prefix.len()..].to_vec())
        .filter(|k| operator(k) == SINK_STATE)
        .max()
        .expect("held outputs are stored");
    drop(db);
    flip(dir.path(), Space::Checkpoints, |k| k == newest.as_slice());
    let e = start_error(dir.path());
    assert!(e.contains("cannot restore sink_collect_0") && e.contains("checksum mismatch"), "{e}");
}

#[test]
fn flipped_ingest_log_entry_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    run_and_kill(dir.path());
    // An entry (8-byte sequence after the 2-byte source index), not the
    // stored position.
    flip(dir.path(), Space::IngestLog, |k| k.len() == 10);
    let e = start_error(dir.path());
    assert!(e.contains("ingest log of r1/0, entry") && e.contains("checksum mismatch"), "{e}");
}

#[test]
fn flipped_commit_record_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    run_and_kill(dir.path());
    flip(dir.path(), Space::Commits, |_| true);
    let e = start_error(dir.path());
    assert!(e.contains("corrupt") && e.contains("checksum mismatch"), "{e}");
}
