//! Built-in functions: conversion and transformation (eKuiper
//! `funcs_misc.go`, `funcs_trans.go`, `cast.ToType`).

use std::io::{Read, Write};

use base64::Engine as _;
use chrono::TimeZone as _;
use weir_planner::ArgHint;

use super::datetime::to_time;
use super::golike::{
    cannot_convert, go_f64_to_i64, go_str, go_to_string_all, go_v, has_nil_or_empty, to_float_samekind, to_int_strict,
};
use super::{
    def, expect_type, lit_is_bool, lit_is_float, lit_is_num, lit_is_str, nil_checked, validate_first_number,
    validate_first_str, validate_strs,
};
use super::{FuncContext, FuncError, FuncResult, Registry};
use crate::value::Value;

/// The type names `cast` accepts.
const CAST_TYPES: &[&str] = &["bigint", "float", "string", "boolean", "datetime", "bytea"];

/// Largest output `decompress` produces (guards against bombs).
const MAX_DECOMPRESSED: u64 = 256 * 1024 * 1024;

fn not_supported(e: FuncError) -> FuncError {
    FuncError::new(format!("not supported type conversion, got error {}", e.0))
}

/// Go's `strconv` error text.
fn strconv_err(func: &str, s: &str, range: bool) -> FuncError {
    let what = if range { "value out of range" } else { "invalid syntax" };
    FuncError::new(format!("strconv.{func}: parsing {}: {what}", go_quote(s)))
}

fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Go's `underscoreOK` for base-0 integer literals.
fn underscore_ok(s: &str) -> bool {
    let mut b = s.as_bytes();
    if matches!(b.first(), Some(b'-' | b'+')) {
        b = &b[1..];
    }
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, `0x`/`0o`/`0b`/`0` prefixes
/// and `_` separators.
fn go_parse_int(s0: &str) -> Result<i64, FuncError> {
    let syntax = || strconv_err("ParseInt", s0, false);
    let (neg, s) = match s0.as_bytes().first() {
        None => return Err(syntax()),
        Some(b'-') => (true, &s0[1..]),
        Some(b'+') => (false, &s0[1..]),
        _ => (false, s0),
    };
    if s.is_empty() {
        return Err(syntax());
    }
    let b = s.as_bytes();
    let (base, digits) = if b[0] == b'0' {
        match b.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if b.len() >= 3 => (2u64, &s[2..]),
            Some(b'o') if b.len() >= 3 => (8, &s[2..]),
            Some(b'x') if b.len() >= 3 => (16, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    let mut overflow = false;
    for c in digits.bytes() {
        if c == b'_' {
            underscores = true;
            continue;
        }
        let d = match c {
            b'0'..=b'9' => (c - b'0') as u64,
            b'a'..=b'z' => (c - b'a') as u64 + 10,
            b'A'..=b'Z' => (c - b'A') as u64 + 10,
            _ => return Err(syntax()),
        };
        if d >= base {
            return Err(syntax());
        }
        match n.checked_mul(base).and_then(|n| n.checked_add(d)) {
            Some(v) => n = v,
            None => overflow = true,
        }
    }
    if underscores && !underscore_ok(s) {
        return Err(syntax());
    }
    let cutoff = 1u64 << 63;
    if overflow || (!neg && n >= cutoff) || (neg && n > cutoff) {
        return Err(strconv_err("ParseInt", s0, true));
    }
    Ok(if neg { (n as i64).wrapping_neg() } else { n as i64 })
}

/// Go's `strconv.ParseFloat(s, 64)` (decimal forms, inf and nan).
fn go_parse_float(s: &str) -> Result<f64, FuncError> {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if s.is_empty() || s.contains('_') || body.starts_with("0x") {
        return Err(strconv_err("ParseFloat", s, false));
    }
    let v: f64 = s.parse().map_err(|_| strconv_err("ParseFloat", s, false))?;
    if v.is_infinite() && !lower.contains("inf") {
        return Err(strconv_err("ParseFloat", s, true));
    }
    Ok(v)
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Result<bool, FuncError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(strconv_err("ParseBool", s, false)),
    }
}

/// Go's `base64.StdEncoding.DecodeString` (which skips CR and LF).
fn go_b64_decode(s: &str) -> Result<Vec<u8>, FuncError> {
    let cleaned: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    base64::engine::general_purpose::STANDARD.decode(cleaned.as_bytes()).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(i, _) => i,
            base64::DecodeError::InvalidLastSymbol(i, _) => i,
            _ => cleaned.len(),
        };
        FuncError::new(format!("illegal base64 data at input byte {at}"))
    })
}

