//! Replay cases (see REPLAY.md): one rule, recorded input, a virtual clock,
//! and exactly what the sink receives. The rule runs through the same
//! planner, actors and operators as in production; only the clock, the
//! sources and the sink are swapped.
//!
//! Determinism: before each event the clock advances to its arrival time,
//! firing every due timer first (each as an in-band tick followed by a
//! barrier that the driver waits for at the sinks), then the event is
//! pushed and followed by a barrier. Nothing overlaps, so thread scheduling
//! cannot change the output.

mod compare;

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use weir_planner::{parse_statement, plan, Catalog, RuleOptions, Statement, StreamKind};

pub use compare::{compare, Mismatch};

use crate::clock::{Clock, VirtualClock};
use crate::connector::{BoxFuture, Lookup, MemoryLookup, Sink, SinkError};
use crate::graph::{CheckpointConfig, RuleGraph, SinkEvent};
use crate::row::{Message, Payload, PayloadData};
use crate::state::MemoryBackend;
use crate::value::{Map, Value};
use crate::Registry;

/// A replay case file.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayCase {
    /// What the case checks.
    #[serde(default)]
    pub name: String,
    /// CREATE STREAM / TABLE statements.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Files written to the data directory before setup.
    #[serde(default)]
    pub files: serde_json::Map<String, serde_json::Value>,
    /// The rule SQL.
    pub sql: String,
    /// Rule options.
    #[serde(default)]
    pub options: serde_json::Value,
    /// Input events in delivery order.
    #[serde(default)]
    pub events: Vec<ReplayEvent>,
    /// How far the clock runs after the last event, ms.
    pub drain_ms: Option<i64>,
    /// Expected emissions.
    pub expected: Option<Vec<Vec<serde_json::Value>>>,
}

/// One input event.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayEvent {
    /// Stream or table name.
    pub stream: String,
    /// Arrival time, Unix ms.
    pub at: i64,
    /// Payload: a JSON value, or a string taken as the raw bytes.
    pub data: serde_json::Value,
}

/// Why a case could not run (exit code 2 in `weir replay`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    /// The file is not a valid case.
    #[error("invalid case file: {0}")]
    Case(String),
    /// A setup statement failed.
    #[error("setup statement {index}: {message}")]
    Setup {
        /// 0-based statement index.
        index: usize,
        /// What failed.
        message: String,
    },
    /// The rule does not plan.
    #[error("rule: {0}")]
    Rule(String),
    /// An event is invalid.
    #[error("event {index}: {message}")]
    Event {
        /// 0-based event index.
        index: usize,
        /// What failed.
        message: String,
    },
    /// A file could not be written or read.
    #[error("file {name}: {message}")]
    File {
        /// File name.
        name: String,
        /// What failed.
        message: String,
    },
}

/// Parses a case file.
///
/// # Errors
/// [`ReplayError::Case`] if it is not valid JSON of the case format.
pub fn parse_case(text: &str) -> Result<ReplayCase, ReplayError> {
    serde_json::from_str(text).map_err(|e| ReplayError::Case(e.to_string()))
}

/// Collects emissions for the driver.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Vec<Value>>>>);

impl Sink for Collector {
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, Result<(), SinkError>> {
        let r = match self.0.lock() {
            Ok(mut v) => {
                v.push(rows.to_vec());
                Ok(())
            }
            Err(_) => Err(SinkError("collector poisoned".into())),
        };
        Box::pin(std::future::ready(r))
    }
}

/// How to run a case.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOptions {
    /// After every barrier, checkpoint all operator state, tear the rule
    /// down and start it again from that checkpoint. The output must not
    /// change: this proves that restore is complete.
    pub restore_each_barrier: bool,
}

/// Runs a case and returns the emissions the sink received.
///
/// # Errors
/// An invalid setup statement, rule, file or event.
pub fn run_case(case: &ReplayCase) -> Result<Vec<Vec<Value>>, ReplayError> {
    run_case_with(case, ReplayOptions::default())
}

