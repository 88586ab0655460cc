//! The durable ingest log of a source that cannot rewind (MQTT, HTTP push).
//!
//! What such a source receives is appended here before the broker or client
//! is acknowledged; the rule reads from the log. A checkpoint records the
//! log position each source had reached, so a restored rule replays exactly
//! what came after it, and the log is truncated behind the committed
//! position.
//!
//! Appends are group-committed: a writer task takes every append waiting at
//! that moment, writes them in one batch with a single fsync, then answers
//! them all. Under load one fsync serves many messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};

use super::{codec, rule_prefix, Space, StateBackend, StateError, StateResult, Write};
use crate::row::Payload;

/// One source's log: `(rule, source index) -> seq -> payloads` (one entry
/// per append).
#[derive(Clone)]
pub struct IngestLog {
    inner: Arc<Inner>,
    appends: mpsc::Sender<Append>,
}

struct Inner {
    backend: Arc<dyn StateBackend>,
    prefix: Vec<u8>,
    /// Next sequence number to assign.
    next: AtomicU64,
    /// First sequence number still stored.
    first: AtomicU64,
    /// Highest position truncated to: entries before it are released
    /// (kept only to recognise redeliveries) and do not count as used.
    released: AtomicU64,
    capacity: u64,
    /// Woken on every durable append (readers) and truncation (writers).
    appended: Notify,
    truncated: Notify,
    appended_total: AtomicU64,
    /// Appends the store refused (a full disk, a standby being re-synced),
    /// and the last reason, for the rule's status.
    failures: AtomicU64,
    last_failure: std::sync::Mutex<String>,
}

/// Key suffix of the stored `next` position.
const NEXT_KEY: &[u8] = b"n";

/// Newest entries kept when the log is truncated, covered by a checkpoint
/// or not. A broker sends again, flagged DUP, what it had no ack for when
/// the connection dropped (a broker restart loses acks still in flight);
/// by the time the redelivery arrives the checkpoint covering the first
/// copy may have committed and truncated it. The source recognises a
/// redelivery in the newest entries ([`IngestLog::tail`], which the
/// source sender reads 64 deep), so they must still be there. A broker
/// has at most its in-flight window (mosquitto: 20) unacknowledged, in
/// as many entries at most.
pub(crate) const REDELIVERY_KEEP: u64 = 64;

/// A durable append: the log position after the entry, and the payloads
/// (handed back so the caller can pass them on without a copy).
pub type Appended = (u64, Vec<Payload>);

struct Append {
    payloads: Vec<Payload>,
    /// The payloads come back either way: after a failure, for the caller
    /// to retry.
    done: oneshot::Sender<Result<Appended, (StateError, Vec<Payload>)>>,
}

impl std::fmt::Debug for IngestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestLog")
            .field("first", &self.inner.first.load(Ordering::Relaxed))
            .field("next", &self.inner.next.load(Ordering::Relaxed))
            .finish()
    }
}

impl IngestLog {
    /// Opens the log of source `source` of `rule`, finding its current
    /// bounds in the store and checking that every entry decodes. Spawns
    /// the group-commit writer on the current tokio runtime.
    ///
    /// # Errors
    /// The store cannot be read, or an entry is corrupt
    /// ([`StateError::Corrupt`] naming the entry).
    pub fn open(backend: Arc<dyn StateBackend>, rule: &str, source: u16, capacity: u64) -> StateResult<IngestLog> {
        let mut prefix = rule_prefix(rule);
        prefix.extend_from_slice(&source.to_be_bytes());
        // Entry keys end with an 8-byte sequence number; the one-byte
        // `next` key remembers the position when the log is empty.
        let mut seqs = Vec::new();
        let mut stored_next = 0;
        for (k, v) in backend.scan(Space::IngestLog, &prefix)? {
            match &k[prefix.len()..] {
                tail if tail.len() == 8 => {
                    let seq = u64::from_be_bytes(tail.try_into().unwrap_or_default());
                    // Checked now, so that a rule whose log is damaged
                    // refuses to start instead of stalling at the bad
                    // entry when it replays.
                    codec::decode::<Vec<Payload>>(&v, &format!("ingest log of {rule}/{source}, entry {seq}"))?;
                    seqs.push(seq);
                }
                tail if super::deliveries::is_index_key(tail) => {}
                NEXT_KEY => {
                    stored_next = u64::from_be_bytes(v.as_slice().try_into().map_err(|_| StateError::Corrupt {
                        key: format!("ingest log of {rule}/{source}"),
                        message: "malformed position".into(),
                    })?)
                }
                _ => {
                    return Err(StateError::Corrupt {
                        key: format!("ingest log of {rule}/{source}"),
                        message: "malformed key".into(),
                    })
                }
            }
        }
        let next = seqs.last().map_or(stored_next, |s| (s + 1).max(stored_next));
        let first = seqs.first().copied().unwrap_or(next);
        let inner = Arc::new(Inner {
            backend,
            prefix,
            next: AtomicU64::new(next),
            first: AtomicU64::new(first),
            released: AtomicU64::new(first),
            capacity: capacity.max(1),
            appended: Notify::new(),
            truncated: Notify::new(),
            appended_total: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_failure: std::sync::Mutex::new(String::new()),
        });
        let (appends, rx) = mpsc::channel(1024);
        tokio::spawn(group_commit(inner.clone(), rx));
        Ok(IngestLog { inner, appends })
    }

