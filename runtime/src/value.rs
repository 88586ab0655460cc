//! The one value type of weir, with eKuiper's types and conversions.
//!
//! eKuiper (Go) works on `interface{}` values holding `int64`, `float64`,
//! `string`, `bool`, `[]byte`, `time.Time`, `[]interface{}` and
//! `map[string]interface{}`. [`Value`] is the same set as a Rust enum. Strings,
//! byte strings, arrays and maps are reference counted so that rows, windows
//! and group keys clone them cheaply.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};

/// A JSON-like object with sorted keys (Go's `encoding/json` sorts keys too).
pub type Map = BTreeMap<String, Value>;

/// A datetime with its UTC offset, like Go's `time.Time` with a location.
pub type Datetime = DateTime<FixedOffset>;

/// A value of eKuiper's type system.
#[derive(Debug, Clone, Default)]
pub enum Value {
    /// SQL null / Go nil: a missing field or a null result.
    #[default]
    Null,
    /// `boolean`.
    Bool(bool),
    /// `bigint`: signed 64-bit integer.
    Int(i64),
    /// `float`: 64-bit IEEE float.
    Float(f64),
    /// `string`.
    String(Arc<str>),
    /// `bytea`: raw bytes.
    Bytes(Arc<[u8]>),
    /// `datetime`.
    Datetime(Datetime),
    /// `array(...)`.
    Array(Arc<Vec<Value>>),
    /// `struct(...)` or a schemaless JSON object.
    Map(Arc<Map>),
}

