//! Go's `fmt.Sprintf` for template `printf`: verbs `v s d f F e E g G t q
//! x X o b c %` with flags `- + 0 space #`, width and precision (also `*`).
//!
//! Numbers convert across int and float (`%d` of a JSON float truncates;
//! Go prints `%!d(float64=...)`), so templates written for eKuiper's JSON
//! floats print what their authors meant.

use weir_runtime::value::format_float_v;
use weir_runtime::Value;

use super::exec::{go_sprint, go_type};

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Formats `args` by `format` as Go's `fmt.Sprintf` does.
pub(super) fn sprintf(format: &str, args: &[Option<Value>]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let mut star = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<usize> {
            if chars.peek() == Some(&'*') {
                chars.next();
                let n = args.get(next).and_then(|a| a.as_ref()).and_then(Value::as_i64);
                next += 1;
                return n.map(|n| n.max(0) as usize);
            }
            let mut n = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                chars.next();
            }
            n
        };
        spec.width = star(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(star(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let body = match arg {
            None => format!("%!{verb}(<nil>)"),
            Some(v) => format_one(verb, &spec, v),
        };
        pad(&mut out, &body, &spec, verb);
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| match a {
                Some(v) => format!("{}={}", go_type(v), go_sprint(v)),
                None => "<nil>".into(),
            })
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn sign(s: String, spec: &Spec, negative: bool) -> String {
    if negative {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn format_one(verb: char, spec: &Spec, v: &Value) -> String {
    let bad = || format!("%!{verb}({}={})", go_type(v), go_sprint(v));
    let as_f = || match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    match verb {
        'v' | 's' => {
            let s = match v {
                Value::Float(f) if spec.plus || spec.space => sign(format_float_v(*f), spec, *f < 0.0),
                Value::Int(i) if spec.plus || spec.space => sign(i.to_string(), spec, *i < 0),
                _ => go_sprint(v),
            };
            match spec.prec {
                Some(p) if verb == 's' => s.chars().take(p).collect(),
                _ => s,
            }
        }
        'd' => match v {
            Value::Int(i) => sign(i.to_string(), spec, *i < 0),
            Value::Float(f) => sign((f.trunc() as i64).to_string(), spec, *f < 0.0),
            _ => bad(),
        },
        'f' | 'F' => match as_f() {
            Some(f) => sign(format!("{:.*}", spec.prec.unwrap_or(6), f), spec, f < 0.0),
            None => bad(),
        },
        'e' | 'E' => match as_f() {
            Some(f) => {
                let s = go_exp(&format!("{:.*e}", spec.prec.unwrap_or(6), f));
                sign(if verb == 'E' { s.to_uppercase() } else { s }, spec, f < 0.0)
            }
            None => bad(),
        },
        'g' | 'G' => match as_f() {
            Some(f) => {
                let s = match spec.prec {
                    None => format_float_v(f),
                    Some(p) => format_g(f, p.max(1)),
                };
                sign(if verb == 'G' { s.to_uppercase() } else { s }, spec, f < 0.0)
            }
            None => bad(),
        },
        't' => match v {
            Value::Bool(b) => b.to_string(),
            _ => bad(),
        },
        'q' => match v {
            Value::String(s) => quote(s),
            Value::Int(i) => char::from_u32(*i as u32).map(|c| format!("'{c}'")).unwrap_or_else(bad),
            _ => bad(),
        },
        'c' => match v {
            Value::Int(i) => char::from_u32(*i as u32).map(String::from).unwrap_or_else(bad),
            _ => bad(),
        },
        'x' | 'X' | 'o' | 'b' => {
            let s = match v {
                Value::Int(i) => {
                    let (neg, u) = (*i < 0, i.unsigned_abs());
                    let digits = match verb {
                        'x' => format!("{u:x}"),
                        'X' => format!("{u:X}"),
                        'o' => format!("{u:o}"),
                        _ => format!("{u:b}"),
                    };
                    let prefix = match (spec.sharp, verb) {
                        (true, 'x') => "0x",
                        (true, 'X') => "0X",
                        (true, 'o') => "0",
                        _ => "",
                    };
                    sign(format!("{}{prefix}{digits}", if neg { "-" } else { "" }), spec, neg)
                }
                Value::Float(f) if verb != 'o' && f.fract() == 0.0 => {
                    return format_one(verb, spec, &Value::Int(*f as i64));
                }
                Value::String(s) if verb == 'x' || verb == 'X' => {
                    let h: String = s.bytes().map(|b| format!("{b:02x}")).collect();
                    if verb == 'X' {
                        h.to_uppercase()
                    } else {
                        h
                    }
                }
                Value::Bytes(b) if verb == 'x' || verb == 'X' => {
                    let h: String = b.iter().map(|b| format!("{b:02x}")).collect();
                    if verb == 'X' {
                        h.to_uppercase()
                    } else {
                        h
                    }
                }
                _ => return bad(),
            };
            s
        }
        'T' => go_type(v).to_string(),
        _ => format!("%!{verb}({}={})", go_type(v), go_sprint(v)),
    }
}

/// Rust's `1.5e3` -> Go's `1.5e+03`.
fn go_exp(s: &str) -> String {
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mant}e{sign}{digits:0>2}")
}

/// `%.{p}g`: `p` significant digits, exponent form when the exponent is
/// below -4 or at least `p`; trailing zeros removed.
fn format_g(f: f64, p: usize) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let e = format!("{:.*e}", p - 1, f);
    let exp: i32 = e.split_once('e').and_then(|(_, x)| x.parse().ok()).unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let (mant, _) = e.split_once('e').unwrap_or((&e, ""));
        let mant = trim_zeros(mant);
        go_exp(&format!("{mant}e{exp}"))
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{f:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// `strconv.Quote`.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn pad(out: &mut String, body: &str, spec: &Spec, verb: char) {
    let len = body.chars().count();
    let Some(w) = spec.width.filter(|w| *w > len) else {
        out.push_str(body);
        return;
    };
    let fill = w - len;
    if spec.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && "dfFeEgGxXob".contains(verb) {
        // Zeros go after the sign.
        let (sign, digits) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), &body[1..]),
            _ => (String::new(), body),
        };
        out.push_str(&sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(digits);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}
