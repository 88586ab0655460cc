//! Running a rule live: its actor graph, its clock driver and its sources.
//!
//! [`RunningRule::start`] wires what [`crate::replay`] drives by hand:
//! sources push payloads into the graph as they arrive, and a clock driver
//! sends a tick whenever an operator's timer is due (window ends, session
//! timeouts, sliding delays). Stopping ends the sources, sends `End`
//! through the graph and waits for the sinks to flush.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix::Recipient;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weir_planner::PhysicalPlan;

use crate::checkpoint::{self, CommitRecord, Coordinator};
use crate::clock::{Clock, Timers};
use crate::connector::{Lookup, Sink};
use crate::feed::{BarrierRequest, EpochOffsets, LogFeed, PositionBook, Positioned};
use crate::graph::{BuildError, CheckpointConfig, Msg, RuleGraph, SinkEvent};
use crate::metrics::OpMetrics;
use crate::row::{Message, Payload};
use crate::state::{IngestLog, StateBackend};
use crate::Registry;

/// Where a source sends what it reads. Sending waits while the rule is
/// busy (backpressure): a source should stop reading (an MQTT source stops
/// acknowledging) until `send` returns.
#[derive(Clone)]
pub struct SourceSender {
    to: Recipient<Msg>,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
    feed: Feed,
}

/// How a source's payloads reach the graph (see the `feed` module).
#[derive(Clone)]
enum Feed {
    /// No checkpoints (`qos` 0): straight in.
    Direct,
    /// Checkpoints, a source that cannot rewind: through the ingest log.
    Logged(LogFeed),
    /// Checkpoints, a rewindable source: straight in with its positions.
    Positioned(Positioned),
}

