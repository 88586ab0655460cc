//! Built-in functions: strings (eKuiper `funcs_str.go`).
//!
//! eKuiper converts most string arguments with `cast.ToStringAlways`, i.e.
//! Go's `%v`: numbers, booleans, arrays and maps are rendered rather than
//! rejected. [`go_str`] reproduces that rendering and is shared by the other
//! function families.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::Regex;
use weir_planner::ArgHint;

use super::{arg, FuncContext, FuncError, FuncResult, Registry};
use crate::value::Value;

/// Renders a value as Go's `fmt.Sprintf("%v", v)` does; null is the empty
/// string (`cast.ToStringAlways`).
pub(crate) fn go_str(v: &Value) -> String {
    let mut out = String::new();
    write_go_v(v, &mut out, true);
    out
}

/// Go's `%v` of a value as it appears in error messages (`<nil>` for null).
pub(crate) fn go_v(v: &Value) -> String {
    let mut out = String::new();
    write_go_v(v, &mut out, false);
    out
}

fn write_go_v(v: &Value, out: &mut String, top_nil_empty: bool) {
    match v {
        Value::Null => {
            if !top_nil_empty {
                out.push_str("<nil>");
            }
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&go_float_v(*f)),
        Value::String(s) => out.push_str(s),
        Value::Bytes(b) => {
            out.push('[');
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&x.to_string());
            }
            out.push(']');
        }
        Value::Datetime(t) => out.push_str(&super::datetime::format::go_time_string(t)),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_v(x, out, false);
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
                write_go_v(x, out, false);
            }
            out.push(']');
        }
    }
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): the
/// shortest round-trip digits, in exponent form when the decimal exponent
/// is below -4 or at least 6 (`1e+06`, `1.5e-05`, `123456`).
pub(crate) fn go_float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest round-trip digits and decimal exponent.
    let e = format!("{:e}", f.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let mut m = String::new();
        m.push_str(&digits[..1]);
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let (es, ev) = if exp < 0 { ('-', -exp) } else { ('+', exp) };
        return format!("{sign}{m}e{es}{ev:02}");
    }
    format!("{sign}{}", format!("{f}").trim_start_matches('-'))
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

/// Go's `cannot convert T(v) to X` message of the `cast` package.
pub(crate) fn cannot_convert(v: &Value, to: &str) -> FuncError {
    FuncError::new(format!(
        "cannot convert {}({}) to {to}",
        go_type(v),
        go_v(v)
    ))
}

/// eKuiper's `returnNilIfHasAnyNil` test: a null argument, or an empty
/// array or map, short-circuits the call.
pub(crate) fn nilish(args: &[Value]) -> bool {
    args.iter().any(|a| match a {
        Value::Null => true,
        Value::Array(x) => x.is_empty(),
        Value::Map(x) => x.is_empty(),
        _ => false,
    })
}

/// `cast.ToInt(v, STRICT)`: an integer or an integral float.
pub(crate) fn to_int_strict(v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 && f.is_finite() => Ok(*f as i64),
        _ => Err(cannot_convert(v, "int")),
    }
}

/// `cast.ToInt(v, CONVERT_SAMEKIND)`: any number, floats truncated.
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

/// Kinds of literal a plan-time validator looks at (eKuiper's `ast.Is*Arg`).
pub(crate) fn lit_is_str(h: &ArgHint) -> bool {
    matches!(h, ArgHint::Literal(serde_json::Value::String(_)))
}

/// A numeric literal (integer or float).
pub(crate) fn lit_is_num(h: &ArgHint) -> bool {
    matches!(h, ArgHint::Literal(serde_json::Value::Number(_)))
}

/// A float literal.
pub(crate) fn lit_is_float(h: &ArgHint) -> bool {
    matches!(h, ArgHint::Literal(serde_json::Value::Number(n)) if !n.is_i64() && !n.is_u64())
}

/// A boolean literal.
pub(crate) fn lit_is_bool(h: &ArgHint) -> bool {
    matches!(h, ArgHint::Literal(serde_json::Value::Bool(_)))
}

/// eKuiper's `ProduceErrInfo`.
pub(crate) fn expect_type(i: usize, what: &str) -> String {
    format!("Expect {what} type for parameter {}", i + 1)
}

