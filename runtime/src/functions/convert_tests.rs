#![allow(clippy::cloned_ref_to_slice_refs, clippy::approx_constant)]

use super::*;
use crate::functions::test_util::{i, s};
use crate::functions::{call_scalar, FunctionLookup};

fn call(name: &str, args: &[Value]) -> FuncResult {
    call_scalar(Registry::builtins(), name, args)
}
fn cast(v: Value, t: &str) -> FuncResult {
    call("cast", &[v, s(t)])
}

#[test]
fn cast_like_ekuiper() {
    assert_eq!(cast(s("Ynl0ZWE="), "bytea").unwrap(), Value::bytes(b"bytea".to_vec()));
    assert_eq!(cast(Value::bytes(b"bytea".to_vec()), "bytea").unwrap(), Value::bytes(b"bytea".to_vec()));
    assert_eq!(cast(s("not base64!"), "bytea").unwrap(), Value::bytes(b"not base64!".to_vec()));
    assert_eq!(cast(i(1), "bytea").unwrap_err().0, "cannot convert int64(1) to bytea");
    assert_eq!(cast(Value::Float(101.5), "bigint").unwrap(), i(101));
    assert_eq!(cast(i(1), "boolean").unwrap(), Value::Bool(true));
    assert_eq!(cast(i(1), "float").unwrap(), Value::Float(1.0));
    assert_eq!(cast(i(1), "string").unwrap(), s("1"));
    assert_eq!(cast(Value::Float(1e21), "string").unwrap(), s("1000000000000000000000"));
    assert_eq!(cast(Value::Float(2.5), "string").unwrap(), s("2.5"));
    assert_eq!(cast(Value::Bool(true), "bigint").unwrap(), i(1));
    assert_eq!(cast(s("0x10"), "bigint").unwrap(), i(16));
    assert_eq!(cast(s("010"), "bigint").unwrap(), i(8));
    assert_eq!(cast(s("1_000"), "bigint").unwrap(), i(1000));
    assert_eq!(cast(s("-42"), "bigint").unwrap(), i(-42));
    assert_eq!(
        cast(s("abc"), "bigint").unwrap_err().0,
        "not supported type conversion, got error cannot convert string(abc) to int"
    );
    assert!(cast(s("1.5"), "bigint").is_err());
    assert!(cast(s("99999999999999999999"), "bigint").is_err());
    assert_eq!(cast(s("1.5"), "float").unwrap(), Value::Float(1.5));
    assert!(cast(s("1e400"), "float").is_err());
    assert!(cast(s("x"), "float").is_err());
    assert_eq!(cast(s("T"), "boolean").unwrap(), Value::Bool(true));
    assert_eq!(cast(Value::Float(0.0), "boolean").unwrap(), Value::Bool(false));
    assert_eq!(
        cast(s("yes"), "boolean").unwrap_err().0,
        "not supported type conversion, got error strconv.ParseBool: parsing \"yes\": invalid syntax"
    );
    assert_eq!(cast(i(1_000), "datetime").unwrap(), Value::datetime_from_millis(1_000));
    assert_eq!(cast(s("1970-01-01T00:00:01Z"), "datetime").unwrap(), Value::datetime_from_millis(1_000));
    assert_eq!(cast(Value::datetime_from_millis(0), "string").unwrap(), s("1970-01-01 00:00:00 +0000 UTC"));
    assert_eq!(cast(Value::array(vec![i(1), i(2)]), "string").unwrap(), s("[1 2]"));
    assert_eq!(cast(Value::Null, "string").unwrap(), Value::Null);
    assert!(cast(i(1), "nope").is_err());
    assert_eq!(call("cast", &[i(1), i(2)]).unwrap_err().0, "expect string type for type parameter");
    let r = Registry::builtins();
    assert!(r.validate("cast", &[ArgHint::Expr, ArgHint::Literal(serde_json::json!("bytea"))]).is_ok());
    assert!(r.validate("cast", &[ArgHint::Expr, ArgHint::Literal(serde_json::json!("bigint"))]).is_ok());
    assert_eq!(
        r.validate("cast", &[ArgHint::Expr, ArgHint::Literal(serde_json::json!("test"))]).unwrap_err(),
        "Expect one of following value for the 2nd parameter: bigint, float, string, boolean, datetime, bytea."
    );
    assert!(r.validate("cast", &[ArgHint::Expr, ArgHint::Literal(serde_json::json!(1))]).is_err());
    assert!(call("cast", &[i(1)]).is_err());
}