/// eKuiper's `cast.ToType(v, t)`.
pub(crate) fn cast_to(ctx: &FuncContext<'_>, v: &Value, t: &str) -> FuncResult {
    match t {
        "bigint" => match v {
            Value::Int(i) => Ok(Value::Int(*i)),
            Value::Float(f) => Ok(Value::Int(go_f64_to_i64(*f))),
            Value::String(s) => go_parse_int(s).map(Value::Int).map_err(|_| not_supported(cannot_convert(v, "int"))),
            Value::Bool(b) => Ok(Value::Int(*b as i64)),
            _ => Err(not_supported(cannot_convert(v, "int"))),
        },
        "float" => match v {
            Value::Int(i) => Ok(Value::Float(*i as f64)),
            Value::Float(f) => Ok(Value::Float(*f)),
            Value::String(s) => {
                go_parse_float(s).map(Value::Float).map_err(|_| not_supported(cannot_convert(v, "float64")))
            }
            Value::Bool(b) => Ok(Value::Float(if *b { 1.0 } else { 0.0 })),
            _ => Err(not_supported(cannot_convert(v, "float64"))),
        },
        "string" => Ok(Value::from(go_to_string_all(v))),
        "boolean" => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::Int(i) => Ok(Value::Bool(*i != 0)),
            Value::Float(f) => Ok(Value::Bool(*f != 0.0)),
            Value::String(s) => go_parse_bool(s).map(Value::Bool).map_err(not_supported),
            _ => Err(not_supported(cannot_convert(v, "bool"))),
        },
        "datetime" => to_time(ctx, v).map(Value::Datetime),
        "bytea" => match v {
            Value::Bytes(b) => Ok(Value::Bytes(b.clone())),
            Value::String(s) => Ok(Value::bytes(go_b64_decode(s).unwrap_or_else(|_| s.as_bytes().to_vec()))),
            _ => Err(cannot_convert(v, "bytea")),
        },
        _ => Err(FuncError::new("unknow type, only support bigint, float, string, boolean and datetime")),
    }
}

fn validate_cast(args: &[ArgHint]) -> Result<(), String> {
    match args.get(1) {
        // eKuiper reports parameter 1 here.
        Some(a) if lit_is_num(a) || lit_is_bool(a) => Err(expect_type(0, "string")),
        Some(ArgHint::Literal(serde_json::Value::String(s))) if !CAST_TYPES.contains(&s.as_str()) => {
            Err("Expect one of following value for the 2nd parameter: bigint, float, string, boolean, datetime, bytea."
                .into())
        }
        _ => Ok(()),
    }
}

fn validate_codec(args: &[ArgHint]) -> Result<(), String> {
    validate_first_str(args)?;
    match args.get(1) {
        Some(ArgHint::Literal(serde_json::Value::String(s))) if s != "base64" => {
            Err("Only base64 is supported for the 2nd parameter.".into())
        }
        Some(a) if !lit_is_str(a) => Err(expect_type(1, "string")),
        _ => Ok(()),
    }
}

fn compress(kind: &str, data: &[u8]) -> Result<Vec<u8>, FuncError> {
    let io = |e: std::io::Error| FuncError::new(e.to_string());
    let level = flate2::Compression::default();
    match kind {
        "zlib" => {
            let mut w = flate2::write::ZlibEncoder::new(Vec::new(), level);
            w.write_all(data).map_err(io)?;
            w.finish().map_err(io)
        }
        "gzip" => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), level);
            w.write_all(data).map_err(io)?;
            w.finish().map_err(io)
        }
        "flate" => {
            let mut w = flate2::write::DeflateEncoder::new(Vec::new(), level);
            w.write_all(data).map_err(io)?;
            w.finish().map_err(io)
        }
        "zstd" => zstd::stream::encode_all(data, 0).map_err(io),
        _ => Err(FuncError::new(format!("unsupported compressor: {kind}"))),
    }
}