/// Validator: every argument must not be a number or boolean literal.
pub(crate) fn validate_strs(args: &[ArgHint]) -> Result<(), String> {
    for (i, a) in args.iter().enumerate() {
        if lit_is_num(a) || lit_is_bool(a) {
            return Err(expect_type(i, "string"));
        }
    }
    Ok(())
}

fn validate_str_int(args: &[ArgHint]) -> Result<(), String> {
    if let Some(a) = args.first() {
        if lit_is_num(a) || lit_is_bool(a) {
            return Err(expect_type(0, "string"));
        }
    }
    for (i, a) in args.iter().enumerate().skip(1) {
        if lit_is_float(a) || lit_is_bool(a) || lit_is_str(a) {
            return Err(expect_type(i, "int"));
        }
    }
    Ok(())
}

fn int_lit(h: Option<&ArgHint>) -> Option<i64> {
    match h {
        Some(ArgHint::Literal(serde_json::Value::Number(n))) => n.as_i64(),
        _ => None,
    }
}

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

/// Compiles a pattern (Go RE2 syntax), with a small per-thread cache.
pub(crate) fn cached_regex(pattern: &str) -> Result<Regex, FuncError> {
    REGEX_CACHE.with(|c| {
        if let Some(r) = c.borrow().get(pattern) {
            return Ok(r.clone());
        }
        let r = Regex::new(pattern)
            .map_err(|e| FuncError::new(format!("error parsing regexp: {e}")))?;
        let mut c = c.borrow_mut();
        if c.len() >= 64 {
            c.clear();
        }
        c.insert(pattern.to_string(), r.clone());
        Ok(r)
    })
}

/// Largest padding `lpad`/`rpad` will build (Go would try to allocate).
const MAX_PAD: i64 = 64 * 1024 * 1024;

fn pad_count(func: &str, v: &Value) -> Result<usize, FuncError> {
    let n = to_int_strict(v)?;
    if n < 0 {
        return Err(FuncError::new(format!("{func}: negative pad count {n}")));
    }
    if n > MAX_PAD {
        return Err(FuncError::new(format!("{func}: pad count {n} too large")));
    }
    Ok(n as usize)
}

fn one_str(
    r: &mut Registry,
    name: &'static str,
    f: impl Fn(&str) -> Value + Send + Sync + 'static,
) {
    r.scalar(
        name,
        1,
        Some(1),
        move |_: &FuncContext<'_>, args: &[Value]| {
            if nilish(args) {
                return Ok(Value::Null);
            }
            Ok(f(&go_str(arg(name, args, 0)?)))
        },
    );
    r.set_validate(name, validate_strs);
}

/// Registers a scalar whose implementation may index its first `min`
/// arguments: a call with fewer (which the planner rejects anyway) gets an
/// arity error instead of a panic.
pub(crate) fn def(
    r: &mut Registry,
    name: &'static str,
    min: usize,
    max: Option<usize>,
    f: impl Fn(&FuncContext<'_>, &[Value]) -> FuncResult + Send + Sync + 'static,
) {
    r.scalar(
        name,
        min,
        max,
        move |ctx: &FuncContext<'_>, args: &[Value]| {
            if args.len() < min || max.is_some_and(|m| args.len() > m) {
                return Err(FuncError::new(format!(
                    "{name}: wrong number of arguments ({})",
                    args.len()
                )));
            }
            f(ctx, args)
        },
    );
}