impl SourceSender {
    /// Sends payloads into the rule. Returns false once the rule stops, or
    /// when they could not be made durable: the source must then not
    /// acknowledge them. With `qos` 1 or 2 it returns once they are in the
    /// durable ingest log (a redelivery the log already holds is dropped).
    pub async fn send(&self, payloads: Vec<Payload>) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        match &self.feed {
            Feed::Direct => self.to.send(Msg { input: 0, message: Message::Payloads(payloads) }).await.is_ok(),
            Feed::Logged(log) => log.send(&self.to, payloads, &self.stop).await,
            // A rewindable source sends with its position (send_at); this
            // leaves the position where it was.
            Feed::Positioned(p) => p.send(&self.to, payloads, None).await,
        }
    }

    /// Where a rewindable source starts reading: the position of the
    /// restored checkpoint, 0 on a fresh start or without checkpoints.
    pub fn resume_position(&self) -> u64 {
        match &self.feed {
            Feed::Positioned(p) => p.start(),
            _ => 0,
        }
    }

    /// What a rewindable source sends with: `payloads` bring it to
    /// `position` (the position to resume from after them). Returns false
    /// once the rule stops. Other sources' positions are ignored.
    pub async fn send_at(&self, payloads: Vec<Payload>, position: u64) -> bool {
        match &self.feed {
            Feed::Positioned(p) if !*self.stop.borrow() => p.send(&self.to, payloads, Some(position)).await,
            Feed::Positioned(_) => false,
            _ => self.send(payloads).await,
        }
    }

    /// The rule clock's time, ms: the arrival time to stamp payloads with.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Resolves when the rule stops.
    pub async fn stopped(&mut self) {
        while !*self.stop.borrow() {
            if self.stop.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A source of payloads for one stream or table of a rule.
pub trait Source: Send + 'static {
    /// Reads until the input ends or `out.stopped()` resolves, sending what
    /// it reads with `out.send`.
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// Whether the source can re-read its input from a position: it then
    /// starts at [`SourceSender::resume_position`] and sends with
    /// [`SourceSender::send_at`], and with `qos` 1 or 2 it is checkpointed
    /// by position instead of through the ingest log.
    fn rewindable(&self) -> bool {
        false
    }
}

/// A rule running on the current actix system.
pub struct RunningRule {
    graph: Arc<RuleGraph>,
    stop: watch::Sender<bool>,
    ended: Option<tokio::sync::oneshot::Receiver<()>>,
    tasks: Vec<JoinHandle<()>>,
    sources_done: Vec<JoinHandle<()>>,
    committed: Arc<std::sync::atomic::AtomicU64>,
    /// Asks for a last checkpoint at stop (`qos` 1/2).
    final_checkpoint: Option<mpsc::Sender<tokio::sync::oneshot::Sender<u64>>>,
    /// The ingest logs by source index (`qos` 1/2, sources that cannot
    /// rewind).
    ingest_logs: Vec<(usize, IngestLog)>,
}

impl RunningRule {
    /// Starts the graph of `plan`, one source per plan source (in plan
    /// order) and the clock driver.
    ///
    /// # Errors
    /// The plan uses a function the registry does not know.
    pub fn start(
        plan: &PhysicalPlan,
        registry: &Registry,
        clock: Arc<dyn Clock>,
        sources: Vec<Box<dyn Source>>,
        sinks: Vec<(String, Box<dyn Sink>)>,
    ) -> Result<RunningRule, BuildError> {
        RunningRule::start_with(plan, registry, clock, sources, sinks, None, Vec::new())
    }

    /// Like [`RunningRule::start`], with a state store (a rule with `qos`
    /// 1 or 2 restores its newest committed checkpoint first, then
    /// checkpoints every `checkpointInterval`) and the connectors of its
    /// lookup tables by source index (their entries in `sources` are not
    /// run).
    ///
    /// # Errors
    /// An unknown function, or a checkpoint that cannot be read (a corrupt
    /// store): the rule refuses to run on bad state.
    pub fn start_with(
        plan: &PhysicalPlan,
        registry: &Registry,
        clock: Arc<dyn Clock>,
        sources: Vec<Box<dyn Source>>,
        sinks: Vec<(String, Box<dyn Sink>)>,
        state: Option<Arc<dyn StateBackend>>,
        lookups: Vec<(u16, Box<dyn Lookup>)>,
    ) -> Result<RunningRule, BuildError> {
        let rule = plan.rule_id.clone();
        let err = |e: crate::state::StateError| BuildError { rule: rule.clone(), message: e.to_string() };
        let state = state.filter(|_| plan.options.qos > 0);
        let mut config = None;
        let mut record = None;
        if let Some(backend) = &state {
            record = checkpoint::latest_commit(backend.as_ref(), &rule).map_err(err)?;
            config = Some(CheckpointConfig {
                backend: backend.clone(),
                restore: record.as_ref().map(|r| r.epoch),
                rule_start_ms: Some(record.as_ref().map_or_else(|| clock.now_ms(), |r| r.rule_start_ms)),
            });
        }
        let rule_start = config.as_ref().and_then(|c| c.rule_start_ms).unwrap_or_else(|| clock.now_ms());
        let committed = record.as_ref().map_or(0, |r| r.epoch);
        let mut graph = RuleGraph::start_with(plan, registry, clock.clone(), sinks, config, lookups)?;
        let events = std::mem::replace(&mut graph.events, mpsc::unbounded_channel().1);
        let graph = Arc::new(graph);
        let (stop, stop_rx) = watch::channel(false);
        let committed_epoch = Arc::new(std::sync::atomic::AtomicU64::new(committed));
        let mut tasks = Vec::new();
        let mut sources_done = Vec::new();
        // Per fed source (by source index): where barriers are asked for,
        // and the ingest log to truncate after commits, if it has one.
        let mut readers: Vec<(usize, mpsc::Sender<BarrierRequest>)> = Vec::new();
        let offsets: EpochOffsets = Arc::default();
        let mut logs = Vec::new();
        let source_count = sources.len();
        for (i, source) in sources.into_iter().enumerate() {
            // Lookup tables have no feed: their source is not run.
            let Some(to) = graph.source(i) else { continue };
            let mut out =
                SourceSender { to: to.clone(), clock: clock.clone(), stop: stop_rx.clone(), feed: Feed::Direct };
            if let Some(backend) = &state {
                let from = record.as_ref().and_then(|r| r.offsets.get(i).copied()).unwrap_or(0);
                let (tx, rx) = mpsc::channel(16);
                let feed = Positioned::new(from);
                let book = PositionBook { offsets: offsets.clone(), source: i, sources: source_count };
                tasks.push(actix::spawn(feed.clone().serve_barriers(to.clone(), rx, book, stop_rx.clone())));
                if source.rewindable() {
                    out.feed = Feed::Positioned(feed);
                } else {
                    let log = IngestLog::open(backend.clone(), &rule, i as u16, INGEST_LOG_CAPACITY).map_err(err)?;
                    let (done, replayed) = watch::channel(false);
                    tasks.push(actix::spawn(LogFeed::replay(log.clone(), feed.clone(), to, done)));
                    logs.push((i, log.clone()));
                    out.feed = Feed::Logged(LogFeed { log, feed, replayed });
                }
                readers.push((i, tx));
            }
            sources_done.push(actix::spawn(source.run(out)));
        }
        tasks.push(actix::spawn(drive_clock(graph.clone(), graph.timers.clone(), clock.clone(), stop_rx.clone())));
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        let mut final_checkpoint = None;
        let commits = match state {
            Some(backend) => {
                let interval = plan.options.checkpoint_interval_ms.max(1);
                let (tx, last_call) = mpsc::channel(1);
                final_checkpoint = Some(tx);
                let barriers = Barriers { readers };
                tasks.push(actix::spawn(inject_barriers(clock, interval, committed, barriers, stop_rx, last_call)));
                let logs = logs.clone();
                Some(CommitContext { backend, rule, rule_start, committed: committed_epoch.clone(), offsets, logs })
            }
            None => None,
        };
        actix::spawn(watch_sinks(graph.clone(), events, commits, committed, ended_tx));
        Ok(RunningRule {
            graph,
            stop,
            ended: Some(ended),
            tasks,
            sources_done,
            committed: committed_epoch,
            final_checkpoint,
            ingest_logs: logs,
        })
    }

    /// The newest committed checkpoint epoch (0 if none).
    pub fn committed_epoch(&self) -> u64 {
        self.committed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Metrics of every node of the rule.
    pub fn metrics(&self) -> &[Arc<OpMetrics>] {
        &self.graph.metrics
    }

    /// The durable ingest log of each source that has one, by source index
    /// (for their fill level in the rule's status).
    pub fn ingest_logs(&self) -> &[(usize, IngestLog)] {
        &self.ingest_logs
    }

    /// Waits until every source has ended on its own (finite inputs).
    pub async fn wait_sources(&mut self) {
        for t in self.sources_done.drain(..) {
            let _ = t.await;
        }
    }

    /// Stops the rule without a last checkpoint: for a rule this node no
    /// longer owns (its state store would refuse the checkpoint, and the
    /// new owner restores the last committed one anyway).
    pub async fn abandon(mut self) {
        self.final_checkpoint = None;
        self.stop().await
    }

    /// Stops the rule: sources and clock stop, `End` flows through the
    /// graph, and this returns once every sink has flushed.
    pub async fn stop(mut self) {
        for t in self.sources_done.drain(..) {
            t.abort();
            let _ = t.await;
        }
        // With checkpoints, a clean stop commits everything read so far, so
        // held outputs go out under their final ids and a restart resumes
        // exactly there.
        if let Some(tx) = self.final_checkpoint.take() {
            let (reply, epoch) = tokio::sync::oneshot::channel();
            if tx.send(reply).await.is_ok() {
                if let Ok(Ok(e)) = tokio::time::timeout(STOP_CHECKPOINT_TIMEOUT, epoch).await {
                    let deadline = tokio::time::Instant::now() + STOP_CHECKPOINT_TIMEOUT;
                    while self.committed_epoch() < e && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                }
            }
        }
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.graph.broadcast(Message::End).await;
        if let Some(ended) = self.ended.take() {
            let _ = ended.await;
        }
    }
}

/// Sends a tick at rule start and whenever the earliest timer is due.
async fn drive_clock(graph: Arc<RuleGraph>, timers: Timers, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let mut last = clock.now_ms();
    graph.broadcast(Message::Tick(last)).await;
    loop {
        if *stop.borrow() {
            return;
        }
        // A deadline already ticked for is waiting for its operator to move
        // on; only a later one needs a tick.
        let next = timers.earliest_after(last);
        let changed = timers.changed();
        match next {
            Some(t) => {
                tokio::select! {
                    _ = clock.sleep_until(t) => {
                        last = clock.now_ms().max(t);
                        graph.broadcast(Message::Tick(last)).await;
                    }
                    _ = changed => {}
                    _ = stop.changed() => return,
                }
            }
            None => {
                tokio::select! {
                    _ = changed => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// What the sink watcher needs to commit checkpoints.
struct CommitContext {
    backend: Arc<dyn StateBackend>,
    rule: String,
    rule_start: i64,
    committed: Arc<std::sync::atomic::AtomicU64>,
    /// Source positions recorded per epoch by the barrier injector.
    offsets: EpochOffsets,
    /// The ingest logs by source index.
    logs: Vec<(usize, IngestLog)>,
}

/// How long a stop waits for its last checkpoint.
const STOP_CHECKPOINT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bound of each source's ingest log (entries, i.e. source batches) behind
/// the committed checkpoint.
const INGEST_LOG_CAPACITY: u64 = 100_000;

/// Follows the sinks: commits an epoch once every sink has seen its
/// barrier, and reports when all sinks have ended.
async fn watch_sinks(
    graph: Arc<RuleGraph>,
    mut events: mpsc::UnboundedReceiver<SinkEvent>,
    commits: Option<CommitContext>,
    committed: u64,
    ended_tx: tokio::sync::oneshot::Sender<()>,
) {
    let sinks = graph.sinks;
    let mut coordinator = Coordinator::new(sinks, committed);
    let mut ended = 0;
    while ended < sinks {
        match events.recv().await {
            Some(SinkEvent::Barrier { n, .. }) => {
                let (Some(epoch), Some(ctx)) = (coordinator.ack(n), &commits) else { continue };
                let offsets = {
                    let mut m = ctx.offsets.lock().unwrap_or_else(|e| e.into_inner());
                    let o = m.get(&epoch).cloned();
                    m.retain(|e, _| *e > epoch);
                    o
                };
                // Every source recorded its position before its barrier
                // entered the graph; without them a restore would replay
                // from the start, so such an epoch is never committed.
                let Some(offsets) = offsets else {
                    tracing::error!(rule = %ctx.rule, epoch, "no source positions for the epoch; not committed");
                    continue;
                };
                let record = CommitRecord { epoch, rule_start_ms: ctx.rule_start, offsets: offsets.clone() };
                let (backend, rule) = (ctx.backend.clone(), ctx.rule.clone());
                // RocksDB's fsync must not stall the actor threads.
                let r = tokio::task::spawn_blocking(move || checkpoint::commit(backend.as_ref(), &rule, &record)).await;
                match r {
                    Ok(Ok(())) => {
                        ctx.committed.store(epoch, std::sync::atomic::Ordering::Relaxed);
                        // qos 2: the sinks may now send what they held.
                        graph.commit(epoch).await;
                        // The log behind the committed positions is no longer needed.
                        for (i, log) in &ctx.logs {
                            let pos = offsets.get(*i).copied().unwrap_or(0);
                            if let Err(e) = log.truncate(pos) {
                                tracing::warn!(rule = %ctx.rule, error = %e, "cannot truncate the ingest log");
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::error!(rule = %ctx.rule, epoch, error = %e, "checkpoint commit failed"),
                    Err(e) => tracing::error!(rule = %ctx.rule, epoch, error = %e, "checkpoint commit task failed"),
                }
            }
            Some(SinkEvent::Ended { .. }) => ended += 1,
            None => break,
        }
    }
    let _ = ended_tx.send(());
}

/// Where the barrier injector asks each fed source's reader (by source
/// index) for a barrier; each records its position itself (a
/// `PositionBook`) before the barrier enters the graph.
struct Barriers {
    readers: Vec<(usize, mpsc::Sender<BarrierRequest>)>,
}

/// Every `interval` ms of the clock, has every source's reader inject the
/// next barrier.
async fn inject_barriers(
    clock: Arc<dyn Clock>,
    interval: i64,
    mut epoch: u64,
    barriers: Barriers,
    mut stop: watch::Receiver<bool>,
    mut last_call: mpsc::Receiver<tokio::sync::oneshot::Sender<u64>>,
) {
    loop {
        let due = clock.now_ms() + interval;
        // A stopping rule asks for one last checkpoint, taken at once.
        let mut reply = None;
        tokio::select! {
            _ = clock.sleep_until(due) => {}
            r = last_call.recv() => reply = r,
            _ = stop.changed() => return,
        }
        epoch += 1;
        for (_, r) in &barriers.readers {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if r.send((epoch, tx)).await.is_err() || rx.await.is_err() {
                return;
            }
        }
        if let Some(r) = reply {
            let _ = r.send(epoch);
        }
    }
}
