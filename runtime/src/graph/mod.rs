//! A rule as a graph of actix actors.
//!
//! Each source gets a decoder actor; the plan's stages follow as a chain of
//! operator actors; every sink is an actor at the end. Edges are bounded
//! mailboxes and every send waits for room, so a slow sink slows the rule
//! down to its sources. Time (ticks, watermarks) and barriers travel in
//! band with the rows.

mod actor;
mod align;
mod compile;
mod exchange;
mod lookup;
mod sequence;
mod sink;

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;
use weir_planner::PhysicalPlan;

pub use actor::{Msg, SinkEvent};
pub use align::Aligner;
pub use sequence::Sequencer;
pub use sink::Committed;

use crate::clock::{Clock, Timers};
use crate::connector::{Lookup, Sink};
use crate::expr::Layout;
use crate::functions::{FuncError, Registry};
use crate::metrics::OpMetrics;
use crate::operator::RuleContext;
use crate::operator::{Operator, Output};
use crate::row::{Message, Payload};
use crate::state::{Space, StateBackend, StateError, StateKey};
use actor::{Edge, Intake, OperatorActor};
use sink::{Hold, SinkActor};

/// A running rule: where to push input, and what comes back.
pub struct RuleGraph {
    /// Decoder mailbox per plan source; `None` for lookup tables, which
    /// are queried, not fed.
    sources: Vec<Option<Recipient<Msg>>>,
    /// Operator timers; the clock driver fires ticks from them.
    pub timers: Timers,
    /// Barrier and end notifications from the sinks.
    pub events: mpsc::UnboundedReceiver<SinkEvent>,
    /// Metrics of every node, in topology order.
    pub metrics: Vec<Arc<OpMetrics>>,
    /// Number of sinks.
    pub sinks: usize,
    /// Threads of parallel instances (`concurrency` > 1).
    arbiters: Vec<Arbiter>,
    /// The sinks, told when an epoch commits (`qos: 2` releases outputs).
    committed: Vec<Recipient<Committed>>,
    /// A sharded rule: where the other shards' messages go in (the intake
    /// of the first stage, input = sending shard).
    exchange: Option<Recipient<Msg>>,
}

/// What makes a graph one shard of a sharded rule (see [`crate::shard`]).
pub(crate) struct GraphShard {
    pub(crate) index: u32,
    pub(crate) count: u32,
    pub(crate) peers: Vec<Option<crate::shard::ShardSender>>,
    /// Shard 0's barriers, announced to the other shards' injectors.
    pub(crate) follow: Option<mpsc::UnboundedSender<u64>>,
}

impl Drop for RuleGraph {
    fn drop(&mut self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}

/// A rule graph could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build rule {rule}: {message}")]
pub struct BuildError {
    /// Rule id.
    pub rule: String,
    /// What failed.
    pub message: String,
}

/// State ids of sinks (not plan operators): this plus the action index.
const SINK_STATE_ID: u32 = 1 << 20;

/// Where one operator instance keeps its snapshots.
#[derive(Debug, Clone)]
pub(crate) struct StateSlot {
    rule: String,
    operator: u32,
    shard: u32,
}

impl StateSlot {
    /// The key of the snapshot of `epoch` (zero-padded: keys sort by epoch).
    pub(crate) fn at(&self, epoch: u64) -> StateKey {
        StateKey { rule: self.rule.clone(), operator: self.operator, shard: self.shard, key: format!("{epoch:020}") }
    }
}

/// Forwards what it gets: splits data over parallel instances, or merges
/// them back (with a [`Sequencer`] intake).
struct PassOp;

impl Operator for PassOp {
    fn process(&mut self, _input: usize, batch: crate::row::Batch, _now: i64, out: &mut Output) {
        out.data(batch);
    }

    fn process_payloads(&mut self, payloads: Vec<Payload>, _now: i64, out: &mut Output) {
        out.messages.push(Message::Payloads(payloads));
    }
}

/// The instances at one position of the pipeline, as seen from upstream.
enum Next {
    /// Every edge gets every message (one instance, or several sinks).
    All(Vec<Edge>),
    /// Parallel instances of one stage: data is dealt round-robin.
    Instances(Vec<Edge>),
}

/// Checkpointing of a rule's operator state.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Where snapshots go.
    pub backend: Arc<dyn StateBackend>,
    /// Epoch to restore the operators from at start, if any.
    pub restore: Option<u64>,
    /// When the rule first started (kept across restores for `rule_start()`).
    pub rule_start_ms: Option<i64>,
}

