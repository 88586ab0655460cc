//! State replication over real TCP on 127.0.0.1: a primary's
//! `ReplicatedBackend` and a standby's `ReplicaServer`, with memory stores
//! and one RocksDB store. Every test runs under a hard timeout, and every
//! blocking call off the runtime's workers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_cluster::replication::{ReplicaServer, ReplicatedBackend, ReplicationConfig, SyncStatus};
use weir_runtime::checkpoint::{self, CommitRecord};
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::state::{
    rule_prefix, IngestLog, MemoryBackend, RocksBackend, Space, StateBackend, StateError, Write,
};

const LIMIT: Duration = Duration::from_secs(30);
const RULE_SPACES: [Space; 3] = [Space::Checkpoints, Space::Commits, Space::IngestLog];

/// Runs a test body under [`LIMIT`].
async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f).await.expect("test timed out");
}

/// Runs blocking replication calls off the runtime's worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task panicked")
}

fn memory() -> Arc<dyn StateBackend> {
    Arc::new(MemoryBackend::default())
}

fn key(rule: &str, suffix: &[u8]) -> Vec<u8> {
    let mut k = rule_prefix(rule);
    k.extend_from_slice(suffix);
    k
}

fn put(space: Space, rule: &str, suffix: &[u8], value: &[u8]) -> Write {
    Write::Put(space, key(rule, suffix), value.to_vec())
}

/// Everything stored for `rule`, space by space.
fn dump(b: &dyn StateBackend, rule: &str) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    RULE_SPACES.iter().map(|s| b.scan(*s, &rule_prefix(rule)).unwrap()).collect()
}

async fn standby(store: Arc<dyn StateBackend>, config: &ReplicationConfig) -> ReplicaServer {
    ReplicaServer::bind("127.0.0.1:0".parse().unwrap(), store, config.clone()).await.unwrap()
}

fn primary(config: &ReplicationConfig) -> Arc<ReplicatedBackend> {
    Arc::new(ReplicatedBackend::new(memory(), config.clone()).unwrap())
}

