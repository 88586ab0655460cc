//! The `neuron` source and sink: data from, and write-back to, EMQ Neuron
//! gateways.
//!
//! # Transports
//! eKuiper talks to Neuron over NNG pair0 sockets (`tcp://host:7081`,
//! `ipc://...`). **NNG is out of scope in weir** (there is no maintained
//! pure-Rust NNG crate); a `url` with `tcp://` or `ipc://` is rejected with
//! a message saying so. Instead weir uses the two interfaces Neuron offers
//! to everyone:
//! * its **MQTT north app**: the source subscribes to the upload topics
//!   (`DATASOURCE`, default `/neuron/+/+/+`, Neuron's
//!   `/neuron/<app>/<driver>/<group>`) with the `mqtt` connection props
//!   (`server`...), and the sink publishes write requests to the app's
//!   `write-req-topic` (`server` + `topic`);
//! * its **HTTP API** for the sink: `url` = `http(s)://host:port` of
//!   Neuron's web server, requests to `POST /api/v2/write` (one tag) and
//!   `POST /api/v2/write/tags` (several), with an optional `token` sent as
//!   `Authorization: Bearer`.
//!
//! # Payloads
//! [`flatten`] turns an upload (values format `{"timestamp","node","group",
//! "values","errors","metas"}`, the tags and ECP formats, or the NNG
//! spelling `node_name`/`group_name`) into one row `{node_name, group_name,
//! timestamp, values, errors}` (+ `metas` when present). [`WriteBuilder`]
//! turns a result row into a write request: one selected tag gives
//! `{"node","group","tag","value"}`, several give `{"node","group",
//! "tags":[{"tag","value"}]}`; over MQTT the body also carries a `uuid`
//! (deterministic per rule action and sequence number by default, random
//! with `uuid: "random"`), which Neuron echoes on its write-response topic.

pub(crate) mod sink;
pub(crate) mod source;

#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, Hasher};

use serde_json::{json, Value as Json};
use weir_runtime::{Map, Value};

use crate::props::{invalid, Props};
use crate::transform::{dynamic_prop, Template};
use crate::Result;

/// Neuron's optional trace prefix: `0x0A 0xCE`, 16-byte trace id, 8-byte
/// span id.
const TRACE_PREFIX_LEN: usize = 26;

/// An upload flattened into a row, and the node/group/errors for `meta()`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Flat {
    pub(crate) row: Map,
    pub(crate) node: String,
    pub(crate) group: String,
    pub(crate) errors: Map,
}

/// Parses one upload message. `None` for anything that is not a data
/// upload (write requests and responses, driver states, bad JSON).
pub(crate) fn flatten(bytes: &[u8]) -> Option<Flat> {
    let bytes = match bytes {
        [0x0A, 0xCE, ..] if bytes.len() >= TRACE_PREFIX_LEN => &bytes[TRACE_PREFIX_LEN..],
        b => b,
    };
    let Json::Object(mut o) = serde_json::from_slice::<Json>(bytes).ok()? else {
        return None;
    };
    let text = |o: &mut serde_json::Map<String, Json>, a: &str, b: &str| match o.remove(a).or_else(|| o.remove(b)) {
        Some(Json::String(s)) => Some(s),
        _ => None,
    };
    let node = text(&mut o, "node", "node_name")?;
    let group = text(&mut o, "group", "group_name")?;
    let mut values = Map::new();
    let mut errors = Map::new();
    let mut seen = false;
    if let Some(Json::Object(v)) = o.remove("values") {
        seen = true;
        values.extend(v.into_iter().map(|(k, v)| (k, Value::from_json(v, false))));
    }
    if let Some(Json::Object(e)) = o.remove("errors") {
        errors.extend(e.into_iter().map(|(k, v)| (k, error_code(v))));
    }
    if let Some(Json::Array(tags)) = o.remove("tags") {
        seen = true;
        for t in tags {
            let Json::Object(mut t) = t else { continue };
            let Some(Json::String(name)) = t.remove("name") else {
                continue;
            };
            if let Some(e) = t.remove("error") {
                errors.insert(name, error_code(e));
            } else if let Some(v) = t.remove("value") {
                values.insert(name, Value::from_json(v, false));
            }
        }
    }
    if !seen {
        return None;
    }
    let timestamp = o.get("timestamp").and_then(|t| t.as_i64().or_else(|| t.as_f64().map(|f| f as i64)));
    let mut row = Map::new();
    row.insert("node_name".into(), Value::str(&node));
    row.insert("group_name".into(), Value::str(&group));
    row.insert("timestamp".into(), timestamp.map_or(Value::Null, Value::Int));
    row.insert("values".into(), Value::map(values));
    row.insert("errors".into(), Value::map(errors.clone()));
    if let Some(m @ Json::Object(_)) = o.remove("metas") {
        row.insert("metas".into(), Value::from_json(m, true));
    }
    Some(Flat { row, node, group, errors })
}

fn error_code(v: Json) -> Value {
    match v.as_i64() {
        Some(i) => Value::Int(i),
        None => Value::from_json(v, true),
    }
}

/// One write request built from a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    /// One tag: `/api/v2/write`.
    Single { node: String, group: String, tag: String, value: Json },
    /// Several tags: `/api/v2/write/tags`.
    Multi { node: String, group: String, tags: Vec<(String, Json)> },
    /// `raw`: the row as it is.
    Raw(Json),
}

