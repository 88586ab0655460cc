//! Template functions: Go's built-ins, eKuiper's `json`/`base64`, and the
//! sprig functions sink templates commonly use.
//!
//! Comparisons are more lenient than Go's: `eq .temperature 30` compares a
//! JSON float with an integer literal numerically (Go reports
//! "incompatible types for comparison"), so every template that works in
//! eKuiper works the same here.

use std::cmp::Ordering;

use base64::Engine as _;
use weir_runtime::{Map, Value};

use super::exec::{go_sprint, go_type, truth};
use super::printf::sprintf;

const NAMES: &[&str] = &[
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "json",
    "toJson",
    "toPrettyJson",
    "toString",
    "base64",
    "b64enc",
    "b64dec",
    "upper",
    "lower",
    "title",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "trimAll",
    "replace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "repeat",
    "quote",
    "squote",
    "default",
    "empty",
    "coalesce",
    "ternary",
    "int",
    "int64",
    "float64",
    "atoi",
    "add",
    "add1",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "addf",
    "subf",
    "mulf",
    "divf",
    "floor",
    "ceil",
    "round",
    "join",
    "split",
    "list",
    "dict",
    "first",
    "last",
    "keys",
    "hasKey",
    "get",
    "slice",
];

/// Whether `name` is a known function.
pub(super) fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

type Args = Vec<Option<Value>>;

fn val(a: &Option<Value>) -> Value {
    a.clone().unwrap_or(Value::Null)
}

fn want(args: &Args, n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("wrong number of args: want {n} got {}", args.len()));
    }
    Ok(())
}

fn num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::String(s) => s.trim().parse().map_err(|_| format!("cannot convert {s:?} to a number")),
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        Value::Null => Ok(0.0),
        other => Err(format!("cannot convert {} to a number", go_type(other))),
    }
}

/// sprig's `toInt64`: floats truncate, strings parse, others are 0.
fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::String(s) => {
            s.trim().parse::<i64>().ok().or_else(|| s.trim().parse::<f64>().ok().map(|f| f as i64)).unwrap_or(0)
        }
        Value::Bool(b) => i64::from(*b),
        _ => 0,
    }
}

fn text(v: &Value) -> String {
    go_sprint(v)
}

fn compare(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_))
        | (Value::String(_), Value::String(_))
        | (Value::Datetime(_), Value::Datetime(_)) => a.compare(b).ok_or_else(|| "incomparable values".to_string()),
        _ => Err(format!("incompatible types for comparison: {} and {}", go_type(a), go_type(b))),
    }
}

fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Null, Value::Null) => Ok(true),
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Array(_) | Value::Map(_), _) | (_, Value::Array(_) | Value::Map(_)) => {
            Err("non-comparable types".to_string())
        }
        _ => compare(a, b).map(|o| o == Ordering::Equal),
    }
}