    fn key(&self, seq: u64) -> Vec<u8> {
        let mut k = self.inner.prefix.clone();
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }

    /// Appends payloads; returns once they are durable. Waits while the log
    /// is full (a stalled rule slows its sources down).
    ///
    /// # Errors
    /// The store failed (disk full, I/O): the payloads are not logged and
    /// must not be acknowledged.
    pub async fn append(&self, payloads: Vec<Payload>) -> StateResult<()> {
        self.try_append(payloads).await.map(|_| ()).map_err(|(e, _)| e)
    }

    /// Like [`IngestLog::append`], but hands the payloads back: with the
    /// log position after their entry once durable, or after a failure so
    /// the caller can retry without having copied them.
    ///
    /// # Errors
    /// The store failed, with the payloads.
    pub async fn try_append(&self, payloads: Vec<Payload>) -> Result<Appended, (StateError, Vec<Payload>)> {
        loop {
            if self.used() < self.inner.capacity {
                break;
            }
            let notified = self.inner.truncated.notified();
            if self.used() < self.inner.capacity {
                break;
            }
            notified.await;
        }
        let stopped = || StateError::Store("ingest log writer stopped".into());
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.appends.send(Append { payloads, done }).await {
            return Err((stopped(), e.0.payloads));
        }
        // A writer gone with the payloads: they are lost to this caller,
        // which then reports the failure (nothing was acknowledged).
        rx.await.unwrap_or_else(|_| Err((stopped(), Vec::new())))
    }

    /// Up to `max` entries from `from` on, in order.
    ///
    /// # Errors
    /// The store failed or an entry is corrupt.
    pub fn read(&self, from: u64, max: usize) -> StateResult<Vec<(u64, Vec<Payload>)>> {
        let next = self.inner.next.load(Ordering::Acquire);
        let mut out = Vec::new();
        let mut seq = from.max(self.inner.first.load(Ordering::Acquire));
        while seq < next && out.len() < max {
            if let Some(bytes) = self.inner.backend.get(Space::IngestLog, &self.key(seq))? {
                out.push((seq, codec::decode(&bytes, "ingest log entry")?));
            }
            seq += 1;
        }
        Ok(out)
    }

    /// The last `window` entries (to recognise redelivered messages that
    /// were logged before a crash).
    ///
    /// # Errors
    /// The store failed or an entry is corrupt.
    pub fn tail(&self, window: u64) -> StateResult<Vec<Payload>> {
        let end = self.end();
        let from = end.saturating_sub(window).max(self.start());
        Ok(self.read(from, (end - from) as usize)?.into_iter().flat_map(|(_, p)| p).collect())
    }

    /// Appends the store refused so far, and the last reason (empty if
    /// none): the source waits and acknowledges nothing meanwhile.
    pub fn failures(&self) -> (u64, String) {
        let last = self.inner.last_failure.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (self.inner.failures.load(Ordering::Relaxed), last)
    }