impl Request {
    /// The body published to Neuron's MQTT write topic.
    pub(crate) fn mqtt_body(&self, uuid: &str) -> Json {
        match self {
            Request::Single { node, group, tag, value } => {
                json!({"uuid": uuid, "node": node, "group": group, "tag": tag, "value": value})
            }
            Request::Multi { node, group, tags } => json!({
                "uuid": uuid, "node": node, "group": group,
                "tags": tags.iter().map(|(t, v)| json!({"tag": t, "value": v})).collect::<Vec<_>>(),
            }),
            Request::Raw(v) => v.clone(),
        }
    }

    /// The path under Neuron's HTTP API and the body to POST there.
    pub(crate) fn rest(&self) -> (&'static str, Json) {
        match self {
            Request::Single { node, group, tag, value } => {
                ("/api/v2/write", json!({"node": node, "group": group, "tag": tag, "value": value}))
            }
            Request::Multi { node, group, tags } => (
                "/api/v2/write/tags",
                json!({"node": node, "group": group,
                    "tags": tags.iter().map(|(t, v)| json!({"tag": t, "value": v})).collect::<Vec<_>>()}),
            ),
            Request::Raw(v) if v.get("tags").is_some() => ("/api/v2/write/tags", v.clone()),
            Request::Raw(v) => ("/api/v2/write", v.clone()),
        }
    }
}

/// Builds write requests from result rows (`nodeName`, `groupName`,
/// `tags`, `raw`).
#[derive(Debug, Clone)]
pub(crate) struct WriteBuilder {
    node: Option<Template>,
    group: Option<Template>,
    /// Field names to write; `None` = every field of the row.
    tags: Option<Vec<String>>,
    raw: bool,
}

impl WriteBuilder {
    /// Reads the props.
    ///
    /// # Errors
    /// `nodeName`/`groupName` missing without `raw`, or mistyped props.
    pub(crate) fn new(p: &Props) -> Result<WriteBuilder> {
        let raw = p.bool("raw")?.unwrap_or(false);
        let (node, group) = if raw {
            let opt = |name: &str| p.str(name)?.map(|t| dynamic_prop(name, t)).transpose();
            (opt("nodeName")?, opt("groupName")?)
        } else {
            (
                Some(dynamic_prop("nodeName", p.required_str("nodeName")?)?),
                Some(dynamic_prop("groupName", p.required_str("groupName")?)?),
            )
        };
        Ok(WriteBuilder { node, group, tags: p.str_list("tags")?, raw })
    }

    /// The request for one row; `None` when no selected tag is in it (or
    /// the row is not a map).
    ///
    /// # Errors
    /// `nodeName` or `groupName` fails to render against the row.
    pub(crate) fn build(&self, row: &Value) -> std::result::Result<Option<Request>, String> {
        if self.raw {
            return Ok(Some(Request::Raw(row.to_serde_json())));
        }
        let Some(m) = row.as_map() else {
            return Ok(None);
        };
        let render = |t: &Option<Template>, name: &str| {
            t.as_ref().map(|t| t.render(row).map_err(|e| format!("neuron sink {name}: {e}"))).transpose()
        };
        let node = render(&self.node, "nodeName")?.unwrap_or_default();
        let group = render(&self.group, "groupName")?.unwrap_or_default();
        let mut tags: Vec<(String, Json)> = match &self.tags {
            Some(names) => names.iter().filter_map(|n| m.get(n).map(|v| (n.clone(), v.to_serde_json()))).collect(),
            None => m.iter().map(|(k, v)| (k.clone(), v.to_serde_json())).collect(),
        };
        Ok(match tags.len() {
            0 => None,
            1 => {
                let (tag, value) = tags.pop().expect("one tag");
                Some(Request::Single { node, group, tag, value })
            }
            _ => Some(Request::Multi { node, group, tags }),
        })
    }
}

/// Request ids for MQTT write requests.
#[derive(Debug, Clone)]
pub(crate) enum Uuids {
    /// Deterministic: a hash of the rule and action, then a sequence.
    Sequence { base: u64, next: u64 },
    /// Random (version 4 layout).
    Random,
}

impl Uuids {
    /// `uuid` prop: `sequence` (default) or `random`.
    ///
    /// # Errors
    /// Another value.
    pub(crate) fn new(p: &Props, rule_id: &str, index: usize) -> Result<Uuids> {
        match p.str("uuid")?.unwrap_or("sequence") {
            "sequence" => {
                // FNV-1a: stable across processes and versions.
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in rule_id.bytes().chain((index as u64).to_le_bytes()) {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
                Ok(Uuids::Sequence { base: h, next: 0 })
            }
            "random" => Ok(Uuids::Random),
            other => Err(invalid("uuid", format!("expects sequence or random, got {other:?}"))),
        }
    }

    /// The next id, formatted as a UUID.
    pub(crate) fn next_id(&mut self) -> String {
        let (hi, lo) = match self {
            Uuids::Sequence { base, next } => {
                *next += 1;
                (*base, *next)
            }
            Uuids::Random => {
                let r = || {
                    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                    h.write_u128(
                        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
                    );
                    h.finish()
                };
                let hi = (r() & !0xf000) | 0x4000; // version 4
                let lo = (r() & !(0xc << 60)) | (0x8 << 60); // RFC 4122 variant
                (hi, lo)
            }
        };
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}
