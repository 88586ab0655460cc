//! Decoding payloads into rows: JSON straight into the plan's slots.
//!
//! The decoder knows, from the plan, which fields a rule reads and in which
//! slot each goes. It walks the JSON object once with serde, looks each key
//! up among those fields without allocating, decodes only the values it
//! needs and skips the rest. A schema'd stream converts values to the
//! declared types as eKuiper does; a schemaless one keeps JSON numbers as
//! floats.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use weir_planner::{DataType, SourcePlan};

use crate::row::Row;
use crate::value::{Map, Value};

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not valid JSON, or not an object / array of objects.
    #[error("invalid JSON payload: {0}")]
    Json(String),
    /// A field has a value that does not fit its declared type.
    #[error("field {field}: {message}")]
    Field {
        /// Field name.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The event-time field is missing or not a time.
    #[error("cannot read timestamp field {field}: {message}")]
    Timestamp {
        /// Field name.
        field: String,
        /// What is wrong.
        message: String,
    },
}

struct Target {
    name: Box<str>,
    slot: Option<usize>,
    data_type: Option<DataType>,
    default: Option<String>,
}

/// Decodes one source's payloads into rows.
pub struct Decoder {
    targets: Vec<Target>,
    ts_target: Option<usize>,
    all_slot: Option<usize>,
    width: usize,
    source: u16,
    strict: bool,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder").field("fields", &self.targets.len()).finish()
    }
}

impl Decoder {
    /// A decoder for source `source` of a plan with rows of `width` slots.
    /// `ts_field` is the event-time field when the rule uses event time.
    pub fn new(plan: &SourcePlan, source: u16, width: usize, ts_field: Option<&str>) -> Decoder {
        let mut targets: Vec<Target> = plan
            .columns
            .iter()
            .map(|c| Target {
                name: c.name.as_str().into(),
                slot: Some(c.slot as usize),
                data_type: c.data_type.clone(),
                default: plan.def.field(&c.name).and_then(|f| f.default.clone()),
            })
            .collect();
        // Strict validation checks every declared field, read or not.
        if plan.def.options.strict_validation {
            for f in plan.def.fields.iter().flatten() {
                if !targets.iter().any(|t| *t.name == *f.name) {
                    targets.push(Target {
                        name: f.name.as_str().into(),
                        slot: None,
                        data_type: Some(f.data_type.clone()),
                        default: f.default.clone(),
                    });
                }
            }
        }
        let ts_target = ts_field.map(|name| match targets.iter().position(|t| &*t.name == name) {
            Some(i) => i,
            None => {
                targets.push(Target {
                    name: name.into(),
                    slot: None,
                    data_type: plan.def.field(name).map(|f| f.data_type.clone()),
                    default: None,
                });
                targets.len() - 1
            }
        });
        Decoder {
            targets,
            ts_target,
            all_slot: plan.all_slot.map(|s| s as usize),
            width,
            source,
            strict: plan.def.options.strict_validation,
        }
    }

    /// Decodes a JSON payload (an object, or an array of objects giving one
    /// row each) into `out`. `ts` is the arrival time, replaced by the
    /// event time when the decoder has a timestamp field.
    ///
    /// # Errors
    /// On malformed JSON or a value that does not fit its field; rows
    /// already decoded from an array stay in `out`.
    pub fn decode_json(&self, payload: &[u8], ts: i64, out: &mut Vec<Row>) -> Result<(), DecodeError> {
        let mut de = serde_json::Deserializer::from_slice(payload);
        let seed = PayloadSeed { dec: self, ts, out };
        seed.deserialize(&mut de).map_err(|e| DecodeError::Json(e.to_string()))??;
        de.end().map_err(|e| DecodeError::Json(e.to_string()))
    }

