//! The `memory` source: a stream fed by memory sinks.

use std::future::Future;
use std::pin::Pin;

use weir_planner::StreamDef;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{Source, SourceSender};
use weir_runtime::{Map, Value};

use super::Bus;
use crate::mqtt::topic;
use crate::outlet::Outlet;
use crate::props::invalid;
use crate::{Environment, Result};

/// Rows handed to the rule in one `send` at most.
const MAX_BATCH: usize = 512;

/// A stream reading memory topics.
pub(crate) struct MemorySource {
    bus: Bus,
    filters: Vec<String>,
    capacity: usize,
}

impl MemorySource {
    /// `DATASOURCE`: topic filters (comma-separated, wildcards allowed);
    /// `bufferLength` (1024) from the `memory` conf bounds the queue.
    ///
    /// # Errors
    /// No or invalid topic.
    pub(crate) fn new(def: &StreamDef, env: &Environment) -> Result<MemorySource> {
        let props = env.source_props("memory", def.options.conf_key.as_deref(), def.options.extra.as_deref())?;
        let ds = def.options.datasource.as_deref().unwrap_or("");
        let filters = topic::parse_filters(ds).map_err(|m| invalid("DATASOURCE", m))?;
        let capacity = props.int("bufferLength")?.filter(|n| *n > 0).unwrap_or(1024) as usize;
        Ok(MemorySource { bus: env.memory().clone(), filters, capacity })
    }

    /// Reads until `out` stops.
    pub(crate) async fn pump(self, mut out: impl Outlet) {
        let mut sub = self.bus.subscribe(self.filters, self.capacity);
        loop {
            let first = tokio::select! {
                m = sub.recv() => match m { Some(m) => m, None => return },
                _ = out.stopped() => return,
            };
            let ts = out.now_ms();
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next {
                let mut meta = Map::new();
                meta.insert("topic".into(), Value::str(&*m.topic));
                batch.push(Payload { data: PayloadData::Object(m.row), ts, meta: Some(meta) });
                next = if batch.len() < MAX_BATCH { sub.try_recv() } else { None };
            }
            if !out.send(batch).await {
                return;
            }
        }
    }
}

impl Source for MemorySource {
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.pump(out))
    }
}
