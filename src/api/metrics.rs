//! `GET /metrics`: the running rules' node metrics in Prometheus text
//! format, named as eKuiper exports them: `kuiper_<source|op|sink>_<metric>`
//! with labels `rule`, `type`, `op`, `op_instance`. Built afresh on each
//! scrape from the rules' live counters, so a stopped rule disappears.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use prometheus::{Encoder as _, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::node::Node;
use crate::rules::{node_metrics, Status};

const LABELS: [&str; 4] = ["rule", "type", "op", "op_instance"];

enum Family {
    Counter(IntCounterVec),
    Gauge(GaugeVec),
}

pub(super) async fn metrics(node: web::Data<Node>) -> HttpResponse {
    match render(&node) {
        Ok(body) => HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body),
        Err(e) => HttpResponse::InternalServerError().body(format!("cannot encode metrics: {e}\n")),
    }
}

fn render(node: &Node) -> prometheus::Result<Vec<u8>> {
    let registry = Registry::new();
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let rules = IntGaugeVec::new(Opts::new("weir_rules", "Rules of this node by status"), &["status"])?;
    registry.register(Box::new(rules.clone()))?;
    for s in [Status::Running, Status::Stopped, Status::StoppedByError] {
        rules.with_label_values(&[s.as_str()]).set(0);
    }
    for st in node.rule_states() {
        rules.with_label_values(&[st.status.as_str()]).inc();
        if st.status != Status::Running {
            continue;
        }
        for n in node_metrics(&st) {
            for (metric, value) in &n.values {
                let Some(v) = value.as_f64() else { continue };
                let name = format!("kuiper_{}_{metric}", n.kind);
                if !families.contains_key(&name) {
                    let help = format!("eKuiper {} metric {metric}", n.kind);
                    let family = if metric.ends_with("_total") {
                        let c = IntCounterVec::new(Opts::new(name.clone(), help), &LABELS)?;
                        registry.register(Box::new(c.clone()))?;
                        Family::Counter(c)
                    } else {
                        let g = GaugeVec::new(Opts::new(name.clone(), help), &LABELS)?;
                        registry.register(Box::new(g.clone()))?;
                        Family::Gauge(g)
                    };
                    families.insert(name.clone(), family);
                }
                let labels = [st.def.id.as_str(), n.kind, n.node.as_str(), "0"];
                match &families[&name] {
                    Family::Counter(c) => c.with_label_values(&labels).inc_by(v.max(0.0) as u64),
                    Family::Gauge(g) => g.with_label_values(&labels).set(v),
                }
            }
        }
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out)?;
    Ok(out)
}
