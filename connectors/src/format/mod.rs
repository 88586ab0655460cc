//! Payload formats: `json`, `delimited` and `binary`, for sinks (encoding an
//! emission's data to bytes) and sources (turning received bytes into a
//! [`Payload`]).
//!
//! JSON payloads stay bytes on the source side: the runtime's decoder reads
//! them straight into the rule's slots. Delimited and binary payloads are
//! decoded here into objects, as eKuiper's converters do: delimited lines
//! become `{col0: "..", col1: ".."}` (or the schema's field names), binary
//! payloads `{"self": <bytes>}`.

mod delimited;

use weir_planner::StreamDef;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::{Map, Value};

pub(crate) use delimited::{decode as delimited_decode, DelimitedEncoder};

use crate::props::invalid;
use crate::Result;

/// How a sink encodes data.
#[derive(Debug, Clone)]
pub(crate) enum Encoder {
    /// Go-style JSON (sorted keys, `25` for integral floats).
    Json,
    /// Delimiter-separated values.
    Delimited(DelimitedEncoder),
    /// Raw bytes: the data must be bytes or a string, or a map with one
    /// such value.
    Binary,
}

impl Encoder {
    /// The encoder for sink property `format` (lower-cased).
    ///
    /// # Errors
    /// Formats weir does not implement (`protobuf`, `custom`, ...).
    pub(crate) fn new(format: &str, delimiter: &str, has_header: bool) -> Result<Encoder> {
        match format.to_ascii_lowercase().as_str() {
            "" | "json" => Ok(Encoder::Json),
            "delimited" => Ok(Encoder::Delimited(DelimitedEncoder::new(delimiter, has_header))),
            "binary" => Ok(Encoder::Binary),
            other => Err(invalid(
                "format",
                format!("unsupported format {other:?}; weir supports json, delimited and binary"),
            )),
        }
    }

    /// Encodes `v` (a map or an array of maps).
    ///
    /// # Errors
    /// Data the format cannot represent, named in the message.
    pub(crate) fn encode(&mut self, v: &Value) -> std::result::Result<Vec<u8>, String> {
        match self {
            Encoder::Json => Ok(v.to_json().into_bytes()),
            Encoder::Delimited(d) => d.encode(v),
            Encoder::Binary => match v {
                Value::Bytes(b) => Ok(b.to_vec()),
                Value::String(s) => Ok(s.as_bytes().to_vec()),
                Value::Map(m) if m.len() == 1 => match m.values().next() {
                    Some(Value::Bytes(b)) => Ok(b.to_vec()),
                    Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
                    _ => Err(format!("binary format needs bytes, got {}", v.to_json())),
                },
                _ => Err(format!("binary format needs bytes or a map with one bytea field, got {}", v.to_json())),
            },
        }
    }
}

/// How a source turns received bytes into payloads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SourceFormat {
    /// JSON object or array of objects, decoded by the runtime.
    Json,
    /// One delimited line per message.
    Delimited {
        /// Field separator.
        delimiter: String,
        /// Column names; empty: `col0`, `col1`, ...
        columns: Vec<String>,
    },
    /// The whole message as `{"self": bytes}`.
    Binary,
}

impl SourceFormat {
    /// The format of a stream: `FORMAT`, `DELIMITER`, and for delimited
    /// the declared field names as columns.
    ///
    /// # Errors
    /// A format weir does not decode.
    pub(crate) fn of(def: &StreamDef) -> Result<SourceFormat> {
        match def.format().to_ascii_lowercase().as_str() {
            "json" => Ok(SourceFormat::Json),
            "delimited" => Ok(SourceFormat::Delimited {
                delimiter: def.options.delimiter.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| ",".into()),
                columns: def.fields.as_ref().map(|f| f.iter().map(|f| f.name.clone()).collect()).unwrap_or_default(),
            }),
            "binary" => Ok(SourceFormat::Binary),
            other => {
                Err(invalid("FORMAT", format!("unsupported format {other:?}; weir decodes json, delimited and binary")))
            }
        }
    }

    /// Wraps received bytes into a payload stamped `ts`.
    pub(crate) fn payload(&self, bytes: Vec<u8>, ts: i64, meta: Option<Map>) -> Payload {
        let data = match self {
            SourceFormat::Json => PayloadData::Bytes(bytes),
            SourceFormat::Delimited { delimiter, columns } => {
                PayloadData::Object(delimited::decode(&String::from_utf8_lossy(&bytes), delimiter, columns))
            }
            SourceFormat::Binary => {
                let mut m = Map::new();
                m.insert("self".to_string(), Value::bytes(bytes));
                PayloadData::Object(m)
            }
        };
        Payload { data, ts, meta }
    }
}
