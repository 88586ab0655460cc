//! Rule lifecycle: validate, store, start, stop, restart, status.
//!
//! Each rule has two locks. `state` (a plain mutex, never held across an
//! await) holds what status requests read, so they never wait for a start or
//! stop in progress. `life` (an async mutex) serializes start, stop, update
//! and drop of one rule and owns its running instance.

mod def;
mod runner;
mod status;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use weir_connectors::Environment;
use weir_planner::{Catalog, PhysicalPlan};
use weir_runtime::clock::{Clock as _, SystemClock};
use weir_runtime::metrics::OpMetrics;
use weir_runtime::state::StateBackend;
use weir_runtime::Registry;

pub(crate) use def::RuleDef;
use runner::{Live, Runner};
pub(crate) use status::{node_metrics, status_body, summary, topo};

use crate::error::{Error, Result};

/// eKuiper's rule states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Started and not stopped.
    Running,
    /// Stopped by a user, or never started (`triggered: false`).
    Stopped,
    /// Could not start, or failed while running.
    StoppedByError,
}

impl Status {
    /// eKuiper's spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::StoppedByError => "stopped by error",
        }
    }
}

/// What status, list and topology requests read.
#[derive(Clone)]
pub(crate) struct RuleState {
    /// The definition.
    pub(crate) def: Arc<RuleDef>,
    /// The last plan (from validation or the last start); none when the
    /// stored rule no longer plans (its stream was dropped).
    pub(crate) plan: Option<Arc<PhysicalPlan>>,
    /// Current state.
    pub(crate) status: Status,
    /// Last stop reason or error.
    pub(crate) message: String,
    /// Unix ms of the last start, 0 if never.
    pub(crate) last_start: i64,
    /// Unix ms of the last stop, 0 if never.
    pub(crate) last_stop: i64,
    /// Metrics of the running instance (empty when stopped).
    pub(crate) metrics: Vec<Arc<OpMetrics>>,
    /// The running instance's ingest logs, by source index (their fill
    /// level is part of the status).
    pub(crate) ingest_logs: Vec<(usize, weir_runtime::state::IngestLog)>,
}

/// One rule of the node.
pub(crate) struct Rule {
    state: Mutex<RuleState>,
    life: tokio::sync::Mutex<Option<Live>>,
    /// The shards of a sharded rule that run here, by index.
    shards: tokio::sync::Mutex<BTreeMap<u32, LiveShard>>,
}

/// A shard of a sharded rule running on this node.
struct LiveShard {
    live: Live,
    /// The epochs of all the rule's shards when it started: its run. A
    /// change of any means the rule rolls back, and the shard restarts.
    generation: Vec<u64>,
    /// What connects it to the other shards; dropped once it stopped.
    links: Box<dyn std::any::Any + Send>,
}

impl LiveShard {
    /// Stops the shard without a last checkpoint (the rule restarts from
    /// its committed one). Links first: a send to a shard that is gone (or
    /// not up yet) then fails at once instead of holding the end of the
    /// input back.
    async fn stop(self) {
        drop(self.links);
        self.live.stop(false).await;
    }
}

impl Rule {
    /// A snapshot of the rule's state.
    pub(crate) fn state(&self) -> RuleState {
        self.lock().clone()
    }

    /// Whether the rule (or a shard of it) runs here now.
    pub(crate) async fn is_live(&self) -> bool {
        self.life.lock().await.is_some() || !self.shards.lock().await.is_empty()
    }

    /// The run (see [`LiveShard`]) of each of its shards running here.
    pub(crate) async fn shard_runs(&self) -> BTreeMap<u32, Vec<u64>> {
        self.shards.lock().await.iter().map(|(i, s)| (*i, s.generation.clone())).collect()
    }

    fn lock(&self) -> MutexGuard<'_, RuleState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The id shard `index` of rule `rule` keeps its state and output ids
/// under.
pub(crate) fn shard_id(rule: &str, index: u32) -> String {
    format!("{rule}#{index}")
}

/// The status of a sharded rule shows the metrics of its shards here.
fn shard_metrics(st: &mut RuleState, shards: &BTreeMap<u32, LiveShard>) {
    st.metrics = shards.values().flat_map(|s| s.live.metrics.clone()).collect();
    st.ingest_logs = shards.values().flat_map(|s| s.live.ingest_logs.clone()).collect();
}

/// Plans `def` against `catalog` and the node's `functions`.
pub(crate) fn plan(def: &RuleDef, catalog: &Catalog, functions: &Registry) -> Result<PhysicalPlan> {
    Ok(weir_planner::plan(&def.id, &def.sql, catalog, &def.options, functions)?)
}

/// The functions rules are planned and run with: the built-ins plus the
/// node's models, plugins and services. Replaced whole when those change;
/// running rules keep the functions they started with.
pub(crate) struct Functions(std::sync::RwLock<Arc<Registry>>);

impl Functions {
    /// Starts with `registry`.
    pub(crate) fn new(registry: Arc<Registry>) -> Functions {
        Functions(std::sync::RwLock::new(registry))
    }

