//! Value shorthands shared by the function tests.

use crate::value::{Map, Value};

pub(crate) const N: Value = Value::Null;

pub(crate) fn i(v: i64) -> Value {
    Value::Int(v)
}

pub(crate) fn f(v: f64) -> Value {
    Value::Float(v)
}

pub(crate) fn s(v: &str) -> Value {
    Value::str(v)
}

pub(crate) fn b(v: bool) -> Value {
    Value::Bool(v)
}

pub(crate) fn arr(v: Vec<Value>) -> Value {
    Value::array(v)
}

/// A map from key/value pairs.
pub(crate) fn obj(pairs: &[(&str, Value)]) -> Value {
    Value::map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Map>())
}
