//! The `memory` sink: publishes rows on the bus.
//!
//! It takes the common sink layer's data ([`Outgoing::value`], after
//! `dataTemplate` and `fields`), not encoded bytes: memory streams read
//! rows. A message holding an array (no `sendSingle`) publishes each of
//! its rows, as eKuiper's memory sink does; the topic is rendered per row.

use weir_runtime::connector::{BoxFuture, SinkError};
use weir_runtime::Value;

use super::Bus;
use crate::mqtt::topic;
use crate::props::{invalid, Props};
use crate::transform::{dynamic_prop, Outgoing, SinkConnector, Template};
use crate::{Environment, Result};

/// Publishes rows to memory streams.
pub(crate) struct MemorySink {
    bus: Bus,
    topic: Template,
}

impl MemorySink {
    /// `topic` (required; a template rendered per row, no wildcards).
    ///
    /// # Errors
    /// Missing or wildcard topic, or a template that does not parse.
    pub(crate) fn new(p: &Props, env: &Environment) -> Result<MemorySink> {
        let t = p.required_str("topic")?;
        let topic = dynamic_prop("topic", t)?;
        if topic.is_constant() {
            topic::validate_name(t).map_err(|m| invalid("topic", m))?;
        }
        Ok(MemorySink { bus: env.memory().clone(), topic })
    }

    async fn publish_rows(&self, msg: &Outgoing) -> std::result::Result<(), SinkError> {
        let rows: Vec<(&Value, &Value)> = match (&msg.value, &msg.source) {
            (Value::Array(rows), Value::Array(src)) if rows.len() == src.len() => rows.iter().zip(src.iter()).collect(),
            (Value::Array(rows), _) => rows.iter().map(|r| (r, r)).collect(),
            (v, Value::Array(_)) => vec![(v, v)],
            (v, src) => vec![(v, src)],
        };
        for (row, src) in rows {
            let Value::Map(m) = row else {
                return Err(SinkError(format!("memory sink expects rows as maps, got {}", row.type_name())));
            };
            let t = self.topic.render(src).map_err(|e| SinkError(format!("memory sink topic: {e}")))?;
            topic::validate_name(&t).map_err(|e| SinkError(format!("memory sink topic: {e}")))?;
            self.bus.publish(&t, m.as_ref().clone()).await;
        }
        Ok(())
    }
}

impl SinkConnector for MemorySink {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        Box::pin(self.publish_rows(msg))
    }
}
