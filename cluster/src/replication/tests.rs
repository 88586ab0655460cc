//! The standby's protocol, spoken raw over TCP: refusals, chunking, bad
//! frames; and the primary's reaction to a failing local store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_runtime::state::{rule_prefix, MemoryBackend, Space, StateBackend, StateError, StateResult, Write};

use super::wire::{decode_body, encode_frame, Ack, Batch, WireSpace, WireWrite};
use super::*;

const LIMIT: Duration = Duration::from_secs(20);

fn key(rule: &str, suffix: &[u8]) -> Vec<u8> {
    let mut k = rule_prefix(rule);
    k.extend_from_slice(suffix);
    k
}

fn put(rule: &str, suffix: &[u8]) -> WireWrite {
    WireWrite::Put(WireSpace::Checkpoints, key(rule, suffix), b"v".to_vec())
}

fn batch(seq: u64, epoch: u64, part: u32, more: bool, writes: Vec<WireWrite>) -> Batch {
    Batch { seq, rule: "r".into(), epoch, part, more, sync: false, writes }
}

async fn server() -> (ReplicaServer, Arc<dyn StateBackend>) {
    let replica: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let config = ReplicationConfig { max_frame: 4096, max_staged: 8192, ..ReplicationConfig::default() };
    (ReplicaServer::bind("127.0.0.1:0".parse().unwrap(), replica.clone(), config).await.unwrap(), replica)
}

/// Sends one batch and reads its ack.
async fn exchange(conn: &mut TcpStream, b: &Batch) -> Result<(), Refusal> {
    conn.write_all(&encode_frame(b, 1 << 20).unwrap()).await.unwrap();
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut body).await.unwrap();
    let ack: Ack = decode_body(&body).unwrap();
    assert_eq!(ack.seq, b.seq);
    ack.result
}

fn rule_keys(b: &Arc<dyn StateBackend>) -> Vec<Vec<u8>> {
    b.scan(Space::Checkpoints, &rule_prefix("r")).unwrap().into_iter().map(|(k, _)| k).collect()
}

