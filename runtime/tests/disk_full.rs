//! A full disk under an exactly-once rule: the state store refuses writes
//! (simulated by a fault-injecting backend, so the test runs anywhere).
//! Appends to the ingest log fail, so the source is not acknowledged
//! (backpressure) and nothing is lost; checkpoints fail, so no epoch
//! commits and no output is released on state that is not durable. When
//! space returns the rule goes on and the output is exactly once.
//!
//! `rocksdb_on_a_full_tmpfs_returns_errors` does the same against RocksDB
//! on a real full file system (root only; ignored, see its comment).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{start_rule, wait_for, Collect, Fed};
use tokio::sync::mpsc;
use weir_runtime::state::{MemoryBackend, Space, StateBackend, StateError, StateResult, Write};

/// A store whose writes fail like a full disk while `full` is set.
#[derive(Debug, Default)]
struct FullDisk {
    inner: MemoryBackend,
    full: AtomicBool,
    refused: AtomicU64,
}

impl StateBackend for FullDisk {
    fn write(&self, writes: Vec<Write>, sync: bool) -> StateResult<()> {
        if self.full.load(Ordering::Acquire) {
            self.refused.fetch_add(1, Ordering::AcqRel);
            return Err(StateError::Store("IO error: No space left on device: While appending to file".into()));
        }
        self.inner.write(writes, sync)
    }

    fn get(&self, space: Space, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.inner.get(space, key)
    }

    fn scan(&self, space: Space, prefix: &[u8]) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(space, prefix)
    }
}

#[test]
fn full_disk_stops_acknowledging_then_recovers_exactly_once() {
    let store = Arc::new(FullDisk::default());
    let out = Collect::default();
    let acked = Arc::new(AtomicU64::new(0));
    let (tx, input) = mpsc::unbounded_channel();
    let (backend, sink, a) = (store.clone() as Arc<dyn StateBackend>, out.clone(), acked.clone());
    let s = store.clone();
    actix::System::new().block_on(async move {
        let rule = start_rule(Box::new(Fed { input, acked: a }), sink.clone(), backend).unwrap();
        for v in 1..=3 {
            tx.send(v).unwrap();
        }
        wait_for("the first window", || sink.deduplicated().0.len() == 1).await;
        assert_eq!(acked.load(Ordering::Acquire), 3);

        // The disk fills up.
        s.full.store(true, Ordering::Release);
        let committed = rule.committed_epoch();
        for v in 4..=9 {
            tx.send(v).unwrap();
        }
        wait_for("refused writes", || s.refused.load(Ordering::Acquire) >= 10).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(acked.load(Ordering::Acquire), 3, "nothing is acknowledged that is not in the log");
        assert_eq!(rule.committed_epoch(), committed, "no epoch commits on a full disk");
        assert_eq!(sink.deduplicated().0.len(), 1, "no output is released");
        // The refused appends are counted on the source's ingest log (the
        // rule status shows them as the source's exceptions).
        let (failures, last) = rule.ingest_logs()[0].1.failures();
        assert!(failures >= 1 && last.contains("No space left"), "{failures}: {last}");

        // Space comes back: the held input goes through, exactly once.
        s.full.store(false, Ordering::Release);
        wait_for("all input acknowledged", || acked.load(Ordering::Acquire) == 9).await;
        wait_for("all windows", || sink.deduplicated().0.len() == 3).await;
        assert!(rule.committed_epoch() > committed);
        rule.stop().await;
    });
    let (data, errors) = out.deduplicated();
    assert_eq!(data, vec![r#"[{"vs":[1,2,3]}]"#, r#"[{"vs":[4,5,6]}]"#, r#"[{"vs":[7,8,9]}]"#]);
    eprintln!("error rows emitted during the full disk: {errors}");
}

/// The same on a real file system that fills up: RocksDB in an 8 MiB
/// tmpfs (needs root for `mount`), writes until the store refuses, then
/// space is freed and writes must succeed again.
///
/// The system librocksdb 7.8.3 this build links (`ROCKSDB_LIB_DIR`, built
/// with assertions) aborts the process on a write that hits ENOSPC
/// (`WritableFileWriter::AssertFalseAndGetStatusForPrevError`), so
/// `RocksBackend` keeps a reserve of free space and refuses writes before
/// RocksDB meets a full disk (here a 1 MiB reserve on an 8 MiB tmpfs).
///
/// Ignored because it needs root and `mount`; run it with `--ignored`.
#[test]
#[ignore = "needs root to mount a tmpfs"]
fn rocksdb_on_a_full_tmpfs_returns_errors() {
    use weir_runtime::state::RocksBackend;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let mounted =
        std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(&mnt).status().unwrap();
    assert!(mounted.success(), "mount needs root");
    /// Unmounts even when an assertion fails.
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![1u8; 5 << 20]).unwrap();
    let db = RocksBackend::open_with_reserve(&mnt.join("db"), 1 << 20).unwrap();
    let put =
        |i: u64| db.write(vec![Write::Put(Space::IngestLog, i.to_be_bytes().to_vec(), vec![7u8; 64 << 10])], true);
    let mut i = 0;
    let err = loop {
        match put(i) {
            Ok(()) => i += 1,
            Err(e) => break e,
        }
        assert!(i < 1000, "the file system never filled up");
    };
    assert!(err.to_string().contains("disk full"), "{err}");
    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while put(i).is_err() {
        assert!(std::time::Instant::now() < deadline, "the store did not recover when space returned");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(db.get(Space::IngestLog, &0u64.to_be_bytes()).unwrap().is_some(), "what was written before survives");
}
