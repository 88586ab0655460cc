//! The `nop` sink: drops everything (optionally logging it).

use weir_runtime::connector::{BoxFuture, SinkError};

use crate::props::Props;
use crate::transform::{Outgoing, SinkConnector};
use crate::Result;

/// Takes messages and does nothing with them.
pub(crate) struct NopSink {
    log: bool,
}

impl NopSink {
    pub(crate) fn new(props: &Props) -> Result<NopSink> {
        Ok(NopSink { log: props.bool("log")?.unwrap_or(false) })
    }
}

impl SinkConnector for NopSink {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        if self.log {
            tracing::info!("nop sink: {}", String::from_utf8_lossy(&msg.bytes));
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
