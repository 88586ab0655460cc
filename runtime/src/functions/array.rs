//! Built-in functions: arrays (eKuiper's `funcs_array.go`, plus
//! `cardinality` from `funcs_misc.go`).
//!
//! Element comparisons use Go's `==` on `interface{}` ([`go_eq`]): an int
//! and a float never match, so `array_position(json_array, 1)` is -1 when
//! the array came from schemaless JSON (floats), exactly as in eKuiper.
//! Indexes and positions are 0-based.

use rand::seq::SliceRandom;

use super::golike::{go_contains, go_eq, go_to_string_all, go_v, has_nil_or_empty, slice_extreme, to_int_strict};
use super::{check_arity, nil_checked, FuncContext, FuncError, FuncResult, FunctionImpl, FunctionKind, Registry};
use crate::value::{Map, Value};

/// Largest array `repeat` and `sequence` build; beyond that eKuiper would
/// exhaust memory, weir reports an error instead.
const MAX_GENERATED: usize = 10_000_000;

fn err_first_not_array() -> FuncError {
    FuncError::new("first argument should be array of interface{}")
}

fn err_second_not_array() -> FuncError {
    FuncError::new("second argument should be array of interface{}")
}

fn err_not_array_element() -> FuncError {
    FuncError::new("array elements should be array")
}

/// The argument as an array, or `err`.
fn as_array(v: &Value, err: fn() -> FuncError) -> Result<&[Value], FuncError> {
    v.as_array().ok_or_else(err)
}