fn read_limited(r: impl Read) -> Result<Vec<u8>, FuncError> {
    let mut out = Vec::new();
    r.take(MAX_DECOMPRESSED + 1).read_to_end(&mut out).map_err(|e| FuncError::new(e.to_string()))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(FuncError::new("decompressed data too large"));
    }
    Ok(out)
}

fn decompress(kind: &str, data: &[u8]) -> Result<Vec<u8>, FuncError> {
    match kind {
        "zlib" => read_limited(flate2::read::ZlibDecoder::new(data)),
        "gzip" => read_limited(flate2::read::GzDecoder::new(data)),
        "flate" => read_limited(flate2::read::DeflateDecoder::new(data)),
        "zstd" => read_limited(zstd::stream::Decoder::new(data).map_err(|e| FuncError::new(e.to_string()))?),
        _ => Err(FuncError::new(format!("unsupported decompressor: {kind}"))),
    }
}

/// `cast.ToBytes(v, CONVERT_SAMEKIND)` for (de)compress.
fn codec_input(v: &Value) -> Result<&[u8], FuncError> {
    match v {
        Value::Bytes(b) => Ok(b),
        Value::String(s) => Ok(s.as_bytes()),
        v => Err(FuncError::new(format!("require string or bytea parameter, but got {}", go_v(v)))),
    }
}

