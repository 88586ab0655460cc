//! Encoding state: bincode over serde, with a serde form for [`Value`],
//! and a CRC-32 of the encoding after it. bincode has no redundancy: a
//! changed byte in a stored integer or string still decodes, to another
//! value, so without the checksum a damaged checkpoint would be restored
//! as if it were sound.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::StateError;
use crate::value::{Map, Value};

/// Encodes a value for the state store.
///
/// # Errors
/// Only if serde refuses the value (a bug: all state types encode).
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StateError> {
    let mut out = bincode::serde::encode_to_vec(v, bincode::config::standard())
        .map_err(|e| StateError::Store(format!("encode: {e}")))?;
    seal(&mut out);
    Ok(out)
}

/// Bytes of the checksum at the end of every encoding.
const CHECKSUM_LEN: usize = 4;

/// Appends the checksum of `body`.
fn seal(body: &mut Vec<u8>) {
    let sum = crc32fast::hash(body);
    body.extend_from_slice(&sum.to_le_bytes());
}

/// The most bytes one decode may claim. bincode allocates what a length
/// prefix claims before reading it, so without a limit a few corrupt (or
/// hostile: peers send these bytes too) bytes claiming 2^62 would abort
/// the process instead of failing the decode.
const DECODE_LIMIT: usize = 1 << 30;

/// Decodes stored bytes; `key` names them in the error.
///
/// # Errors
/// [`StateError::Corrupt`] when the checksum does not match (bytes changed
/// after they were written) or the bytes are not a valid encoding.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T, StateError> {
    let corrupt = |message: String| StateError::Corrupt { key: key.to_string(), message };
    let Some(end) = bytes.len().checked_sub(CHECKSUM_LEN) else {
        return Err(corrupt(format!("{} bytes, shorter than a checksum", bytes.len())));
    };
    let (body, sum) = bytes.split_at(end);
    if crc32fast::hash(body).to_le_bytes() != sum {
        return Err(corrupt("checksum mismatch: the bytes changed after they were written".into()));
    }
    let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
    let (v, used) = bincode::serde::decode_from_slice(body, config).map_err(|e| corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(corrupt("trailing bytes".into()));
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
        // With a valid checksum, so that the length itself is checked.
        super::seal(&mut bytes);
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
        assert!(decode::<Value>(&[1, 2], "k").is_err());
    }

    /// A changed byte that bincode alone would decode (to another number)
    /// is caught by the checksum.
    #[test]
    fn a_flipped_byte_is_caught_by_the_checksum() {
        let mut bytes = encode(&Value::Int(1_000_000)).unwrap();
        bytes[2] ^= 0x01;
        let body = &bytes[..bytes.len() - CHECKSUM_LEN];
        let config = bincode::config::standard();
        assert!(bincode::serde::decode_from_slice::<Value, _>(body, config).is_ok(), "bincode alone accepts it");
        let e = decode::<Value>(&bytes, "r1/op/0").unwrap_err();
        assert!(e.to_string().contains("checksum mismatch") && e.to_string().contains("r1/op/0"), "{e}");
    }
}