/// Go `.(int)`: weir's integers (SQL literals, bigint columns). Floats are
/// rejected as in Go.
fn go_int(v: &Value, err: &'static str) -> Result<i64, FuncError> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(FuncError::new(err)),
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.scalar("cardinality", 1, Some(1), |_, a| {
        Ok(Value::Int(match &a[0] {
            Value::Array(x) => x.len() as i64,
            _ => 0,
        }))
    });
    r.scalar("array_create", 0, None, |_, a| {
        let v: Vec<Value> = a.iter().filter(|v| !v.is_null()).cloned().collect();
        Ok(if v.is_empty() { Value::Null } else { Value::array(v) })
    });
    r.scalar("array_position", 2, Some(2), |_, a| {
        if a[0].is_null() {
            return Ok(Value::Int(-1));
        }
        let arr = as_array(&a[0], err_first_not_array)?;
        let pos = arr.iter().position(|x| go_eq(x, &a[1]));
        Ok(Value::Int(pos.map_or(-1, |p| p as i64)))
    });
    r.scalar("array_last_position", 2, Some(2), |_, a| {
        if a[0].is_null() {
            return Ok(Value::Int(-1));
        }
        let arr = as_array(&a[0], err_first_not_array)?;
        let pos = arr.iter().rposition(|x| go_eq(x, &a[1]));
        Ok(Value::Int(pos.map_or(-1, |p| p as i64)))
    });
    nil_checked(r, "element_at", 2, Some(2), element_at);
    r.scalar("array_contains", 2, Some(2), |_, a| {
        if a[0].is_null() {
            return Ok(Value::Bool(false));
        }
        let arr = as_array(&a[0], err_first_not_array)?;
        Ok(Value::Bool(go_contains(arr, &a[1])))
    });
    r.scalar("array_remove", 2, Some(2), |_, a| {
        if a[0].is_null() {
            return Ok(Value::Null);
        }
        let arr = as_array(&a[0], err_first_not_array)?;
        Ok(Value::array(arr.iter().filter(|x| !go_eq(x, &a[1])).cloned().collect()))
    });
    r.scalar("array_contains_any", 2, Some(2), |_, a| {
        if a[0].is_null() {
            return Ok(Value::Bool(false));
        }
        let a1 = as_array(&a[0], err_first_not_array)?;
        let a2 = as_array(&a[1], err_second_not_array)?;
        Ok(Value::Bool(a1.iter().any(|x| go_contains(a2, x))))
    });
    nil_checked(r, "array_intersect", 2, Some(2), |a| {
        let a1 = as_array(&a[0], err_first_not_array)?;
        let a2 = as_array(&a[1], err_second_not_array)?;
        let mut out: Vec<Value> = Vec::new();
        for b in a2 {
            if go_contains(a1, b) && !go_contains(&out, b) {
                out.push(b.clone());
            }
        }
        Ok(Value::array(out))
    });
    r.scalar("array_union", 2, Some(2), |_, a| {
        let a1 = match &a[0] {
            Value::Null => &[][..],
            v => as_array(v, err_first_not_array)?,
        };
        let a2 = match &a[1] {
            Value::Null => &[][..],
            v => as_array(v, err_second_not_array)?,
        };
        let mut out: Vec<Value> = Vec::new();
        for v in a1.iter().chain(a2.iter()) {
            if !go_contains(&out, v) {
                out.push(v.clone());
            }
        }
        Ok(Value::array(out))
    });
    r.scalar("array_except", 2, Some(2), |_, a| {
        if a[0].is_null() {
            return Ok(Value::Null);
        }
        let a1 = as_array(&a[0], err_first_not_array)?;
        let a2 = match &a[1] {
            Value::Null => &[][..],
            v => as_array(v, err_second_not_array)?,
        };
        let mut out: Vec<Value> = Vec::new();
        for v in a1 {
            if !go_contains(a2, v) && !go_contains(&out, v) {
                out.push(v.clone());
            }
        }
        Ok(Value::array(out))
    });
    nil_checked(r, "array_max", 1, Some(1), |a| slice_extreme(as_array(&a[0], err_first_not_array)?.iter(), true));
    nil_checked(r, "array_min", 1, Some(1), |a| slice_extreme(as_array(&a[0], err_first_not_array)?.iter(), false));
    nil_checked(r, "repeat", 2, Some(2), |a| {
        let n = go_int(&a[1], "second argument should be int")?;
        let n = usize::try_from(n).map_err(|_| FuncError::new("repeat: count must not be negative"))?;
        if n > MAX_GENERATED {
            return Err(FuncError::new(format!("repeat: count {n} is too large")));
        }
        Ok(Value::array(vec![a[0].clone(); n]))
    });
    nil_checked(r, "sequence", 2, Some(3), sequence);
    r.scalar("array_cardinality", 1, Some(1), |_, a| {
        if has_nil_or_empty(a) {
            return Ok(Value::Int(0));
        }
        let arr = as_array(&a[0], err_first_not_array)?;
        Ok(Value::Int(arr.iter().filter(|v| !v.is_null()).count() as i64))
    });
    nil_checked(r, "array_flatten", 1, Some(1), |a| {
        let arr = as_array(&a[0], err_first_not_array)?;
        let mut out = Vec::with_capacity(arr.len());
        for v in arr {
            match v {
                Value::Array(inner) => out.extend(inner.iter().cloned()),
                other => out.push(other.clone()),
            }
        }
        Ok(Value::array(out))
    });
    nil_checked(r, "array_distinct", 1, Some(1), |a| {
        let arr = as_array(&a[0], err_first_not_array)?;
        let mut out: Vec<Value> = Vec::with_capacity(arr.len());
        for v in arr {
            // Go map keys: only hashable values are deduplicated.
            let hashable = matches!(
                v,
                Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::String(_) | Value::Datetime(_)
            );
            if !hashable || !go_contains(&out, v) {
                out.push(v.clone());
            }
        }
        Ok(Value::array(out))
    });
    r.scalar("array_map", 2, Some(2), |ctx, a| {
        if has_nil_or_empty(a) {
            return Ok(Value::Null);
        }
        array_map(ctx, a)
    });
    nil_checked(r, "array_join", 2, Some(3), |a| {
        let arr = as_array(&a[0], err_first_not_array)?;
        let delim = a[1].as_str().ok_or_else(|| FuncError::new("second argument should be string"))?;
        let null_repl = match a.get(2) {
            Some(v) => v.as_str().ok_or_else(|| FuncError::new("third argument should be string"))?,
            None => "",
        };
        let mut parts: Vec<String> = Vec::with_capacity(arr.len());
        for v in arr {
            if v.is_null() {
                if !null_repl.is_empty() {
                    parts.push(null_repl.to_string());
                }
            } else {
                parts.push(go_to_string_all(v));
            }
        }
        Ok(Value::str(parts.join(delim)))
    });
    nil_checked(r, "array_shuffle", 1, Some(1), |a| {
        let mut v = as_array(&a[0], err_first_not_array)?.to_vec();
        v.shuffle(&mut rand::thread_rng());
        Ok(Value::array(v))
    });
    nil_checked(r, "array_sort", 1, Some(1), |a| {
        let arr = a[0].as_array().ok_or_else(err_not_array_element)?;
        // eKuiper sorts by the `%v` text of the elements.
        let mut keyed: Vec<(String, Value)> = arr.iter().map(|v| (go_v(v), v.clone())).collect();
        keyed.sort_by(|x, y| x.0.cmp(&y.0));
        Ok(Value::array(keyed.into_iter().map(|(_, v)| v).collect()))
    });
    r.scalar("array_concat", 1, None, |_, a| {
        let mut out = Vec::new();
        for v in a {
            match v {
                Value::Null => {}
                Value::Array(x) => out.extend(x.iter().cloned()),
                _ => return Err(err_not_array_element()),
            }
        }
        Ok(if out.is_empty() { Value::Null } else { Value::array(out) })
    });
    nil_checked(r, "kvpair_array_to_obj", 1, Some(1), |a| {
        let arr = as_array(&a[0], err_first_not_array)?;
        let mut obj = Map::new();
        for item in arr {
            let pair = item.as_map().ok_or_else(|| FuncError::new("array item should be map[string]interface{}"))?;
            match (pair.len(), pair.get("key"), pair.get("value")) {
                (2, Some(Value::String(k)), Some(v)) => {
                    obj.insert(k.to_string(), v.clone());
                }
                _ => return Err(FuncError::new("array item should be key-value pair")),
            }
        }
        Ok(Value::map(obj))
    });
}