pub(crate) fn register(r: &mut Registry) {
    def(r, "cast", 2, Some(2), |ctx, args| {
        if has_nil_or_empty(args) {
            return Ok(Value::Null);
        }
        match &args[1] {
            Value::String(t) => cast_to(ctx, &args[0], t),
            _ => Err(FuncError::new("expect string type for type parameter")),
        }
    });
    r.set_validate("cast", validate_cast);

    def(r, "convert_tz", 2, Some(2), |ctx, args| {
        if has_nil_or_empty(args) {
            return Ok(Value::Null);
        }
        let t = to_time(ctx, &args[0])?;
        let zone = go_str(&args[1]);
        match zone.as_str() {
            "" | "UTC" | "Local" => Ok(Value::Datetime(t.with_timezone(&chrono::Utc).fixed_offset())),
            z => {
                let tz: chrono_tz::Tz = z.parse().map_err(|_| FuncError::new(format!("unknown time zone {z}")))?;
                let local = tz.from_utc_datetime(&t.naive_utc());
                Ok(Value::Datetime(local.fixed_offset()))
            }
        }
    });
    r.set_validate("convert_tz", |args| {
        if args.first().is_some_and(|a| lit_is_num(a) || lit_is_str(a) || lit_is_bool(a)) {
            return Err(expect_type(0, "datetime"));
        }
        if args.get(1).is_some_and(|a| lit_is_num(a) || lit_is_bool(a)) {
            return Err(expect_type(1, "string"));
        }
        Ok(())
    });

    def(r, "to_seconds", 1, Some(1), |ctx, args| {
        if has_nil_or_empty(args) {
            return Ok(Value::Null);
        }
        Ok(Value::Int(to_time(ctx, &args[0])?.timestamp()))
    });

    nil_checked(r, "encode", 2, Some(2), |args| {
        let Value::String(kind) = &args[1] else {
            return Ok(Value::Null);
        };
        if !kind.eq_ignore_ascii_case("base64") {
            return Err(FuncError::new("Only base64 encoding is supported."));
        }
        match &args[0] {
            Value::String(s) => Ok(Value::from(base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))),
            _ => Err(FuncError::new("Only string type can be encoded.")),
        }
    });
    r.set_validate("encode", validate_codec);

    nil_checked(r, "decode", 2, Some(2), |args| {
        let Value::String(kind) = &args[1] else {
            return Ok(Value::Null);
        };
        if !kind.eq_ignore_ascii_case("base64") {
            return Err(FuncError::new("Only base64 decoding is supported."));
        }
        match &args[0] {
            Value::String(s) => go_b64_decode(s)
                .map(Value::bytes)
                .map_err(|e| FuncError::new(format!("fail to decode base64 string: {}", e.0))),
            _ => Err(FuncError::new("Only string type can be decoded.")),
        }
    });
    r.set_validate("decode", validate_codec);

    def(r, "compress", 2, Some(2), |_, args| {
        if args[0].is_null() {
            return Ok(Value::Null);
        }
        let data = codec_input(&args[0])?;
        compress(&go_str(&args[1]), data).map(Value::bytes)
    });
    r.set_validate("compress", validate_strs);
    def(r, "decompress", 2, Some(2), |_, args| {
        if args[0].is_null() {
            return Ok(Value::Null);
        }
        let data = codec_input(&args[0])?;
        decompress(&go_str(&args[1]), data).map(Value::bytes)
    });
    r.set_validate("decompress", validate_strs);

    nil_checked(r, "trunc", 2, Some(2), |args| {
        let v = to_float_samekind(&args[0])?;
        let Value::Int(p) = &args[1] else {
            return Err(FuncError::new("The 2nd parameter must be int value."));
        };
        // eKuiper's toFixed: half away from zero through an int.
        let out = 10f64.powf(*p as f64);
        let scaled = v * out;
        let rounded = go_f64_to_i64(scaled + 0.5f64.copysign(scaled));
        Ok(Value::Float(rounded as f64 / out))
    });
    r.set_validate("trunc", |args| {
        validate_first_number(args)?;
        if args.get(1).is_some_and(|a| lit_is_float(a) || lit_is_str(a) || lit_is_bool(a)) {
            return Err(expect_type(1, "int"));
        }
        Ok(())
    });

    // eKuiper returns the rune itself, i.e. the code point as a number.
    nil_checked(r, "chr", 1, Some(1), |args| match &args[0] {
        Value::Int(i) => Ok(Value::Int(*i as i32 as i64)),
        Value::Float(f) => Ok(Value::Int(if *f > i32::MIN as f64 - 1.0 && *f < i32::MAX as f64 + 1.0 {
            *f as i32 as i64
        } else {
            i32::MIN as i64
        })),
        Value::String(s) => {
            if s.len() > 1 {
                return Err(FuncError::new("Parameter length cannot larger than 1."));
            }
            s.chars()
                .next()
                .map(|c| Value::Int(c as i64))
                .ok_or_else(|| FuncError::new("Parameter cannot be an empty string."))
        }
        _ => Err(FuncError::new("Only bigint, float and string type can be convert to char type.")),
    });
    r.set_validate("chr", |args| {
        if args.first().is_some_and(|a| lit_is_float(a) || lit_is_bool(a)) {
            return Err(expect_type(0, "int"));
        }
        Ok(())
    });

    nil_checked(r, "hex2dec", 1, Some(1), |args| {
        let Value::String(s) = &args[0] else {
            return Err(FuncError::new(format!("invalid input type: {} please input hex string", go_v(&args[0]))));
        };
        let hex = s.strip_prefix("0x").unwrap_or(s);
        i64::from_str_radix(hex, 16)
            .map(Value::Int)
            .map_err(|_| FuncError::new(format!("invalid hexadecimal value: {hex}")))
    });
    r.set_validate("hex2dec", validate_strs);

    nil_checked(r, "dec2hex", 1, Some(1), |args| {
        let d = to_int_strict(&args[0])?;
        let hex = if d < 0 { format!("0x-{:x}", d.unsigned_abs()) } else { format!("0x{d:x}") };
        Ok(Value::from(hex))
    });
    // eKuiper validates dec2hex's argument as a string: a number literal
    // is rejected at plan time (only expressions pass).
    r.set_validate("dec2hex", validate_strs);
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
