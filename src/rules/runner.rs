//! Where rules run: a few actix arbiters (threads with their own event
//! loop), separate from the HTTP workers, so a busy rule never delays the
//! REST API and stopping a rule does not depend on which worker asked.
//!
//! Connectors are built on the arbiter that will run them, because their
//! constructors may spawn tasks onto the current event loop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use tokio::sync::oneshot;
use weir_connectors::{Environment, ShardOf, SinkContext, SourceContext};
use weir_planner::PhysicalPlan;
use weir_runtime::clock::SystemClock;
use weir_runtime::connector::Sink;
use weir_runtime::metrics::OpMetrics;
use weir_runtime::rule::{RunningRule, Source};
use weir_runtime::shard::ShardRun;
use weir_runtime::state::{IngestLog, StateBackend};
use weir_runtime::Registry;

use super::def::Action;
use crate::error::{Error, Result};

/// How long a stop waits for the sinks to flush before giving up on them.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The threads that run rules.
pub(crate) struct Runner {
    arbiters: Vec<Arbiter>,
    next: AtomicUsize,
    env: Environment,
    /// The node's state store: checkpoints of rules with `qos` 1 or 2.
    state: Arc<dyn StateBackend>,
    /// The functions rules run with.
    functions: Arc<super::Functions>,
}

/// A started rule, running on one of the runner's arbiters.
pub(crate) struct Live {
    /// Asks the rule to stop: with a last checkpoint (true) or not.
    stop: oneshot::Sender<(bool, oneshot::Sender<()>)>,
    /// Metrics of every node, shared with the running actors.
    pub(crate) metrics: Vec<Arc<OpMetrics>>,
    /// The sources' durable ingest logs, by source index (`qos` 1/2).
    pub(crate) ingest_logs: Vec<(usize, IngestLog)>,
}

impl Live {
    /// Stops the rule and waits until its sinks have flushed. Returns false
    /// when that took longer than [`STOP_TIMEOUT`] (the rule is abandoned:
    /// its sources no longer read).
    pub(crate) async fn stop(self, checkpoint: bool) -> bool {
        let (ack, done) = oneshot::channel();
        if self.stop.send((checkpoint, ack)).is_err() {
            return true;
        }
        tokio::time::timeout(STOP_TIMEOUT, done).await.is_ok()
    }
}

impl Runner {
    /// Starts `threads` arbiters.
    ///
    /// # Panics
    /// When called outside an actix system.
    pub(crate) fn new(
        threads: usize,
        env: Environment,
        state: Arc<dyn StateBackend>,
        functions: Arc<super::Functions>,
    ) -> Runner {
        let arbiters = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        Runner { arbiters, next: AtomicUsize::new(0), env, state, functions }
    }

    /// Deletes the checkpoints of a dropped rule, and what its sources kept
    /// between runs (the sql source's index).
    pub(crate) fn forget(&self, rule_id: &str) {
        if let Err(e) = weir_runtime::checkpoint::forget(self.state.as_ref(), rule_id) {
            tracing::warn!(rule = %rule_id, error = %e, "cannot delete the rule's checkpoints");
        }
        weir_connectors::forget_rule(rule_id, &self.env);
    }

    fn arbiter(&self) -> &Arbiter {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        &self.arbiters[i]
    }

    /// Runs `f` on an arbiter and returns its result.
    async fn on_arbiter<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        if !self.arbiter().spawn_fn(move || {
            let _ = tx.send(f());
        }) {
            return Err(gone());
        }
        rx.await.map_err(|_| gone())
    }

    /// Builds every sink of `actions` and drops them again: the check that
    /// a rule's actions are valid before it is stored.
    pub(crate) async fn check_sinks(&self, rule_id: &str, actions: &[Action]) -> Result<()> {
        let (rule_id, actions, env) = (rule_id.to_string(), actions.to_vec(), self.env.clone());
        self.on_arbiter(move || build_sinks(&rule_id, &actions, &env).map(drop)).await?
    }

    /// Builds the sources and sinks of `plan` and starts it.
    ///
    /// # Errors
    /// A source or sink cannot be built, or the graph cannot start.
    pub(crate) async fn launch(&self, plan: Arc<PhysicalPlan>, actions: Vec<Action>) -> Result<Live> {
        self.launch_with(plan, actions, None).await
    }

    /// Starts shard `shard.index` of a sharded rule: `plan` is the rule's
    /// plan with the shard's own id (`<rule>#<index>`: its state and output
    /// ids), `rule` the rule's id (its sources join one MQTT share group).
    ///
    /// # Errors
    /// As [`Runner::launch`].
    pub(crate) async fn launch_shard(
        &self,
        plan: Arc<PhysicalPlan>,
        actions: Vec<Action>,
        rule: String,
        shard: ShardRun,
    ) -> Result<Live> {
        self.launch_with(plan, actions, Some((rule, shard))).await
    }

    async fn launch_with(
        &self,
        plan: Arc<PhysicalPlan>,
        actions: Vec<Action>,
        shard: Option<(String, ShardRun)>,
    ) -> Result<Live> {
        let env = self.env.clone();
        let state = self.state.clone();
        let functions = self.functions.current();
        let (reply, started) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<(bool, oneshot::Sender<()>)>();
        let spawned = self.arbiter().spawn_fn(move || {
            actix::spawn(async move {
                let running = match start(&plan, &actions, &env, state, &functions, shard) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                if reply.send(Ok((running.metrics().to_vec(), running.ingest_logs().to_vec()))).is_err() {
                    running.stop().await;
                    return;
                }
                // A dropped handle (rule removed, node shutting down) stops
                // the rule as well.
                let (checkpoint, ack) = match stop_rx.await {
                    Ok((checkpoint, ack)) => (checkpoint, Some(ack)),
                    Err(_) => (true, None),
                };
                if checkpoint {
                    running.stop().await;
                } else {
                    running.abandon().await;
                }
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
            });
        });
        if !spawned {
            return Err(gone());
        }
        let (metrics, ingest_logs) = started.await.map_err(|_| gone())??;
        Ok(Live { stop, metrics, ingest_logs })
    }

    /// Stops the arbiters (after the rules were stopped).
    pub(crate) fn shutdown(&self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}

