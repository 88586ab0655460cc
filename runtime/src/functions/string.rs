//! Built-in functions: strings (eKuiper `funcs_str.go`).
//!
//! eKuiper converts most string arguments with `cast.ToStringAlways`, i.e.
//! Go's `%v`: numbers, booleans, arrays and maps are rendered rather than
//! rejected ([`go_str`]).

use std::cell::RefCell;
use std::collections::HashMap;

use regex::Regex;
use weir_planner::ArgHint;

use super::golike::{go_str, has_nil_or_empty, to_float_samekind, to_int_strict};
use super::{
    def, expect_type, lit_is_bool, lit_is_float, lit_is_num, lit_is_str, nil_checked, validate_strs, FuncError,
    Registry,
};
use crate::value::Value;

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
        let r = Regex::new(pattern).map_err(|e| FuncError::new(format!("error parsing regexp: {e}")))?;
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

fn one_str(r: &mut Registry, name: &'static str, f: impl Fn(&str) -> Value + Send + Sync + 'static) {
    nil_checked(r, name, 1, Some(1), move |args| Ok(f(&go_str(&args[0]))));
    r.set_validate(name, validate_strs);
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
        if has_nil_or_empty(args) {
            return Ok(Value::Bool(false));
        }
        Ok(Value::Bool(go_str(&args[0]).ends_with(&go_str(&args[1]))))
    });
    r.set_validate("endswith", validate_strs);
    def(r, "startswith", 2, Some(2), |_, args| {
        if has_nil_or_empty(args) {
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
        if has_nil_or_empty(args) {
            return Ok(Value::Int(0));
        }
        Ok(Value::Int(match &args[0] {
            Value::Array(a) => a.len() as i64,
            Value::Map(m) => m.len() as i64,
            v => go_str(v).chars().count() as i64,
        }))
    });
    def(r, "numbytes", 1, Some(1), |_, args| {
        if has_nil_or_empty(args) {
            return Ok(Value::Int(0));
        }
        Ok(Value::Int(go_str(&args[0]).len() as i64))
    });
    r.set_validate("numbytes", validate_strs);

    one_str(r, "lower", |s| Value::from(s.to_lowercase()));
    one_str(r, "upper", |s| Value::from(s.to_uppercase()));
    one_str(r, "trim", |s| Value::from(s.trim_matches(char::is_whitespace)));
    one_str(r, "ltrim", |s| Value::from(s.trim_start_matches(char::is_whitespace)));
    one_str(r, "rtrim", |s| Value::from(s.trim_end_matches(char::is_whitespace)));
    one_str(r, "reverse", |s| Value::from(s.chars().rev().collect::<String>()));

    nil_checked(r, "lpad", 2, Some(2), |args| {
        let s = go_str(&args[0]);
        let n = pad_count("lpad", &args[1])?;
        Ok(Value::from(" ".repeat(n) + &s))
    });
    r.set_validate("lpad", validate_str_int);
    nil_checked(r, "rpad", 2, Some(2), |args| {
        let s = go_str(&args[0]);
        let n = pad_count("rpad", &args[1])?;
        Ok(Value::from(s + &" ".repeat(n)))
    });
    r.set_validate("rpad", validate_str_int);

    def(r, "regexp_matches", 2, Some(2), |_, args| {
        if has_nil_or_empty(args) {
            return Ok(Value::Bool(false));
        }
        let re = cached_regex(&go_str(&args[1]))?;
        Ok(Value::Bool(re.is_match(&go_str(&args[0]))))
    });
    r.set_validate("regexp_matches", validate_strs);
    nil_checked(r, "regexp_replace", 3, Some(3), |args| {
        let re = cached_regex(&go_str(&args[1]))?;
        let src = go_str(&args[0]);
        let rep = go_str(&args[2]);
        Ok(Value::from(re.replace_all(&src, rep.as_str()).into_owned()))
    });
    r.set_validate("regexp_replace", validate_strs);
    nil_checked(r, "regexp_substr", 2, Some(2), |args| {
        let re = cached_regex(&go_str(&args[1]))?;
        let s = go_str(&args[0]);
        Ok(Value::from(re.find(&s).map_or("", |m| m.as_str())))
    });
    r.set_validate("regexp_substr", validate_strs);

    nil_checked(r, "substring", 2, Some(3), |args| {
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

    nil_checked(r, "split_value", 3, Some(3), |args| {
        let s = go_str(&args[0]);
        let sep = go_str(&args[1]);
        let parts: Vec<&str> = go_split(&s, &sep);
        let n = parts.len() as i64;
        let i = to_int_strict(&args[2]).unwrap_or(0);
        let idx = if i >= 0 { i } else { n + i };
        if i > n - 1 || i < -n || idx < 0 {
            return Err(FuncError::new(format!("{i} out of index array (size = {n})")));
        }
        Ok(Value::from(parts[idx as usize]))
    });
    r.set_validate("split_value", |args| {
        for i in 0..2 {
            if args.get(i).is_some_and(|a| lit_is_num(a) || lit_is_bool(a)) {
                return Err(expect_type(i, "string"));
            }
        }
        if args.get(2).is_some_and(|a| lit_is_float(a) || lit_is_bool(a) || lit_is_str(a)) {
            return Err(expect_type(2, "int"));
        }
        if int_lit(args.get(2)).is_some_and(|v| v < 0) {
            return Err("The index should not be a nagtive integer.".into());
        }
        Ok(())
    });

    nil_checked(r, "format", 2, Some(3), |args| {
        let x = to_float_samekind(&args[0]).unwrap_or(0.0);
        let d = to_int_strict(&args[1]).unwrap_or(0);
        if d < 0 {
            return Err(FuncError::new("the decimal places must greater or equal than 0"));
        }
        if d > 1100 {
            return Err(FuncError::new("the decimal places must be at most 1100"));
        }
        match args.get(2) {
            Some(l) => {
                let loc = go_str(l);
                let style = locale_style(&loc)
                    .ok_or_else(|| FuncError::new(format!("not support for the specific locale:{loc}")))?;
                Ok(Value::from(format_number(x, d as usize, Some(style))))
            }
            None => Ok(Value::from(format_number(x, d as usize, None))),
        }
    });
    r.set_validate("format", |args| {
        if args.get(1).is_some_and(|a| !matches!(a, ArgHint::Expr | ArgHint::Wildcard) && int_lit(Some(a)).is_none()) {
            return Err(expect_type(1, "integer"));
        }
        if args.get(2).is_some_and(|a| !matches!(a, ArgHint::Expr | ArgHint::Wildcard) && !lit_is_str(a)) {
            return Err(expect_type(2, "string"));
        }
        Ok(())
    });
}

/// Go's `strings.Split`: an empty separator splits into UTF-8 characters.
fn go_split<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    if sep.is_empty() {
        return s.char_indices().map(|(i, c)| &s[i..i + c.len_utf8()]).collect();
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

const EN: NumStyle = NumStyle { group: ",", decimal: ".", indian: false, arab: false };
const DE: NumStyle = NumStyle { group: ".", decimal: ",", indian: false, arab: false };
const FR: NumStyle = NumStyle { group: "\u{a0}", decimal: ",", indian: false, arab: false };
const CH: NumStyle = NumStyle { group: "\u{2019}", decimal: ".", indian: false, arab: false };
const IN: NumStyle = NumStyle { group: ",", decimal: ".", indian: true, arab: false };
const ARAB: NumStyle = NumStyle { group: "\u{66c}", decimal: "\u{66b}", indian: false, arab: true };

/// Languages golang.org/x/text knows (a practical subset of ISO 639-1).
const KNOWN_LANGS: &[&str] = &[
    "af", "am", "ar", "as", "az", "be", "bg", "bn", "bs", "ca", "cs", "cy", "da", "de", "el", "en", "es", "et", "eu",
    "fa", "fi", "fil", "fo", "fr", "ga", "gl", "gu", "he", "hi", "hr", "hu", "hy", "id", "is", "it", "ja", "ka", "kk",
    "km", "kn", "ko", "ky", "lo", "lt", "lv", "mk", "ml", "mn", "mr", "ms", "my", "nb", "ne", "nl", "nn", "no", "or",
    "pa", "pl", "pt", "rm", "ro", "ru", "si", "sk", "sl", "sq", "sr", "sv", "sw", "ta", "te", "th", "tr", "uk", "ur",
    "uz", "vi", "zh", "zu",
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
            "be" | "bg" | "cs" | "et" | "fi" | "hu" | "lt" | "lv" | "nb" | "nn" | "pl" | "ru" | "sk" | "sq" | "uk"
            | "kk" | "ky" | "hy" | "ka" | "uz" | "af",
            _,
        ) => FR,
        (
            "da" | "el" | "eu" | "fo" | "gl" | "hr" | "id" | "is" | "it" | "mk" | "ro" | "sl" | "sr" | "tr" | "vi"
            | "ca" | "az" | "bs",
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
