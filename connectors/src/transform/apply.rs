//! Turning one emission into messages: the synchronous core of the sink
//! layer, with no I/O.

use weir_runtime::{Map, Value};

use super::SinkOptions;

/// One message for a connector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outgoing {
    /// The encoded payload.
    pub(crate) bytes: Vec<u8>,
    /// The data after the transform, before encoding: a map, an array of
    /// maps, or (template output that is not JSON) a string. Connectors
    /// that pass values rather than bytes (memory) use this.
    pub(crate) value: Value,
    /// What the message was made from: the row (`sendSingle`) or the array
    /// of rows. Dynamic properties (topic, url) are rendered against it.
    pub(crate) source: Value,
    /// The deterministic id of an exactly-once emission
    /// ([`weir_runtime::connector::Sink::emit_with_id`]), `None` otherwise.
    /// Connectors that can carry it (MQTT v5 user property `id`) do.
    pub(crate) id: Option<String>,
}

/// Applies [`SinkOptions`] to emissions.
#[derive(Debug, Clone)]
pub(crate) struct Transform {
    opts: SinkOptions,
}

impl Transform {
    pub(crate) fn new(opts: SinkOptions) -> Transform {
        Transform { opts }
    }

    pub(crate) fn options(&self) -> &SinkOptions {
        &self.opts
    }

    /// The messages of one emission, in order. A message that cannot be
    /// made (template failure, undecodable template output, unencodable
    /// data) is an `Err` naming the data; the others still go out.
    pub(crate) fn apply(&mut self, rows: &[Value]) -> Vec<Result<Outgoing, String>> {
        if self.opts.omit_if_empty && rows.is_empty() {
            return Vec::new();
        }
        if self.opts.send_single {
            let omit = self.opts.omit_if_empty;
            rows.iter()
                .filter(|r| !(omit && r.as_map().is_some_and(Map::is_empty)))
                .map(|r| self.message(r.clone()))
                .collect()
        } else {
            vec![self.message(Value::array(rows.to_vec()))]
        }
    }

    fn message(&mut self, source: Value) -> Result<Outgoing, String> {
        let rendered = match &self.opts.template {
            Some(t) => Some(
                t.render(&source)
                    .map_err(|e| format!("fail to encode data {} with dataTemplate for error {e}", source.to_json()))?,
            ),
            None => None,
        };
        let selects =
            self.opts.data_field.is_some() || !self.opts.fields.is_empty() || !self.opts.exclude_fields.is_empty();
        let value = match (&rendered, selects) {
            (Some(text), false) => {
                // Text formats send the template output as it is.
                let value = serde_json::from_str::<serde_json::Value>(text)
                    .map(|j| Value::from_json(j, false))
                    .unwrap_or_else(|_| Value::str(text));
                return Ok(Outgoing { bytes: text.clone().into_bytes(), value, source, id: None });
            }
            (Some(text), true) => {
                let j: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| format!("fail to decode data {text} after applying dataTemplate for error {e}"))?;
                self.select(Value::from_json(j, false))?
            }
            (None, true) => self.select(source.clone())?,
            (None, false) => source.clone(),
        };
        let bytes = self.opts.encoder.encode(&value)?;
        Ok(Outgoing { bytes, value, source, id: None })
    }

    /// `dataField`, then `fields` / `excludeFields`.
    fn select(&self, mut v: Value) -> Result<Value, String> {
        if let Some(df) = &self.opts.data_field {
            v = match &v {
                Value::Map(m) => m.get(df).cloned().unwrap_or(Value::Null),
                // eKuiper reads the field of the first row.
                Value::Array(a) => match a.first() {
                    None => return Ok(Value::Null),
                    Some(Value::Map(m)) => m.get(df).cloned().unwrap_or(Value::Null),
                    Some(other) => return Err(format!("fail to decode data {}", other.to_json())),
                },
                other => return Err(format!("fail to decode data {}", other.to_json())),
            };
        }
        if self.opts.fields.is_empty() && self.opts.exclude_fields.is_empty() {
            return Ok(v);
        }
        let pick = |m: &Map| -> Map {
            if self.opts.fields.is_empty() {
                m.iter()
                    .filter(|(k, _)| !self.opts.exclude_fields.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            } else {
                self.opts.fields.iter().map(|f| (f.clone(), m.get(f).cloned().unwrap_or(Value::Null))).collect()
            }
        };
        match &v {
            Value::Map(m) => Ok(Value::map(pick(m))),
            Value::Array(a) => a
                .iter()
                .map(|r| {
                    r.as_map().map(|m| Value::map(pick(m))).ok_or_else(|| format!("unsupported type {}", v.to_json()))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::array),
            other => Err(format!("unsupported type {}", other.to_json())),
        }
    }
}