fn element_at(a: &[Value]) -> FuncResult {
    match &a[0] {
        Value::Array(arr) => {
            let index = to_int_strict(&a[1])?;
            let len = arr.len() as i64;
            if index >= len || index.checked_neg().is_none_or(|n| n > len) {
                return Err(FuncError::new("index out of range"));
            }
            let i = if index >= 0 { index } else { len + index };
            usize::try_from(i)
                .ok()
                .and_then(|i| arr.get(i))
                .cloned()
                .ok_or_else(|| FuncError::new("index out of range"))
        }
        Value::Map(m) => {
            let key = a[1].as_str().ok_or_else(|| FuncError::new("second argument should be string"))?;
            Ok(m.get(key).cloned().unwrap_or(Value::Null))
        }
        _ => Err(FuncError::new("first argument should be []interface{} or map[string]interface{}")),
    }
}

fn sequence(a: &[Value]) -> FuncResult {
    let start = go_int(&a[0], "first argument should be int")?;
    let stop = go_int(&a[1], "second argument should be int")?;
    let step = match a.get(2) {
        Some(v) => {
            let s = go_int(v, "third argument should be int")?;
            if s == 0 {
                return Err(FuncError::new("invalid step: should not be zero"));
            }
            s
        }
        None if start < stop => 1,
        None => -1,
    };
    let overflow = || FuncError::new("sequence: range overflows");
    let n = stop
        .checked_sub(start)
        .and_then(|d| d.checked_div(step))
        .and_then(|q| q.checked_add(1))
        .ok_or_else(overflow)?;
    let n = usize::try_from(n)
        .map_err(|_| FuncError::new(format!("sequence: empty range from {start} to {stop} by {step}")))?;
    if n > MAX_GENERATED {
        return Err(FuncError::new(format!("sequence: {n} elements is too many")));
    }
    let mut out = Vec::with_capacity(n);
    let mut cur = start;
    for i in 0..n {
        out.push(Value::Int(cur));
        if i + 1 < n {
            cur = cur.checked_add(step).ok_or_else(overflow)?;
        }
    }
    Ok(Value::array(out))
}

fn array_map(ctx: &FuncContext<'_>, a: &[Value]) -> FuncResult {
    let name = a[0].as_str().ok_or_else(|| FuncError::new("first argument should be string"))?;
    let arr = as_array(&a[1], err_second_not_array)?;
    let mut out = Vec::with_capacity(arr.len());
    for v in arr {
        let def = Registry::builtins()
            .get(name)
            .ok_or_else(|| FuncError::new(format!("unknown built-in function: {name}.")))?;
        let f = match (&def.kind, &def.imp) {
            (FunctionKind::Scalar, FunctionImpl::Scalar(f)) => f,
            _ => return Err(FuncError::new("first argument should be a scalar function.")),
        };
        if check_arity(def, 1).is_err() {
            return Err(FuncError::new(format!("validate {name} arguments failed")));
        }
        out.push(f(ctx, std::slice::from_ref(v))?);
    }
    Ok(Value::array(out))
}

#[cfg(test)]
#[path = "array_tests.rs"]
mod tests;