fn is_replication_failure(e: &StateError, addr: &str) -> bool {
    matches!(e, StateError::Store(m) | StateError::Fenced(m) if m.starts_with(&format!("replication to {addr} failed")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_wrapper_reach_the_standby() {
    bounded(async {
        let config = ReplicationConfig::default();
        let replica = memory();
        let server = standby(replica.clone(), &config).await;
        let p = primary(&config);
        p.set_standby("r", Some(&server.local_addr().to_string()), 1);
        let (p2, r2) = (p.clone(), replica.clone());
        blocking(move || {
            let err = p2.write(vec![put(Space::Checkpoints, "r", b"x", b"0")], false).unwrap_err();
            assert!(err.to_string().contains("not in sync"), "writes wait for the catch-up: {err}");
            p2.sync_standby("r").unwrap();
            assert_eq!(p2.standby("r").unwrap().status, SyncStatus::InSync);
            p2.write(
                vec![
                    put(Space::Checkpoints, "r", b"op1/e1", b"snap"),
                    put(Space::IngestLog, "r", b"\0\0\0\0\0\0\0\0\0\x01", b"m1"),
                    put(Space::IngestLog, "r", b"\0\0\0\0\0\0\0\0\0\x02", b"m2"),
                    put(Space::Commits, "r", b"", b"c1"),
                    // Another rule without a standby and the raft space: local only.
                    put(Space::Checkpoints, "solo", b"a", b"1"),
                    Write::Put(Space::Raft, b"hs".to_vec(), b"raft".to_vec()),
                ],
                true,
            )
            .unwrap();
            p2.write(
                vec![
                    Write::Delete(Space::Checkpoints, key("r", b"op1/e1")),
                    Write::DeleteRange(
                        Space::IngestLog,
                        key("r", b"\0\0\0\0\0\0\0\0\0\x01"),
                        key("r", b"\0\0\0\0\0\0\0\0\0\x02"),
                    ),
                    put(Space::Checkpoints, "r", b"op1/e2", b"snap2"),
                ],
                false,
            )
            .unwrap();
            assert_eq!(dump(&*r2, "r"), dump(&*p2, "r"));
            assert_eq!(dump(&*r2, "r")[2], vec![(key("r", b"\0\0\0\0\0\0\0\0\0\x02"), b"m2".to_vec())]);
            assert!(r2.scan(Space::Checkpoints, &rule_prefix("solo")).unwrap().is_empty());
            assert_eq!(r2.get(Space::Raft, b"hs").unwrap(), None);
            assert_eq!(p2.get(Space::Raft, b"hs").unwrap(), Some(b"raft".to_vec()));
            // A delete range across rules cannot be attributed to one standby.
            assert!(p2.write(vec![Write::DeleteRange(Space::Checkpoints, vec![], vec![0xff])], false).is_err());
        })
        .await;
        assert_eq!(server.epoch("r").unwrap(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_copies_the_rule_exactly_in_chunks() {
    bounded(async {
        // Small frames: the catch-up travels in many chunks, applied at once.
        let config = ReplicationConfig { max_frame: 4096, max_staged: 1 << 20, ..ReplicationConfig::default() };
        let replica = memory();
        // What the standby held before: stale keys of "r" go, "other" stays.
        replica
            .write(
                vec![
                    put(Space::Checkpoints, "r", b"stale", b"x"),
                    put(Space::Commits, "r", b"", b"old commit"),
                    put(Space::IngestLog, "r", b"zz", b"x"),
                    put(Space::Checkpoints, "other", b"k", b"keep"),
                ],
                false,
            )
            .unwrap();
        let server = standby(replica.clone(), &config).await;
        let p = primary(&config);
        let mut writes = vec![put(Space::Commits, "r", b"", b"commit 9")];
        for i in 0..200u32 {
            writes.push(put(Space::Checkpoints, "r", &i.to_be_bytes(), &[i as u8; 100]));
            writes.push(put(Space::IngestLog, "r", &i.to_be_bytes(), &[1; 50]));
        }
        p.write(writes, false).unwrap();
        p.set_standby("r", Some(&server.local_addr().to_string()), 3);
        let (p2, r2) = (p.clone(), replica.clone());
        blocking(move || {
            p2.sync_standby("r").unwrap();
            assert_eq!(dump(&*r2, "r"), dump(&*p2, "r"));
            assert_eq!(dump(&*r2, "r")[0].len(), 200);
            assert_eq!(r2.get(Space::Checkpoints, &key("other", b"k")).unwrap(), Some(b"keep".to_vec()));
            // Live writes follow the copy.
            p2.write(vec![Write::Delete(Space::Commits, key("r", b""))], true).unwrap();
            assert_eq!(dump(&*r2, "r"), dump(&*p2, "r"));
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_epoch_writes_are_refused_after_fence() {
    bounded(async {
        let config = ReplicationConfig::default();
        let replica = memory();
        let server = Arc::new(standby(replica.clone(), &config).await);
        let addr = server.local_addr().to_string();
        let old = primary(&config);
        old.set_standby("r", Some(&addr), 3);
        let (o, s, r) = (old.clone(), server.clone(), replica.clone());
        blocking(move || {
            o.sync_standby("r").unwrap();
            o.write(vec![put(Space::Commits, "r", b"", b"acked by the old primary")], true).unwrap();
            // Failover: the standby becomes primary at epoch 4 and fences first.
            assert_eq!(s.fence("r", 4).unwrap(), 4);
            let before = dump(&*r, "r");
            let e = o.write(vec![put(Space::Commits, "r", b"", b"late write")], true).unwrap_err();
            assert!(is_replication_failure(&e, &addr), "{e}");
            assert!(matches!(e, StateError::Fenced(_)), "a fenced writer is told so: {e:?}");
            assert!(e.to_string().contains("fenced at epoch 4"), "{e}");
            assert_eq!(o.standby("r").unwrap().status, SyncStatus::Fenced { current: 4 });
            // The deposed primary can neither write nor push its state again.
            assert!(o.write(vec![put(Space::Commits, "r", b"", b"later")], true).is_err());
            assert!(o.sync_standby("r").is_err());
            assert_eq!(dump(&*r, "r"), before);
            assert_eq!(r.get(Space::Commits, &rule_prefix("r")).unwrap(), Some(b"acked by the old primary".to_vec()));
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_standby_fails_writes_within_the_timeout() {
    bounded(async {
        let timeout = Duration::from_millis(300);
        let config = ReplicationConfig { timeout, ..ReplicationConfig::default() };
        // A port nobody listens on, and a listener that never answers.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap().to_string();
        // And a standby that dies after the catch-up.
        let server = standby(memory(), &config).await;
        let dying = server.local_addr().to_string();
        let p = primary(&config);
        p.set_standby("a", Some(&closed), 1);
        p.set_standby("b", Some(&silent_addr), 1);
        p.set_standby("c", Some(&dying), 1);
        let p2 = p.clone();
        blocking(move || p2.sync_standby("c").unwrap()).await;
        server.shutdown().await;
        let p2 = p.clone();
        blocking(move || {
            for (rule, addr) in [("a", &closed), ("b", &silent_addr)] {
                let t = Instant::now();
                let e = p2.sync_standby(rule).unwrap_err();
                assert!(t.elapsed() < timeout + Duration::from_secs(2), "{rule}: {:?}", t.elapsed());
                assert!(StateError::from(e).to_string().contains(&format!("replication to {addr} failed")));
            }
            let t = Instant::now();
            let e = p2.write(vec![put(Space::IngestLog, "c", b"1", b"m")], true).unwrap_err();
            assert!(t.elapsed() < timeout + Duration::from_secs(2), "{:?}", t.elapsed());
            assert!(is_replication_failure(&e, &dying), "{e}");
            assert_eq!(p2.rules_needing_sync(), vec!["a", "b", "c"]);
            // Degrade, once the leader has removed the standby: local only.
            p2.set_standby("c", None, 2);
            p2.write(vec![put(Space::IngestLog, "c", b"2", b"m")], true).unwrap();
            assert_eq!(p2.get(Space::IngestLog, &key("c", b"2")).unwrap(), Some(b"m".to_vec()));
            // The failed write is in doubt locally (like one cut by a crash): it
            // was never acknowledged, whether or not it landed.
        })
        .await;
        drop(silent);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_standby_catches_up_after_a_failure() {
    bounded(async {
        let config = ReplicationConfig { timeout: Duration::from_millis(500), ..ReplicationConfig::default() };
        let first = standby(memory(), &config).await;
        let p = primary(&config);
        p.set_standby("r", Some(&first.local_addr().to_string()), 1);
        let p2 = p.clone();
        blocking(move || {
            p2.sync_standby("r").unwrap();
            p2.write(vec![put(Space::Checkpoints, "r", b"a", b"1")], false).unwrap();
        })
        .await;
        drop(first);
        let p2 = p.clone();
        blocking(move || assert!(p2.write(vec![put(Space::Checkpoints, "r", b"b", b"2")], false).is_err())).await;
        let replica = memory();
        let second = standby(replica.clone(), &config).await;
        p.set_standby("r", Some(&second.local_addr().to_string()), 2);
        let (p2, r2) = (p.clone(), replica.clone());
        blocking(move || {
            p2.sync_standby("r").unwrap();
            p2.write(vec![put(Space::Checkpoints, "r", b"c", b"3")], false).unwrap();
            assert_eq!(dump(&*r2, "r"), dump(&*p2, "r"));
        })
        .await;
    })
    .await;
}

fn payload(i: u8) -> Payload {
    Payload { data: PayloadData::Bytes(vec![i]), ts: i as i64, meta: None }
}

/// The failover path end to end: the primary's ingest log and commits go
/// through the wrapper; the standby's RocksDB, reopened as after a crash,
/// restores the commit and replays the log; its fence survives the reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_rocksdb_standby_restores_the_commit_and_replays_the_log() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let config = ReplicationConfig::default();
        let rocks: Arc<dyn StateBackend> = Arc::new(RocksBackend::open(dir.path()).unwrap());
        let server = standby(rocks.clone(), &config).await;
        let p = primary(&config);
        p.set_standby("r", Some(&server.local_addr().to_string()), 5);
        let p2 = p.clone();
        blocking(move || p2.sync_standby("r").unwrap()).await;

        let backend: Arc<dyn StateBackend> = p.clone();
        let log = IngestLog::open(backend.clone(), "r", 0, 100).unwrap();
        for i in 0..5 {
            log.append(vec![payload(i)]).await.unwrap();
        }
        let record = CommitRecord { epoch: 1, rule_start_ms: 0, offsets: vec![3] };
        let b2 = backend.clone();
        let r2 = record.clone();
        blocking(move || {
            b2.write(vec![put(Space::Checkpoints, "r", b"op/00000000000000000001", b"snapshot")], false).unwrap();
            checkpoint::commit(&*b2, "r", &r2).unwrap();
        })
        .await;
        log.truncate(3).unwrap();
        let expected = dump(&**p.local(), "r");
        drop(log);
        server.shutdown().await;
        drop(rocks);

        // Promotion: reopen the standby's store, fence, restore, replay.
        let rocks: Arc<dyn StateBackend> = Arc::new(RocksBackend::open(dir.path()).unwrap());
        assert_eq!(dump(&*rocks, "r"), expected);
        let server = standby(rocks.clone(), &config).await;
        assert_eq!(server.epoch("r").unwrap(), 5, "the gate is stored with the writes");
        let s = Arc::new(server);
        let s2 = s.clone();
        blocking(move || s2.fence("r", 6).unwrap()).await;
        assert_eq!(checkpoint::latest_commit(&*rocks, "r").unwrap(), Some(record));
        let replayed = IngestLog::open(rocks.clone(), "r", 0, 100).unwrap();
        let entries: Vec<(u64, Vec<Payload>)> = replayed.read(3, 10).unwrap();
        assert_eq!(entries, vec![(3, vec![payload(3)]), (4, vec![payload(4)])]);
        // The old primary is shut out.
        let p2 = p.clone();
        blocking(move || assert!(p2.write(vec![put(Space::Commits, "r", b"", b"late")], true).is_err())).await;
    })
    .await;
}
