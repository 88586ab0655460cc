//! Argument extraction shared by all function implementations, with
//! eKuiper-style error messages that name the function and parameter.

use super::FuncError;
use crate::value::{Map, Value};

/// The 1-based position in messages, as eKuiper numbers parameters.
fn pos(i: usize) -> usize {
    i + 1
}

/// Error for an argument of the wrong type.
pub(crate) fn type_error(func: &str, i: usize, expected: &str, got: &Value) -> FuncError {
    FuncError::new(format!(
        "{func}: expect {expected} type for parameter {} but got {} {}",
        pos(i),
        got.type_name(),
        got.to_text()
    ))
}

/// Argument `i` as a float (ints are widened).
pub(crate) fn arg_f64(func: &str, args: &[Value], i: usize) -> Result<f64, FuncError> {
    let v = arg(func, args, i)?;
    v.as_f64().ok_or_else(|| type_error(func, i, "number", v))
}

/// Argument `i` as an integer (integral floats accepted, as schemaless JSON
/// numbers are floats).
pub(crate) fn arg_i64(func: &str, args: &[Value], i: usize) -> Result<i64, FuncError> {
    let v = arg(func, args, i)?;
    v.as_i64().ok_or_else(|| type_error(func, i, "int", v))
}

/// Argument `i` as a string.
pub(crate) fn arg_str<'a>(func: &str, args: &'a [Value], i: usize) -> Result<&'a str, FuncError> {
    let v = arg(func, args, i)?;
    v.as_str().ok_or_else(|| type_error(func, i, "string", v))
}

/// Argument `i` as a bool.
pub(crate) fn arg_bool(func: &str, args: &[Value], i: usize) -> Result<bool, FuncError> {
    let v = arg(func, args, i)?;
    v.as_bool().ok_or_else(|| type_error(func, i, "bool", v))
}

/// Argument `i` as an array.
pub(crate) fn arg_array<'a>(func: &str, args: &'a [Value], i: usize) -> Result<&'a [Value], FuncError> {
    let v = arg(func, args, i)?;
    v.as_array().ok_or_else(|| type_error(func, i, "array", v))
}

/// Argument `i` as a map.
pub(crate) fn arg_map<'a>(func: &str, args: &'a [Value], i: usize) -> Result<&'a Map, FuncError> {
    let v = arg(func, args, i)?;
    v.as_map().ok_or_else(|| type_error(func, i, "map", v))
}

/// Argument `i`, or an error if the call has fewer arguments.
pub(crate) fn arg<'a>(func: &str, args: &'a [Value], i: usize) -> Result<&'a Value, FuncError> {
    args.get(i)
        .ok_or_else(|| FuncError::new(format!("{func}: missing parameter {}", pos(i))))
}

/// True if any argument is null: most scalar functions then return null.
pub(crate) fn any_null(args: &[Value]) -> bool {
    args.iter().any(Value::is_null)
}