pub(crate) fn register(r: &mut Registry) {
    def(r, "concat", 1, None, |_, args| {
        let mut s = String::new();
        for a in args {
            s.push_str(&go_str(a));
        }
        Ok(Value::from(s))
    });
    r.set_validate("concat", validate_strs);

    def(r, "endswith", 2, Some(2), |_, args| {
        if nilish(args) {
            return Ok(Value::Bool(false));
        }
        Ok(Value::Bool(go_str(&args[0]).ends_with(&go_str(&args[1]))))
    });
    r.set_validate("endswith", validate_strs);
    def(r, "startswith", 2, Some(2), |_, args| {
        if nilish(args) {
            return Ok(Value::Bool(false));
        }
        Ok(Value::Bool(go_str(&args[0]).starts_with(&go_str(&args[1]))))
    });
    r.set_validate("startswith", validate_strs);

    def(r, "indexof", 2, Some(2), |_, args| {
        if args[0].is_null() || args[1].is_null() {
            return Ok(Value::Int(-1));
        }
        let s = go_str(&args[0]);
        let sub = go_str(&args[1]);
        Ok(Value::Int(s.find(&sub).map_or(-1, |i| i as i64)))
    });
    r.set_validate("indexof", validate_strs);

    def(r, "length", 1, Some(1), |_, args| {
        if nilish(args) {
            return Ok(Value::Int(0));
        }
        Ok(Value::Int(match &args[0] {
            Value::Array(a) => a.len() as i64,
            Value::Map(m) => m.len() as i64,
            v => go_str(v).chars().count() as i64,
        }))
    });
    def(r, "numbytes", 1, Some(1), |_, args| {
        if nilish(args) {
            return Ok(Value::Int(0));
        }
        Ok(Value::Int(go_str(&args[0]).len() as i64))
    });
    r.set_validate("numbytes", validate_strs);

    one_str(r, "lower", |s| Value::from(s.to_lowercase()));
    one_str(r, "upper", |s| Value::from(s.to_uppercase()));
    one_str(r, "trim", |s| {
        Value::from(s.trim_matches(char::is_whitespace))
    });
    one_str(r, "ltrim", |s| {
        Value::from(s.trim_start_matches(char::is_whitespace))
    });
    one_str(r, "rtrim", |s| {
        Value::from(s.trim_end_matches(char::is_whitespace))
    });
    one_str(r, "reverse", |s| {
        Value::from(s.chars().rev().collect::<String>())
    });

    def(r, "lpad", 2, Some(2), |_, args| {
        if nilish(args) {
            return Ok(Value::Null);
        }
        let s = go_str(&args[0]);
        let n = pad_count("lpad", &args[1])?;
        Ok(Value::from(" ".repeat(n) + &s))
    });
    r.set_validate("lpad", validate_str_int);
    def(r, "rpad", 2, Some(2), |_, args| {
        if nilish(args) {
            return Ok(Value::Null);
        }
        let s = go_str(&args[0]);
        let n = pad_count("rpad", &args[1])?;
        Ok(Value::from(s + &" ".repeat(n)))
    });
    r.set_validate("rpad", validate_str_int);

    def(r, "regexp_matches", 2, Some(2), |_, args| {
        if nilish(args) {
            return Ok(Value::Bool(false));
        }
        let re = cached_regex(&go_str(&args[1]))?;
        Ok(Value::Bool(re.is_match(&go_str(&args[0]))))
    });
    r.set_validate("regexp_matches", validate_strs);
    def(r, "regexp_replace", 3, Some(3), |_, args| {
        if nilish(args) {
            return Ok(Value::Null);
        }
        let re = cached_regex(&go_str(&args[1]))?;
        let src = go_str(&args[0]);
        let rep = go_str(&args[2]);
        Ok(Value::from(re.replace_all(&src, rep.as_str()).into_owned()))
    });
    r.set_validate("regexp_replace", validate_strs);
    def(r, "regexp_substr", 2, Some(2), |_, args| {
        if nilish(args) {
            return Ok(Value::Null);
        }
        let re = cached_regex(&go_str(&args[1]))?;
        let s = go_str(&args[0]);
        Ok(Value::from(re.find(&s).map_or("", |m| m.as_str())))
    });
    r.set_validate("regexp_substr", validate_strs);

    def(r, "substring", 2, Some(3), |_, args| {
        if nilish(args) {
            return Ok(Value::Null);
        }
        let s = go_str(&args[0]);
        let b = s.as_bytes();
        let start = to_int_strict(&args[1])?;
        if start < 0 {
            return Err(FuncError::new("start index must be a positive number"));
        }
        let start = start as u64;
        let len = b.len() as u64;
        let out: &[u8] = if let Some(e) = args.get(2) {
            let end = to_int_strict(e)?;
            if end < 0 {
                return Err(FuncError::new("end index must be a positive number"));
            }
            let end = end as u64;
            if start > end {
                return Err(FuncError::new("start index must be smaller than end index"));
            }
            if start > len {
                &[]
            } else if end > len {
                &b[start as usize..]
            } else {
                &b[start as usize..end as usize]
            }
        } else if start > len {
            &[]
        } else {
            &b[start as usize..]
        };
        Ok(Value::from(String::from_utf8_lossy(out).into_owned()))
    });
    r.set_validate("substring", |args| {
        validate_str_int(args)?;
        if let Some(s) = int_lit(args.get(1)) {
            if s < 0 {
                return Err("The start index should not be a nagtive integer.".into());
            }
            if let Some(e) = int_lit(args.get(2)) {
                if e < s {
                    return Err("The end index should be larger than start index.".into());
                }
            }
        }
        Ok(())
    });

    def(r, "split_value", 3, Some(3), |_, args| {
        if nilish(args) {
            return Ok(Value::Null);
        }
        let s = go_str(&args[0]);
        let sep = go_str(&args[1]);
        let parts: Vec<&str> = go_split(&s, &sep);
        let n = parts.len() as i64;
        let i = to_int_strict(&args[2]).unwrap_or(0);
        let idx = if i >= 0 { i } else { n + i };
        if i > n - 1 || i < -n || idx < 0 {
            return Err(FuncError::new(format!(
                "{i} out of index array (size = {n})"
            )));
        }
        Ok(Value::from(parts[idx as usize]))
    });
    r.set_validate("split_value", |args| {
        for i in 0..2 {
            if args.get(i).is_some_and(|a| lit_is_num(a) || lit_is_bool(a)) {
                return Err(expect_type(i, "string"));
            }
        }
        if args
            .get(2)
            .is_some_and(|a| lit_is_float(a) || lit_is_bool(a) || lit_is_str(a))
        {
            return Err(expect_type(2, "int"));
        }
        if int_lit(args.get(2)).is_some_and(|v| v < 0) {
            return Err("The index should not be a nagtive integer.".into());
        }
        Ok(())
    });

    def(r, "format", 2, Some(3), |_, args| {
        if nilish(args) {
            return Ok(Value::Null);
        }
        let x = to_float_samekind(&args[0]).unwrap_or(0.0);
        let d = to_int_strict(&args[1]).unwrap_or(0);
        if d < 0 {
            return Err(FuncError::new(
                "the decimal places must greater or equal than 0",
            ));
        }
        if d > 1100 {
            return Err(FuncError::new("the decimal places must be at most 1100"));
        }
        match args.get(2) {
            Some(l) => {
                let loc = go_str(l);
                let style = locale_style(&loc).ok_or_else(|| {
                    FuncError::new(format!("not support for the specific locale:{loc}"))
                })?;
                Ok(Value::from(format_number(x, d as usize, Some(style))))
            }
            None => Ok(Value::from(format_number(x, d as usize, None))),
        }
    });
    r.set_validate("format", |args| {
        if args.get(1).is_some_and(|a| {
            !matches!(a, ArgHint::Expr | ArgHint::Wildcard) && int_lit(Some(a)).is_none()
        }) {
            return Err(expect_type(1, "integer"));
        }
        if args
            .get(2)
            .is_some_and(|a| !matches!(a, ArgHint::Expr | ArgHint::Wildcard) && !lit_is_str(a))
        {
            return Err(expect_type(2, "string"));
        }
        Ok(())
    });
}

