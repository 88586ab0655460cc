//! Go semantics that eKuiper's functions inherit from the language, in one
//! place for every function file: `==` on `interface{}` values, `fmt`'s `%v`
//! and `%T`, the `cast` package's conversions (`ToStringAlways`,
//! `ToString(CONVERT_ALL)`, `ToInt`/`ToInt64`/`ToFloat64` and their error
//! text), `returnNilIfHasAnyNil`, and the "first valid argument decides the
//! type" max/min of `common_array_funcs.go`.
//!
//! Floats print with [`format_float_v`] and datetimes with
//! `time.Time.String()` ([`go_time_string`]); `Value::to_text` is a
//! different rendering (JSON containers, RFC 3339 datetimes) and is not
//! Go's `%v`.

use std::fmt::Write as _;

use super::golayout::go_time_string;
use super::FuncError;
use crate::value::{format_float_v, Value};

/// Go's `==` on two `interface{}` values (also `reflect.DeepEqual` for the
/// values weir has): same dynamic type and equal value, so `int64(1)` and
/// `float64(1)` differ. Arrays and maps compare deeply (Go would panic).
pub(crate) fn go_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Datetime(x), Value::Datetime(y)) => x == y && x.offset() == y.offset(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| go_eq(p, q)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|((ka, va), (kb, vb))| ka == kb && go_eq(va, vb))
        }
        _ => false,
    }
}

/// True if `v` equals (Go `==`) any element of `set`.
pub(crate) fn go_contains(set: &[Value], v: &Value) -> bool {
    set.iter().any(|x| go_eq(x, v))
}

/// Go's `%T` of the value as eKuiper holds it.
pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int64",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::Bytes(_) => "[]uint8",
        Value::Datetime(_) => "time.Time",
        Value::Array(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
    }
}

/// Go's `%v` of the value (`<nil>`, `[1 2]`, `map[a:1]`, floats as
/// [`format_float_v`], datetimes as `time.Time.String()`).
pub(crate) fn go_v(v: &Value) -> String {
    let mut out = String::new();
    write_go_v(v, &mut out);
    out
}

/// `cast.ToStringAlways`: Go's `%v`, but null is the empty string.
pub(crate) fn go_str(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        v => go_v(v),
    }
}

fn write_go_v(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&format_float_v(*f)),
        Value::String(s) => out.push_str(s),
        Value::Bytes(b) => {
            out.push('[');
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{x}");
            }
            out.push(']');
        }
        Value::Datetime(t) => out.push_str(&go_time_string(t)),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_v(x, out);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go_v(x, out);
            }
            out.push(']');
        }
    }
}

/// `%T(%v)` as eKuiper's error messages print a value.
pub(crate) fn go_typed(v: &Value) -> String {
    format!("{}({})", go_type(v), go_v(v))
}

/// Go's `cannot convert T(v) to X` message of the `cast` package.
pub(crate) fn cannot_convert(v: &Value, to: &str) -> FuncError {
    FuncError::new(format!("cannot convert {} to {to}", go_typed(v)))
}

/// `cast.ToString(v, cast.CONVERT_ALL)`: floats without exponent
/// (`strconv.FormatFloat(f, 'f', -1, 64)`), null as the empty string,
/// datetimes as `time.Time.String()`, containers with `%v`.
pub(crate) fn go_to_string_all(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Float(f) => {
            if f.is_nan() {
                "NaN".into()
            } else if f.is_infinite() {
                if *f > 0.0 { "+Inf" } else { "-Inf" }.into()
            } else {
                format!("{f}")
            }
        }
        _ => go_v(v),
    }
}

/// eKuiper's `returnNilIfHasAnyNil` check: a null argument or an empty
/// array or map argument.
pub(crate) fn has_nil_or_empty(args: &[Value]) -> bool {
    args.iter().any(|a| match a {
        Value::Null => true,
        Value::Array(x) => x.is_empty(),
        Value::Map(x) => x.is_empty(),
        _ => false,
    })
}

/// Go's `int64(f)` on amd64: out-of-range and NaN give `i64::MIN`.
pub(crate) fn go_f64_to_i64(f: f64) -> i64 {
    // 2^63, exactly representable.
    const LIM: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIM..LIM).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

/// `cast.ToInt(v, STRICT)`: an integer or an integral float.
pub(crate) fn to_int_strict(v: &Value) -> Result<i64, FuncError> {
    v.as_i64().ok_or_else(|| cannot_convert(v, "int"))
}