fn gone() -> Error {
    Error::Start { rule: String::new(), message: "the rule runner thread is gone".to_string() }
}

fn build_sinks(rule_id: &str, actions: &[Action], env: &Environment) -> Result<Vec<(String, Box<dyn Sink>)>> {
    actions
        .iter()
        .map(|a| {
            let cx = SinkContext { rule_id: rule_id.to_string(), index: a.index };
            weir_connectors::sink(&a.kind, &a.props, &cx, env)
                .map(|s| (a.node_name(), s))
                .map_err(|source| Error::Sink { index: a.index, kind: a.kind.clone(), source })
        })
        .collect()
}

fn start(
    plan: &PhysicalPlan,
    actions: &[Action],
    env: &Environment,
    state: Arc<dyn StateBackend>,
    functions: &Registry,
    shard: Option<(String, ShardRun)>,
) -> Result<RunningRule> {
    let start_err = |message: String| Error::Start { rule: plan.rule_id.clone(), message };
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut lookups = Vec::new();
    let source_cx = match &shard {
        Some((rule, run)) => {
            SourceContext { rule_id: rule.clone(), shard: Some(ShardOf { index: run.index, count: run.count }) }
        }
        None => SourceContext { rule_id: plan.rule_id.clone(), shard: None },
    };
    for (i, s) in plan.sources.iter().enumerate() {
        let what = |e: weir_connectors::Error| start_err(format!("{} {}: {e}", s.def.kind.name(), s.name));
        if s.def.is_lookup() {
            // Queried by the join, not fed: its source slot stays idle.
            lookups.push((i as u16, weir_connectors::lookup(&s.def, env).map_err(what)?));
            sources.push(Box::new(Unfed));
            continue;
        }
        sources.push(weir_connectors::rule_source(&s.def, &source_cx, env).map_err(what)?);
    }
    let clock = Arc::new(SystemClock);
    match shard {
        Some((rule, run)) => {
            let sinks = build_sinks(&rule, &shard_actions(actions, run.index), env)?;
            RunningRule::start_shard(plan, functions, clock, sources, sinks, state, run)
        }
        None => {
            let sinks = build_sinks(&plan.rule_id, actions, env)?;
            RunningRule::start_with(plan, functions, clock, sources, sinks, Some(state), lookups)
        }
    }
    .map_err(|e| start_err(e.message))
}

/// A shard's actions: a fixed MQTT `clientId` gets the shard's suffix
/// (`<id>-s<index>`, as its sources' client ids do), so that the shards'
/// sinks do not take each other's connection over at the broker.
fn shard_actions(actions: &[Action], index: u32) -> Vec<Action> {
    let mut actions = actions.to_vec();
    for a in &mut actions {
        let Some(props) = a.props.as_object_mut() else { continue };
        for (key, value) in props.iter_mut() {
            if let Some(id) = value.as_str().filter(|id| key.eq_ignore_ascii_case("clientid") && !id.is_empty()) {
                *value = serde_json::Value::String(format!("{id}-s{index}"));
            }
        }
    }
    actions
}

/// The placeholder source of a lookup table (never run: the runtime skips
/// sources without a feed).
struct Unfed;

impl Source for Unfed {
    fn run(
        self: Box<Self>,
        _out: weir_runtime::rule::SourceSender,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async {})
    }
}