/// Go's `strings.Split`: an empty separator splits into UTF-8 characters.
fn go_split<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    if sep.is_empty() {
        return s
            .char_indices()
            .map(|(i, c)| &s[i..i + c.len_utf8()])
            .collect();
    }
    s.split(sep).collect()
}

/// How a locale writes numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NumStyle {
    group: &'static str,
    decimal: &'static str,
    /// Indian grouping (#,##,##0).
    indian: bool,
    /// Arabic-Indic digits.
    arab: bool,
}

const EN: NumStyle = NumStyle {
    group: ",",
    decimal: ".",
    indian: false,
    arab: false,
};
const DE: NumStyle = NumStyle {
    group: ".",
    decimal: ",",
    indian: false,
    arab: false,
};
const FR: NumStyle = NumStyle {
    group: "\u{a0}",
    decimal: ",",
    indian: false,
    arab: false,
};
const CH: NumStyle = NumStyle {
    group: "\u{2019}",
    decimal: ".",
    indian: false,
    arab: false,
};
const IN: NumStyle = NumStyle {
    group: ",",
    decimal: ".",
    indian: true,
    arab: false,
};
const ARAB: NumStyle = NumStyle {
    group: "\u{66c}",
    decimal: "\u{66b}",
    indian: false,
    arab: true,
};