/// Starts actors, on the current arbiter or spread over extra ones.
struct Spawner<'a> {
    rule: String,
    /// Lookup tables by source index, taken by the lookup join stage.
    lookups: Vec<(u16, Box<dyn Lookup>)>,
    checkpoint: Option<CheckpointConfig>,
    clock: Arc<dyn Clock>,
    timers: Timers,
    mailbox: usize,
    send_error: bool,
    arbiters: &'a [Arbiter],
    metrics: Vec<Arc<OpMetrics>>,
    /// The intake of the next single-instance stage spawned, instead of
    /// plain alignment (a shard's first stage).
    intake: Option<Intake>,
}

impl Spawner<'_> {
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &mut self,
        name: String,
        id: Option<u32>,
        instance: usize,
        mut op: Box<dyn Operator>,
        intake: Intake,
        next: &Next,
        one_to_one: bool,
    ) -> Result<Recipient<Msg>, BuildError> {
        let snapshots = match (&self.checkpoint, id) {
            (Some(cp), Some(id)) => {
                let key = StateSlot { rule: self.rule.clone(), operator: id, shard: instance as u32 };
                if let Some(epoch) = cp.restore {
                    let k = key.at(epoch);
                    let bytes =
                        cp.backend.get(Space::Checkpoints, &k.encode()).map_err(|e| self.state_err(&name, e))?;
                    if let Some(b) = bytes {
                        op.restore(&b).map_err(|e| self.state_err(&name, e))?;
                    }
                }
                Some((cp.backend.clone(), key))
            }
            _ => None,
        };
        let m = Arc::new(OpMetrics::instance(name, instance));
        self.metrics.push(m.clone());
        // A restored operator may have a timer pending: publish it before
        // anyone reads the timers.
        let timer_id = self.timers.register();
        self.timers.set(timer_id, op.next_timer());
        let (downstream, split) = match next {
            Next::All(e) => (e.clone(), false),
            Next::Instances(e) => (e.clone(), true),
        };
        let actor = OperatorActor {
            op,
            intake,
            downstream,
            split,
            dealt: 0,
            one_to_one,
            clock: self.clock.clone(),
            timer_id,
            timers: self.timers.clone(),
            metrics: m,
            mailbox: self.mailbox,
            last_tick: i64::MIN,
            send_error: self.send_error,
            snapshots,
        };
        Ok(match instance.checked_sub(1).and_then(|i| self.arbiters.get(i)) {
            Some(a) => OperatorActor::start_in_arbiter(&a.handle(), move |_| actor).recipient(),
            None => actor.start().recipient(),
        })
    }

    /// Starts the asynchronous actor of a lookup join.
    fn lookup_stage(&mut self, name: String, spec: lookup::LookupSpec, next: Next) -> Result<Next, BuildError> {
        let mut tables = Vec::with_capacity(spec.steps.len());
        for step in &spec.steps {
            let i = self.lookups.iter().position(|(s, _)| *s == step.source).ok_or_else(|| BuildError {
                rule: self.rule.clone(),
                message: format!("no lookup connector for the table of join {name}"),
            })?;
            let (_, l) = self.lookups.remove(i);
            let policy = l.cache_policy();
            tables.push((l, policy, Default::default()));
        }
        let m = Arc::new(OpMetrics::new(name));
        self.metrics.push(m.clone());
        let (downstream, split) = match next {
            Next::All(e) => (e, false),
            Next::Instances(e) => (e, true),
        };
        let actor = lookup::LookupActor {
            spec: Arc::new(spec),
            tables: Arc::new(tokio::sync::Mutex::new(tables)),
            downstream,
            split,
            dealt: 0,
            clock: self.clock.clone(),
            metrics: m,
            mailbox: self.mailbox,
        };
        Ok(Next::All(vec![Edge { to: actor.start().recipient(), input: 0 }]))
    }

    fn state_err(&self, node: &str, e: StateError) -> BuildError {
        BuildError { rule: self.rule.clone(), message: format!("cannot restore {node} from its checkpoint: {e}") }
    }

    /// Starts the instances of one pipeline position, wired to `next`;
    /// returns how the previous position reaches them.
    fn position(&mut self, stages: Vec<compile::Stage>, next: Next) -> Result<Next, BuildError> {
        let n = stages.len();
        if n == 1 {
            let mut stage = stages.into_iter().next().expect("one stage");
            if let Some(spec) = stage.lookup.take() {
                return self.lookup_stage(stage.name, spec, next);
            }
            let intake = self.intake.take().unwrap_or_else(|| Intake::Align(Aligner::new(stage.inputs)));
            let r = self.spawn(stage.name, Some(stage.id), 0, stage.op, intake, &next, false)?;
            return Ok(Next::All(vec![Edge { to: r, input: 0 }]));
        }
        // Parallel instances: chain to the next position's instances one to
        // one, or merge them back in order before a single next position.
        let targets: Vec<Next> = match next {
            Next::Instances(e) if e.len() == n => e.into_iter().map(|e| Next::All(vec![e])).collect(),
            next => {
                let name = format!("{}_merge", stages[0].name);
                let merge =
                    self.spawn(name, None, 0, Box::new(PassOp), Intake::Sequence(Sequencer::new(n)), &next, false)?;
                (0..n).map(|i| Next::All(vec![Edge { to: merge.clone(), input: i }])).collect()
            }
        };
        let mut edges = Vec::with_capacity(n);
        for (i, (stage, target)) in stages.into_iter().zip(targets).enumerate() {
            let intake = Intake::Align(Aligner::new(stage.inputs));
            edges.push(Edge {
                to: self.spawn(stage.name, Some(stage.id), i, stage.op, intake, &target, true)?,
                input: 0,
            });
        }
        Ok(Next::Instances(edges))
    }
}