    /// How many entries (source batches) the log holds at most behind the
    /// committed checkpoint; appends wait while it is full.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// Whether the log holds a delivery with `p`'s packet id, topic and
    /// bytes: the last one logged under that id, however far back (see
    /// the `deliveries` module). False for payloads without a packet id.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn holds_delivery(&self, p: &Payload) -> StateResult<bool> {
        super::deliveries::holds(self.inner.backend.as_ref(), &self.inner.prefix, p)
    }

    /// Entries not released by a truncation (what counts against the
    /// capacity).
    pub fn used(&self) -> u64 {
        let released = self.inner.released.load(Ordering::Acquire).max(self.inner.first.load(Ordering::Acquire));
        self.inner.next.load(Ordering::Acquire).saturating_sub(released)
    }

    /// The next sequence number to be written.
    pub fn end(&self) -> u64 {
        self.inner.next.load(Ordering::Acquire)
    }

    /// The first sequence number still stored.
    pub fn start(&self) -> u64 {
        self.inner.first.load(Ordering::Acquire)
    }

    /// Entries appended since the log was opened (a metric).
    pub fn appended_total(&self) -> u64 {
        self.inner.appended_total.load(Ordering::Relaxed)
    }

    /// A future that resolves after the next durable append; create and
    /// `enable` it before checking for data so no wake-up is missed.
    pub fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.appended.notified()
    }

    /// Releases the entries before `seq` (they are covered by a committed
    /// checkpoint): they no longer count against the capacity, and are
    /// deleted except the newest `REDELIVERY_KEEP` entries of the log.
    ///
    /// # Errors
    /// The store failed.
    pub fn truncate(&self, seq: u64) -> StateResult<()> {
        let released = self.inner.released.fetch_max(seq, Ordering::AcqRel);
        if seq > released {
            self.inner.truncated.notify_waiters();
        }
        let first = self.inner.first.load(Ordering::Acquire);
        let upto = seq.min(self.end().saturating_sub(REDELIVERY_KEEP));
        if upto <= first {
            return Ok(());
        }
        self.inner.backend.write(vec![Write::DeleteRange(Space::IngestLog, self.key(first), self.key(upto))], false)?;
        self.inner.first.store(upto, Ordering::Release);
        Ok(())
    }
}

