//! The `neuron` source: uploads of Neuron's MQTT north app, flattened.

use weir_planner::StreamDef;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::Value;

use super::flatten;
use crate::mqtt::pool::Delivery;
use crate::mqtt::source::{meta, MqttSource, SourceConfig};
use crate::props::invalid;
use crate::{Environment, Result};

/// Neuron's default upload topics: `/neuron/<app>/<driver>/<group>`.
pub(crate) const DEFAULT_TOPICS: &str = "/neuron/+/+/+";

/// Builds a neuron stream: an mqtt subscription (props from the `neuron`
/// conf) whose messages are flattened into rows.
///
/// # Errors
/// An NNG `url` without an MQTT `server`, or invalid mqtt props.
pub(crate) fn new(def: &StreamDef, env: &Environment) -> Result<MqttSource> {
    let props = env.source_props("neuron", def.options.conf_key.as_deref(), def.options.extra.as_deref())?;
    if props.get("server").is_none() {
        if let Some(url) = props.str("url")? {
            return Err(invalid(
                "url",
                format!(
                    "{url}: the NNG transport is not supported; set server to the MQTT broker of Neuron's MQTT app"
                ),
            ));
        }
    }
    let config = SourceConfig::new(def, env, "neuron", Some(DEFAULT_TOPICS))?;
    Ok(MqttSource::new(config, env, decode))
}

/// Flattens an upload; other messages on the topics are skipped.
pub(crate) fn decode(d: &Delivery, ts: i64) -> Option<Payload> {
    let Some(flat) = flatten(&d.payload) else {
        tracing::debug!(topic = %d.topic, "neuron source: not a data upload, skipped");
        return None;
    };
    let mut m = meta(d);
    m.insert("node".into(), Value::str(&flat.node));
    m.insert("group".into(), Value::str(&flat.group));
    m.insert("errors".into(), Value::map(flat.errors));
    Some(Payload { data: PayloadData::Object(flat.row), ts, meta: Some(m) })
}