/// Calls function `name` (known to [`exists`]) with evaluated arguments.
pub(super) fn call(name: &str, args: Args) -> Result<Option<Value>, String> {
    let v = match name {
        "not" => {
            want(&args, 1)?;
            Value::Bool(!truth(&args[0]))
        }
        "eq" => {
            if args.len() < 2 {
                return Err("missing argument for comparison".into());
            }
            let first = val(&args[0]);
            let mut hit = false;
            for b in &args[1..] {
                if equal(&first, &val(b))? {
                    hit = true;
                    break;
                }
            }
            Value::Bool(hit)
        }
        "ne" => {
            want(&args, 2)?;
            Value::Bool(!equal(&val(&args[0]), &val(&args[1]))?)
        }
        "lt" | "le" | "gt" | "ge" => {
            want(&args, 2)?;
            let o = compare(&val(&args[0]), &val(&args[1]))?;
            Value::Bool(match name {
                "lt" => o == Ordering::Less,
                "le" => o != Ordering::Greater,
                "gt" => o == Ordering::Greater,
                _ => o != Ordering::Less,
            })
        }
        "len" => {
            want(&args, 1)?;
            Value::Int(match val(&args[0]) {
                Value::String(s) => s.len(),
                Value::Bytes(b) => b.len(),
                Value::Array(a) => a.len(),
                Value::Map(m) => m.len(),
                other => return Err(format!("len of type {}", go_type(&other))),
            } as i64)
        }
        "index" => {
            let mut cur = args.first().ok_or("index of untyped nil")?.clone();
            for k in &args[1..] {
                cur = match (cur, val(k)) {
                    (Some(Value::Array(a)), k @ (Value::Int(_) | Value::Float(_))) => {
                        let i = int(&k);
                        if i < 0 || i as usize >= a.len() {
                            return Err(format!("index out of range: {i}"));
                        }
                        Some(a[i as usize].clone())
                    }
                    // Go yields the zero value (a nil interface) for a missing key.
                    (Some(Value::Map(m)), Value::String(k)) => Some(m.get(&*k).cloned().unwrap_or(Value::Null)),
                    (None | Some(Value::Null), _) => return Err("index of untyped nil".into()),
                    (Some(c), k) => {
                        return Err(format!("can't index item of type {} with {}", go_type(&c), go_type(&k)))
                    }
                };
            }
            return Ok(cur);
        }
        "slice" => {
            let s = val(args.first().ok_or("slice of untyped nil")?);
            let idx: Vec<i64> = args[1..].iter().map(|a| int(&val(a))).collect();
            match s {
                Value::Array(a) => {
                    let from = idx.first().copied().unwrap_or(0).clamp(0, a.len() as i64) as usize;
                    let to = idx.get(1).copied().unwrap_or(a.len() as i64).clamp(from as i64, a.len() as i64) as usize;
                    Value::array(a[from..to].to_vec())
                }
                Value::String(st) => {
                    let from = idx.first().copied().unwrap_or(0).clamp(0, st.len() as i64) as usize;
                    let to =
                        idx.get(1).copied().unwrap_or(st.len() as i64).clamp(from as i64, st.len() as i64) as usize;
                    Value::str(st.get(from..to).ok_or("slice index inside a character")?)
                }
                other => return Err(format!("can't slice item of type {}", go_type(&other))),
            }
        }
        "print" => Value::str(go_print_args(&args, false)),
        "println" => Value::str(go_print_args(&args, true)),
        "printf" => {
            let f = text(&val(args.first().ok_or("missing format")?));
            Value::str(sprintf(&f, &args[1..]))
        }
        "json" | "toJson" => {
            want(&args, 1)?;
            Value::str(val(&args[0]).to_json())
        }
        "toPrettyJson" => {
            want(&args, 1)?;
            Value::str(serde_json::to_string_pretty(&val(&args[0]).to_serde_json()).unwrap_or_default())
        }
        "toString" => {
            want(&args, 1)?;
            Value::str(text(&val(&args[0])))
        }
        "base64" => {
            want(&args, 1)?;
            let raw = match val(&args[0]) {
                Value::Null => return Err("based64 error for nil".into()),
                Value::Float(f) => float_f(f),
                v @ Value::Map(_) => v.to_json(),
                Value::Array(_) => return Err("Unsupported data type slice for base64 function.".into()),
                v => text(&v),
            };
            Value::str(base64::engine::general_purpose::STANDARD.encode(raw))
        }
        "b64enc" => {
            want(&args, 1)?;
            Value::str(base64::engine::general_purpose::STANDARD.encode(text(&val(&args[0]))))
        }
        "b64dec" => {
            want(&args, 1)?;
            let s = text(&val(&args[0]));
            match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                Ok(b) => Value::str(String::from_utf8_lossy(&b)),
                Err(e) => Value::str(e.to_string()),
            }
        }
        "upper" | "lower" | "title" | "trim" => {
            want(&args, 1)?;
            let s = text(&val(&args[0]));
            Value::str(match name {
                "upper" => s.to_uppercase(),
                "lower" => s.to_lowercase(),
                "trim" => s.trim().to_string(),
                _ => title(&s),
            })
        }
        "trimPrefix" | "trimSuffix" | "trimAll" | "contains" | "hasPrefix" | "hasSuffix" => {
            // sprig takes the operand last so that it pipes: `.s | trimPrefix "x"`.
            want(&args, 2)?;
            let (a, s) = (text(&val(&args[0])), text(&val(&args[1])));
            match name {
                "trimPrefix" => Value::str(s.strip_prefix(a.as_str()).unwrap_or(&s)),
                "trimSuffix" => Value::str(s.strip_suffix(a.as_str()).unwrap_or(&s)),
                "trimAll" => Value::str(s.trim_matches(|c| a.contains(c))),
                "contains" => Value::Bool(s.contains(a.as_str())),
                "hasPrefix" => Value::Bool(s.starts_with(a.as_str())),
                _ => Value::Bool(s.ends_with(a.as_str())),
            }
        }
        "replace" => {
            want(&args, 3)?;
            let (old, new, s) = (text(&val(&args[0])), text(&val(&args[1])), text(&val(&args[2])));
            Value::str(s.replace(&old, &new))
        }
        "repeat" => {
            want(&args, 2)?;
            Value::str(text(&val(&args[1])).repeat(int(&val(&args[0])).max(0) as usize))
        }
        "quote" | "squote" => {
            let q = if name == "quote" { '"' } else { '\'' };
            let parts: Vec<String> = args
                .iter()
                .filter_map(|a| a.as_ref())
                .filter(|v| !v.is_null())
                .map(|v| format!("{q}{}{q}", text(v)))
                .collect();
            Value::str(parts.join(" "))
        }
        "default" => {
            want(&args, 2)?;
            if truth(&args[1]) {
                val(&args[1])
            } else {
                val(&args[0])
            }
        }
        "empty" => {
            want(&args, 1)?;
            Value::Bool(!truth(&args[0]))
        }
        "coalesce" => args.iter().find(|a| truth(a)).map(val).unwrap_or(Value::Null),
        "ternary" => {
            want(&args, 3)?;
            if truth(&args[2]) {
                val(&args[0])
            } else {
                val(&args[1])
            }
        }
        "int" | "int64" | "atoi" => {
            want(&args, 1)?;
            Value::Int(int(&val(&args[0])))
        }
        "float64" => {
            want(&args, 1)?;
            Value::Float(num(&val(&args[0])).unwrap_or(0.0))
        }
        "add" | "mul" => {
            let mut acc = if name == "add" { 0i64 } else { 1 };
            for a in &args {
                let x = int(&val(a));
                acc = if name == "add" { acc.wrapping_add(x) } else { acc.wrapping_mul(x) };
            }
            Value::Int(acc)
        }
        "add1" => {
            want(&args, 1)?;
            Value::Int(int(&val(&args[0])).wrapping_add(1))
        }
        "sub" | "div" | "mod" => {
            want(&args, 2)?;
            let (a, b) = (int(&val(&args[0])), int(&val(&args[1])));
            Value::Int(match name {
                "sub" => a.wrapping_sub(b),
                _ if b == 0 => return Err("integer divide by zero".into()),
                "div" => a.wrapping_div(b),
                _ => a.wrapping_rem(b),
            })
        }
        "max" | "min" => {
            let mut it = args.iter().map(|a| int(&val(a)));
            let first = it.next().ok_or("wrong number of args")?;
            Value::Int(it.fold(first, |m, x| if (name == "max") == (x > m) { x } else { m }))
        }
        "addf" | "mulf" => {
            let mut acc = if name == "addf" { 0.0 } else { 1.0 };
            for a in &args {
                let x = num(&val(a))?;
                acc = if name == "addf" { acc + x } else { acc * x };
            }
            Value::Float(acc)
        }
        "subf" | "divf" => {
            let mut it = args.iter().map(|a| num(&val(a)));
            let mut acc = it.next().ok_or("wrong number of args")??;
            for x in it {
                acc = if name == "subf" { acc - x? } else { acc / x? };
            }
            Value::Float(acc)
        }
        "floor" | "ceil" => {
            want(&args, 1)?;
            let x = num(&val(&args[0]))?;
            Value::Float(if name == "floor" { x.floor() } else { x.ceil() })
        }
        "round" => {
            if args.is_empty() || args.len() > 3 {
                return Err("wrong number of args".into());
            }
            let x = num(&val(&args[0]))?;
            let p = args.get(1).map(|a| int(&val(a))).unwrap_or(0) as i32;
            let m = 10f64.powi(p);
            Value::Float((x * m).round() / m)
        }
        "join" => {
            want(&args, 2)?;
            let sep = text(&val(&args[0]));
            match val(&args[1]) {
                Value::Array(a) => Value::str(a.iter().map(text).collect::<Vec<_>>().join(&sep)),
                v => Value::str(text(&v)),
            }
        }
        "split" => {
            want(&args, 2)?;
            let (sep, s) = (text(&val(&args[0])), text(&val(&args[1])));
            let mut m = Map::new();
            for (i, part) in s.split(sep.as_str()).enumerate() {
                m.insert(format!("_{i}"), Value::str(part));
            }
            Value::map(m)
        }
        "list" => Value::array(args.iter().map(val).collect()),
        "dict" => {
            let mut m = Map::new();
            for pair in args.chunks(2) {
                m.insert(text(&val(&pair[0])), pair.get(1).map(val).unwrap_or(Value::Null));
            }
            Value::map(m)
        }
        "first" | "last" => {
            want(&args, 1)?;
            match val(&args[0]) {
                Value::Array(a) => (if name == "first" { a.first() } else { a.last() }).cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            }
        }
        "keys" => Value::array(
            args.iter()
                .filter_map(|a| {
                    a.as_ref().and_then(|v| v.as_map()).map(|m| m.keys().map(Value::str).collect::<Vec<_>>())
                })
                .flatten()
                .collect(),
        ),
        "hasKey" | "get" => {
            want(&args, 2)?;
            let k = text(&val(&args[1]));
            let m = val(&args[0]);
            let found = m.as_map().and_then(|m| m.get(&k)).cloned();
            if name == "hasKey" {
                Value::Bool(found.is_some())
            } else {
                found.unwrap_or_else(|| Value::str(""))
            }
        }
        other => return Err(format!("function {other:?} not defined")),
    };
    Ok(Some(v))
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`: shortest digits, no exponent
/// (Rust's `Display` for floats).
fn float_f(f: f64) -> String {
    format!("{f}")
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    out
}

/// `fmt.Sprint` / `fmt.Sprintln`: Sprint puts spaces between operands when
/// neither is a string; Sprintln always does and ends with a newline.
fn go_print_args(args: &Args, ln: bool) -> String {
    let mut out = String::new();
    let mut prev_string = true;
    for (i, a) in args.iter().enumerate() {
        let v = val(a);
        let is_string = matches!(v, Value::String(_));
        if i > 0 && (ln || (!is_string && !prev_string)) {
            out.push(' ');
        }
        match a {
            None => out.push_str("<nil>"),
            Some(v) => out.push_str(&text(v)),
        }
        prev_string = is_string;
    }
    if ln {
        out.push('\n');
    }
    out
}
