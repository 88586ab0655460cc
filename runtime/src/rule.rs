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
use crate::connector::Sink;
use crate::graph::{BuildError, CheckpointConfig, Msg, RuleGraph, SinkEvent};
use crate::metrics::OpMetrics;
use crate::row::{Message, Payload};
use crate::state::StateBackend;
use crate::Registry;

/// Where a source sends what it reads. Sending waits while the rule is
/// busy (backpressure): a source should stop reading (an MQTT source stops
/// acknowledging) until `send` returns.
#[derive(Clone)]
pub struct SourceSender {
    to: Recipient<Msg>,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
}

impl SourceSender {
    /// Sends payloads into the rule. Returns false once the rule stops.
    pub async fn send(&self, payloads: Vec<Payload>) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        self.to.send(Msg { input: 0, message: Message::Payloads(payloads) }).await.is_ok()
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
}

/// A rule running on the current actix system.
pub struct RunningRule {
    graph: Arc<RuleGraph>,
    stop: watch::Sender<bool>,
    ended: Option<tokio::sync::oneshot::Receiver<()>>,
    tasks: Vec<JoinHandle<()>>,
    sources_done: Vec<JoinHandle<()>>,
    committed: Arc<std::sync::atomic::AtomicU64>,
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
        RunningRule::start_with(plan, registry, clock, sources, sinks, None)
    }

    /// Like [`RunningRule::start`], with a state store: a rule with
    /// `qos` 1 or 2 restores its newest committed checkpoint first, then
    /// checkpoints every `checkpointInterval`.
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
    ) -> Result<RunningRule, BuildError> {
        let rule = plan.rule_id.clone();
        let err = |e: crate::state::StateError| BuildError { rule: rule.clone(), message: e.to_string() };
        let state = state.filter(|_| plan.options.qos > 0);
        let mut config = None;
        let mut committed = 0;
        if let Some(backend) = &state {
            let record = checkpoint::latest_commit(backend.as_ref(), &rule).map_err(err)?;
            committed = record.map_or(0, |r| r.epoch);
            config = Some(CheckpointConfig {
                backend: backend.clone(),
                restore: record.map(|r| r.epoch),
                rule_start_ms: Some(record.map_or_else(|| clock.now_ms(), |r| r.rule_start_ms)),
            });
        }
        let rule_start = config.as_ref().and_then(|c| c.rule_start_ms).unwrap_or_else(|| clock.now_ms());
        let mut graph = RuleGraph::start_with(plan, registry, clock.clone(), sinks, config)?;
        let events = std::mem::replace(&mut graph.events, mpsc::unbounded_channel().1);
        let graph = Arc::new(graph);
        let (stop, stop_rx) = watch::channel(false);
        let mut sources_done = Vec::new();
        for (i, source) in sources.into_iter().enumerate() {
            let Some(to) = graph.source(i) else { break };
            let out = SourceSender { to, clock: clock.clone(), stop: stop_rx.clone() };
            sources_done.push(actix::spawn(source.run(out)));
        }
        let mut tasks =
            vec![actix::spawn(drive_clock(graph.clone(), graph.timers.clone(), clock.clone(), stop_rx.clone()))];
        let committed_epoch = Arc::new(std::sync::atomic::AtomicU64::new(committed));
        if let Some(backend) = state {
            let interval = plan.options.checkpoint_interval_ms.max(1);
            tasks.push(actix::spawn(inject_barriers(graph.clone(), clock, interval, committed, stop_rx)));
            let ctx = CommitContext { backend, rule, rule_start, committed: committed_epoch.clone() };
            let (ended_tx, ended) = tokio::sync::oneshot::channel();
            actix::spawn(watch_sinks(events, graph.sinks, Some(ctx), committed, ended_tx));
            return Ok(RunningRule {
                graph,
                stop,
                ended: Some(ended),
                tasks,
                sources_done,
                committed: committed_epoch,
            });
        }
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        actix::spawn(watch_sinks(events, graph.sinks, None, committed, ended_tx));
        Ok(RunningRule { graph, stop, ended: Some(ended), tasks, sources_done, committed: committed_epoch })
    }

    /// The newest committed checkpoint epoch (0 if none).
    pub fn committed_epoch(&self) -> u64 {
        self.committed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Metrics of every node of the rule.
    pub fn metrics(&self) -> &[Arc<OpMetrics>] {
        &self.graph.metrics
    }

    /// Waits until every source has ended on its own (finite inputs).
    pub async fn wait_sources(&mut self) {
        for t in self.sources_done.drain(..) {
            let _ = t.await;
        }
    }

    /// Stops the rule: sources and clock stop, `End` flows through the
    /// graph, and this returns once every sink has flushed.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..).chain(self.sources_done.drain(..)) {
            t.abort();
            let _ = t.await;
        }
        self.graph.broadcast(Message::End).await;
        if let Some(ended) = self.ended.take() {
            let _ = ended.await;
        }
    }
}

/// What the sink watcher needs to commit checkpoints.
struct CommitContext {
    backend: Arc<dyn StateBackend>,
    rule: String,
    rule_start: i64,
    committed: Arc<std::sync::atomic::AtomicU64>,
}

/// Follows the sinks: commits an epoch once every sink has seen its
/// barrier, and reports when all sinks have ended.
async fn watch_sinks(
    mut events: mpsc::UnboundedReceiver<SinkEvent>,
    sinks: usize,
    commits: Option<CommitContext>,
    committed: u64,
    ended_tx: tokio::sync::oneshot::Sender<()>,
) {
    let mut coordinator = Coordinator::new(sinks, committed);
    let mut ended = 0;
    while ended < sinks {
        match events.recv().await {
            Some(SinkEvent::Barrier { n, .. }) => {
                let (Some(epoch), Some(ctx)) = (coordinator.ack(n), &commits) else { continue };
                let record = CommitRecord { epoch, rule_start_ms: ctx.rule_start };
                let (backend, rule) = (ctx.backend.clone(), ctx.rule.clone());
                // RocksDB's fsync must not stall the actor threads.
                let r = tokio::task::spawn_blocking(move || checkpoint::commit(backend.as_ref(), &rule, record)).await;
                match r {
                    Ok(Ok(())) => ctx.committed.store(epoch, std::sync::atomic::Ordering::Relaxed),
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

/// Sends barrier n into every source every `interval` ms of the clock.
async fn inject_barriers(
    graph: Arc<RuleGraph>,
    clock: Arc<dyn Clock>,
    interval: i64,
    mut epoch: u64,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let due = clock.now_ms() + interval;
        tokio::select! {
            _ = clock.sleep_until(due) => {
                epoch += 1;
                graph.broadcast(Message::Barrier(epoch)).await;
            }
            _ = stop.changed() => return,
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