/// Writes every waiting append in one synced batch, then answers them.
async fn group_commit(inner: Arc<Inner>, mut rx: mpsc::Receiver<Append>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let start = inner.next.load(Ordering::Acquire);
        let mut writes = Vec::new();
        let mut seq = start;
        let mut encode_err = None;
        // One entry per append: a source's batch is written, read and
        // replayed as a unit (barriers fall between entries).
        for a in &group {
            match codec::encode(&a.payloads) {
                Ok(bytes) => {
                    let mut k = inner.prefix.clone();
                    k.extend_from_slice(&seq.to_be_bytes());
                    writes.push(Write::Put(Space::IngestLog, k, bytes));
                    // Durable with the entry: which deliveries it holds.
                    writes.extend(super::deliveries::writes(&inner.prefix, &a.payloads));
                    seq += 1;
                }
                Err(e) => encode_err = Some(e),
            }
        }
        let mut next_key = inner.prefix.clone();
        next_key.extend_from_slice(NEXT_KEY);
        writes.push(Write::Put(Space::IngestLog, next_key, seq.to_be_bytes().to_vec()));
        let backend = inner.backend.clone();
        let result = match encode_err {
            Some(e) => Err(e),
            None => tokio::task::spawn_blocking(move || backend.write(writes, true))
                .await
                .unwrap_or_else(|e| Err(StateError::Store(e.to_string()))),
        };
        if let Err(e) = &result {
            inner.failures.fetch_add(1, Ordering::Relaxed);
            *inner.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
        }
        if result.is_ok() {
            inner.next.store(seq, Ordering::Release);
            inner.appended_total.fetch_add(seq - start, Ordering::Relaxed);
            inner.appended.notify_waiters();
        }
        for (a, entry) in group.into_iter().zip(start..) {
            let _ = a.done.send(match &result {
                Ok(()) => Ok((entry + 1, a.payloads)),
                Err(e) => Err((e.clone(), a.payloads)),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::PayloadData;
    use crate::state::MemoryBackend;

    fn p(i: u8) -> Payload {
        Payload { data: PayloadData::Bytes(vec![i]), ts: i as i64, meta: None }
    }

    #[tokio::test]
    async fn append_read_truncate_reopen() {
        let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
        let log = IngestLog::open(backend.clone(), "r", 0, 10).unwrap();
        log.append(vec![p(1), p(2)]).await.unwrap();
        log.append(vec![p(3)]).await.unwrap();
        log.append(vec![p(4)]).await.unwrap();
        let got: Vec<(u64, usize)> = log.read(0, 10).unwrap().into_iter().map(|(s, v)| (s, v.len())).collect();
        assert_eq!(got, vec![(0, 2), (1, 1), (2, 1)]);
        log.truncate(2).unwrap();
        assert_eq!(log.read(2, 10).unwrap().len(), 1);
        // The newest entries stay, to recognise redeliveries of them.
        assert_eq!(log.tail(10).unwrap(), vec![p(1), p(2), p(3), p(4)]);
        let again = IngestLog::open(backend.clone(), "r", 0, 10).unwrap();
        assert_eq!((again.start(), again.end()), (0, 3));
        assert_eq!(again.read(2, 10).unwrap()[0].1, vec![p(4)]);
        again.truncate(3).unwrap();
        assert_eq!(again.tail(1).unwrap(), vec![p(4)]);
    }

    #[tokio::test]
    async fn a_corrupt_entry_fails_the_open_naming_it() {
        let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
        let log = IngestLog::open(backend.clone(), "r", 3, 10).unwrap();
        log.append(vec![p(1)]).await.unwrap();
        log.append(vec![p(2)]).await.unwrap();
        let entries = backend.scan(Space::IngestLog, &rule_prefix("r")).unwrap();
        let (key, mut bytes) = entries.into_iter().rfind(|(k, _)| k.ends_with(&1u64.to_be_bytes())).unwrap();
        bytes.truncate(bytes.len() / 2);
        backend.write(vec![Write::Put(Space::IngestLog, key, bytes)], true).unwrap();
        let err = IngestLog::open(backend, "r", 3, 10).unwrap_err();
        assert!(matches!(&err, StateError::Corrupt { key, .. } if key == "ingest log of r/3, entry 1"), "{err}");
    }

    #[tokio::test]
    async fn truncation_deletes_all_but_the_newest_entries() {
        let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
        let log = IngestLog::open(backend.clone(), "r", 0, 1000).unwrap();
        let total = REDELIVERY_KEEP + 10;
        for i in 0..total {
            log.append(vec![p(i as u8)]).await.unwrap();
        }
        log.truncate(total).unwrap();
        assert_eq!((log.start(), log.end()), (10, total));
        assert_eq!(log.tail(REDELIVERY_KEEP).unwrap().len() as u64, REDELIVERY_KEEP);
        // A later truncation deletes what fell out of the kept window.
        log.append(vec![p(0)]).await.unwrap();
        log.truncate(total + 1).unwrap();
        let again = IngestLog::open(backend, "r", 0, 1000).unwrap();
        assert_eq!((again.start(), again.end()), (11, total + 1));
    }

    #[tokio::test]
    async fn full_log_waits_for_truncation() {
        let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
        let log = IngestLog::open(backend, "r", 1, 2).unwrap();
        log.append(vec![p(1)]).await.unwrap();
        log.append(vec![p(2)]).await.unwrap();
        let l2 = log.clone();
        let blocked = tokio::spawn(async move { l2.append(vec![p(3)]).await });
        tokio::task::yield_now().await;
        assert!(!blocked.is_finished());
        log.truncate(1).unwrap();
        blocked.await.unwrap().unwrap();
        assert_eq!(log.end(), 3);
    }

    /// An MQTT delivery: packet id `id` on `topic` with `data`.
    fn delivery(id: i64, topic: &str, data: &str) -> Payload {
        let mut meta = crate::value::Map::new();
        meta.insert("topic".into(), crate::Value::str(topic));
        meta.insert("messageId".into(), crate::Value::Int(id));
        Payload { data: PayloadData::Bytes(data.as_bytes().to_vec()), ts: 0, meta: Some(meta) }
    }

    /// A redelivery is recognised by its packet id however far back its
    /// first copy was logged (truncated away, or beyond any tail window),
    /// across a reopen; a reused packet id replaces the old delivery.
    #[tokio::test]
    async fn deliveries_are_known_by_packet_id_however_far_back() {
        let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
        let log = IngestLog::open(backend.clone(), "r", 0, 10_000).unwrap();
        log.append(vec![delivery(7, "t/a", "first")]).await.unwrap();
        for i in 0..(REDELIVERY_KEEP * 3) {
            log.append(vec![p(i as u8)]).await.unwrap();
        }
        log.truncate(log.end()).unwrap();
        assert!(log.tail(REDELIVERY_KEEP).unwrap().iter().all(|t| t.meta.is_none()), "the first copy is gone");
        let log = IngestLog::open(backend.clone(), "r", 0, 10_000).unwrap();
        assert!(log.holds_delivery(&delivery(7, "t/a", "first")).unwrap());
        assert!(!log.holds_delivery(&delivery(7, "t/a", "other")).unwrap(), "other bytes");
        assert!(!log.holds_delivery(&delivery(7, "t/b", "first")).unwrap(), "another topic");
        assert!(!log.holds_delivery(&delivery(8, "t/a", "first")).unwrap(), "another id");
        assert!(!log.holds_delivery(&p(1)).unwrap(), "no packet id");
        // The broker reused id 7 (it had our ack): the old message is no
        // longer what a DUP with id 7 repeats.
        log.append(vec![delivery(7, "t/a", "second")]).await.unwrap();
        assert!(log.holds_delivery(&delivery(7, "t/a", "second")).unwrap());
        assert!(!log.holds_delivery(&delivery(7, "t/a", "first")).unwrap());
        // Other sources of the rule have their own index.
        let other = IngestLog::open(backend, "r", 1, 10).unwrap();
        assert!(!other.holds_delivery(&delivery(7, "t/a", "second")).unwrap());
    }
}
