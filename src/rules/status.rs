//! eKuiper's rule status body and topology, built from the plan's node
//! names and the running instance's metrics.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use weir_planner::PhysicalPlan;
use weir_runtime::metrics::OpMetrics;

use super::{RuleState, Status};

/// The decoder node of source `i`: the plan's decoder name, suffixed with
/// the stream name when the rule reads several (as the runtime names it).
fn decoder_name(plan: &PhysicalPlan, i: usize) -> String {
    let base = plan.operators.get(plan.sources.len()).map(|o| o.name.as_str()).unwrap_or("op_2_decoder");
    if plan.sources.len() == 1 {
        base.to_string()
    } else {
        format!("{base}_{}", plan.sources[i].name)
    }
}

/// Operator nodes after the decoders, in plan order.
fn operator_names(plan: &PhysicalPlan) -> Vec<&str> {
    plan.operators.iter().skip(plan.sources.len() + 1).map(|o| o.name.as_str()).collect()
}

/// `GET /rules/{id}/status`: `status`, `message`, the timestamps, then
/// every node's metrics in topology order (sources, operators, sinks).
/// Written by hand because the key order is part of eKuiper's output.
pub(crate) fn status_body(st: &RuleState) -> String {
    let mut entries: Vec<(String, Value)> = vec![
        ("status".into(), st.status.as_str().into()),
        ("message".into(), st.message.clone().into()),
        ("lastStartTimestamp".into(), st.last_start.into()),
        ("lastStopTimestamp".into(), st.last_stop.into()),
        ("nextStartTimestamp".into(), 0.into()),
    ];
    if st.status == Status::Running {
        entries.extend(metric_entries(st));
    }
    let mut out = String::from("{");
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k.clone()).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// The metrics of one node of a running rule.
pub(crate) struct NodeMetrics {
    /// `source`, `op` or `sink`.
    pub(crate) kind: &'static str,
    /// The node without its kind (`demo`, `2_decoder`, `log_0`).
    pub(crate) node: String,
    /// `(metric, value)` in eKuiper's order (`records_in_total`, ...).
    pub(crate) values: Vec<(String, Value)>,
}

fn metric_entries(st: &RuleState) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for n in node_metrics(st) {
        for (metric, v) in n.values {
            out.push((format!("{}_{}_0_{metric}", n.kind, n.node), v));
        }
    }
    out
}

/// Replaces the value of `key` in `values`.
fn set(values: &mut [(String, Value)], key: &str, v: Value) {
    if let Some(slot) = values.iter_mut().find(|(k, _)| k == key) {
        slot.1 = v;
    }
}

/// The metrics of a node's instances as one: counts and buffers added up,
/// the latest times, the highest latency, the latest exception.
fn merged(instances: &[&Arc<OpMetrics>]) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut latest_exception = i64::MIN;
    for m in instances {
        let prefix = format!("{}_{}_", m.name, m.instance);
        let entries: Vec<(String, Value)> = m
            .status_entries()
            .into_iter()
            .map(|(k, v)| (k.strip_prefix(&prefix).unwrap_or(&k).to_string(), v))
            .collect();
        let exception_time = entries.iter().find(|(k, _)| k == "last_exception_time").and_then(|(_, v)| v.as_i64());
        let newer_exception = exception_time.is_some_and(|t| t > latest_exception);
        if newer_exception {
            latest_exception = exception_time.unwrap_or(i64::MIN);
        }
        for (k, v) in entries {
            let Some(slot) = out.iter_mut().find(|(name, _)| *name == k) else {
                out.push((k, v));
                continue;
            };
            slot.1 = match (k.as_str(), slot.1.as_i64(), v.as_i64()) {
                (k, Some(a), Some(b)) if k.ends_with("_total") || k == "buffer_length" => (a + b).into(),
                (_, Some(a), Some(b)) => a.max(b).into(),
                ("last_exception", _, _) if newer_exception => v,
                _ => slot.1.clone(),
            };
        }
    }
    out
}