#[test]
fn convert_tz_and_to_seconds() {
    let t = Value::Datetime(chrono::DateTime::parse_from_rfc3339("2022-04-13T06:22:32.233Z").unwrap());
    assert_eq!(call("convert_tz", &[t.clone(), s("UTC")]).unwrap(), t);
    let sh = call("convert_tz", &[t.clone(), s("Asia/Shanghai")]).unwrap();
    match &sh {
        Value::Datetime(d) => {
            assert_eq!(d.offset().local_minus_utc(), 8 * 3600);
            assert_eq!(d.to_rfc3339(), "2022-04-13T14:22:32.233+08:00");
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(sh, t); // same instant
    assert_eq!(call("convert_tz", &[t.clone(), s("Unknown")]).unwrap_err().0, "unknown time zone Unknown");
    assert_eq!(
        call("convert_tz", &[Value::Bool(true), s("UTC")]).unwrap_err().0,
        "unsupported type to convert to timestamp true"
    );
    assert_eq!(call("convert_tz", &[Value::Null, s("UTC")]).unwrap(), Value::Null);
    assert_eq!(call("to_seconds", &[Value::datetime_from_millis(1_000_000_000_000)]).unwrap(), i(1_000_000_000));
    assert_eq!(call("to_seconds", &[i(-1)]).unwrap(), i(-1));
    assert_eq!(call("to_seconds", &[Value::Null]).unwrap(), Value::Null);
    let r = Registry::builtins();
    assert!(r.validate("convert_tz", &[ArgHint::Literal(serde_json::json!("0"))]).is_err());
    assert!(r.validate("convert_tz", &[ArgHint::Expr, ArgHint::Literal(serde_json::json!(0))]).is_err());
    assert!(r.validate("convert_tz", &[ArgHint::Expr, ArgHint::Literal(serde_json::json!("UTC"))]).is_ok());
}

#[test]
fn encode_decode() {
    assert_eq!(call("encode", &[s("bytea"), s("base64")]).unwrap(), s("Ynl0ZWE="));
    assert_eq!(call("encode", &[s("bytea"), s("BASE64")]).unwrap(), s("Ynl0ZWE="));
    assert_eq!(call("decode", &[s("Ynl0ZWE="), s("base64")]).unwrap(), Value::bytes(b"bytea".to_vec()));
    assert!(call("decode", &[s("!!"), s("base64")]).unwrap_err().0.starts_with("fail to decode base64 string"));
    assert_eq!(call("encode", &[s("a"), s("hex")]).unwrap_err().0, "Only base64 encoding is supported.");
    assert_eq!(call("encode", &[i(1), s("base64")]).unwrap_err().0, "Only string type can be encoded.");
    assert_eq!(call("decode", &[i(1), s("base64")]).unwrap_err().0, "Only string type can be decoded.");
    assert_eq!(call("encode", &[s("a"), i(1)]).unwrap(), Value::Null);
    assert_eq!(call("encode", &[Value::Null, s("base64")]).unwrap(), Value::Null);
    let r = Registry::builtins();
    assert_eq!(
        r.validate("encode", &[ArgHint::Expr, ArgHint::Literal(serde_json::json!("hex"))]).unwrap_err(),
        "Only base64 is supported for the 2nd parameter."
    );
    assert!(r
        .validate("decode", &[ArgHint::Literal(serde_json::json!(1)), ArgHint::Literal(serde_json::json!("base64"))])
        .is_err());
}

#[test]
fn compress_roundtrips() {
    let data = s("hello hello hello hello");
    for kind in ["zlib", "gzip", "flate", "zstd"] {
        let c = call("compress", &[data.clone(), s(kind)]).unwrap();
        assert!(matches!(c, Value::Bytes(_)), "{kind}");
        let d = call("decompress", &[c, s(kind)]).unwrap();
        assert_eq!(d, Value::bytes(b"hello hello hello hello".to_vec()), "{kind}");
    }
    assert_eq!(call("compress", &[data.clone(), s("lz4")]).unwrap_err().0, "unsupported compressor: lz4");
    assert_eq!(call("decompress", &[data.clone(), s("lz4")]).unwrap_err().0, "unsupported decompressor: lz4");
    assert!(call("decompress", &[data.clone(), s("gzip")]).is_err());
    assert_eq!(call("compress", &[Value::Null, s("zlib")]).unwrap(), Value::Null);
    assert!(call("compress", &[i(1), s("zlib")]).is_err());
}

#[test]
fn trunc_chr_hex() {
    assert_eq!(call("trunc", &[Value::Float(3.14159), i(2)]).unwrap(), Value::Float(3.14));
    assert_eq!(call("trunc", &[Value::Float(2.5), i(0)]).unwrap(), Value::Float(3.0));
    assert_eq!(call("trunc", &[Value::Float(-2.5), i(0)]).unwrap(), Value::Float(-3.0));
    assert_eq!(call("trunc", &[i(5), Value::Float(1.0)]).unwrap_err().0, "The 2nd parameter must be int value.");
    assert_eq!(call("trunc", &[Value::Null, i(1)]).unwrap(), Value::Null);
    assert!(call("trunc", &[s("1"), i(1)]).is_err());
    assert_eq!(call("chr", &[i(65)]).unwrap(), i(65));
    assert_eq!(call("chr", &[Value::Float(66.7)]).unwrap(), i(66));
    assert_eq!(call("chr", &[s("A")]).unwrap(), i(65));
    assert_eq!(call("chr", &[s("AB")]).unwrap_err().0, "Parameter length cannot larger than 1.");
    assert!(call("chr", &[s("")]).is_err());
    assert!(call("chr", &[Value::Bool(true)]).is_err());
    assert_eq!(call("hex2dec", &[s("0x10")]).unwrap(), i(16));
    assert_eq!(call("hex2dec", &[s("ff")]).unwrap(), i(255));
    assert_eq!(call("hex2dec", &[s("0xzz")]).unwrap_err().0, "invalid hexadecimal value: zz");
    assert_eq!(call("hex2dec", &[i(1)]).unwrap_err().0, "invalid input type: 1 please input hex string");
    assert_eq!(call("dec2hex", &[i(16)]).unwrap(), s("0x10"));
    assert_eq!(call("dec2hex", &[i(-16)]).unwrap(), s("0x-10"));
    assert_eq!(call("dec2hex", &[Value::Float(255.0)]).unwrap(), s("0xff"));
    assert!(call("dec2hex", &[Value::Float(1.5)]).is_err());
    assert_eq!(call("dec2hex", &[Value::Null]).unwrap(), Value::Null);
    let r = Registry::builtins();
    assert!(r.validate("dec2hex", &[ArgHint::Literal(serde_json::json!(16))]).is_err());
    assert!(r.validate("chr", &[ArgHint::Literal(serde_json::json!(1.5))]).is_err());
    assert!(r.validate("trunc", &[ArgHint::Expr, ArgHint::Literal(serde_json::json!(1.5))]).is_err());
}