fn first_edge(next: &Next) -> Edge {
    match next {
        Next::All(e) | Next::Instances(e) => e[0].clone(),
    }
}

impl RuleGraph {
    /// Starts the actors of `plan` on the current actix system. Sinks come
    /// with their eKuiper node names (`sink_log_0`). With `concurrency: N`
    /// the stateless stages run as N instances on their own threads, merged
    /// back in order (see [`Sequencer`]).
    ///
    /// # Errors
    /// A function of the plan is unknown to `registry`.
    pub fn start(
        plan: &PhysicalPlan,
        registry: &Registry,
        clock: Arc<dyn Clock>,
        sinks: Vec<(String, Box<dyn Sink>)>,
    ) -> Result<RuleGraph, BuildError> {
        RuleGraph::start_with(plan, registry, clock, sinks, None, Vec::new())
    }

    /// Like [`RuleGraph::start`], with checkpointing (every stateful
    /// operator writes its state at each barrier, and restores the given
    /// epoch first) and the connectors of the rule's lookup tables, by
    /// source index.
    ///
    /// # Errors
    /// An unknown function, or a checkpoint that cannot be read or decoded:
    /// the rule refuses to run on bad state.
    pub fn start_with(
        plan: &PhysicalPlan,
        registry: &Registry,
        clock: Arc<dyn Clock>,
        sinks: Vec<(String, Box<dyn Sink>)>,
        checkpoint: Option<CheckpointConfig>,
        lookups: Vec<(u16, Box<dyn Lookup>)>,
    ) -> Result<RuleGraph, BuildError> {
        RuleGraph::build(plan, registry, clock, sinks, checkpoint, lookups, None)
    }

