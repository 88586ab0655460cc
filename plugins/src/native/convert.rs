//! SQL values to C arguments and C results to SQL values.
//!
//! Conversion happens before the library is called, so a bad argument is a
//! message naming the argument, never a surprise inside C code. Messages
//! leave out the function's name: the caller adds it once (the planner
//! prefixes `function <name>: `, the runtime `<name>: `).

use weir_planner::ArgHint;
use weir_runtime::value::Value;

use super::ffi::{RawArray, RawUnion, RawValue};
use super::spec::{ArgSpec, FunctionSpec, ValueType};
use crate::args::push_numbers;

/// One converted argument, owning its array data so that the pointer weir
/// hands to C stays valid for the whole call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    F64(f64),
    I64(i64),
    Bool(bool),
    F64Array(Vec<f64>),
}

impl Arg {
    /// The C view of this argument. For arrays the pointer borrows `self`'s
    /// buffer: the result is valid while `self` is neither moved nor
    /// dropped. The buffer is exclusively weir's, so even a library that
    /// writes into it (which the ABI forbids) only scribbles on weir's
    /// copy.
    pub(crate) fn raw(&mut self) -> RawValue {
        let (ty, v) = match self {
            Arg::F64(f) => (ValueType::F64, RawUnion { f64: *f }),
            Arg::I64(i) => (ValueType::I64, RawUnion { i64: *i }),
            Arg::Bool(b) => (ValueType::Bool, RawUnion { b: i32::from(*b) }),
            Arg::F64Array(v) => {
                (ValueType::F64Array, RawUnion { array: RawArray { data: v.as_mut_ptr(), len: v.len() } })
            }
        };
        let mut raw = RawValue::zeroed(ty.code());
        raw.v = v;
        raw
    }
}

/// Converts one row's arguments; `Ok(None)` if any is null (the result is
/// then null without calling the library).
///
/// # Errors
/// The message for the first argument that does not convert.
pub(crate) fn convert_row(spec: &FunctionSpec, args: &[Value]) -> Result<Option<Vec<Arg>>, String> {
    if args.len() != spec.args.len() {
        return Err(format!("expects {} arguments, got {}", spec.args.len(), args.len()));
    }
    if args.iter().any(Value::is_null) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(args.len());
    for (i, (a, decl)) in args.iter().zip(&spec.args).enumerate() {
        out.push(convert_arg(a, decl, i + 1)?);
    }
    Ok(Some(out))
}

/// Converts one argument to its declared type.
///
/// # Errors
/// A type that does not convert, a non-whole number for an integer, or an
/// array of the wrong length; the message names the argument.
pub(crate) fn convert_arg(v: &Value, decl: &ArgSpec, position: usize) -> Result<Arg, String> {
    let wrong = |want: &str| format!("argument {position} ({}) must be {want}, got {}", decl.name, v.type_name());
    match decl.ty {
        ValueType::F64 => match v {
            Value::Float(f) => Ok(Arg::F64(*f)),
            Value::Int(i) => Ok(Arg::F64(*i as f64)),
            Value::Bool(b) => Ok(Arg::F64(if *b { 1.0 } else { 0.0 })),
            _ => Err(wrong("a number")),
        },
        ValueType::I64 => match v {
            Value::Int(i) => Ok(Arg::I64(*i)),
            Value::Bool(b) => Ok(Arg::I64(i64::from(*b))),
            // The range check keeps the cast exact: 2^63 itself is out.
            Value::Float(f) if f.fract() == 0.0 && *f >= -(2f64.powi(63)) && *f < 2f64.powi(63) => {
                Ok(Arg::I64(*f as i64))
            }
            Value::Float(f) => Err(format!("argument {position} ({}) must be a whole number, got {f}", decl.name)),
            _ => Err(wrong("an integer")),
        },
        ValueType::Bool => match v {
            Value::Bool(b) => Ok(Arg::Bool(*b)),
            _ => Err(wrong("a boolean")),
        },
        ValueType::F64Array => {
            let mut values = Vec::new();
            match v {
                Value::Array(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                    push_numbers(v, &decl.name, position, &mut values).map_err(|_| {
                        format!("argument {position} ({}) must be an array of numbers, got {}", decl.name, describe(v))
                    })?;
                }
                _ => return Err(wrong("an array of numbers")),
            }
            match decl.len {
                Some(n) if values.len() != n => {
                    Err(format!("argument {position} ({}) must hold {n} numbers, got {}", decl.name, values.len()))
                }
                _ => Ok(Arg::F64Array(values)),
            }
        }
    }
}

/// `array containing a string` rather than just `array`.
fn describe(v: &Value) -> String {
    fn first_bad(v: &Value) -> Option<&'static str> {
        match v {
            Value::Array(items) => items.iter().find_map(first_bad),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => None,
            other => Some(other.type_name()),
        }
    }
    match first_bad(v) {
        Some(t) => format!("an array containing {t}"),
        None => v.type_name().to_string(),
    }
}

