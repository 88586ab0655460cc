//! Built-in functions: math (eKuiper `funcs_math.go`).
//!
//! All of them return null when an argument is null (or an empty array or
//! map, eKuiper's `returnNilIfHasAnyNil`). Results are floats except `abs`
//! of an integer, the bit functions, `sign` and `conv`.

use weir_planner::ArgHint;

use super::golike::{go_f64_to_i64, go_str, go_v, to_float_samekind, to_int_samekind, to_int_strict};
use super::{
    def, expect_type, lit_is_bool, lit_is_num, lit_is_str, nil_checked, validate_first_number, validate_ints,
    validate_numbers,
};
use super::{FuncError, Registry};
use crate::value::format_float_v;
use crate::value::Value;

/// π/180 and 180/π correctly rounded, as Go's untyped constants are.
const DEG_TO_RAD: f64 = 0.017_453_292_519_943_295;
const RAD_TO_DEG: f64 = 57.295_779_513_082_32;

/// A one-number function whose NaN result becomes null.
fn unary(r: &mut Registry, name: &'static str, f: fn(f64) -> f64) {
    nil_checked(r, name, 1, Some(1), move |args| {
        let v = to_float_samekind(&args[0])?;
        Ok(nan_null(f(v)))
    });
    r.set_validate(name, validate_numbers);
}

fn nan_null(r: f64) -> Value {
    if r.is_nan() {
        Value::Null
    } else {
        Value::Float(r)
    }
}

/// A two-number function returning a float as is.
fn binary(r: &mut Registry, name: &'static str, f: fn(f64, f64) -> f64) {
    nil_checked(r, name, 2, Some(2), move |args| {
        let a = to_float_samekind(&args[0])?;
        let b = to_float_samekind(&args[1])?;
        Ok(Value::Float(f(a, b)))
    });
    r.set_validate(name, validate_numbers);
}

fn bit_operand(v: &Value, which: &str) -> Result<i64, FuncError> {
    to_int_strict(v).map_err(|_| FuncError::new(format!("Expect int type for {which} but got {}", go_v(v))))
}

fn bitop(r: &mut Registry, name: &'static str, f: fn(i64, i64) -> i64) {
    nil_checked(r, name, 2, Some(2), move |args| {
        let a = bit_operand(&args[0], "the first operand")?;
        let b = bit_operand(&args[1], "the second operand")?;
        Ok(Value::Int(f(a, b)))
    });
    r.set_validate(name, validate_ints);
}

