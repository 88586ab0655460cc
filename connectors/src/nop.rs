//! The `nop` sink: drops everything (optionally logging it).

use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::Value;

use crate::{Error, Result};

/// Takes emissions and does nothing with them.
pub(crate) struct NopSink {
    log: bool,
}

impl NopSink {
    pub(crate) fn new(props: &serde_json::Value) -> Result<NopSink> {
        let log = match props.get("log") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(v) => {
                return Err(Error::Property { property: "log".into(), message: format!("expects a boolean, got {v}") })
            }
        };
        Ok(NopSink { log })
    }
}

impl Sink for NopSink {
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        if self.log {
            let payload = Value::array(rows.to_vec()).to_json();
            tracing::info!("nop sink: {payload}");
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