/// Languages golang.org/x/text knows (a practical subset of ISO 639-1).
const KNOWN_LANGS: &[&str] = &[
    "af", "am", "ar", "as", "az", "be", "bg", "bn", "bs", "ca", "cs", "cy", "da", "de", "el", "en",
    "es", "et", "eu", "fa", "fi", "fil", "fo", "fr", "ga", "gl", "gu", "he", "hi", "hr", "hu",
    "hy", "id", "is", "it", "ja", "ka", "kk", "km", "kn", "ko", "ky", "lo", "lt", "lv", "mk", "ml",
    "mn", "mr", "ms", "my", "nb", "ne", "nl", "nn", "no", "or", "pa", "pl", "pt", "rm", "ro", "ru",
    "si", "sk", "sl", "sq", "sr", "sv", "sw", "ta", "te", "th", "tr", "uk", "ur", "uz", "vi", "zh",
    "zu",
];

/// Resolves `format`'s locale argument (`en_US`, `de-DE`, ...): a known
/// language and a country are required, as in eKuiper.
fn locale_style(loc: &str) -> Option<NumStyle> {
    let parts: Vec<&str> = loc.split(['_', '-']).collect();
    let lang = parts.first()?.to_ascii_lowercase();
    if !KNOWN_LANGS.contains(&lang.as_str()) {
        return None;
    }
    let mut region = None;
    for p in &parts[1..] {
        match p.len() {
            4 if p.chars().all(|c| c.is_ascii_alphabetic()) && region.is_none() => {}
            2 if p.chars().all(|c| c.is_ascii_alphabetic()) && region.is_none() => {
                region = Some(p.to_ascii_uppercase());
            }
            _ => return None,
        }
    }
    let region = region?;
    let r = region.as_str();
    Some(match (lang.as_str(), r) {
        ("de", "CH" | "LI") | ("it" | "rm", "CH") => CH,
        ("de", "AT") | ("en", "ZA") | ("es", "CR") | ("pt", "PT") | ("sv", _) => FR,
        ("de" | "fr", "LU") | ("nl", _) => DE,
        ("de", _) => DE,
        ("fr", _) => FR,
        ("ar", "LB" | "LY" | "MA" | "TN" | "DZ" | "MR") => DE,
        ("ar", "IN") => ARAB,
        ("ar", _) => EN,
        ("es", "ES" | "AR" | "BO" | "CL" | "CO" | "EC" | "PY" | "UY" | "VE" | "GQ") => DE,
        ("es", _) => EN,
        ("pt", _) => DE,
        ("en" | "hi" | "gu" | "ta" | "te" | "bn" | "mr" | "kn" | "ml", "IN") => IN,
        (
            "be" | "bg" | "cs" | "et" | "fi" | "hu" | "lt" | "lv" | "nb" | "nn" | "pl" | "ru"
            | "sk" | "sq" | "uk" | "kk" | "ky" | "hy" | "ka" | "uz" | "af",
            _,
        ) => FR,
        (
            "da" | "el" | "eu" | "fo" | "gl" | "hr" | "id" | "is" | "it" | "mk" | "ro" | "sl"
            | "sr" | "tr" | "vi" | "ca" | "az" | "bs",
            _,
        ) => DE,
        _ => EN,
    })
}

/// Formats `x` with `scale` decimals (round half to even on the exact
/// binary value, as strconv does), grouping the integer part per locale
/// when `style` is given (eKuiper's `format`).
fn format_number(x: f64, scale: usize, style: Option<NumStyle>) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "∞".into() } else { "-∞".into() };
    }
    let s = format!("{:.*}", scale, x.abs());
    let neg = x < 0.0 && s.bytes().any(|c| c.is_ascii_digit() && c != b'0');
    let (int_part, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s.as_str(), None),
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let Some(st) = style else {
        out.push_str(&s);
        return out;
    };
    let digits: Vec<char> = int_part.chars().collect();
    let n = digits.len();
    for (i, c) in digits.iter().enumerate() {
        let left = n - i;
        if i > 0 {
            let sep = if st.indian {
                left == 3 || (left > 3 && (left - 3).is_multiple_of(2))
            } else {
                left.is_multiple_of(3)
            };
            if sep {
                out.push_str(st.group);
            }
        }
        out.push(digit(*c, st.arab));
    }
    if let Some(f) = frac {
        out.push_str(st.decimal);
        out.extend(f.chars().map(|c| digit(c, st.arab)));
    }
    out
}

fn digit(c: char, arab: bool) -> char {
    if arab && c.is_ascii_digit() {
        char::from_u32(0x660 + (c as u32 - '0' as u32)).unwrap_or(c)
    } else {
        c
    }
}

#[cfg(test)]
#[path = "string_tests.rs"]
mod tests;