pub(crate) fn register(r: &mut Registry) {
    nil_checked(r, "abs", 1, Some(1), |args| {
        match &args[0] {
            // Go: int64(math.Abs(float64(v))) — goes through a float.
            Value::Int(i) => Ok(Value::Int(go_f64_to_i64((*i as f64).abs()))),
            Value::Float(f) => Ok(Value::Float(f.abs())),
            _ => Err(FuncError::new("only float64 & int type are supported")),
        }
    });
    r.set_validate("abs", validate_numbers);

    unary(r, "acos", f64::acos);
    unary(r, "asin", f64::asin);
    unary(r, "atan", f64::atan);
    unary(r, "cos", f64::cos);
    unary(r, "cosh", f64::cosh);
    unary(r, "sin", f64::sin);
    unary(r, "sinh", f64::sinh);
    unary(r, "tan", f64::tan);
    unary(r, "tanh", f64::tanh);
    unary(r, "exp", f64::exp);
    unary(r, "radians", |v| v * DEG_TO_RAD);
    unary(r, "degrees", |v| v * RAD_TO_DEG);
    // ceil and floor keep NaN (eKuiper does not map it to null there).
    binary_like_unary(r, "ceiling", f64::ceil);
    r.alias("ceil", "ceiling");
    binary_like_unary(r, "floor", f64::floor);

    nil_checked(r, "atan2", 2, Some(2), |args| {
        let y = to_float_samekind(&args[0])?;
        let x = to_float_samekind(&args[1])?;
        Ok(nan_null(y.atan2(x)))
    });
    r.set_validate("atan2", validate_numbers);

    bitop(r, "bitand", |a, b| a & b);
    bitop(r, "bitor", |a, b| a | b);
    bitop(r, "bitxor", |a, b| a ^ b);
    nil_checked(r, "bitnot", 1, Some(1), |args| Ok(Value::Int(!bit_operand(&args[0], "operand")?)));
    r.set_validate("bitnot", validate_ints);

    domain_checked(r, "ln", "strictly positive", f64::ln);

    nil_checked(r, "log", 1, Some(2), |args| {
        let v = to_float_samekind(&args[0])?;
        let r = match args.get(1) {
            None => v.log10(),
            Some(x) => to_float_samekind(x)?.ln() / v.ln(),
        };
        if r.is_nan() {
            return Err(not_positive("strictly positive", v));
        }
        Ok(Value::Float(r))
    });
    r.set_validate("log", validate_first_number);

    domain_checked(r, "sqrt", "positive", f64::sqrt);

    nil_checked(r, "mod", 2, Some(2), |args| {
        let a = to_float_samekind(&args[0])?;
        // eKuiper checks the wrong error here: a non-number divisor is 0.
        let b = to_float_samekind(&args[1]).unwrap_or(0.0);
        Ok(Value::Float(a % b))
    });
    r.set_validate("mod", validate_numbers);

    binary(r, "power", f64::powf);
    r.alias("pow", "power");

    def(r, "pi", 0, Some(0), |_, _| Ok(Value::Float(std::f64::consts::PI)));
    def(r, "rand", 0, Some(0), |_, _| Ok(Value::Float(rand::random::<f64>())));

    nil_checked(r, "round", 1, Some(2), |args| {
        let precision = match args.get(1) {
            Some(p) => to_int_samekind(p)
                .map_err(|e| FuncError::new(format!("The second argument must be an integer: {e}")))?,
            None => 0,
        };
        let v = to_float_samekind(&args[0])?;
        Ok(Value::Float(round_to(v, precision)))
    });
    r.set_validate("round", validate_numbers);

    nil_checked(r, "sign", 1, Some(1), |args| {
        let v = to_float_samekind(&args[0])?;
        Ok(Value::Int(if v > 0.0 {
            1
        } else if v < 0.0 {
            -1
        } else {
            0
        }))
    });
    r.set_validate("sign", validate_numbers);

    nil_checked(r, "cot", 1, Some(1), |args| {
        let v = to_float_samekind(&args[0])?;
        let r = go_cot(v);
        if r.is_nan() {
            Ok(Value::Null)
        } else if r.is_infinite() {
            Err(FuncError::new("out-of-range error"))
        } else {
            Ok(Value::Float(r))
        }
    });
    r.set_validate("cot", validate_numbers);

    nil_checked(r, "conv", 3, Some(3), |args| {
        let s = go_str(&args[0]);
        let from = to_int_samekind(&args[1]).unwrap_or(0);
        let to = to_int_samekind(&args[2]).unwrap_or(0);
        match conv(&s, from, to)? {
            Some(s) => Ok(Value::from(s)),
            None => Ok(Value::Null),
        }
    });
    r.set_validate("conv", |args| {
        for i in 1..3 {
            if args.get(i).is_some_and(|a| {
                !matches!(a, ArgHint::Literal(serde_json::Value::Number(n)) if n.is_i64())
                    && (lit_is_num(a) || lit_is_str(a) || lit_is_bool(a))
            }) {
                return Err(expect_type(i, "integer"));
            }
        }
        Ok(())
    });
}

/// `ceiling`/`floor`: one number, float result (NaN kept).
fn binary_like_unary(r: &mut Registry, name: &'static str, f: fn(f64) -> f64) {
    nil_checked(r, name, 1, Some(1), move |args| Ok(Value::Float(f(to_float_samekind(&args[0])?))));
    r.set_validate(name, validate_numbers);
}

/// A one-number function defined on part of the line (`ln`, `sqrt`): a NaN
/// result is an error naming the domain (`what`), as eKuiper's.
fn domain_checked(r: &mut Registry, name: &'static str, what: &'static str, f: fn(f64) -> f64) {
    nil_checked(r, name, 1, Some(1), move |args| {
        let v = to_float_samekind(&args[0])?;
        let r = f(v);
        if r.is_nan() {
            return Err(not_positive(what, v));
        }
        Ok(Value::Float(r))
    });
    r.set_validate(name, validate_numbers);
}

fn not_positive(what: &str, v: f64) -> FuncError {
    FuncError::new(format!("The argument must be a {what} number but got {}", format_float_v(v)))
}

/// eKuiper's `round(x, d)`: half away from zero at `d` decimals.
fn round_to(v: f64, precision: i64) -> f64 {
    let p = precision.clamp(-400, 400) as i32;
    let factor = 10f64.powi(p);
    let scaled = v * factor;
    if scaled.is_infinite() || factor.is_infinite() {
        // eKuiper falls back to big floats; a value this large (or a
        // precision this high) has no digits left to round.
        return v;
    }
    scaled.round() / factor
}

/// Go's `real(cmplx.Cot(complex(x, 0)))`.
fn go_cot(x: f64) -> f64 {
    let mut d = 1.0 - (2.0 * x).cos();
    if d.abs() < 0.25 {
        d = tan_series(x);
    }
    if d == 0.0 {
        return f64::INFINITY;
    }
    (2.0 * x).sin() / d
}