    /// Decodes newline-delimited JSON: each non-blank line of `chunk` is a
    /// payload as [`Decoder::decode_json`] takes it (an object, or an array
    /// of objects). This is an explicit API for line-oriented sources (files,
    /// bulk loads): a single payload is never split at newlines.
    ///
    /// Returns the errors of the lines that failed, with their 0-based line
    /// numbers; the rows of the other lines are in `out`.
    pub fn decode_ndjson(&self, chunk: &[u8], ts: i64, out: &mut Vec<Row>) -> Vec<(usize, DecodeError)> {
        let mut errors = Vec::new();
        for (i, line) in chunk.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Err(e) = self.decode_json(line, ts, out) {
                errors.push((i, e));
            }
        }
        errors
    }

    /// Builds a row from an already decoded map (tables from files, plugin
    /// sources).
    ///
    /// # Errors
    /// A value that does not fit its field.
    pub fn decode_map(&self, m: &Map, ts: i64) -> Result<Row, DecodeError> {
        let mut raw: Vec<Option<Value>> = vec![None; self.targets.len()];
        for (i, t) in self.targets.iter().enumerate() {
            raw[i] = m.get(&*t.name).cloned();
        }
        let all = self.all_slot.map(|_| m.clone());
        self.finish(raw, all, ts)
    }

    fn target(&self, key: &str) -> Option<usize> {
        self.targets.iter().position(|t| &*t.name == key)
    }

    fn finish(&self, raw: Vec<Option<Value>>, all: Option<Map>, ts: i64) -> Result<Row, DecodeError> {
        let mut row = Row::new(self.width, ts, self.source);
        for (i, (t, v)) in self.targets.iter().zip(raw).enumerate() {
            let v = match (v, &t.default) {
                (None, Some(d)) if self.strict => Some(default_value(d, t.data_type.as_ref())),
                (None, _) if self.strict => {
                    return Err(DecodeError::Field { field: t.name.to_string(), message: "field not found".into() })
                }
                (v, _) => v,
            };
            let v = match (&t.data_type, v) {
                (_, None) => Value::Null,
                (Some(dt), Some(v)) => {
                    convert(v, dt).map_err(|message| DecodeError::Field { field: t.name.to_string(), message })?
                }
                (None, Some(v)) => v,
            };
            if Some(i) == self.ts_target {
                row.ts = timestamp_ms(&v).ok_or_else(|| DecodeError::Timestamp {
                    field: t.name.to_string(),
                    message: format!("got {} {}", v.type_name(), v.to_text()),
                })?;
            }
            if let Some(s) = t.slot {
                if let Some(cell) = row.slots.get_mut(s) {
                    *cell = v;
                }
            }
        }
        if let (Some(s), Some(all)) = (self.all_slot, all) {
            if let Some(cell) = row.slots.get_mut(s) {
                *cell = Value::map(all);
            }
        }
        Ok(row)
    }
}

/// A time value as Unix ms: numbers are ms, datetimes convert, strings are
/// parsed as RFC 3339.
pub fn timestamp_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Float(f) if f.is_finite() => Some(*f as i64),
        Value::Datetime(t) => Some(t.timestamp_millis()),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis()),
        _ => None,
    }
}

fn default_value(d: &str, dt: Option<&DataType>) -> Value {
    match dt {
        Some(DataType::Bigint) => d.parse().map(Value::Int).unwrap_or(Value::Null),
        Some(DataType::Float) => d.parse().map(Value::Float).unwrap_or(Value::Null),
        Some(DataType::Boolean) => Value::Bool(d.eq_ignore_ascii_case("true")),
        _ => Value::str(d),
    }
}

/// Converts a JSON value to a declared type, as eKuiper's schema decoding.
fn convert(v: Value, dt: &DataType) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let wrong = |v: &Value| format!("expect {} but got {} {}", dt.name(), v.type_name(), v.to_text());
    Ok(match dt {
        DataType::Bigint => match v {
            Value::Int(_) => v,
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Value::Int(f as i64),
            v => return Err(wrong(&v)),
        },
        DataType::Float => match v {
            Value::Float(_) => v,
            Value::Int(i) => Value::Float(i as f64),
            v => return Err(wrong(&v)),
        },
        DataType::String => match v {
            Value::String(_) => v,
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => Value::str(v.to_text()),
            v => return Err(wrong(&v)),
        },
        DataType::Boolean => match v {
            Value::Bool(_) => v,
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            v => return Err(wrong(&v)),
        },
        DataType::Datetime => match &v {
            Value::Datetime(_) => v,
            Value::Int(_) | Value::Float(_) => Value::datetime_from_millis(v.as_f64().unwrap_or(0.0) as i64),
            Value::String(s) => match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(t) => Value::Datetime(t),
                Err(_) => return Err(wrong(&v)),
            },
            _ => return Err(wrong(&v)),
        },
        DataType::Bytea => match &v {
            Value::Bytes(_) => v,
            Value::String(s) => {
                use base64::Engine as _;
                match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                    Ok(b) => Value::bytes(b),
                    Err(_) => return Err(format!("expect base64 bytea but got {s}")),
                }
            }
            _ => return Err(wrong(&v)),
        },
        DataType::Array(t) => match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    out.push(convert(item.clone(), t)?);
                }
                Value::array(out)
            }
            v => return Err(wrong(&v)),
        },
        DataType::Struct(fields) => match v {
            Value::Map(m) => {
                let mut out = Map::new();
                for f in fields {
                    if let Some(x) = m.get(&f.name) {
                        out.insert(f.name.clone(), convert(x.clone(), &f.data_type)?);
                    }
                }
                Value::map(out)
            }
            v => return Err(wrong(&v)),
        },
    })
}

