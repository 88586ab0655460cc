//! Committing a running rule's checkpoints: locally once every sink has
//! seen an epoch's barrier, or, in a shard of a sharded rule, once every
//! shard has prepared it (see [`crate::shard`]).

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::checkpoint::{self, CommitRecord, Coordinator};
use crate::feed::EpochOffsets;
use crate::graph::{RuleGraph, SinkEvent};
use crate::shard::ShardCommit;
use crate::state::{IngestLog, StateBackend};

/// What committing a checkpoint needs.
pub(super) struct CommitContext {
    pub(super) backend: Arc<dyn StateBackend>,
    pub(super) rule: String,
    pub(super) rule_start: i64,
    pub(super) committed: Arc<std::sync::atomic::AtomicU64>,
    /// Source positions recorded per epoch by the barrier injector.
    pub(super) offsets: EpochOffsets,
    /// The ingest logs by source index.
    pub(super) logs: Vec<(usize, IngestLog)>,
    pub(super) graph: Arc<RuleGraph>,
}

impl CommitContext {
    /// Makes `record` the rule's committed checkpoint: durably recorded,
    /// older snapshots deleted, held outputs released, the ingest logs
    /// truncated behind its positions.
    async fn commit(&self, record: CommitRecord) {
        let epoch = record.epoch;
        let (backend, rule, r) = (self.backend.clone(), self.rule.clone(), record.clone());
        // RocksDB's fsync must not stall the actor threads.
        match tokio::task::spawn_blocking(move || checkpoint::commit(backend.as_ref(), &rule, &r)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return tracing::error!(rule = %self.rule, epoch, error = %e, "checkpoint commit failed"),
            Err(e) => return tracing::error!(rule = %self.rule, epoch, error = %e, "checkpoint commit task failed"),
        }
        self.committed.store(epoch, std::sync::atomic::Ordering::Relaxed);
        // qos 2: the sinks may now send what they held.
        self.graph.commit(epoch).await;
        // The log behind the committed positions is no longer needed.
        for (i, log) in &self.logs {
            let pos = record.offsets.get(*i).copied().unwrap_or(0);
            if let Err(e) = log.truncate(pos) {
                tracing::warn!(rule = %self.rule, error = %e, "cannot truncate the ingest log");
            }
        }
    }

    /// The checkpoint record of the complete epoch `epoch`, with the source
    /// positions its barriers recorded (`None`, logged, when they are
    /// missing: such an epoch must never be committed).
    fn record(&self, epoch: u64) -> Option<CommitRecord> {
        let offsets = {
            let mut m = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
            let o = m.get(&epoch).cloned();
            m.retain(|e, _| *e > epoch);
            o
        };
        // Every source recorded its position before its barrier entered
        // the graph; without them a restore would replay from the start.
        let Some(offsets) = offsets else {
            tracing::error!(rule = %self.rule, epoch, "no source positions for the epoch; not committed");
            return None;
        };
        Some(CommitRecord { epoch, rule_start_ms: self.rule_start, offsets })
    }
}

/// What a complete epoch leads to.
pub(super) enum CommitMode {
    /// The rule commits it.
    Local,
    /// A shard: it is prepared, reported here in order, and committed when
    /// every shard has prepared it.
    Sharded(mpsc::UnboundedSender<u64>),
}

/// Follows the sinks: commits (or, in a shard, prepares) an epoch once
/// every sink has seen its barrier, and reports when all sinks have ended.
pub(super) async fn watch_sinks(
    graph: Arc<RuleGraph>,
    mut events: mpsc::UnboundedReceiver<SinkEvent>,
    commits: Option<(Arc<CommitContext>, CommitMode)>,
    committed: u64,
    ended_tx: tokio::sync::oneshot::Sender<()>,
) {
    let sinks = graph.sinks;
    let mut coordinator = Coordinator::new(sinks, committed);
    let mut ended = 0;
    while ended < sinks {
        match events.recv().await {
            Some(SinkEvent::Barrier { n, .. }) => {
                let (Some(epoch), Some((ctx, mode))) = (coordinator.ack(n), &commits) else { continue };
                let Some(record) = ctx.record(epoch) else { continue };
                match mode {
                    CommitMode::Local => ctx.commit(record).await,
                    CommitMode::Sharded(report) => {
                        let (backend, rule) = (ctx.backend.clone(), ctx.rule.clone());
                        let r =
                            tokio::task::spawn_blocking(move || checkpoint::prepare(backend.as_ref(), &rule, &record));
                        match r.await {
                            Ok(Ok(())) => {
                                let _ = report.send(epoch);
                            }
                            Ok(Err(e)) => {
                                tracing::error!(rule = %ctx.rule, epoch, error = %e, "cannot prepare the checkpoint")
                            }
                            Err(e) => {
                                tracing::error!(rule = %ctx.rule, epoch, error = %e, "checkpoint prepare task failed")
                            }
                        }
                    }
                }
            }
            Some(SinkEvent::Ended { .. }) => ended += 1,
            None => break,
        }
    }
    let _ = ended_tx.send(());
}

/// Reports a shard's prepared epochs, in order. A report that fails (no
/// cluster leader for a moment) is covered by the next one: an epoch is
/// prepared with every epoch before it.
pub(super) async fn report_prepared(commit: Arc<dyn ShardCommit>, mut epochs: mpsc::UnboundedReceiver<u64>) {
    while let Some(mut epoch) = epochs.recv().await {
        // Only the newest of what is waiting needs reporting.
        while let Ok(e) = epochs.try_recv() {
            epoch = e;
        }
        if let Err(e) = commit.prepared(epoch).await {
            tracing::warn!(epoch, error = %e, "cannot report the prepared checkpoint");
        }
    }
}

/// Commits what every shard has prepared, as the rule-wide committed epoch
/// advances past `from`.
pub(super) async fn release_committed(ctx: Arc<CommitContext>, mut committed: watch::Receiver<u64>, mut from: u64) {
    loop {
        let epoch = *committed.borrow_and_update();
        if epoch > from {
            let (backend, rule) = (ctx.backend.clone(), ctx.rule.clone());
            match tokio::task::spawn_blocking(move || checkpoint::record_at(backend.as_ref(), &rule, epoch)).await {
                Ok(Ok(Some(record))) => {
                    ctx.commit(record).await;
                    from = epoch;
                }
                other => {
                    tracing::error!(rule = %ctx.rule, epoch, "the committed epoch is not prepared here: {other:?}")
                }
            }
        }
        if committed.changed().await.is_err() {
            return;
        }
    }
}