/// Go's `cmplx.tanSeries` for a real argument.
fn tan_series(re: f64) -> f64 {
    const MACHEP: f64 = 1.0 / (1u64 << 53) as f64;
    let mut x = reduce_pi((2.0 * re).abs());
    x *= x;
    let y = 0.0f64;
    let (mut x2, mut y2, mut f, mut rn, mut d) = (1.0f64, 1.0f64, 1.0f64, 0.0f64, 0.0f64);
    for _ in 0..1000 {
        rn += 1.0;
        f *= rn;
        rn += 1.0;
        f *= rn;
        x2 *= x;
        y2 *= y;
        let mut t = y2 + x2;
        t /= f;
        d += t;

        rn += 1.0;
        f *= rn;
        rn += 1.0;
        f *= rn;
        x2 *= x;
        y2 *= y;
        t = y2 - x2;
        t /= f;
        d += t;
        // Go: `if !(math.Abs(t/d) > MACHEP) { break }` (NaN breaks too).
        if (t / d).abs().partial_cmp(&MACHEP) != Some(std::cmp::Ordering::Greater) {
            break;
        }
    }
    d
}

/// Go's `cmplx.reducePi` (Cody-Waite part).
fn reduce_pi(x: f64) -> f64 {
    const PI1: f64 = 3.141_592_502_593_994;
    const PI2: f64 = 1.509_957_883_172_319_3e-7;
    const PI3: f64 = 1.078_060_571_631_623_8e-14;
    // (Go switches to Payne-Hanek reduction from 2^30; Cody-Waite is kept
    // here, which only matters for huge multiples of π.)
    let mut t = x / std::f64::consts::PI;
    t += 0.5;
    t = go_f64_to_i64(t) as f64;
    ((x - t * PI1) - t * PI2) - t * PI3
}

/// eKuiper's `conv(str, from, to)`: MySQL-style base conversion. `None` is
/// null (a base outside 2..=36).
fn conv(s: &str, from: i64, to: i64) -> Result<Option<String>, FuncError> {
    let (mut from, mut to) = (from, to);
    let mut signed = false;
    let mut ignore_sign = false;
    if from < 0 {
        from = from.wrapping_neg();
        signed = true;
    }
    if to < 0 {
        to = to.wrapping_neg();
        ignore_sign = true;
    }
    if !(2..=36).contains(&from) || !(2..=36).contains(&to) {
        return Ok(None);
    }
    let mut s = valid_prefix(s.trim_matches(char::is_whitespace), from);
    if s.is_empty() {
        return Ok(Some("0".into()));
    }
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    }
    let mut val = u64::from_str_radix(s, from as u32)
        .map_err(|e| FuncError::new(format!("strconv.ParseUint: parsing {s:?}: {}", go_parse_err(&e))))?;
    if signed {
        if negative && val > 1u64 << 63 {
            val = 1u64 << 63;
        }
        if !negative && val > i64::MAX as u64 {
            val = i64::MAX as u64;
        }
    }
    if negative {
        val = val.wrapping_neg();
    }
    let negative = (val as i64) < 0;
    if ignore_sign && negative {
        val = val.wrapping_neg();
    }
    let mut out = format_radix(val, to as u32);
    if negative && ignore_sign {
        out.insert(0, '-');
    }
    Ok(Some(out.to_ascii_uppercase()))
}

fn go_parse_err(e: &std::num::ParseIntError) -> &'static str {
    match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
        _ => "invalid syntax",
    }
}

fn format_radix(mut v: u64, base: u32) -> String {
    if v == 0 {
        return "0".into();
    }
    let mut digits = Vec::new();
    while v > 0 {
        let d = (v % base as u64) as u32;
        digits.push(char::from_digit(d, base).unwrap_or('0'));
        v /= base as u64;
    }
    digits.iter().rev().collect()
}

/// eKuiper's `getValidPrefix`: the longest prefix that parses in `base`.
fn valid_prefix(s: &str, base: i64) -> &str {
    let upper = if base <= 9 { b'0' + base as u8 } else { b'A' + (base - 10) as u8 };
    let b = s.as_bytes();
    let mut valid = 0;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            if c.to_ascii_uppercase() < upper {
                valid = i + 1;
            } else {
                break;
            }
        } else if c == b'+' || c == b'-' {
            if i != 0 {
                break;
            }
        } else {
            break;
        }
    }
    if valid > 1 && b.first() == Some(&b'+') {
        &s[1..valid]
    } else {
        &s[..valid]
    }
}

#[cfg(test)]
#[path = "math_tests.rs"]
mod tests;