impl Value {
    /// Builds a string value.
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::String(Arc::from(s.as_ref()))
    }

    /// Builds an array value.
    pub fn array(v: Vec<Value>) -> Value {
        Value::Array(Arc::new(v))
    }

    /// Builds a map value.
    pub fn map(m: Map) -> Value {
        Value::Map(Arc::new(m))
    }

    /// Builds a bytes value.
    pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(Arc::from(b.into()))
    }

    /// Builds a datetime from Unix milliseconds, in UTC.
    pub fn datetime_from_millis(ms: i64) -> Value {
        match Utc.timestamp_millis_opt(ms).single() {
            Some(t) => Value::Datetime(t.fixed_offset()),
            None => Value::Null,
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// eKuiper's name of the value's type, used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "bigint",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytea",
            Value::Datetime(_) => "datetime",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }

    /// The value as `f64` if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as `i64` if it is an integer or an integral float
    /// (schemaless JSON numbers are floats, as in eKuiper).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            _ => None,
        }
    }

    /// The value as `&str` if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as an array slice if it is one.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value as a map if it is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Whether a condition result lets a row through: only `true` does
    /// (null and non-booleans are false, as in eKuiper's WHERE).
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// Renders the value as text the way eKuiper's `cast(x, "string")` and
    /// string concatenation do (Go's `%v` for scalars, JSON for containers).
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::String(s) => s.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float_v(*f),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Datetime(t) => format_datetime(t),
            Value::Array(_) | Value::Map(_) => self.to_json(),
        }
    }

    /// Go's `%v` of the value as eKuiper holds it: `<nil>`, `[1 2]`,
    /// `map[a:1 b:x]`, floats like `1e+06`, datetimes as Go's
    /// `time.Time.String()`. Used by functions and sink templates alike.
    pub fn to_go_string(&self) -> String {
        crate::functions::go_v(self)
    }

    /// Go's `%T` of the value as eKuiper holds it (`int64`, `float64`,
    /// `map[string]interface {}`, ...), for error messages.
    pub fn go_type(&self) -> &'static str {
        crate::functions::go_type(self)
    }

    /// Encodes the value as JSON exactly as Go's `encoding/json` would.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Appends the Go-style JSON encoding of the value to `out`.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => write_json_float(*f, out),
            Value::String(s) => write_json_string(s, out),
            Value::Bytes(b) => {
                use base64::Engine as _;
                write_json_string(&base64::engine::general_purpose::STANDARD.encode(b), out)
            }
            Value::Datetime(t) => write_json_string(&format_datetime(t), out),
            Value::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Map(m) => write_json_map(m.iter().map(|(k, v)| (k.as_str(), v)), out),
        }
    }

    /// Converts a parsed JSON value. Numbers become floats unless
    /// `int_for_whole` is set and they are whole (eKuiper's
    /// `useInt64ForWholeNumber`).
    pub fn from_json(v: serde_json::Value, int_for_whole: bool) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => number_value(&n, int_for_whole),
            serde_json::Value::String(s) => Value::String(Arc::from(s)),
            serde_json::Value::Array(a) => {
                Value::array(a.into_iter().map(|v| Value::from_json(v, int_for_whole)).collect())
            }
            serde_json::Value::Object(o) => {
                Value::map(o.into_iter().map(|(k, v)| (k, Value::from_json(v, int_for_whole))).collect())
            }
        }
    }

    /// Converts to a `serde_json::Value` (datetimes become RFC 3339 strings,
    /// bytes base64, non-finite floats null).
    pub fn to_serde_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
            }
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Bytes(_) | Value::Datetime(_) => match serde_json::from_str(&self.to_json()) {
                Ok(v) => v,
                Err(_) => serde_json::Value::Null,
            },
            Value::Array(a) => serde_json::Value::Array(a.iter().map(|v| v.to_serde_json()).collect()),
            Value::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_serde_json())).collect()),
        }
    }

    /// Compares two values the way eKuiper's comparison operators do:
    /// numbers across int and float, strings, booleans (false < true),
    /// datetimes. `None` when the types are not comparable or either is null.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Float(b)) => (*a as f64).partial_cmp(b),
            (Value::Float(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
            (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::Datetime(a), Value::Datetime(b)) => Some(a.cmp(b)),
            (Value::Datetime(a), b @ (Value::Int(_) | Value::Float(_))) => {
                Some(a.timestamp_millis().cmp(&(b.as_f64()? as i64)))
            }
            (a @ (Value::Int(_) | Value::Float(_)), Value::Datetime(b)) => {
                Some((a.as_f64()? as i64).cmp(&b.timestamp_millis()))
            }
            (Value::Bytes(a), Value::Bytes(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Equality as the SQL `=` sees it: numbers across int and float, deep
    /// equality for arrays and maps; false when either side is null.
    pub fn sql_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.sql_eq(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| ka == kb && va.sql_eq(vb))
            }
            _ => self.compare(other) == Some(Ordering::Equal),
        }
    }

    /// A total order for sorting (ORDER BY, array_sort): nulls first, then
    /// by type, then by value.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        if let Some(o) = self.compare(other) {
            return o;
        }
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Bool(_) => 1,
                Value::Int(_) | Value::Float(_) => 2,
                Value::String(_) => 3,
                Value::Bytes(_) => 4,
                Value::Datetime(_) => 5,
                Value::Array(_) => 6,
                Value::Map(_) => 7,
            }
        }
        match rank(self).cmp(&rank(other)) {
            Ordering::Equal => match (self, other) {
                (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
                _ => self.to_json().cmp(&other.to_json()),
            },
            o => o,
        }
    }
}