    /// The current functions.
    pub(crate) fn current(&self) -> Arc<Registry> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the functions.
    pub(crate) fn set(&self, registry: Arc<Registry>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = registry;
    }
}

/// The rules of a node.
pub(crate) struct Rules {
    rules: Mutex<BTreeMap<String, Arc<Rule>>>,
    runner: Runner,
}

impl Rules {
    /// A rule manager running rules on `threads` arbiters.
    ///
    /// # Panics
    /// When called outside an actix system.
    pub(crate) fn new(
        threads: usize,
        env: Environment,
        state: Arc<dyn StateBackend>,
        functions: Arc<Functions>,
    ) -> Rules {
        Rules { rules: Mutex::new(BTreeMap::new()), runner: Runner::new(threads, env, state, functions) }
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Rule>>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks that the sinks of `def` can be built.
    pub(crate) async fn check_sinks(&self, def: &RuleDef) -> Result<()> {
        self.runner.check_sinks(&def.id, &def.actions).await
    }

    /// Whether rule `id` exists.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.map().contains_key(id)
    }

    /// Rule `id`.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub(crate) fn get(&self, id: &str) -> Result<Arc<Rule>> {
        self.map().get(id).cloned().ok_or_else(|| Error::not_found("rule", id))
    }

    /// All rules, sorted by id.
    pub(crate) fn list(&self) -> Vec<Arc<Rule>> {
        self.map().values().cloned().collect()
    }

    /// Adds a stopped rule.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`].
    pub(crate) fn insert(&self, def: RuleDef, plan: Option<PhysicalPlan>) -> Result<Arc<Rule>> {
        let mut map = self.map();
        if map.contains_key(&def.id) {
            return Err(Error::AlreadyExists { what: "rule", name: def.id });
        }
        let id = def.id.clone();
        let state = RuleState {
            def: Arc::new(def),
            plan: plan.map(Arc::new),
            status: Status::Stopped,
            message: String::new(),
            last_start: 0,
            last_stop: 0,
            metrics: Vec::new(),
            ingest_logs: Vec::new(),
        };
        let rule = Arc::new(Rule {
            state: Mutex::new(state),
            life: tokio::sync::Mutex::new(None),
            shards: tokio::sync::Mutex::new(BTreeMap::new()),
        });
        map.insert(id, rule.clone());
        Ok(rule)
    }