/// Every node's metrics in topology order: sources, operators, sinks.
pub(crate) fn node_metrics(st: &RuleState) -> Vec<NodeMetrics> {
    let Some(plan) = &st.plan else { return Vec::new() };
    // Several instances of a node (`concurrency`, or the shards of a
    // sharded rule running here) show as one.
    let mut by_name: HashMap<&str, Vec<&Arc<OpMetrics>>> = HashMap::new();
    for m in &st.metrics {
        by_name.entry(m.name.as_str()).or_default().push(m);
    }
    let values = |ms: &Vec<&Arc<OpMetrics>>| merged(ms);
    let connection = |values: &mut Vec<(String, Value)>| {
        values.push(("connection_status".into(), 1.into()));
        values.push(("connection_last_connected_time".into(), st.last_start.into()));
        values.push(("connection_last_disconnected_time".into(), 0.into()));
        values.push(("connection_last_disconnected_message".into(), "".into()));
        values.push(("connection_last_try_time".into(), st.last_start.into()));
    };
    let mut out = Vec::new();
    // A source's counts are what its decoder received.
    for (i, s) in plan.sources.iter().enumerate() {
        let Some(dec) = by_name.get(decoder_name(plan, i).as_str()) else { continue };
        let dec = values(dec);
        let d = |metric: &str| dec.iter().find(|(k, _)| k == metric).map(|(_, v)| v.clone()).unwrap_or(0.into());
        let received = d("records_in_total");
        let mut v: Vec<(String, Value)> = vec![
            ("records_in_total".into(), received.clone()),
            ("records_out_total".into(), received),
            ("messages_processed_total".into(), d("messages_processed_total")),
            ("process_latency_us".into(), 0.into()),
            ("buffer_length".into(), 0.into()),
            ("last_invocation".into(), d("last_invocation")),
            ("exceptions_total".into(), 0.into()),
            ("last_exception".into(), "".into()),
            ("last_exception_time".into(), 0.into()),
        ];
        // With checkpoints, what the durable ingest log holds behind the
        // committed checkpoint; a full log holds the source back, and so
        // does a store that refuses appends (they count as exceptions).
        if let Some((_, log)) = st.ingest_logs.iter().find(|(at, _)| *at == i) {
            let (failures, last) = log.failures();
            if failures > 0 {
                set(&mut v, "exceptions_total", failures.into());
                set(&mut v, "last_exception", format!("cannot append to the ingest log: {last}").into());
            }
            v.push(("ingest_log_entries".into(), log.used().into()));
            v.push(("ingest_log_capacity".into(), log.capacity().into()));
            v.push(("ingest_log_appended_total".into(), log.appended_total().into()));
        }
        connection(&mut v);
        out.push(NodeMetrics { kind: "source", node: s.name.clone(), values: v });
    }
    let decoders = (0..plan.sources.len()).map(|i| decoder_name(plan, i));
    let ops = operator_names(plan).into_iter().map(str::to_string);
    for name in decoders.chain(ops) {
        if let Some(m) = by_name.get(name.as_str()) {
            let node = name.strip_prefix("op_").unwrap_or(&name).to_string();
            out.push(NodeMetrics { kind: "op", node, values: values(m) });
        }
    }
    for a in &st.def.actions {
        let name = a.node_name();
        if let Some(m) = by_name.get(name.as_str()) {
            let mut v = values(m);
            connection(&mut v);
            out.push(NodeMetrics { kind: "sink", node: format!("{}_{}", a.kind, a.index), values: v });
        }
    }
    out
}

/// `GET /rules/{id}/topo`: `{"sources":[...],"edges":{"from":["to",...]}}`.
pub(crate) fn topo(st: &RuleState) -> Value {
    let Some(plan) = &st.plan else { return serde_json::json!({ "sources": [], "edges": {} }) };
    let ops = operator_names(plan);
    let sinks: Vec<String> = st.def.actions.iter().map(|a| a.node_name()).collect();
    let join = ops.iter().find(|o| o.ends_with("_join")).copied();
    let mut edges = serde_json::Map::new();
    let mut sources = Vec::new();
    for (i, s) in plan.sources.iter().enumerate() {
        let src = format!("source_{}", s.name);
        let dec = decoder_name(plan, i);
        // Tables feed the join; streams feed the first operator.
        let next = match (s.is_table(), join) {
            (true, Some(j)) => j,
            _ => ops.first().copied().unwrap_or_default(),
        };
        edges.insert(src.clone(), serde_json::json!([dec]));
        edges.insert(dec, serde_json::json!([next]));
        sources.push(src);
    }
    for w in ops.windows(2) {
        edges.insert(w[0].to_string(), serde_json::json!([w[1]]));
    }
    if let Some(last) = ops.last() {
        edges.insert(last.to_string(), serde_json::json!(sinks));
    }
    serde_json::json!({ "sources": sources, "edges": edges })
}

/// `GET /rules/status/all` entry: status, the latest exception and the
/// number of exceptions over every node.
pub(crate) fn summary(st: &RuleState) -> Value {
    let total: u64 = st.metrics.iter().map(|m| m.exceptions()).sum();
    let last = st.metrics.iter().rev().map(|m| m.last_exception()).find(|e| !e.is_empty()).unwrap_or_default();
    let last = if last.is_empty() && st.status == Status::StoppedByError { st.message.clone() } else { last };
    serde_json::json!({ "status": st.status.as_str(), "last_exception": last, "exceptions_total": total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_of_a_node_show_as_one() {
        let a = Arc::new(OpMetrics::new("op_3_window"));
        let b = Arc::new(OpMetrics::instance("op_3_window", 1));
        a.processed(10, 2, 5, 100);
        b.processed(7, 1, 9, 300);
        a.exception("old", 50);
        b.exception("new", 250);
        let v: HashMap<String, Value> = merged(&[&a, &b]).into_iter().collect();
        assert_eq!(v["records_in_total"], 17);
        assert_eq!(v["records_out_total"], 3);
        assert_eq!(v["exceptions_total"], 2);
        assert_eq!(v["last_invocation"], 300);
        assert_eq!(v["last_exception"], "new");
        assert_eq!(v["last_exception_time"], 250);
    }
}
