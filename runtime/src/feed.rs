//! How a checkpointed source's payloads reach the rule graph, with the
//! position each barrier records.
//!
//! Every source of a rule with `qos` 1 or 2 feeds the graph through a
//! [`Positioned`] feed: a batch and the position it brings the source to
//! are published under one lock, and a barrier is sent under the same
//! lock, so every barrier lands between two batches with the position of
//! the batches before it. What the position means depends on the source:
//!
//! - A **rewindable** source (a file it keeps, generated data) re-reads
//!   from a position it reports itself. Nothing is written per event, so a
//!   checkpointed rule costs nearly what an unchecked one does; this is how
//!   Flink and Arroyo checkpoint file and Kafka sources.
//! - Any other source (MQTT, HTTP push) has its batches appended to the
//!   durable ingest log first ([`LogFeed`]), and the position is the log
//!   position. The batch goes on to the graph from memory (write-through:
//!   the log is only read back to replay it after a restore), and the
//!   source acknowledges the broker once it is durable.

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use tokio::sync::{mpsc, watch, Mutex};

use crate::graph::Msg;
use crate::row::{Message, Payload};
use crate::state::IngestLog;

/// A barrier request: inject barrier `epoch` and answer with the source
/// position it was injected at.
pub(crate) type BarrierRequest = (u64, tokio::sync::oneshot::Sender<u64>);

/// Positions of each source (by source index) at each injected barrier,
/// read by the commit of that epoch.
pub(crate) type EpochOffsets = Arc<std::sync::Mutex<std::collections::BTreeMap<u64, Vec<u64>>>>;

/// Where a feed records its position at each barrier: the shared map, its
/// source index and the number of sources.
#[derive(Clone)]
pub(crate) struct PositionBook {
    pub(crate) offsets: EpochOffsets,
    pub(crate) source: usize,
    pub(crate) sources: usize,
}

impl PositionBook {
    /// Records this source's position for `epoch`. Called before the
    /// barrier enters the graph: once a sink has seen barrier `epoch`, its
    /// commit must find every source's position for it.
    fn record(&self, epoch: u64, position: u64) {
        let mut m = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        let positions = m.entry(epoch).or_insert_with(|| vec![0; self.sources]);
        if let Some(p) = positions.get_mut(self.source) {
            *p = position;
        }
    }
}

/// How many of the newest log entries (source batches) a redelivered
/// message is checked against: a broker redelivers at most its in-flight
/// window.
const REDELIVERY_WINDOW: u64 = 64;

/// The positioned feed of one source.
#[derive(Clone)]
pub(crate) struct Positioned {
    /// Where the source starts (the restored checkpoint's position).
    start: u64,
    /// The position of everything sent to the graph so far.
    sent: Arc<Mutex<u64>>,
}

impl Positioned {
    /// A feed whose source starts at `start`.
    pub(crate) fn new(start: u64) -> Positioned {
        Positioned { start, sent: Arc::new(Mutex::new(start)) }
    }

    /// The position the source resumes from.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Sends `payloads` into the graph and records that they bring the
    /// source to `position` (`None`: where it was). False once the graph
    /// is gone.
    pub(crate) async fn send(&self, to: &Recipient<Msg>, payloads: Vec<Payload>, position: Option<u64>) -> bool {
        let mut sent = self.sent.lock().await;
        if to.send(Msg { input: 0, message: Message::Payloads(payloads) }).await.is_err() {
            return false;
        }
        if let Some(p) = position {
            *sent = p;
        }
        true
    }

    /// Injects the barriers asked for until the rule stops; each lands
    /// after the batches sent before it and answers with their position.
    pub(crate) async fn serve_barriers(
        self,
        to: Recipient<Msg>,
        mut barriers: mpsc::Receiver<BarrierRequest>,
        book: PositionBook,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let (epoch, reply) = tokio::select! {
                r = barriers.recv() => match r { Some(r) => r, None => return },
                _ = stop.changed() => return,
            };
            let sent = self.sent.lock().await;
            book.record(epoch, *sent);
            if to.send(Msg { input: 0, message: Message::Barrier(epoch) }).await.is_err() {
                return;
            }
            let _ = reply.send(*sent);
        }
    }
}

