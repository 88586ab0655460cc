//! Decoding payloads into rows: JSON straight into the plan's slots.
//!
//! The decoder knows, from the plan, which fields a rule reads and in which
//! slot each goes. It walks the JSON object once with serde, looks each key
//! up among those fields without allocating, decodes only the values it
//! needs and skips the rest.
//!
//! Values go through the two stages of eKuiper:
//! - the JSON converter (`converter/json/converter.go`), always: a
//!   schema'd stream converts values to the declared types with its rules
//!   (only integer literals for BIGINT, numbers and `strconv.ParseBool`
//!   strings for BOOLEAN, `%v` text of numbers for STRING, DATETIME left as
//!   is, ...); a schemaless one keeps JSON numbers as floats. An explicit
//!   `null` is kept as a present key (see [`Row::nulls`]).
//! - with `STRICT_VALIDATION` on a schema'd stream, the preprocessor's
//!   validation (`operator/field_processor.go`) of the fields the rule
//!   reads (all declared fields with `*`) and the TIMESTAMP field: a
//!   missing field takes its DEFAULT or fails, a present null fails (but
//!   for ARRAY and STRUCT), DATETIME values become times.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use weir_planner::{DataType, FieldDef, SourcePlan};

use crate::row::Row;
use crate::value::{format_float_v, Map, Value};

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
    /// `STRICT_VALIDATION` on a schema'd stream.
    strict: bool,
    /// Keep the names of undeclared keys with a null value (schema'd
    /// stream whose every declared field is read, as with `*`).
    null_keys: bool,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder").field("fields", &self.targets.len()).finish()
    }
}

/// What the scan of one object gives [`Decoder::finish`]: the raw value
/// of each target (`Some(Null)` for an explicit null), the whole message
/// for a schemaless `*`, and the undeclared keys with a null value.
struct RawObject {
    raw: Vec<Option<Value>>,
    all: Option<Map>,
    null_keys: Vec<String>,
}

/// A [`RawObject`] whose raw values may sit on the stack (fast path).
struct RawRef<'a> {
    raw: &'a mut [Option<Value>],
    all: Option<Map>,
    null_keys: Vec<String>,
}

impl RawObject {
    fn parts(&mut self) -> RawRef<'_> {
        RawRef { raw: &mut self.raw, all: self.all.take(), null_keys: std::mem::take(&mut self.null_keys) }
    }
}