#[tokio::test]
async fn keys_outside_the_rule_prefix_are_refused() {
    tokio::time::timeout(LIMIT, async {
        let (server, replica) = server().await;
        let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
        let outside = [
            // Another rule's key, next to a good one: the whole batch is refused.
            vec![put("r", b"a"), put("rr", b"a")],
            // A raw key that is no rule's.
            vec![WireWrite::Delete(WireSpace::Commits, b"r".to_vec())],
            // A range that runs past the rule's keys.
            vec![WireWrite::DeleteRange(WireSpace::IngestLog, rule_prefix("r"), vec![0xff])],
            // A reversed range (stores panic or differ on those).
            vec![WireWrite::DeleteRange(WireSpace::IngestLog, key("r", b"b"), key("r", b"a"))],
        ];
        for (seq, writes) in outside.into_iter().enumerate() {
            let r = exchange(&mut conn, &batch(seq as u64, 1, 0, false, writes)).await;
            assert_eq!(r, Err(Refusal::OutsideRule { rule: "r".into() }));
        }
        assert!(rule_keys(&replica).is_empty());
        assert!(replica.scan(Space::Checkpoints, &rule_prefix("rr")).unwrap().is_empty());
        // The connection is still good for valid batches.
        exchange(&mut conn, &batch(9, 1, 0, false, vec![put("r", b"a")])).await.unwrap();
        assert_eq!(rule_keys(&replica), vec![key("r", b"a")]);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn stale_epochs_are_refused_once_seen_or_fenced() {
    tokio::time::timeout(LIMIT, async {
        let (server, replica) = server().await;
        let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
        exchange(&mut conn, &batch(0, 5, 0, false, vec![put("r", b"a")])).await.unwrap();
        assert_eq!(server.epoch("r").unwrap(), 5);
        let stale = exchange(&mut conn, &batch(1, 4, 0, false, vec![put("r", b"b")])).await;
        assert_eq!(stale, Err(Refusal::StaleEpoch { epoch: 4, current: 5 }));
        assert_eq!(server.fence("r", 6).unwrap(), 6);
        let stale = exchange(&mut conn, &batch(2, 5, 0, false, vec![put("r", b"c")])).await;
        assert_eq!(stale, Err(Refusal::StaleEpoch { epoch: 5, current: 6 }));
        assert_eq!(rule_keys(&replica), vec![key("r", b"a")]);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn chunks_are_staged_and_applied_at_once_or_not_at_all() {
    tokio::time::timeout(LIMIT, async {
        let (server, replica) = server().await;
        let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
        exchange(&mut conn, &batch(0, 1, 0, true, vec![put("r", b"a")])).await.unwrap();
        assert!(rule_keys(&replica).is_empty(), "staged, not applied");
        exchange(&mut conn, &batch(1, 1, 1, false, vec![put("r", b"b")])).await.unwrap();
        assert_eq!(rule_keys(&replica), vec![key("r", b"a"), key("r", b"b")]);

        // A chunk out of order is refused and abandons the staged batch, so
        // its last chunk cannot apply half of it.
        exchange(&mut conn, &batch(2, 1, 0, true, vec![put("r", b"c")])).await.unwrap();
        assert!(matches!(
            exchange(&mut conn, &batch(3, 1, 2, true, vec![put("r", b"d")])).await,
            Err(Refusal::Protocol { .. })
        ));
        assert!(matches!(
            exchange(&mut conn, &batch(4, 1, 1, false, vec![put("r", b"e")])).await,
            Err(Refusal::Protocol { .. })
        ));
        // Over the staging limit (8 KiB in this server).
        let big = |s: &[u8]| WireWrite::Put(WireSpace::Checkpoints, key("r", s), vec![0; 3000]);
        exchange(&mut conn, &batch(5, 1, 0, true, vec![big(b"f")])).await.unwrap();
        exchange(&mut conn, &batch(6, 1, 1, true, vec![big(b"g")])).await.unwrap();
        assert!(matches!(
            exchange(&mut conn, &batch(7, 1, 2, false, vec![big(b"h")])).await,
            Err(Refusal::Protocol { .. })
        ));
        assert_eq!(rule_keys(&replica), vec![key("r", b"a"), key("r", b"b")]);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn corrupt_frames_close_the_connection_and_the_server_survives() {
    tokio::time::timeout(LIMIT, async {
        let (server, replica) = server().await;
        let garbage: [&[u8]; 3] = [
            // A body that is no batch.
            &[0, 0, 0, 3, 0xff, 0xfe, 0xfd],
            // A length over the limit.
            &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3],
            // A rule id claiming 2^62 bytes inside a small frame.
            &[0, 0, 0, 10, 0, 253, 0, 0, 0, 0, 0, 0, 0, 0x40],
        ];
        for g in garbage {
            let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
            conn.write_all(g).await.unwrap();
            let mut buf = [0u8; 16];
            // The server closes: end of stream (or a reset), never an ack.
            let n = conn.read(&mut buf).await.unwrap_or(0);
            assert_eq!(n, 0);
        }
        let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
        exchange(&mut conn, &batch(0, 1, 0, false, vec![put("r", b"a")])).await.unwrap();
        assert_eq!(rule_keys(&replica), vec![key("r", b"a")]);
    })
    .await
    .expect("test timed out");
}

/// A local store whose writes fail while `fail` is set.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryBackend,
    fail: AtomicBool,
}

impl StateBackend for Flaky {
    fn write(&self, writes: Vec<Write>, sync: bool) -> StateResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StateError::Store("disk full".into()));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_local_write_puts_the_standby_out_of_sync() {
    tokio::time::timeout(LIMIT, async {
        let (server, replica) = server().await;
        let flaky = Arc::new(Flaky::default());
        let local: Arc<dyn StateBackend> = flaky.clone();
        let primary = Arc::new(ReplicatedBackend::new(local, ReplicationConfig::default()).unwrap());
        primary.set_standby("r", Some(&server.local_addr().to_string()), 1);
        let p = primary.clone();
        tokio::task::spawn_blocking(move || {
            p.sync_standby("r").unwrap();
            let w = |s: &[u8]| vec![Write::Put(Space::Checkpoints, key("r", s), b"v".to_vec())];
            flaky.fail.store(true, Ordering::SeqCst);
            // The local error comes back unchanged; the standby got the batch anyway.
            assert_eq!(p.write(w(b"a"), true), Err(StateError::Store("disk full".into())));
            assert_eq!(p.standby("r").unwrap().status, SyncStatus::NeedsSync);
            assert_eq!(p.rules_needing_sync(), vec!["r".to_string()]);
            flaky.fail.store(false, Ordering::SeqCst);
            let e = p.write(w(b"b"), true).unwrap_err().to_string();
            assert!(e.contains("not in sync"), "{e}");
            // A catch-up makes both sides equal again.
            p.sync_standby("r").unwrap();
            p.write(w(b"c"), true).unwrap();
            assert_eq!(
                replica.scan(Space::Checkpoints, &rule_prefix("r")).unwrap(),
                p.scan(Space::Checkpoints, &rule_prefix("r")).unwrap()
            );
            assert_eq!(rule_keys(&replica), vec![key("r", b"c")]);
        })
        .await
        .unwrap();
    })
    .await
    .expect("test timed out");
}
