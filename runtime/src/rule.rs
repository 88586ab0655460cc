//! Running a rule live: its actor graph, its clock driver and its sources.
//!
//! [`RunningRule::start`] wires what [`crate::replay`] drives by hand:
//! sources push payloads into the graph as they arrive, and a clock driver
//! sends a tick whenever an operator's timer is due (window ends, session
//! timeouts, sliding delays). Stopping ends the sources, sends `End`
//! through the graph and waits for the sinks to flush.

mod commit;
mod drivers;
mod source;

use std::sync::Arc;

use actix::Recipient;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weir_planner::PhysicalPlan;

use crate::checkpoint;
use crate::clock::Clock;
use crate::connector::{Lookup, Sink};
use crate::feed::{BarrierRequest, EpochOffsets, LogFeed, PositionBook, Positioned};
use crate::graph::{BuildError, CheckpointConfig, GraphShard, Msg, RuleGraph};
use crate::metrics::OpMetrics;
use crate::row::Message;
use crate::shard::{ShardRun, TIME_HEARTBEAT_MS};
use crate::state::{IngestLog, StateBackend};
use crate::Registry;
use commit::{release_committed, report_prepared, watch_sinks, CommitContext, CommitMode};
use drivers::{drive_clock, inject_barriers, Barriers, Trigger};
use source::Feed;
pub use source::{Source, SourceSender};

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

/// How long a stop waits for its last checkpoint.
const STOP_CHECKPOINT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bound of each source's ingest log (entries, i.e. source batches) behind
/// the committed checkpoint.
const INGEST_LOG_CAPACITY: u64 = 100_000;

/// Delivers the other shards' messages to this shard's first stage.
async fn forward_inbox(mut inbox: mpsc::Receiver<(u32, Message)>, entry: Recipient<Msg>) {
    while let Some((from, message)) = inbox.recv().await {
        if entry.send(Msg { input: from as usize, message }).await.is_err() {
            return;
        }
    }
}