/// Top level: an object or an array of objects.
struct PayloadSeed<'a> {
    dec: &'a Decoder,
    ts: i64,
    out: &'a mut Vec<Row>,
}

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = Result<(), DecodeError>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_> {
    type Value = Result<(), DecodeError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or an array of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let r = ObjectVisitor { dec: self.dec }.visit_map(map)?;
        Ok(r.and_then(|(raw, all)| {
            self.out.push(self.dec.finish(raw, all, self.ts)?);
            Ok(())
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut first_err = None;
        while let Some(r) = seq.next_element_seed(ObjectSeed { dec: self.dec })? {
            match r.and_then(|(raw, all)| self.dec.finish(raw, all, self.ts)) {
                Ok(row) => self.out.push(row),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Ok(first_err.map_or(Ok(()), Err))
    }
}

type Decoded = Result<(Vec<Option<Value>>, Option<Map>), DecodeError>;

struct ObjectSeed<'a> {
    dec: &'a Decoder,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = Decoded;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(ObjectVisitor { dec: self.dec })
    }
}

struct ObjectVisitor<'a> {
    dec: &'a Decoder,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = Decoded;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw: Vec<Option<Value>> = vec![None; self.dec.targets.len()];
        if self.dec.all_slot.is_some() {
            // `*` on a schemaless stream needs the whole message.
            let mut all = Map::new();
            while let Some(k) = map.next_key::<String>()? {
                let v = map.next_value_seed(ValueSeed)?;
                if let Some(i) = self.dec.target(&k) {
                    raw[i] = Some(v.clone());
                }
                all.insert(k, v);
            }
            return Ok(Ok((raw, Some(all))));
        }
        while let Some(slot) = map.next_key_seed(KeySeed { dec: self.dec })? {
            match slot {
                Some(i) => raw[i] = Some(map.next_value_seed(ValueSeed)?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Ok((raw, None)))
    }
}

/// Looks a key up among the decoder's targets without allocating.
struct KeySeed<'a> {
    dec: &'a Decoder,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.dec.target(v))
    }
}

/// Deserializes any JSON value into a [`Value`] (numbers as floats).
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Float(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Float(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(Arc::from(v)))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element_seed(ValueSeed)? {
            v.push(x);
        }
        Ok(Value::array(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            m.insert(k, map.next_value_seed(ValueSeed)?);
        }
        Ok(Value::map(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_planner::{parse_statement, ColumnSlot, Statement};

    fn source(ddl: &str, cols: &[&str]) -> SourcePlan {
        let Statement::Create(def) = parse_statement(ddl).unwrap() else { panic!() };
        SourcePlan {
            name: def.name.clone(),
            alias: None,
            columns: cols
                .iter()
                .enumerate()
                .map(|(i, c)| ColumnSlot {
                    name: c.to_string(),
                    slot: i as u32,
                    data_type: def.field(c).map(|f| f.data_type.clone()),
                })
                .collect(),
            def: *def,
            all_slot: None,
            meta_slot: None,
        }
    }

    #[test]
    fn schema_converts_and_skips_unread_fields() {
        let s = source(r#"CREATE STREAM s (a BIGINT, b STRING, ts BIGINT) WITH (DATASOURCE="x")"#, &["a", "b"]);
        let d = Decoder::new(&s, 0, 2, Some("ts"));
        let mut out = Vec::new();
        d.decode_json(br#"{"a": 3, "b": 7, "c": {"x": [1]}, "ts": 1000}"#, 5, &mut out).unwrap();
        assert_eq!(out[0].slots, vec![Value::Int(3), Value::str("7")]);
        assert_eq!(out[0].ts, 1000);
        let err = d.decode_json(br#"{"a": 3.5}"#, 5, &mut out).unwrap_err();
        assert!(err.to_string().contains("field a"), "{err}");
    }

    #[test]
    fn schemaless_numbers_are_floats_and_arrays_give_rows() {
        let s = source(r#"CREATE STREAM s () WITH (DATASOURCE="x")"#, &["a"]);
        let d = Decoder::new(&s, 0, 1, None);
        let mut out = Vec::new();
        d.decode_json(br#"[{"a": 1}, {"a": "x"}]"#, 5, &mut out).unwrap();
        assert_eq!(out[0].slots[0], Value::Float(1.0));
        assert_eq!(out[1].slots[0], Value::str("x"));
        assert!(d.decode_json(b"{not json", 5, &mut out).is_err());
        assert!(d.decode_json(b"42", 5, &mut out).is_err());
    }
}
