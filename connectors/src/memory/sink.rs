//! The `memory` sink: publishes rows on the bus.
//!
//! It takes the common sink layer's data ([`Outgoing::value`], after
//! `dataTemplate` and `fields`), not encoded bytes: memory streams read
//! rows. A message holding an array (no `sendSingle`) publishes each of
//! its rows, as eKuiper's memory sink does; the topic is rendered per row.
//!
//! `rowkindField` + `keyField` make it an updatable sink for memory lookup
//! tables ([`super::table`]): the row's `rowkindField` (absent: `upsert`)
//! is `insert`, `update`, `upsert` or `delete`, applied to the table's row
//! whose key is the row's `keyField` value. Streams reading the topic get
//! the rows as they are. A row with a bad row kind or without the key
//! field is not published; the others of the message are.

use weir_runtime::connector::{BoxFuture, SinkError};
use weir_runtime::Value;

use super::{Bus, Change};
use crate::mqtt::topic;
use crate::props::{invalid, Props};
use crate::transform::{dynamic_prop, Outgoing, SinkConnector, Template};
use crate::{Environment, Result};

/// Publishes rows to memory streams.
pub(crate) struct MemorySink {
    bus: Bus,
    topic: Template,
    /// `rowkindField` and `keyField`.
    updatable: Option<(String, String)>,
}

impl MemorySink {
    /// `topic` (required; a template rendered per row, no wildcards),
    /// `rowkindField` and `keyField`.
    ///
    /// # Errors
    /// Missing or wildcard topic, a template that does not parse,
    /// `rowkindField` without `keyField`.
    pub(crate) fn new(p: &Props, env: &Environment) -> Result<MemorySink> {
        let t = p.required_str("topic")?;
        let topic = dynamic_prop("topic", t)?;
        if topic.is_constant() {
            topic::validate_name(t).map_err(|m| invalid("topic", m))?;
        }
        let rowkind = p.str("rowkindField")?.filter(|s| !s.is_empty());
        let key = p.str("keyField")?.filter(|s| !s.is_empty());
        let updatable = match (rowkind, key) {
            (Some(r), Some(k)) => Some((r.to_string(), k.to_string())),
            (Some(_), None) => return Err(invalid("keyField", "is required when rowkindField is set".into())),
            (None, _) => None,
        };
        Ok(MemorySink { bus: env.memory().clone(), topic, updatable })
    }

    /// What `row` does to the lookup tables.
    fn change(&self, row: &weir_runtime::Map) -> std::result::Result<Change, String> {
        let Some((rowkind, key)) = &self.updatable else { return Ok(Change::Put) };
        let kind = match row.get(rowkind) {
            None | Some(Value::Null) => "upsert".to_string(),
            Some(Value::String(s)) => s.to_ascii_lowercase(),
            Some(v) => return Err(format!("rowkind field {rowkind} is not a string: {}", v.to_json())),
        };
        let keyval = match row.get(key) {
            Some(v) if !v.is_null() => v.clone(),
            _ => return Err(format!("key field {key} not found in data {}", Value::map(row.clone()).to_json())),
        };
        match kind.as_str() {
            "insert" | "update" | "upsert" => Ok(Change::Put),
            "delete" => Ok(Change::Delete(keyval)),
            other => Err(format!("invalid rowkind {other:?}")),
        }
    }

    async fn publish_rows(&self, msg: &Outgoing) -> std::result::Result<(), SinkError> {
        let rows: Vec<(&Value, &Value)> = match (&msg.value, &msg.source) {
            (Value::Array(rows), Value::Array(src)) if rows.len() == src.len() => rows.iter().zip(src.iter()).collect(),
            (Value::Array(rows), _) => rows.iter().map(|r| (r, r)).collect(),
            (v, Value::Array(_)) => vec![(v, v)],
            (v, src) => vec![(v, src)],
        };
        let mut refused = Vec::new();
        for (row, src) in rows {
            let Value::Map(m) = row else {
                return Err(SinkError(format!("memory sink expects rows as maps, got {}", row.type_name())));
            };
            let t = self.topic.render(src).map_err(|e| SinkError(format!("memory sink topic: {e}")))?;
            topic::validate_name(&t).map_err(|e| SinkError(format!("memory sink topic: {e}")))?;
            match self.change(m) {
                Ok(change) => {
                    self.bus.publish(&t, m.as_ref().clone(), change).await;
                }
                Err(e) => refused.push(e),
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(SinkError(format!("memory sink: {}", refused.join("; "))))
        }
    }
}

impl SinkConnector for MemorySink {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        Box::pin(self.publish_rows(msg))
    }
}