/// Runs a case with options.
///
/// # Errors
/// An invalid setup statement, rule, file or event.
pub fn run_case_with(case: &ReplayCase, replay: ReplayOptions) -> Result<Vec<Vec<Value>>, ReplayError> {
    let dir = tempfile::tempdir().map_err(|e| ReplayError::File { name: "data dir".into(), message: e.to_string() })?;
    for (name, content) in &case.files {
        let text = match content {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        if name.contains("..") || name.starts_with('/') {
            return Err(ReplayError::File { name: name.clone(), message: "must be a plain relative name".into() });
        }
        std::fs::write(dir.path().join(name), text)
            .map_err(|e| ReplayError::File { name: name.clone(), message: e.to_string() })?;
    }
    let mut catalog = Catalog::new();
    for (index, sql) in case.setup.iter().enumerate() {
        match parse_statement(sql) {
            Ok(Statement::Create(def)) => {
                catalog.insert(*def);
            }
            Ok(_) => return Err(ReplayError::Setup { index, message: "only CREATE statements are allowed".into() }),
            Err(e) => return Err(ReplayError::Setup { index, message: e.to_string() }),
        }
    }
    let options = RuleOptions::from_json(&case.options).map_err(|e| ReplayError::Rule(e.to_string()))?;
    let registry = Registry::builtins();
    let plan = plan("replay", &case.sql, &catalog, &options, registry).map_err(|e| ReplayError::Rule(e.to_string()))?;

    // Resolve event targets and payloads before starting anything.
    let mut inputs = Vec::with_capacity(case.events.len());
    for (index, ev) in case.events.iter().enumerate() {
        if catalog.get(&ev.stream).is_none() {
            return Err(ReplayError::Event { index, message: format!("unknown stream or table {}", ev.stream) });
        }
        let bytes = match &ev.data {
            serde_json::Value::String(s) => s.clone().into_bytes(),
            v => v.to_string().into_bytes(),
        };
        let targets: Vec<usize> =
            plan.sources.iter().enumerate().filter(|(_, s)| s.name == ev.stream).map(|(i, _)| i).collect();
        inputs.push((ev.at, targets, bytes, ev.data.clone()));
    }
    let mut tables = Vec::new();
    for (i, s) in plan.sources.iter().enumerate() {
        if s.def.kind == StreamKind::Table && s.def.source_type() == "file" {
            tables.push((i, load_table_file(dir.path(), s.def.options.datasource.as_deref().unwrap_or(&s.name))?));
        }
    }

    // Lookup tables are held in memory; their events update them directly.
    let lookups: Vec<(usize, MemoryLookup)> = plan
        .sources
        .iter()
        .enumerate()
        .filter(|(_, s)| s.def.is_lookup())
        .map(|(i, _)| (i, MemoryLookup::default()))
        .collect();
    let start = case.events.first().map(|e| e.at.div_euclid(1000) * 1000).unwrap_or(0);
    let drain = case.drain_ms.unwrap_or(1000);
    let collector = Collector::default();
    let out = collector.clone();
    let system = actix::System::new();
    let result = system.block_on(async move {
        let clock = VirtualClock::new(start);
        let checkpoint = replay.restore_each_barrier.then(|| CheckpointConfig {
            backend: Arc::new(MemoryBackend::default()),
            restore: None,
            rule_start_ms: Some(start),
        });
        let sinks = vec![("sink_replay_0".to_string(), Box::new(collector.clone()) as Box<dyn Sink>)];
        let lookup_conns = lookups.iter().map(|(i, l)| (*i as u16, Box::new(l.clone()) as Box<dyn Lookup>)).collect();
        let graph =
            RuleGraph::start_with(&plan, registry, Arc::new(clock.clone()), sinks, checkpoint.clone(), lookup_conns)
                .map_err(|e| ReplayError::Rule(e.to_string()))?;
        let restart =
            checkpoint.map(|c| Restart { plan: plan.clone(), config: c, collector, lookups: lookups.clone() });
        let mut driver = Driver { graph, clock, barrier: 0, last_tick: i64::MIN, restart };
        for (source, rows) in tables {
            let payloads =
                rows.into_iter().map(|m| Payload { data: PayloadData::Object(m), ts: start, meta: None }).collect();
            driver.graph.push(source, payloads).await;
        }
        driver.tick(start).await;
        for (at, targets, bytes, data) in inputs {
            driver.advance_to(at).await;
            for t in targets {
                if let Some((_, l)) = lookups.iter().find(|(i, _)| *i == t) {
                    if let Value::Map(m) = Value::from_json(data.clone(), false) {
                        l.insert(Map::clone(&m), plan.sources[t].def.options.key.as_deref());
                    }
                    continue;
                }
                let p = Payload { data: PayloadData::Bytes(bytes.clone()), ts: at, meta: None };
                driver.graph.push(t, vec![p]).await;
            }
            driver.sync().await;
        }
        let end = driver.clock.now_ms() + drain;
        driver.advance_to(end).await;
        driver.finish().await;
        Ok::<(), ReplayError>(())
    });
    result?;
    let emissions = std::mem::take(&mut *out.0.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(emissions)
}

/// Reads a file table: a JSON array of objects, or JSON lines.
fn load_table_file(dir: &Path, name: &str) -> Result<Vec<Map>, ReplayError> {
    let err = |message: String| ReplayError::File { name: name.to_string(), message };
    let text = std::fs::read_to_string(dir.join(name)).map_err(|e| err(e.to_string()))?;
    let values: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(a)) => a,
        Ok(v) => vec![v],
        Err(_) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| err(e.to_string())))
            .collect::<Result<_, _>>()?,
    };
    values
        .into_iter()
        .map(|v| match Value::from_json(v, false) {
            Value::Map(m) => Ok(Map::clone(&m)),
            other => Err(err(format!("expected objects, found {}", other.type_name()))),
        })
        .collect()
}