/// `cast.ToInt64(v, CONVERT_SAMEKIND)`: any number, floats converted as
/// Go's `int64(f)` does ([`go_f64_to_i64`]).
pub(crate) fn to_int_samekind(v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) => Ok(go_f64_to_i64(*f)),
        _ => Err(cannot_convert(v, "int")),
    }
}

/// `cast.ToFloat64(v, CONVERT_SAMEKIND)`: any number.
pub(crate) fn to_float_samekind(v: &Value) -> Result<f64, FuncError> {
    v.as_f64().ok_or_else(|| cannot_convert(v, "float64"))
}

/// The max (`want_max`) or min of the non-null values, as eKuiper's
/// `max`/`min` helpers: the first non-null value decides the kind (int64,
/// float64 or string); other values must be of the same kind (floats are
/// truncated when the kind is int). Null for no values.
pub(crate) fn slice_extreme<'a>(
    values: impl Iterator<Item = &'a Value> + Clone,
    want_max: bool,
) -> Result<Value, FuncError> {
    let first = match values.clone().find(|v| !v.is_null()) {
        Some(v) => v,
        None => return Ok(Value::Null),
    };
    match first {
        Value::Int(_) => {
            let mut best: Option<i64> = None;
            for v in values.filter(|v| !v.is_null()) {
                let i = to_int_samekind(v)
                    .map_err(|_| FuncError::new(format!("requires int64 but found {}", go_typed(v))))?;
                best = Some(match best {
                    Some(b) if (want_max && b >= i) || (!want_max && b <= i) => b,
                    _ => i,
                });
            }
            Ok(best.map(Value::Int).unwrap_or(Value::Null))
        }
        Value::Float(_) => {
            let mut best: Option<f64> = None;
            for v in values.filter(|v| !v.is_null()) {
                let f = match v {
                    Value::Float(f) => *f,
                    _ => return Err(FuncError::new(format!("requires float64 but found {}", go_typed(v)))),
                };
                // Go replaces only on a strict improvement (NaN never does).
                best = Some(match best {
                    Some(b) => {
                        let better = if want_max { b < f } else { b > f };
                        if better {
                            f
                        } else {
                            b
                        }
                    }
                    None => f,
                });
            }
            Ok(best.map(Value::Float).unwrap_or(Value::Null))
        }
        Value::String(_) => {
            let mut best: Option<&str> = None;
            for v in values.filter(|v| !v.is_null()) {
                let s =
                    v.as_str().ok_or_else(|| FuncError::new(format!("requires string but found {}", go_typed(v))))?;
                best = Some(match best {
                    Some(b) if (want_max && b >= s) || (!want_max && b <= s) => b,
                    _ => s,
                });
            }
            Ok(best.map(Value::str).unwrap_or(Value::Null))
        }
        other => Err(FuncError::new(format!("found invalid arg {}", go_typed(other)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_eq_is_type_strict() {
        assert!(!go_eq(&Value::Int(1), &Value::Float(1.0)));
        assert!(go_eq(&Value::Null, &Value::Null));
        assert!(go_eq(&Value::array(vec![Value::Int(1)]), &Value::array(vec![Value::Int(1)])));
    }

    #[test]
    fn sprint_like_go() {
        let mut m = crate::value::Map::new();
        m.insert("b".into(), Value::Int(2));
        m.insert("a".into(), Value::array(vec![Value::Int(1), Value::str("x")]));
        assert_eq!(go_v(&Value::map(m)), "map[a:[1 x] b:2]");
        assert_eq!(go_v(&Value::Null), "<nil>");
        assert_eq!(go_typed(&Value::str("4")), "string(4)");
        assert_eq!(go_to_string_all(&Value::Float(1e21)), "1000000000000000000000");
    }

    #[test]
    fn extremes() {
        let v = [Value::Int(1), Value::Float(4.1), Value::Null, Value::Int(2)];
        assert_eq!(slice_extreme(v.iter(), true).unwrap(), Value::Int(4));
        assert_eq!(slice_extreme(v.iter(), false).unwrap(), Value::Int(1));
        let v = [Value::Float(1.5), Value::Int(2)];
        assert_eq!(slice_extreme(v.iter(), true).unwrap_err().0, "requires float64 but found int64(2)");
        let v = [Value::Bool(true)];
        assert_eq!(slice_extreme(v.iter(), true).unwrap_err().0, "found invalid arg bool(true)");
        assert_eq!(slice_extreme([].iter(), true).unwrap(), Value::Null);
    }
}
