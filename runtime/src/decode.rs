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
        if let Some(r) = self.decode_flat(payload, ts) {
            out.push(r?);
            return Ok(());
        }
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
        self.finish(&mut raw, all, ts)
    }

    fn target(&self, key: &str) -> Option<usize> {
        self.targets.iter().position(|t| &*t.name == key)
    }

    fn finish(&self, raw: &mut [Option<Value>], all: Option<Map>, ts: i64) -> Result<Row, DecodeError> {
        let mut row = Row::new(self.width, ts, self.source);
        for (i, (t, v)) in self.targets.iter().zip(raw.iter_mut().map(Option::take)).enumerate() {
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

/// Most targets the flat fast path keeps on the stack.
const FLAT_TARGETS: usize = 16;

impl Decoder {
    /// The fast path of [`Decoder::decode_json`] for the common payload: one
    /// flat JSON object whose keys have no escapes and whose values are
    /// strings without escapes, numbers, booleans or null. It scans the bytes
    /// once, without serde, and gives exactly the values the serde path
    /// would. `None` means "not such a payload" (nested values, escapes,
    /// arrays, anything malformed): the caller then takes the serde path,
    /// which also produces the canonical error messages.
    fn decode_flat(&self, b: &[u8], ts: i64) -> Option<Result<Row, DecodeError>> {
        if self.targets.len() > FLAT_TARGETS {
            return None;
        }
        let mut raw: [Option<Value>; FLAT_TARGETS] = Default::default();
        let mut all = self.all_slot.map(|_| Map::new());
        let mut p = Scan { b, i: 0 };
        p.ws();
        p.eat(b'{')?;
        p.ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
        } else {
            loop {
                p.ws();
                let key = p.raw_string()?;
                p.ws();
                p.eat(b':')?;
                p.ws();
                let v = p.scalar()?;
                // A key equal to a target's name is valid UTF-8 already.
                let slot = self.targets.iter().position(|t| t.name.as_bytes() == key);
                if let Some(all) = &mut all {
                    if let Some(i) = slot {
                        raw[i] = Some(v.clone());
                    }
                    all.insert(std::str::from_utf8(key).ok()?.to_string(), v);
                } else if let Some(i) = slot {
                    raw[i] = Some(v);
                }
                p.ws();
                match p.next()? {
                    b',' => continue,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        p.ws();
        if p.i != b.len() {
            return None;
        }
        Some(self.finish(&mut raw[..self.targets.len()], all, ts))
    }
}

/// A cursor over a flat JSON object (see [`Decoder::decode_flat`]). Every
/// method returns `None` on anything it does not handle.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// The bytes of a string without escapes or control characters, not
    /// yet checked to be UTF-8.
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.b[start..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if self.b[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        Some(&self.b[start..start + len])
    }

    /// A string without escapes or control characters, as `&str`.
    fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.raw_string()?).ok()
    }

    /// A scalar value, as [`ValueVisitor`] builds it.
    fn scalar(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => self.string().map(|s| Value::String(Arc::from(s))),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.word(b"true", Value::Bool(true)),
            b'f' => self.word(b"false", Value::Bool(false)),
            b'n' => self.word(b"null", Value::Null),
            _ => None,
        }
    }

    fn word(&mut self, w: &[u8], v: Value) -> Option<Value> {
        if self.b[self.i..].starts_with(w) {
            self.i += w.len();
            Some(v)
        } else {
            None
        }
    }

    fn digits(&mut self) -> usize {
        let n = self.b[self.i..].iter().take_while(|c| c.is_ascii_digit()).count();
        self.i += n;
        n
    }

    /// A number in strict JSON grammar. Integers become floats the way
    /// serde's `visit_i64`/`visit_u64` + `as f64` do; other numbers are
    /// parsed correctly rounded, as serde_json with `float_roundtrip`.
    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let int_start = self.i;
        let n = self.digits();
        if n == 0 || (n > 1 && self.b[int_start] == b'0') {
            return None;
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
            integral = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            integral = false;
        }
        if integral && n <= 18 {
            // Fits i64 exactly. serde_json turns `-0` into the float -0.0,
            // which negating after the conversion gives too.
            let mut v: i64 = 0;
            for &c in &self.b[int_start..int_start + n] {
                v = v * 10 + i64::from(c - b'0');
            }
            let f = v as f64;
            return Some(Value::Float(if neg { -f } else { f }));
        }
        if integral {
            // Long integers: leave the u64/i64/overflow rules to serde.
            return None;
        }
        let f: f64 = std::str::from_utf8(&self.b[start..self.i]).ok()?.parse().ok()?;
        f.is_finite().then_some(Value::Float(f))
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
        Ok(r.and_then(|(mut raw, all)| {
            self.out.push(self.dec.finish(&mut raw, all, self.ts)?);
            Ok(())
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut first_err = None;
        while let Some(r) = seq.next_element_seed(ObjectSeed { dec: self.dec })? {
            match r.and_then(|(mut raw, all)| self.dec.finish(&mut raw, all, self.ts)) {
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

    /// Decodes `payload` with the serde path only.
    fn serde_only(d: &Decoder, payload: &[u8]) -> Result<Vec<Row>, String> {
        let mut out = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(payload);
        PayloadSeed { dec: d, ts: 5, out: &mut out }
            .deserialize(&mut de)
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn flat_fast_path_matches_serde() {
        let schema = source(
            r#"CREATE STREAM s (a BIGINT, b STRING, f FLOAT, ok BOOLEAN, ts BIGINT) WITH (DATASOURCE="x")"#,
            &["a", "b", "f", "ok"],
        );
        let schemaless = source(r#"CREATE STREAM s () WITH (DATASOURCE="x")"#, &["a", "b", "f", "ok"]);
        let mut all = schemaless.clone();
        all.all_slot = Some(4);
        let decoders = [
            Decoder::new(&schema, 0, 4, Some("ts")),
            Decoder::new(&schemaless, 0, 4, None),
            Decoder::new(&all, 0, 5, None),
        ];
        let cases: &[&str] = &[
            r#"{"a":1,"b":"x","f":2.5,"ok":true,"ts":1000}"#,
            r#" { "a" : -0 , "b" : "hé" , "f" : -0.0 , "ts" : 12 } "#,
            r#"{"a":3,"b":"é","f":1e3,"ok":false,"ts":1e3,"zz":null}"#,
            r#"{"a":123456789012345678,"f":0.1,"ts":2}"#,
            r#"{"a":12345678901234567890,"ts":3}"#,
            r#"{"a":-9223372036854775808,"ts":3}"#,
            r#"{"f":1.7976931348623157e308,"a":1E-2,"ts":4}"#,
            r#"{"f":1e400,"ts":4}"#,
            r#"{"a":1,"a":2,"ts":5}"#,
            r#"{"b":"tab	here","ts":5}"#,
            "{\"b\":\"ctl\u{1}\",\"ts\":5}",
            r#"{"x":{"y":[1,2]},"a":1,"ts":6}"#,
            r#"{}"#,
            r#"{"ts":7,}"#,
            r#"{"a":01,"ts":7}"#,
            r#"{"a":1.,"ts":7}"#,
            r#"{"a":-,"ts":7}"#,
            r#"{"a":truex,"ts":7}"#,
            r#"{"a":1,"ts":7} x"#,
            r#"{"a":1,"ts":7"#,
            r#"{"ok":nul}"#,
            r#"[{"a":1,"ts":8}]"#,
            r#"{"a":"3","b":7,"ok":"true","ts":"2024-01-01T00:00:00Z"}"#,
            r#"{"a":3.5,"ts":9}"#,
            r#"{"b":null,"ts":9}"#,
        ];
        for d in &decoders {
            for c in cases {
                let mut fast = Vec::new();
                let got = d.decode_json(c.as_bytes(), 5, &mut fast).map(|_| fast).map_err(|e| e.to_string());
                let want = serde_only(d, c.as_bytes());
                match (&got, &want) {
                    (Ok(g), Ok(w)) => {
                        assert_eq!(g.len(), w.len(), "{c}");
                        for (g, w) in g.iter().zip(w) {
                            assert_eq!(g.ts, w.ts, "{c}");
                            // Compare through the text form so -0.0 and 0.0 differ.
                            let text = |r: &Row| r.slots.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>();
                            assert_eq!(text(g), text(w), "{c}");
                        }
                    }
                    (Err(_), Err(_)) => {}
                    _ => panic!("{c}: fast {got:?} vs serde {want:?}"),
                }
            }
        }
    }

    #[test]
    fn ndjson_chunks_give_one_row_per_line() {
        let s = source(r#"CREATE STREAM s (a BIGINT) WITH (DATASOURCE="x")"#, &["a"]);
        let d = Decoder::new(&s, 0, 1, None);
        let mut out = Vec::new();
        let errors = d.decode_ndjson(b"{\"a\":1}\n\n  \n{\"a\":2}\r\n{bad\n[{\"a\":3},{\"a\":4}]", 0, &mut out);
        assert_eq!(out.iter().map(|r| r.slots[0].clone()).collect::<Vec<_>>(), [1, 2, 3, 4].map(Value::Int));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 4);
    }
}