impl Decoder {
    /// A decoder for source `source` of a plan with rows of `width` slots.
    /// `ts_field` is the event-time field when the rule uses event time.
    ///
    /// Strict validation checks the targets: the columns the rule reads
    /// (for a schema'd `*` the planner makes every declared field a
    /// column) and the event-time field, as eKuiper's pruned
    /// `streamFields`.
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
        let ts_target = ts_field.map(|name| match targets.iter().position(|t| &*t.name == name) {
            Some(i) => i,
            None => {
                let f = plan.def.field(name);
                targets.push(Target {
                    name: name.into(),
                    slot: None,
                    data_type: f.map(|f| f.data_type.clone()),
                    default: f.and_then(|f| f.default.clone()),
                });
                targets.len() - 1
            }
        });
        let fields = plan.def.fields.as_ref();
        let null_keys =
            fields.is_some_and(|fs| !fs.is_empty() && fs.iter().all(|f| plan.columns.iter().any(|c| c.name == f.name)));
        Decoder {
            targets,
            ts_target,
            all_slot: plan.all_slot.map(|s| s as usize),
            width,
            source,
            strict: plan.def.options.strict_validation && fields.is_some(),
            null_keys,
        }
    }

    /// Decodes a JSON payload (an object, or an array of objects giving one
    /// row each) into `out`. `ts` is the arrival time, replaced by the
    /// event time when the decoder has a timestamp field.
    ///
    /// # Errors
    /// On malformed JSON or a value that does not fit its field. An array
    /// with one bad element gives no row at all (as eKuiper's converter).
    pub fn decode_json(&self, payload: &[u8], ts: i64, out: &mut Vec<Row>) -> Result<(), DecodeError> {
        if let Some(r) = self.decode_flat(payload, ts) {
            out.push(r?);
            return Ok(());
        }
        let mut rows = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(payload);
        let seed = PayloadSeed { dec: self, ts, out: &mut rows };
        seed.deserialize(&mut de).map_err(|e| DecodeError::Json(e.to_string()))??;
        de.end().map_err(|e| DecodeError::Json(e.to_string()))?;
        out.append(&mut rows);
        Ok(())
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
    /// sources). Such maps do not tell integer literals from floats, so a
    /// whole float is accepted for BIGINT here.
    ///
    /// # Errors
    /// A value that does not fit its field.
    pub fn decode_map(&self, m: &Map, ts: i64) -> Result<Row, DecodeError> {
        let raw = self.targets.iter().map(|t| m.get(&*t.name).cloned()).collect();
        let null_keys = if self.null_keys {
            m.iter().filter(|(k, v)| v.is_null() && self.target(k).is_none()).map(|(k, _)| k.clone()).collect()
        } else {
            Vec::new()
        };
        let all = self.all_slot.map(|_| m.clone());
        self.finish(RawObject { raw, all, null_keys }.parts(), ts, true)
    }

    fn target(&self, key: &str) -> Option<usize> {
        self.targets.iter().position(|t| &*t.name == key)
    }

    /// Whether the value of target `i` keeps integer literals apart from
    /// floats (it has a declared type).
    fn typed(&self, i: Option<usize>) -> bool {
        i.and_then(|i| self.targets.get(i)).is_some_and(|t| t.data_type.is_some())
    }

    /// Converts and validates the raw values into a row. `lenient`: the
    /// values come from a map, not JSON text (see [`Decoder::decode_map`]).
    fn finish(&self, obj: RawRef<'_>, ts: i64, lenient: bool) -> Result<Row, DecodeError> {
        let RawRef { raw, all, null_keys } = obj;
        let mut row = Row::new(self.width, ts, self.source);
        for (i, (t, v)) in self.targets.iter().zip(raw.iter_mut().map(Option::take)).enumerate() {
            let field = |message: String| DecodeError::Field { field: t.name.to_string(), message };
            // The converter.
            let v = match (&t.data_type, v) {
                (Some(dt), Some(v)) => Some(convert(v, dt, lenient).map_err(field)?),
                (_, v) => v,
            };
            // The preprocessor's strict validation.
            let v = match (self.strict, v, &t.default) {
                (true, None, Some(d)) => Some(default_value(d, t.data_type.as_ref())),
                (true, None, None) => return Err(field("field not found".into())),
                (true, Some(v), _) => match &t.data_type {
                    Some(dt) => Some(validate(v, dt).map_err(|e| field(format!("type mismatch: {e}")))?),
                    None => Some(v),
                },
                (false, v, _) => v,
            };
            if Some(i) == self.ts_target {
                let v = v.as_ref().unwrap_or(&Value::Null);
                row.ts = timestamp_ms(v).ok_or_else(|| DecodeError::Timestamp {
                    field: t.name.to_string(),
                    message: format!("got {} {}", v.type_name(), v.to_text()),
                })?;
            }
            if let (Some(s), Some(v)) = (t.slot, v) {
                if s < row.slots.len() {
                    if v.is_null() {
                        row.set_present_null(s);
                    } else {
                        row.slots[s] = v;
                    }
                }
            }
        }
        if let (Some(s), Some(all)) = (self.all_slot, all) {
            if let Some(cell) = row.slots.get_mut(s) {
                *cell = Value::map(all);
            }
        }
        if !null_keys.is_empty() {
            row.nulls.get_or_insert_with(Default::default).keys = null_keys;
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
        let mut null_keys = Vec::new();
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
                // A key equal to a target's name is valid UTF-8 already.
                let slot = self.targets.iter().position(|t| t.name.as_bytes() == key);
                let v = p.scalar(self.typed(slot))?;
                if let Some(all) = &mut all {
                    if let Some(i) = slot {
                        raw[i] = Some(v.clone());
                    }
                    all.insert(std::str::from_utf8(key).ok()?.to_string(), v);
                } else if let Some(i) = slot {
                    raw[i] = Some(v);
                } else if self.null_keys && v.is_null() {
                    // eKuiper keeps the key if any of its values is null.
                    let key = std::str::from_utf8(key).ok()?;
                    if !null_keys.iter().any(|k| k == key) {
                        null_keys.push(key.to_string());
                    }
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
        let raw = &mut raw[..self.targets.len()];
        Some(self.finish(RawRef { raw, all, null_keys }, ts, false))
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

    /// A scalar value, as [`ValueVisitor`] builds it (`ints` as its field).
    fn scalar(&mut self, ints: bool) -> Option<Value> {
        match self.peek()? {
            b'"' => self.string().map(|s| Value::String(Arc::from(s))),
            b'-' | b'0'..=b'9' => self.number(ints),
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

    /// A number in strict JSON grammar. Integers become what serde's
    /// `visit_i64`/`visit_u64` give [`ValueVisitor`]; other numbers are
    /// parsed correctly rounded, as serde_json with `float_roundtrip`.
    fn number(&mut self, ints: bool) -> Option<Value> {
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
            // Fits i64 exactly. serde_json turns `-0` into the float -0.0
            // (`visit_f64`), which negating after the conversion gives too.
            let mut v: i64 = 0;
            for &c in &self.b[int_start..int_start + n] {
                v = v * 10 + i64::from(c - b'0');
            }
            if ints && !(neg && v == 0) {
                return Some(Value::Int(if neg { -v } else { v }));
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

/// The JSON type name fastjson gives a value, for error messages.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(true) => "true",
        Value::Bool(false) => "false",
        Value::Int(_) | Value::Float(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Map(_) => "object",
        Value::Bytes(_) => "bytes",
        Value::Datetime(_) => "datetime",
    }
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// eKuiper's `cast.ToByteA(s, CONVERT_ALL | CONVERT_SAMEKIND)`: Go's
/// `base64.StdEncoding.DecodeString` (CR and LF skipped, padding required,
/// trailing bits allowed), or else the raw bytes of the text.
fn bytea_from_str(s: &str) -> Value {
    use base64::engine::{general_purpose::GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    const GO_STD: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let decoded = if s.contains(['\r', '\n']) { GO_STD.decode(s.replace(['\r', '\n'], "")) } else { GO_STD.decode(s) };
    Value::bytes(decoded.unwrap_or_else(|_| s.as_bytes().to_vec()))
}

/// Takes the map out of its `Arc` without copying when it is not shared.
fn owned(m: Arc<Map>) -> Map {
    Arc::try_unwrap(m).unwrap_or_else(|m| (*m).clone())
}

/// eKuiper's JSON converter for a value of a declared type
/// (`extractNumberValue`, `extractStringValue`, `extractBooleanFromValue`,
/// `decodeObject`, `decodeArray`). Integer literals arrive as `Int`, other
/// numbers as `Float`; `lenient` also takes a whole `Float` for BIGINT.
/// Nulls are kept, in structs even under undeclared keys.
fn convert(v: Value, dt: &DataType, lenient: bool) -> Result<Value, String> {
    let wrong = |v: &Value| format!("has wrong type:{}, expect:{}", json_type(v), dt.name());
    Ok(match (dt, v) {
        (_, Value::Null) => Value::Null,
        // Numbers.
        (DataType::Bigint, v @ Value::Int(_)) => v,
        (DataType::Bigint, Value::Float(f)) if lenient && f.fract() == 0.0 && f.abs() < 9.2e18 => Value::Int(f as i64),
        (DataType::Bigint, Value::Float(f)) => return Err(format!("cannot parse {} as bigint", format_float_v(f))),
        (DataType::Float | DataType::Datetime, Value::Int(i)) => Value::Float(i as f64),
        (DataType::Float | DataType::Datetime, v @ Value::Float(_)) => v,
        // JSON numbers are float64 to the converter; a map's integers are
        // int64 to Go's %v.
        (DataType::String, Value::Int(i)) if lenient => Value::str(i.to_string()),
        (DataType::String, Value::Int(i)) => Value::str(format_float_v(i as f64)),
        (DataType::String, Value::Float(f)) => Value::str(format_float_v(f)),
        (DataType::Boolean, Value::Int(i)) => Value::Bool(i != 0),
        (DataType::Boolean, Value::Float(f)) => Value::Bool(f != 0.0),
        // Strings.
        (DataType::String | DataType::Datetime, v @ Value::String(_)) => v,
        (DataType::Bytea, Value::String(s)) => bytea_from_str(&s),
        (DataType::Boolean, Value::String(s)) => match go_parse_bool(&s) {
            Some(b) => Value::Bool(b),
            None => return Err(format!("strconv.ParseBool: parsing \"{s}\": invalid syntax")),
        },
        // Booleans.
        (DataType::Boolean, v @ Value::Bool(_)) => v,
        // Values a map source may hold already.
        (DataType::Datetime, v @ Value::Datetime(_)) | (DataType::Bytea, v @ Value::Bytes(_)) => v,
        // Containers.
        (DataType::Array(t), Value::Array(items)) => {
            let items = Arc::try_unwrap(items).unwrap_or_else(|a| (*a).clone());
            Value::array(items.into_iter().map(|x| convert(x, t, lenient)).collect::<Result<_, _>>()?)
        }
        (DataType::Struct(fields), Value::Map(m)) => {
            let mut out = Map::new();
            for (k, x) in owned(m) {
                if x.is_null() {
                    out.insert(k, Value::Null);
                } else if let Some(f) = fields.iter().find(|f| f.name == k) {
                    let x = convert(x, &f.data_type, lenient).map_err(|e| format!("{k}: {e}"))?;
                    out.insert(k, x);
                }
            }
            Value::map(out)
        }
        (_, v) => return Err(wrong(&v)),
    })
}

/// The strict validation of a converted value (`validateAndConvertField`
/// with `CONVERT_SAMEKIND`): a null passes only for ARRAY and STRUCT,
/// DATETIME values become times, struct fields are checked in turn.
fn validate(v: Value, dt: &DataType) -> Result<Value, String> {
    let fail = |v: &Value| format!("cannot convert {} {} to {}", v.type_name(), v.to_text(), dt.name());
    Ok(match (dt, v) {
        (DataType::Array(_) | DataType::Struct(_), Value::Null) => Value::Null,
        (DataType::Bigint, v @ Value::Int(_)) => v,
        (DataType::Bigint, Value::Float(f)) => Value::Int(f as i64),
        (DataType::Float, v @ Value::Float(_)) => v,
        (DataType::Float, Value::Int(i)) => Value::Float(i as f64),
        (DataType::Boolean, v @ Value::Bool(_)) => v,
        (DataType::String, v @ Value::String(_)) => v,
        (DataType::String, Value::Bytes(b)) => Value::str(String::from_utf8_lossy(&b)),
        (DataType::Datetime, v @ Value::Datetime(_)) => v,
        (DataType::Datetime, Value::Int(i)) => Value::datetime_from_millis(i),
        (DataType::Datetime, Value::Float(f)) => Value::datetime_from_millis(f as i64),
        (DataType::Datetime, v @ Value::String(_)) => {
            match chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default()) {
                Ok(t) => Value::Datetime(t),
                Err(_) => return Err(fail(&v)),
            }
        }
        (DataType::Bytea, v @ Value::Bytes(_)) => v,
        (DataType::Bytea, Value::String(s)) => bytea_from_str(&s),
        (DataType::Array(t), Value::Array(items)) => {
            let items = Arc::try_unwrap(items).unwrap_or_else(|a| (*a).clone());
            let items: Result<Vec<_>, _> = items
                .into_iter()
                .map(|x| validate(x, t).map_err(|e| format!("array element type mismatch: {e}")))
                .collect();
            Value::array(items?)
        }
        (DataType::Struct(fields), Value::Map(m)) => Value::map(validate_struct(fields, owned(m))?),
        (_, v) => return Err(fail(&v)),
    })
}

/// `validateAndConvertMessage` for a struct's fields: each must be present
/// (or have a DEFAULT) and valid; other keys stay.
fn validate_struct(fields: &[FieldDef], mut m: Map) -> Result<Map, String> {
    for f in fields {
        let v = match m.remove(&f.name) {
            None => match &f.default {
                Some(d) => default_value(d, Some(&f.data_type)),
                None => return Err(format!("field {} is not found", f.name)),
            },
            Some(v) => validate(v, &f.data_type).map_err(|e| format!("field {} type mismatch: {e}", f.name))?,
        };
        m.insert(f.name.clone(), v);
    }
    Ok(m)
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
        let mut obj = ObjectVisitor { dec: self.dec }.visit_map(map)?;
        Ok(self.dec.finish(obj.parts(), self.ts, false).map(|row| self.out.push(row)))
    }

    /// One row per element; the first bad element fails the whole array
    /// (the rest is still read, to report malformed JSON first).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut first_err = None;
        while let Some(mut obj) = seq.next_element_seed(ObjectSeed { dec: self.dec })? {
            match self.dec.finish(obj.parts(), self.ts, false) {
                Ok(row) => self.out.push(row),
                Err(e) => {
                    first_err = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = first_err {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            self.out.clear();
            return Ok(Err(e));
        }
        Ok(Ok(()))
    }
}

struct ObjectSeed<'a> {
    dec: &'a Decoder,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = RawObject;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(ObjectVisitor { dec: self.dec })
    }
}

struct ObjectVisitor<'a> {
    dec: &'a Decoder,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = RawObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dec = self.dec;
        let mut raw: Vec<Option<Value>> = vec![None; dec.targets.len()];
        let mut null_keys: Vec<String> = Vec::new();
        if dec.all_slot.is_some() {
            // `*` on a schemaless stream needs the whole message.
            let mut all = Map::new();
            while let Some(k) = map.next_key::<String>()? {
                let i = dec.target(&k);
                let v = map.next_value_seed(ValueSeed { ints: dec.typed(i) })?;
                if let Some(i) = i {
                    raw[i] = Some(v.clone());
                }
                all.insert(k, v);
            }
            return Ok(RawObject { raw, all: Some(all), null_keys });
        }
        while let Some(key) = map.next_key_seed(KeySeed { dec })? {
            match key {
                Key::Target(i) => raw[i] = Some(map.next_value_seed(ValueSeed { ints: dec.typed(Some(i)) })?),
                Key::Other(None) => {
                    map.next_value::<IgnoredAny>()?;
                }
                Key::Other(Some(k)) => {
                    // eKuiper keeps the key if any of its values is null
                    // (it skips the others).
                    if map.next_value_seed(NullProbe)? && !null_keys.contains(&k) {
                        null_keys.push(k);
                    }
                }
            }
        }
        Ok(RawObject { raw, all: None, null_keys })
    }
}

/// A key: a decoder target, or another key (named only when the decoder
/// keeps undeclared null keys).
enum Key {
    Target(usize),
    Other(Option<String>),
}

/// Looks a key up among the decoder's targets without allocating.
struct KeySeed<'a> {
    dec: &'a Decoder,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(match self.dec.target(v) {
            Some(i) => Key::Target(i),
            None => Key::Other(self.dec.null_keys.then(|| v.to_string())),
        })
    }
}

/// Skips a value, telling whether it is `null`.
struct NullProbe;

impl<'de> DeserializeSeed<'de> for NullProbe {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NullProbe {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(true)
    }

    fn visit_none<E>(self) -> Result<bool, E> {
        Ok(true)
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// Deserializes any JSON value into a [`Value`]. With `ints` (a value of a
/// declared type), integer literals that fit i64 become `Int`, so that the
/// converter can tell them from floats; otherwise every number is a float.
#[derive(Clone, Copy)]
struct ValueSeed {
    ints: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(if self.ints { Value::Int(v) } else { Value::Float(v as f64) })
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(match i64::try_from(v) {
            Ok(i) if self.ints => Value::Int(i),
            _ => Value::Float(v as f64),
        })
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
        while let Some(x) = seq.next_element_seed(self)? {
            v.push(x);
        }
        Ok(Value::array(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            m.insert(k, map.next_value_seed(self)?);
        }
        Ok(Value::map(m))
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
