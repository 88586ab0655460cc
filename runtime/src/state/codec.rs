//! Encoding state: bincode over serde, with a serde form for [`Value`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::StateError;
use crate::value::{Map, Value};

/// Encodes a value for the state store.
///
/// # Errors
/// Only if serde refuses the value (a bug: all state types encode).
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StateError> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).map_err(|e| StateError::Store(format!("encode: {e}")))
}

/// The most bytes one decode may claim. bincode allocates what a length
/// prefix claims before reading it, so without a limit a few corrupt (or
/// hostile: peers send these bytes too) bytes claiming 2^62 would abort
/// the process instead of failing the decode.
const DECODE_LIMIT: usize = 1 << 30;

/// Decodes stored bytes; `key` names them in the error.
///
/// # Errors
/// [`StateError::Corrupt`] when the bytes are not a valid encoding.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T, StateError> {
    let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
    let (v, used) = bincode::serde::decode_from_slice(bytes, config)
        .map_err(|e| StateError::Corrupt { key: key.to_string(), message: e.to_string() })?;
    if used != bytes.len() {
        return Err(StateError::Corrupt { key: key.to_string(), message: "trailing bytes".into() });
    }
    Ok(v)
}

/// The stored form of a [`Value`].
#[derive(Serialize, Deserialize)]
enum Repr {
    N,
    B(bool),
    I(i64),
    F(f64),
    S(String),
    Y(Vec<u8>),
    /// Unix nanoseconds and UTC offset in seconds.
    D(i64, i32),
    A(Vec<Repr>),
    M(Vec<(String, Repr)>),
}

impl From<&Value> for Repr {
    fn from(v: &Value) -> Repr {
        match v {
            Value::Null => Repr::N,
            Value::Bool(b) => Repr::B(*b),
            Value::Int(i) => Repr::I(*i),
            Value::Float(f) => Repr::F(*f),
            Value::String(s) => Repr::S(s.to_string()),
            Value::Bytes(b) => Repr::Y(b.to_vec()),
            Value::Datetime(t) => Repr::D(
                t.timestamp_nanos_opt().unwrap_or(t.timestamp_millis() * 1_000_000),
                t.offset().local_minus_utc(),
            ),
            Value::Array(a) => Repr::A(a.iter().map(Repr::from).collect()),
            Value::Map(m) => Repr::M(m.iter().map(|(k, v)| (k.clone(), Repr::from(v))).collect()),
        }
    }
}

impl From<Repr> for Value {
    fn from(r: Repr) -> Value {
        match r {
            Repr::N => Value::Null,
            Repr::B(b) => Value::Bool(b),
            Repr::I(i) => Value::Int(i),
            Repr::F(f) => Value::Float(f),
            Repr::S(s) => Value::from(s),
            Repr::Y(b) => Value::bytes(b),
            Repr::D(nanos, offset) => {
                let utc = chrono::DateTime::from_timestamp_nanos(nanos);
                match chrono::FixedOffset::east_opt(offset) {
                    Some(o) => Value::Datetime(utc.with_timezone(&o)),
                    None => Value::Datetime(utc.fixed_offset()),
                }
            }
            Repr::A(a) => Value::array(a.into_iter().map(Value::from).collect()),
            Repr::M(m) => Value::map(m.into_iter().map(|(k, v)| (k, Value::from(v))).collect::<Map>()),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Repr::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Repr::deserialize(d).map(Value::from)
    }
}

#[cfg(test)]
mod tests {
    /// A length prefix claiming far more than any input is an error, not
    /// an allocation that aborts the process.
    #[test]
    fn absurd_lengths_are_corrupt_not_fatal() {
        // A String whose varint length claims 2^62 bytes.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        bytes.extend_from_slice(b"abc");
        assert!(matches!(super::decode::<String>(&bytes, "k"), Err(super::StateError::Corrupt { .. })));
    }

    use super::*;

    #[test]
    fn values_round_trip() {
        let v = Value::from_json(serde_json::json!({"a": [1, "x", null, true, {"b": 2.5}]}), true);
        let t = Value::datetime_from_millis(1_541_152_486_013);
        for x in [v, t, Value::bytes(vec![0, 1, 255]), Value::Float(f64::MIN_POSITIVE)] {
            let bytes = encode(&x).unwrap();
            assert_eq!(decode::<Value>(&bytes, "k").unwrap(), x);
        }
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        let e = decode::<Value>(&[0xff, 0xff, 0xff], "rule/op/0").unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
        let mut ok = encode(&Value::str("abc")).unwrap();
        ok.push(7);
        assert!(decode::<Value>(&ok, "k").is_err());
    }
}
