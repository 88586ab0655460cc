//! The `log` sink: logs each emission, as eKuiper's
//! `sink result for rule <id>: <payload>`.

use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::Value;

use crate::SinkContext;

/// Logs emissions at info level.
pub(crate) struct LogSink {
    rule_id: String,
}

impl LogSink {
    pub(crate) fn new(ctx: &SinkContext) -> LogSink {
        LogSink { rule_id: ctx.rule_id.clone() }
    }
}

impl Sink for LogSink {
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, Result<(), SinkError>> {
        let payload = Value::array(rows.to_vec()).to_json();
        tracing::info!("sink result for rule {}: {}", self.rule_id, payload);
        Box::pin(std::future::ready(Ok(())))
    }
}