/// The plan-time check of literal arguments: the same conversion as at run
/// time, so that `gasflow('hot', 1, 2)` fails when the rule is created.
///
/// # Errors
/// The message for the first literal that does not convert.
pub(crate) fn validate_hints(spec: &FunctionSpec, hints: &[ArgHint]) -> Result<(), String> {
    for (i, (hint, decl)) in hints.iter().zip(&spec.args).enumerate() {
        if let ArgHint::Literal(json) = hint {
            let v = Value::from_json(json.clone(), true);
            if !v.is_null() {
                convert_arg(&v, decl, i + 1)?;
            }
        }
    }
    Ok(())
}

/// Prepares the result slot weir passes to C: its declared type and, for
/// arrays, `buf` (of the declared capacity) as the buffer.
pub(crate) fn result_slot(spec: &FunctionSpec, buf: &mut [f64]) -> RawValue {
    let mut raw = RawValue::zeroed(spec.ret.code());
    if spec.ret == ValueType::F64Array {
        raw.v = RawUnion { array: RawArray { data: buf.as_mut_ptr(), len: buf.len() } };
    }
    raw
}

/// Reads the result a successful call wrote into a slot from
/// [`result_slot`] with the same `buf`.
///
/// # Errors
/// The library broke the contract: an array length above the capacity or
/// a replaced data pointer.
pub(crate) fn read_result(spec: &FunctionSpec, raw: &RawValue, buf: &[f64]) -> Result<Value, String> {
    // SAFETY (all union reads below): the slot was initialised by
    // `result_slot` with every bit defined, and each member is plain data
    // valid for any bit pattern, so reading any member is sound whatever
    // the library wrote; the declared type picks the meaningful one.
    match spec.ret {
        ValueType::F64 => Ok(Value::Float(unsafe { raw.v.f64 })),
        ValueType::I64 => Ok(Value::Int(unsafe { raw.v.i64 })),
        ValueType::Bool => Ok(Value::Bool(unsafe { raw.v.b } != 0)),
        ValueType::F64Array => {
            let arr = unsafe { raw.v.array };
            if !std::ptr::eq(arr.data, buf.as_ptr()) {
                return Err("the library replaced the result buffer (it must write into the one weir provides)".into());
            }
            if arr.len > buf.len() {
                return Err(format!(
                    "the library returned {} values, more than the declared maximum {}",
                    arr.len,
                    buf.len()
                ));
            }
            Ok(Value::array(buf[..arr.len].iter().map(|&f| Value::Float(f)).collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(ty: ValueType, len: Option<usize>) -> ArgSpec {
        ArgSpec { name: "x".into(), ty, len }
    }

    #[test]
    fn numbers_convert_to_the_declared_type() {
        let f = decl(ValueType::F64, None);
        assert_eq!(convert_arg(&Value::Int(3), &f, 1), Ok(Arg::F64(3.0)));
        assert_eq!(convert_arg(&Value::Bool(true), &f, 1), Ok(Arg::F64(1.0)));
        let i = decl(ValueType::I64, None);
        assert_eq!(convert_arg(&Value::Float(4.0), &i, 1), Ok(Arg::I64(4)));
        assert_eq!(
            convert_arg(&Value::Float(4.5), &i, 2),
            Err("argument 2 (x) must be a whole number, got 4.5".into())
        );
        assert!(convert_arg(&Value::Float(1e19), &i, 1).is_err());
        assert_eq!(convert_arg(&Value::str("a"), &i, 1), Err("argument 1 (x) must be an integer, got string".into()));
        let b = decl(ValueType::Bool, None);
        assert!(convert_arg(&Value::Int(1), &b, 1).unwrap_err().starts_with("argument 1 (x) must be a boolean, got"));
    }

    #[test]
    fn arrays_flatten_and_check_their_length() {
        let a = decl(ValueType::F64Array, Some(3));
        let v = Value::array(vec![Value::Int(1), Value::array(vec![Value::Float(2.5), Value::Bool(false)])]);
        assert_eq!(convert_arg(&v, &a, 1), Ok(Arg::F64Array(vec![1.0, 2.5, 0.0])));
        assert_eq!(
            convert_arg(&Value::array(vec![Value::Int(1)]), &a, 1),
            Err("argument 1 (x) must hold 3 numbers, got 1".into())
        );
        let bad = Value::array(vec![Value::Int(1), Value::str("a")]);
        assert_eq!(
            convert_arg(&bad, &decl(ValueType::F64Array, None), 1),
            Err("argument 1 (x) must be an array of numbers, got an array containing string".into())
        );
    }
}