    /// [`RuleGraph::start_with`], as one shard of a sharded rule when
    /// `shard` is given: decoded rows go through an exchange to the shard
    /// owning their key, and the first stage takes in every shard's rows.
    pub(crate) fn build(
        plan: &PhysicalPlan,
        registry: &Registry,
        clock: Arc<dyn Clock>,
        sinks: Vec<(String, Box<dyn Sink>)>,
        checkpoint: Option<CheckpointConfig>,
        lookups: Vec<(u16, Box<dyn Lookup>)>,
        shard: Option<GraphShard>,
    ) -> Result<RuleGraph, BuildError> {
        let start_ms = checkpoint.as_ref().and_then(|c| c.rule_start_ms).unwrap_or_else(|| clock.now_ms());
        let cx = RuleContext { rule_id: Arc::from(plan.rule_id.as_str()), start_ms };
        let err = |e: FuncError| BuildError { rule: plan.rule_id.clone(), message: e.0 };
        let layout = Arc::new(Layout::of(plan));
        let par = plan.operators.iter().map(|o| o.parallelism).max().unwrap_or(1).max(1) as usize;
        let mut compiled: Vec<compile::Compiled> = (0..par)
            .map(|_| compile::compile_plan(plan, registry, &cx, &layout))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mailbox = plan.options.buffer_length.max(1) as usize;
        let timers = Timers::default();
        let (tx, events) = mpsc::unbounded_channel();
        let arbiters: Vec<Arbiter> = (1..par).map(|_| Arbiter::new()).collect();
        let mut spawner = Spawner {
            rule: plan.rule_id.clone(),
            lookups,
            checkpoint,
            clock: clock.clone(),
            timers: timers.clone(),
            mailbox,
            send_error: plan.options.send_error,
            arbiters: &arbiters,
            metrics: Vec::new(),
            intake: None,
        };

        let sink_count = sinks.len();
        let mut sink_metrics = Vec::new();
        let mut committed = Vec::new();
        let mut sink_edges: Vec<Edge> = Vec::with_capacity(sink_count);
        for (i, (name, sink)) in sinks.into_iter().enumerate() {
            let m = Arc::new(OpMetrics::new(name.clone()));
            sink_metrics.push(m.clone());
            // qos 2: outputs wait for their checkpoint to commit.
            let hold = match (&spawner.checkpoint, plan.options.qos) {
                (Some(cp), 2) => {
                    let slot = StateSlot { rule: plan.rule_id.clone(), operator: SINK_STATE_ID + i as u32, shard: 0 };
                    Some(
                        Hold::new(cp.backend.clone(), slot, plan.rule_id.clone(), cp.restore)
                            .map_err(|e| spawner.state_err(&name, e))?,
                    )
                }
                _ => None,
            };
            let sink = Arc::new(tokio::sync::Mutex::new(sink));
            let a = SinkActor { index: i, sink, events: tx.clone(), metrics: m, clock: clock.clone(), mailbox, hold }
                .start();
            committed.push(a.clone().recipient());
            sink_edges.push(Edge { to: a.recipient(), input: 0 });
        }

        // A shard's watermark generator (the first stage with event time)
        // takes every shard's input as one of its streams.
        if let (Some(sh), true) = (&shard, plan.options.is_event_time) {
            if let Some(first) = compiled[0].stages.first_mut() {
                first.op =
                    Box::new(crate::operator::WatermarkOp::new(sh.count as usize, plan.options.late_tolerance_ms));
            }
        }
        // Positions of the pipeline, each with one instance per compiled
        // copy when it may run in parallel.
        let positions = compiled[0].stages.len();
        let mut stage_groups: Vec<Vec<compile::Stage>> = (0..positions).map(|_| Vec::new()).collect();
        for (k, c) in compiled.iter_mut().enumerate() {
            for (p, stage) in std::mem::take(&mut c.stages).into_iter().enumerate() {
                if k == 0 || stage.parallel {
                    stage_groups[p].push(stage);
                }
            }
        }
        // Start from the sinks backwards so every actor knows its downstream.
        let mut next = Next::All(sink_edges);
        let mut entries: Vec<Edge> = Vec::with_capacity(positions);
        for (p, group) in stage_groups.into_iter().enumerate().rev() {
            if let (0, Some(sh)) = (p, &shard) {
                spawner.intake = Some(Intake::Shard(exchange::ShardIntake::new(sh.count as usize, sh.follow.clone())));
            }
            next = spawner.position(group, next)?;
            entries.push(first_edge(&next));
        }
        entries.reverse();
        let mut first = next;
        let mut exchange = None;
        if let Some(sh) = shard {
            let (Some(entry), Some(agg)) = (entries.first(), &plan.aggregate) else {
                return Err(BuildError { rule: plan.rule_id.clone(), message: "a sharded rule needs GROUP BY".into() });
            };
            let keys = agg.keys.iter().map(|k| crate::expr::compile(k, registry, &layout)).collect::<Result<_, _>>();
            let m = Arc::new(OpMetrics::new("exchange".to_string()));
            spawner.metrics.push(m.clone());
            let actor = exchange::ExchangeActor {
                index: sh.index,
                count: sh.count,
                keys: keys.map_err(err)?,
                cx: cx.clone(),
                local: Edge { to: entry.to.clone(), input: sh.index as usize },
                peers: sh.peers,
                mailbox,
                metrics: m,
                clock: clock.clone(),
                event_time: plan.options.is_event_time.then(exchange::EventProgress::default),
            };
            exchange = Some(entry.to.clone());
            first = Next::All(vec![Edge { to: actor.start().recipient(), input: 0 }]);
        }

        let table_inputs = compiled[0].table_inputs.clone();
        let mut decoders: Vec<Vec<compile::Stage>> = (0..plan.sources.len()).map(|_| Vec::new()).collect();
        for (k, c) in compiled.iter_mut().enumerate() {
            for (i, d) in std::mem::take(&mut c.decoders).into_iter().enumerate() {
                if k == 0 || d.parallel {
                    decoders[i].push(d);
                }
            }
        }
        let mut stream_input = 0;
        let mut sources = Vec::new();
        for (i, group) in decoders.into_iter().enumerate() {
            if plan.sources[i].def.is_lookup() {
                sources.push(None);
                continue;
            }
            let target = match table_inputs.iter().find(|(s, _, _)| *s as usize == i) {
                Some((_, stage, input)) => Next::All(vec![Edge { to: entries[*stage].to.clone(), input: *input }]),
                None => {
                    let target = match &first {
                        Next::All(e) => Next::All(vec![Edge { to: e[0].to.clone(), input: stream_input }]),
                        Next::Instances(e) => Next::Instances(e.clone()),
                    };
                    stream_input += 1;
                    target
                }
            };
            let name = group[0].name.clone();
            let entry = spawner.position(group, target)?;
            let r = match entry {
                Next::All(e) => e[0].to.clone(),
                // Parallel decoders: a splitter deals payloads to them.
                instances => spawner.spawn(
                    format!("{name}_split"),
                    None,
                    0,
                    Box::new(PassOp),
                    Intake::Align(Aligner::new(1)),
                    &instances,
                    false,
                )?,
            };
            sources.push(Some(r));
        }
        let mut metrics = spawner.metrics;
        metrics.reverse();
        metrics.extend(sink_metrics);
        Ok(RuleGraph { sources, timers, events, metrics, sinks: sink_count, arbiters, committed, exchange })
    }

    /// A sharded rule's entry for the other shards' messages.
    pub(crate) fn exchange(&self) -> Option<Recipient<Msg>> {
        self.exchange.clone()
    }

    /// Sends payloads into source `source`; waits while its mailbox is full.
    pub async fn push(&self, source: usize, payloads: Vec<Payload>) {
        self.send(source, Message::Payloads(payloads)).await;
    }

    /// Sends a control message (tick, barrier, end) into every source.
    pub async fn broadcast(&self, message: Message) {
        for i in 0..self.sources.len() {
            self.send(i, message.clone()).await;
        }
    }

    async fn send(&self, source: usize, message: Message) {
        if let Some(Some(s)) = self.sources.get(source) {
            if let Err(e) = s.send(Msg { input: 0, message }).await {
                tracing::warn!(source, error = %e, "source mailbox closed");
            }
        }
    }

    /// The mailbox of source `i`'s decoder.
    pub fn source(&self, i: usize) -> Option<Recipient<Msg>> {
        self.sources.get(i).cloned().flatten()
    }

    /// Tells the sinks that epoch `n` has committed.
    pub async fn commit(&self, n: u64) {
        for s in &self.committed {
            let _ = s.send(Committed(n)).await;
        }
    }

    /// Number of sources.
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }
}