/// Group keys and DISTINCT need `Eq` + `Hash`: this is structural equality
/// where an integral float equals the same integer (so the hash agrees).
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits() || a == b,
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => (*a as f64) == *b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Datetime(a), Value::Datetime(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => (*i as f64).to_bits().hash(state),
            Value::Float(f) => {
                // -0.0 == 0.0, and integral floats must hash like ints.
                let f = if *f == 0.0 { 0.0 } else { *f };
                f.to_bits().hash(state)
            }
            Value::String(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Datetime(t) => t.hash(state),
            Value::Array(a) => a.hash(state),
            Value::Map(m) => m.hash(state),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::str(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(Arc::from(v))
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::array(v)
    }
}

impl From<Map> for Value {
    fn from(v: Map) -> Value {
        Value::map(v)
    }
}

fn number_value(n: &serde_json::Number, int_for_whole: bool) -> Value {
    if int_for_whole {
        if let Some(i) = n.as_i64() {
            return Value::Int(i);
        }
    }
    Value::Float(n.as_f64().unwrap_or(f64::NAN))
}

/// Formats a datetime as Go's `time.RFC3339Nano` does (trailing zeros of the
/// fraction dropped, `Z` for UTC).
pub fn format_datetime(t: &Datetime) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Formats a float as Go's `%v` does (`strconv.FormatFloat(f, 'g', -1, 64)`:
/// shortest digits, exponent form from 1e6 and below 1e-4).
pub fn format_float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e6).contains(&abs) {
        go_exponent(f, 2)
    } else {
        format!("{f}")
    }
}

/// Go's exponent form: `1e+21`, `1.5e-07` (at least `min_digits` exponent digits).
fn go_exponent(f: f64, min_digits: usize) -> String {
    let s = format!("{f:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mant}e{sign}{digits:0>min_digits$}")
}

/// Appends a float as Go's `encoding/json` encodes it.
pub fn write_json_float(f: f64, out: &mut String) {
    if !f.is_finite() {
        // Go refuses to encode these; eKuiper logs an error. Null is the
        // closest valid JSON.
        out.push_str("null");
        return;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // encoding/json formats with 'e' and then trims "e-07" to "e-7".
        out.push_str(&go_exponent(f, 1));
    } else {
        let _ = write!(out, "{f}");
    }
}

/// Appends a JSON string with Go's escaping (`<`, `>`, `&` as `\u00XX`).
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a JSON object from key/value pairs that are already sorted.
pub fn write_json_map<'a>(entries: impl Iterator<Item = (&'a str, &'a Value)>, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(k, out);
        out.push(':');
        v.write_json(out);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_encode_like_go() {
        assert_eq!(Value::Float(25.0).to_json(), "25");
        assert_eq!(Value::Float(0.1).to_json(), "0.1");
        assert_eq!(Value::Float(1e21).to_json(), "1e+21");
        assert_eq!(Value::Float(1e-7).to_json(), "1e-7");
        assert_eq!(Value::Float(-2.5).to_json(), "-2.5");
        assert_eq!(format_float_v(1e6), "1e+06");
        assert_eq!(format_float_v(123456.0), "123456");
    }

    #[test]
    fn strings_escape_like_go() {
        assert_eq!(Value::str("a<b>&\"c\"\n").to_json(), r#""a\u003cb\u003e\u0026\"c\"\n""#);
    }

    #[test]
    fn maps_have_sorted_keys() {
        let v = Value::from_json(serde_json::json!({"b": 1, "a": [true, null]}), false);
        assert_eq!(v.to_json(), r#"{"a":[true,null],"b":1}"#);
    }

    #[test]
    fn numbers_compare_across_types() {
        assert_eq!(Value::Int(2).compare(&Value::Float(2.5)), Some(Ordering::Less));
        assert!(Value::Int(3).sql_eq(&Value::Float(3.0)));
        assert!(!Value::Null.sql_eq(&Value::Null));
        assert_eq!(Value::str("a").compare(&Value::Int(1)), None);
    }

    #[test]
    fn hash_agrees_with_eq_for_int_and_float() {
        use std::collections::hash_map::DefaultHasher;
        let h = |v: &Value| {
            let mut s = DefaultHasher::new();
            v.hash(&mut s);
            s.finish()
        };
        assert_eq!(Value::Int(3), Value::Float(3.0));
        assert_eq!(h(&Value::Int(3)), h(&Value::Float(3.0)));
    }

    #[test]
    fn datetimes_print_rfc3339() {
        let v = Value::datetime_from_millis(1_541_152_486_013);
        assert_eq!(v.to_json(), "\"2018-11-02T09:54:46.013Z\"");
    }
}