    /// Removes rule `id` and stops it.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub(crate) async fn remove(&self, id: &str) -> Result<()> {
        let rule = self.map().remove(id).ok_or_else(|| Error::not_found("rule", id))?;
        let mut life = rule.life.lock().await;
        if let Some(live) = life.take() {
            live.stop(true).await;
        }
        for (_, shard) in std::mem::take(&mut *rule.shards.lock().await) {
            shard.stop().await;
        }
        // Every shard's state here: those that ran here and the standby
        // copies of the others.
        let shards = rule.lock().def.options.shards;
        if shards > 1 {
            for i in 0..shards {
                self.runner.forget(&shard_id(id, i));
            }
        }
        self.runner.forget(id);
        Ok(())
    }

    /// Starts shard `run.index` of `rule` (see [`Runner::launch_shard`]) in
    /// run `generation`, with the `links` to the other shards. A failure is
    /// recorded as the rule's status.
    pub(crate) async fn start_shard(
        &self,
        rule: &Rule,
        plan: PhysicalPlan,
        run: weir_runtime::shard::ShardRun,
        generation: Vec<u64>,
        links: Box<dyn std::any::Any + Send>,
    ) -> Result<()> {
        let mut shards = rule.shards.lock().await;
        let index = run.index;
        let (id, actions) = {
            let st = rule.lock();
            (st.def.id.clone(), st.def.actions.clone())
        };
        let mut shard_plan = plan.clone();
        shard_plan.rule_id = shard_id(&id, index);
        rule.lock().plan = Some(Arc::new(plan));
        let launched = self.runner.launch_shard(Arc::new(shard_plan), actions, id, run).await;
        let now = SystemClock.now_ms();
        match launched {
            Ok(live) => {
                shards.insert(index, LiveShard { live, generation, links });
                let mut st = rule.lock();
                st.last_start = now;
                st.status = Status::Running;
                st.message.clear();
                shard_metrics(&mut st, &shards);
                Ok(())
            }
            Err(e) => {
                let mut st = rule.lock();
                tracing::warn!(rule = %st.def.id, shard = index, "shard cannot start: {e}");
                if shards.is_empty() {
                    st.status = Status::StoppedByError;
                    st.last_stop = now;
                }
                st.message = e.to_string();
                Err(e)
            }
        }
    }

    /// Stops shard `index` of `rule` here, without a last checkpoint (the
    /// rule rolls back to its committed one).
    pub(crate) async fn stop_shard(&self, rule: &Rule, index: u32, message: &str) {
        let mut shards = rule.shards.lock().await;
        let Some(shard) = shards.remove(&index) else { return };
        shard.stop().await;
        let mut st = rule.lock();
        shard_metrics(&mut st, &shards);
        if shards.is_empty() {
            st.status = Status::Stopped;
            st.message = message.to_string();
            st.last_stop = SystemClock.now_ms();
        }
    }

    /// Ids of the rules whose last plan reads stream or table `name`.
    pub(crate) fn referencing(&self, name: &str) -> Vec<String> {
        self.map()
            .iter()
            .filter(|(_, r)| r.lock().plan.as_ref().is_some_and(|p| p.sources.iter().any(|s| s.name == name)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Starts `rule` with `plan` unless it runs already. A failure is also
    /// recorded as `stopped by error` with its message.
    pub(crate) async fn start(&self, rule: &Rule, plan: Result<PhysicalPlan>) -> Result<()> {
        let mut life = rule.life.lock().await;
        if life.is_some() {
            return Ok(());
        }
        let launched = match plan {
            Ok(plan) => {
                let plan = Arc::new(plan);
                rule.lock().plan = Some(plan.clone());
                let actions = rule.lock().def.actions.clone();
                self.runner.launch(plan, actions).await
            }
            Err(e) => Err(e),
        };
        let now = SystemClock.now_ms();
        let mut st = rule.lock();
        st.last_start = now;
        match launched {
            Ok(live) => {
                st.status = Status::Running;
                st.message.clear();
                st.metrics = live.metrics.clone();
                st.ingest_logs = live.ingest_logs.clone();
                *life = Some(live);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(rule = %st.def.id, "rule cannot start: {e}");
                st.status = Status::StoppedByError;
                st.message = e.to_string();
                st.last_stop = now;
                Err(e)
            }
        }
    }

    /// Stops `rule` if it runs; `message` becomes its status message.
    pub(crate) async fn stop(&self, rule: &Rule, message: &str) {
        self.stop_with(rule, message, true).await
    }

    /// Stops `rule` without a last checkpoint: it runs on another node now
    /// (or this node is cut off from the cluster), whose fence refuses this
    /// node's writes.
    pub(crate) async fn abandon(&self, rule: &Rule, message: &str) {
        self.stop_with(rule, message, false).await
    }

    async fn stop_with(&self, rule: &Rule, message: &str, checkpoint: bool) {
        let indices: Vec<u32> = rule.shards.lock().await.keys().copied().collect();
        for i in indices {
            self.stop_shard(rule, i, message).await;
        }
        let mut life = rule.life.lock().await;
        let was_running = life.is_some();
        if let Some(live) = life.take() {
            if !live.stop(checkpoint).await {
                tracing::warn!(rule = %rule.lock().def.id, "sinks did not flush in time; rule abandoned");
            }
        }
        let mut st = rule.lock();
        if was_running || st.status == Status::StoppedByError {
            st.last_stop = SystemClock.now_ms();
        }
        st.status = Status::Stopped;
        st.message = message.to_string();
        st.metrics.clear();
        st.ingest_logs.clear();
    }

    /// Replaces the definition of a stopped or running rule: the old one is
    /// stopped first; the caller starts the new one if it is triggered.
    pub(crate) async fn replace(&self, rule: &Rule, def: RuleDef, plan: PhysicalPlan) {
        self.stop(rule, "").await;
        let mut st = rule.lock();
        st.def = Arc::new(def);
        st.plan = Some(Arc::new(plan));
    }

    /// Records whether `rule` should run; returns the JSON to store.
    pub(crate) fn set_triggered(&self, rule: &Rule, triggered: bool) -> serde_json::Value {
        let mut st = rule.lock();
        let mut def = (*st.def).clone();
        def.set_triggered(triggered);
        let json = def.to_json();
        st.def = Arc::new(def);
        json
    }

    /// Stops every rule and the runner threads.
    pub(crate) async fn shutdown(&self) {
        for rule in self.list() {
            if let Some(live) = rule.life.lock().await.take() {
                live.stop(true).await;
            }
            for (_, shard) in std::mem::take(&mut *rule.shards.lock().await) {
                shard.stop().await;
            }
        }
        self.runner.shutdown();
    }
}
