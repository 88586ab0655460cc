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
use crate::graph::{BuildError, CheckpointConfig, GraphShard, Msg, RuleGraph, SinkEvent};
use crate::metrics::OpMetrics;
use crate::row::{Message, Payload};
use crate::shard::{ShardCommit, ShardRun, TIME_HEARTBEAT_MS};
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
    /// A shard: its first stage and the other shards' inputs to end there
    /// at stop (their links are cut first).
    shard_inputs: Option<(Recipient<Msg>, Vec<usize>)>,
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
        RunningRule::launch(plan, registry, clock, sources, sinks, state, lookups, None)
    }

    /// Starts one shard of a sharded rule (see [`crate::shard`]): it
    /// restores the rule-wide committed epoch `shard.restore`, exchanges
    /// rows with the other shards, reports its checkpoints as prepared and
    /// releases outputs when the whole rule has committed them. Shard 0
    /// starts the checkpoints; the others follow its barriers. A shard stops
    /// without a last checkpoint (the rule restarts from the committed one).
    ///
    /// # Errors
    /// As [`RunningRule::start_with`], a plan that cannot be sharded
    /// ([`crate::shard::check_shardable`]), or no checkpoint of the epoch
    /// to restore in `state`.
    pub fn start_shard(
        plan: &PhysicalPlan,
        registry: &Registry,
        clock: Arc<dyn Clock>,
        sources: Vec<Box<dyn Source>>,
        sinks: Vec<(String, Box<dyn Sink>)>,
        state: Arc<dyn StateBackend>,
        shard: ShardRun,
    ) -> Result<RunningRule, BuildError> {
        crate::shard::check_shardable(plan).map_err(|message| BuildError { rule: plan.rule_id.clone(), message })?;
        RunningRule::launch(plan, registry, clock, sources, sinks, Some(state), Vec::new(), Some(shard))
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        plan: &PhysicalPlan,
        registry: &Registry,
        clock: Arc<dyn Clock>,
        sources: Vec<Box<dyn Source>>,
        sinks: Vec<(String, Box<dyn Sink>)>,
        state: Option<Arc<dyn StateBackend>>,
        lookups: Vec<(u16, Box<dyn Lookup>)>,
        shard: Option<ShardRun>,
    ) -> Result<RunningRule, BuildError> {
        let rule = plan.rule_id.clone();
        let err = |e: crate::state::StateError| BuildError { rule: rule.clone(), message: e.to_string() };
        let state = state.filter(|_| plan.options.qos > 0);
        let mut config = None;
        let mut record = None;
        if let Some(backend) = &state {
            record = match &shard {
                None => checkpoint::latest_commit(backend.as_ref(), &rule).map_err(err)?,
                Some(sh) if sh.restore == 0 => None,
                Some(sh) => {
                    Some(checkpoint::record_at(backend.as_ref(), &rule, sh.restore).map_err(err)?.ok_or_else(|| {
                        BuildError {
                            rule: rule.clone(),
                            message: format!("shard {} holds no checkpoint {} to restore", sh.index, sh.restore),
                        }
                    })?)
                }
            };
            config = Some(CheckpointConfig {
                backend: backend.clone(),
                restore: record.as_ref().map(|r| r.epoch),
                rule_start_ms: Some(record.as_ref().map_or_else(|| clock.now_ms(), |r| r.rule_start_ms)),
            });
        }
        let rule_start = config.as_ref().and_then(|c| c.rule_start_ms).unwrap_or_else(|| clock.now_ms());
        let committed = record.as_ref().map_or(0, |r| r.epoch);
        // A shard other than 0 injects the barriers shard 0's reach it with.
        let (follow, followed) = match &shard {
            Some(sh) if sh.index > 0 => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let graph_shard = shard.as_ref().map(|sh| GraphShard {
            index: sh.index,
            count: sh.count,
            peers: sh.peers.clone(),
            follow: follow.clone(),
        });
        let mut graph = RuleGraph::build(plan, registry, clock.clone(), sinks, config, lookups, graph_shard)?;
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
        let mut shard_inputs = None;
        let mut shard_commit = None;
        if let (Some(sh), Some(entry)) = (shard, graph.exchange()) {
            let others = (0..sh.count as usize).filter(|i| *i != sh.index as usize).collect();
            shard_inputs = Some((entry.clone(), others));
            tasks.push(actix::spawn(forward_inbox(sh.inbox, entry)));
            shard_commit = Some(sh.commit);
        }
        let heartbeat = shard_inputs.as_ref().map(|_| TIME_HEARTBEAT_MS);
        tasks.push(actix::spawn(drive_clock(
            graph.clone(),
            graph.timers.clone(),
            clock.clone(),
            heartbeat,
            stop_rx.clone(),
        )));
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        let mut final_checkpoint = None;
        let commits = match state {
            Some(backend) => {
                let interval = plan.options.checkpoint_interval_ms.max(1);
                let trigger = match followed {
                    Some(rx) => Trigger::Follow(rx),
                    None => Trigger::Every(interval),
                };
                // A shard stops without a last checkpoint: the others would
                // have to take it too.
                let last_call = match shard_commit {
                    None => {
                        let (tx, rx) = mpsc::channel(1);
                        final_checkpoint = Some(tx);
                        Some(rx)
                    }
                    Some(_) => None,
                };
                let barriers = Barriers { readers };
                tasks.push(actix::spawn(inject_barriers(clock, trigger, committed, barriers, stop_rx, last_call)));
                let ctx = Arc::new(CommitContext {
                    backend,
                    rule,
                    rule_start,
                    committed: committed_epoch.clone(),
                    offsets,
                    logs: logs.clone(),
                    graph: graph.clone(),
                });
                let mode = match shard_commit {
                    Some(commit) => {
                        let (prepared, reports) = mpsc::unbounded_channel();
                        tasks.push(actix::spawn(report_prepared(commit.clone(), reports)));
                        tasks.push(actix::spawn(release_committed(ctx.clone(), commit.committed(), committed)));
                        CommitMode::Sharded(prepared)
                    }
                    None => CommitMode::Local,
                };
                Some((ctx, mode))
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
            shard_inputs,
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
        // A shard's links to the others are cut: end their inputs here.
        if let Some((entry, others)) = self.shard_inputs.take() {
            for input in others {
                let _ = entry.send(Msg { input, message: Message::End }).await;
            }
        }
        self.graph.broadcast(Message::End).await;
        if let Some(ended) = self.ended.take() {
            let _ = ended.await;
        }
    }
}

/// Sends a tick at rule start and whenever the earliest timer is due, and
/// at least every `heartbeat` ms when given (a shard's time must reach the
/// other shards even when it has no timer of its own).
async fn drive_clock(
    graph: Arc<RuleGraph>,
    timers: Timers,
    clock: Arc<dyn Clock>,
    heartbeat: Option<i64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = clock.now_ms();
    graph.broadcast(Message::Tick(last)).await;
    loop {
        if *stop.borrow() {
            return;
        }
        // A deadline already ticked for is waiting for its operator to move
        // on; only a later one needs a tick.
        let next = match (timers.earliest_after(last), heartbeat) {
            (Some(t), Some(h)) => Some(t.min(last + h)),
            (t, h) => t.or(h.map(|h| last + h)),
        };
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

/// What committing a checkpoint needs.
struct CommitContext {
    backend: Arc<dyn StateBackend>,
    rule: String,
    rule_start: i64,
    committed: Arc<std::sync::atomic::AtomicU64>,
    /// Source positions recorded per epoch by the barrier injector.
    offsets: EpochOffsets,
    /// The ingest logs by source index.
    logs: Vec<(usize, IngestLog)>,
    graph: Arc<RuleGraph>,
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
enum CommitMode {
    /// The rule commits it.
    Local,
    /// A shard: it is prepared, reported here in order, and committed when
    /// every shard has prepared it.
    Sharded(mpsc::UnboundedSender<u64>),
}

/// How long a stop waits for its last checkpoint.
const STOP_CHECKPOINT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bound of each source's ingest log (entries, i.e. source batches) behind
/// the committed checkpoint.
const INGEST_LOG_CAPACITY: u64 = 100_000;

/// Follows the sinks: commits (or, in a shard, prepares) an epoch once
/// every sink has seen its barrier, and reports when all sinks have ended.
async fn watch_sinks(
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
async fn report_prepared(commit: Arc<dyn ShardCommit>, mut epochs: mpsc::UnboundedReceiver<u64>) {
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
async fn release_committed(ctx: Arc<CommitContext>, mut committed: watch::Receiver<u64>, mut from: u64) {
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

/// Delivers the other shards' messages to this shard's first stage.
async fn forward_inbox(mut inbox: mpsc::Receiver<(u32, Message)>, entry: Recipient<Msg>) {
    while let Some((from, message)) = inbox.recv().await {
        if entry.send(Msg { input: from as usize, message }).await.is_err() {
            return;
        }
    }
}

/// Where the barrier injector asks each fed source's reader (by source
/// index) for a barrier; each records its position itself (a
/// `PositionBook`) before the barrier enters the graph.
struct Barriers {
    readers: Vec<(usize, mpsc::Sender<BarrierRequest>)>,
}

/// When barriers are injected.
enum Trigger {
    /// Every so many ms of the clock.
    Every(i64),
    /// When shard 0's barrier reaches this shard, with its epoch.
    Follow(mpsc::UnboundedReceiver<u64>),
}

/// Has every source's reader inject the next barrier whenever `trigger`
/// says so.
async fn inject_barriers(
    clock: Arc<dyn Clock>,
    mut trigger: Trigger,
    mut epoch: u64,
    barriers: Barriers,
    mut stop: watch::Receiver<bool>,
    mut last_call: Option<mpsc::Receiver<tokio::sync::oneshot::Sender<u64>>>,
) {
    loop {
        // A stopping rule asks for one last checkpoint, taken at once.
        let mut reply = None;
        let mut next = epoch + 1;
        match &mut trigger {
            Trigger::Every(interval) => {
                let due = clock.now_ms() + *interval;
                let last = async {
                    match &mut last_call {
                        Some(l) => l.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let mut closed = false;
                tokio::select! {
                    _ = clock.sleep_until(due) => {}
                    r = last => match r {
                        Some(r) => reply = Some(r),
                        None => closed = true,
                    },
                    _ = stop.changed() => return,
                }
                // Nobody can ask for a last checkpoint any more.
                if closed {
                    last_call = None;
                    continue;
                }
            }
            Trigger::Follow(leader) => {
                tokio::select! {
                    n = leader.recv() => match n {
                        Some(n) if n > epoch => next = n,
                        Some(_) => continue,
                        None => return,
                    },
                    _ = stop.changed() => return,
                }
            }
        }
        epoch = next;
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
