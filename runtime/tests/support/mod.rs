//! Sources, a sink and the rule shared by the state tests (`recovery.rs`,
//! `disk_full.rs`, `corrupt_state.rs`).

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use weir_planner::{parse_statement, plan, Catalog, PhysicalPlan, RuleOptions, Statement};
use weir_runtime::clock::SystemClock;
use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::graph::BuildError;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{RunningRule, Source, SourceSender};
use weir_runtime::state::StateBackend;
use weir_runtime::{Registry, Value};

/// Sends `{"v": n}` for each value it is given; counts those the rule
/// accepted (for an MQTT source: acknowledged to the broker).
pub(crate) struct Fed {
    pub(crate) input: mpsc::UnboundedReceiver<i64>,
    pub(crate) acked: Arc<AtomicU64>,
}

impl Source for Fed {
    fn run(mut self: Box<Self>, mut out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            while let Some(v) = self.input.recv().await {
                let data = PayloadData::Bytes(format!("{{\"v\":{v}}}").into_bytes());
                if !out.send(vec![Payload { data, ts: out.now_ms(), meta: None }]).await {
                    return;
                }
                self.acked.fetch_add(1, Ordering::AcqRel);
            }
            out.stopped().await;
        })
    }
}

/// Records (id, payload) of every emission.
#[derive(Clone, Default)]
pub(crate) struct Collect(pub(crate) Arc<Mutex<Vec<(String, String)>>>);

impl Sink for Collect {
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, Result<(), SinkError>> {
        self.emit_with_id(rows, "")
    }

    fn emit_with_id<'a>(&'a mut self, rows: &'a [Value], id: &'a str) -> BoxFuture<'a, Result<(), SinkError>> {
        self.0.lock().unwrap().push((id.to_string(), Value::array(rows.to_vec()).to_json()));
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Collect {
    /// Data outputs deduplicated by id (an id never carries two payloads),
    /// and the number of error rows among them.
    pub(crate) fn deduplicated(&self) -> (Vec<String>, usize) {
        let mut seen = std::collections::BTreeMap::new();
        let (mut out, mut errors) = (Vec::new(), 0);
        for (id, payload) in self.0.lock().unwrap().iter() {
            match seen.insert(id.clone(), payload.clone()) {
                Some(prev) => assert_eq!(&prev, payload, "id {id} carried two payloads"),
                None if payload.contains("\"error\"") => errors += 1,
                None => out.push(payload.clone()),
            }
        }
        (out, errors)
    }
}

/// Rule `r1`: exactly-once count windows of 3 over stream `s`.
pub(crate) fn rule_plan() -> PhysicalPlan {
    let mut catalog = Catalog::new();
    let Statement::Create(def) = parse_statement(r#"CREATE STREAM s (v BIGINT) WITH (DATASOURCE="s")"#).unwrap() else {
        unreachable!()
    };
    catalog.insert(*def);
    let options = RuleOptions::from_json(&serde_json::json!({"qos": 2, "checkpointInterval": 20})).unwrap();
    plan("r1", "SELECT collect(v) AS vs FROM s GROUP BY COUNTWINDOW(3)", &catalog, &options, Registry::builtins())
        .unwrap()
}

/// Starts rule `r1` ([`rule_plan`]) from `source` into `out` with
/// checkpoints in `backend`; on the current actix system.
pub(crate) fn start_rule(
    source: Box<dyn Source>,
    out: Collect,
    backend: Arc<dyn StateBackend>,
) -> Result<RunningRule, BuildError> {
    RunningRule::start_with(
        &rule_plan(),
        Registry::builtins(),
        Arc::new(SystemClock),
        vec![source],
        vec![("sink_collect_0".into(), Box::new(out))],
        Some(backend),
        Vec::new(),
    )
}

/// Polls `ok` every 5 ms for up to 20 s.
pub(crate) async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