/// What the driver needs to restart the rule from a checkpoint.
struct Restart {
    plan: weir_planner::PhysicalPlan,
    config: CheckpointConfig,
    collector: Collector,
    lookups: Vec<(usize, MemoryLookup)>,
}

/// Moves the virtual clock and waits for the graph to settle.
struct Driver {
    graph: RuleGraph,
    clock: VirtualClock,
    barrier: u64,
    last_tick: i64,
    restart: Option<Restart>,
}

impl Driver {
    /// Fires every timer due at or before `t`, in order, then sets the
    /// clock to `t`.
    async fn advance_to(&mut self, t: i64) {
        while let Some(due) = self.graph.timers.earliest_after(self.last_tick).filter(|d| *d <= t) {
            self.tick(due).await;
        }
        self.clock.set(t);
    }

    async fn tick(&mut self, t: i64) {
        self.clock.set(t);
        self.last_tick = t;
        self.graph.broadcast(Message::Tick(t)).await;
        self.sync().await;
    }

    /// Sends a barrier and waits until every sink has seen it.
    async fn sync(&mut self) {
        self.barrier += 1;
        let n = self.barrier;
        self.graph.broadcast(Message::Barrier(n)).await;
        let mut seen = 0;
        while seen < self.graph.sinks {
            match self.graph.events.recv().await {
                Some(SinkEvent::Barrier { n: m, .. }) if m == n => seen += 1,
                Some(_) => {}
                None => return,
            }
        }
        if let Some(r) = &self.restart {
            // Every operator has written its state for epoch n: start a
            // fresh graph from it (the old one stops when dropped).
            let mut config = r.config.clone();
            config.restore = Some(n);
            let sinks = vec![("sink_replay_0".to_string(), Box::new(r.collector.clone()) as Box<dyn Sink>)];
            match RuleGraph::start_with(
                &r.plan,
                Registry::builtins(),
                Arc::new(self.clock.clone()),
                sinks,
                Some(config),
                r.lookups.iter().map(|(i, l)| (*i as u16, Box::new(l.clone()) as Box<dyn Lookup>)).collect(),
            ) {
                Ok(g) => self.graph = g,
                Err(e) => tracing::error!(error = %e, "restore failed"),
            }
        }
    }

    async fn finish(&mut self) {
        self.graph.broadcast(Message::End).await;
        let mut ended = 0;
        while ended < self.graph.sinks {
            match self.graph.events.recv().await {
                Some(SinkEvent::Ended { .. }) => ended += 1,
                Some(_) => {}
                None => return,
            }
        }
    }
}

/// Compares emissions with the case's `expected`: rows in order only when
/// the rule has ORDER BY.
///
/// # Errors
/// The first difference, or a case without `expected`.
pub fn check(case: &ReplayCase, emissions: &[Vec<Value>]) -> Result<(), Mismatch> {
    let Some(expected) = &case.expected else {
        return Err(Mismatch { message: "the case has no \"expected\"".into() });
    };
    let ordered = matches!(parse_statement(&case.sql), Ok(Statement::Select(s)) if !s.order_by.is_empty());
    compare(emissions, expected, ordered)
}

/// Renders emissions as the JSON `weir replay` prints: an array with one
/// emission per line, rows in Go's JSON encoding.
pub fn render(emissions: &[Vec<Value>]) -> String {
    let mut s = String::from("[\n");
    for (i, e) in emissions.iter().enumerate() {
        s.push_str(&Value::array(e.clone()).to_json());
        if i + 1 < emissions.len() {
            s.push(',');
        }
        s.push('\n');
    }
    s.push(']');
    s
}
