//! The `memory` sink: publishes each row on the bus.

use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::Value;

use super::Bus;
use crate::mqtt::topic::{self, Template};
use crate::props::{invalid, Props};
use crate::{Environment, Result};

/// Publishes rows to memory streams.
pub(crate) struct MemorySink {
    bus: Bus,
    topic: Template,
}

impl MemorySink {
    /// `topic` (required; `{{.field}}` placeholders rendered per row, no
    /// wildcards).
    ///
    /// # Errors
    /// Missing or wildcard topic.
    pub(crate) fn new(p: &Props, env: &Environment) -> Result<MemorySink> {
        let t = p.required_str("topic")?;
        topic::validate_name(t).map_err(|m| invalid("topic", m))?;
        Ok(MemorySink { bus: env.memory().clone(), topic: Template::new(t) })
    }

    async fn publish(&self, rows: &[Value]) -> std::result::Result<(), SinkError> {
        for row in rows {
            let Value::Map(m) = row else {
                return Err(SinkError(format!("memory sink expects rows as maps, got {}", row.type_name())));
            };
            let t = self.topic.render(row);
            topic::validate_name(&t).map_err(|e| SinkError(format!("memory sink topic: {e}")))?;
            self.bus.publish(&t, m.as_ref().clone()).await;
        }
        Ok(())
    }
}

impl Sink for MemorySink {
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        Box::pin(self.publish(rows))
    }
}
