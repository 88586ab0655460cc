//! The `log` sink: logs each message, as eKuiper's
//! `sink result for rule <id>: <payload>`. The common sink properties
//! apply (`sendSingle`, `dataTemplate`, `fields`...).

use weir_runtime::connector::{BoxFuture, SinkError};

use crate::transform::{Outgoing, SinkConnector};
use crate::SinkContext;

/// Logs messages at info level.
pub(crate) struct LogSink {
    rule_id: String,
}

impl LogSink {
    pub(crate) fn new(ctx: &SinkContext) -> LogSink {
        LogSink { rule_id: ctx.rule_id.clone() }
    }
}

impl SinkConnector for LogSink {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        tracing::info!("sink result for rule {}: {}", self.rule_id, String::from_utf8_lossy(&msg.bytes));
        Box::pin(std::future::ready(Ok(())))
    }
}