/// The feed of a source that cannot rewind: its batches are made durable
/// in the ingest log, then sent on.
#[derive(Clone)]
pub(crate) struct LogFeed {
    pub(crate) log: IngestLog,
    pub(crate) feed: Positioned,
    /// Set once the log's entries from before the restart were replayed:
    /// live batches go after them.
    pub(crate) replayed: watch::Receiver<bool>,
}

impl LogFeed {
    /// Replays the log from the feed's start to its end into the graph
    /// (the batches read before a crash but not in a committed
    /// checkpoint), then lets live batches through. Barriers asked for
    /// meanwhile fall between replayed batches.
    pub(crate) async fn replay(log: IngestLog, feed: Positioned, to: Recipient<Msg>, done: watch::Sender<bool>) {
        let mut pos = feed.start();
        let end = log.end();
        while pos < end {
            let batch = match log.read(pos, 16) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the ingest log");
                    return;
                }
            };
            if batch.is_empty() {
                break;
            }
            for (seq, payloads) in batch {
                if !feed.send(&to, payloads, Some(seq + 1)).await {
                    return;
                }
                pos = seq + 1;
            }
        }
        let _ = done.send(true);
    }

    /// Logs `payloads`, then sends them on. Redeliveries the log already
    /// holds are dropped. False once the rule stops.
    pub(crate) async fn send(&self, to: &Recipient<Msg>, payloads: Vec<Payload>, stop: &watch::Receiver<bool>) -> bool {
        let mut replayed = self.replayed.clone();
        let mut stopping = stop.clone();
        tokio::select! {
            r = replayed.wait_for(|r| *r) => if r.is_err() { return false },
            _ = stopping.wait_for(|s| *s) => return false,
        }
        let payloads = self.without_redeliveries(payloads);
        if payloads.is_empty() {
            return true;
        }
        match self.append(payloads, stop).await {
            Some((position, payloads)) => self.feed.send(to, payloads, Some(position)).await,
            None => false,
        }
    }

    /// Drops the redeliveries (the broker had no ack when the connection or
    /// the process died) that the log already holds: feeding them again
    /// would count them twice.
    fn without_redeliveries(&self, mut payloads: Vec<Payload>) -> Vec<Payload> {
        let redelivered = |p: &Payload| {
            p.meta.as_ref().is_some_and(|m| m.get(crate::row::REDELIVERED) == Some(&crate::Value::Bool(true)))
        };
        if payloads.iter().any(redelivered) {
            // By packet id, however far back the first copy was logged;
            // the newest entries as well, for what the index does not
            // cover (payloads that are not raw bytes).
            let tail = self.log.tail(REDELIVERY_WINDOW).unwrap_or_default();
            let same = |a: &Payload, b: &Payload| {
                let key = |x: &Payload, k: &str| x.meta.as_ref().and_then(|m| m.get(k).cloned());
                a.data == b.data && key(a, "topic") == key(b, "topic") && key(a, "messageId") == key(b, "messageId")
            };
            let held = |p: &Payload| self.log.holds_delivery(p).unwrap_or(false) || tail.iter().any(|t| same(t, p));
            payloads.retain(|p| !(redelivered(p) && held(p)));
        }
        payloads
    }

    /// Appends until the payloads are durable (their log position after
    /// them, and the payloads) or the rule stops. A failed append (a
    /// standby being re-synced, a full disk) is retried with backoff:
    /// meanwhile the source waits and acknowledges nothing, which is the
    /// backpressure the broker sees. Giving up would leave the source
    /// stopped while the rule looks healthy.
    async fn append(&self, payloads: Vec<Payload>, stop: &watch::Receiver<bool>) -> Option<(u64, Vec<Payload>)> {
        let mut wait = Duration::from_millis(20);
        let mut failures = 0u32;
        let mut payloads = payloads;
        loop {
            match self.log.try_append(payloads).await {
                Ok(appended) => return Some(appended),
                Err((_, back)) if back.is_empty() => return None,
                Err((e, back)) => {
                    payloads = back;
                    failures += 1;
                    // The first failure and then one in twenty: a broken
                    // store should be visible, not flood the log.
                    if failures % 20 == 1 {
                        tracing::error!(error = %e, failures, "cannot append to the ingest log; retrying");
                    }
                }
            }
            let mut stop = stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return None,
            }
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }
}
