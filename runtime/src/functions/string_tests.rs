#![allow(clippy::cloned_ref_to_slice_refs, clippy::approx_constant)]

use super::*;
use crate::functions::test_util::{i, s};
use crate::functions::{call_scalar, FuncError, FunctionLookup};

fn call(name: &str, args: &[Value]) -> Result<Value, FuncError> {
    call_scalar(Registry::builtins(), name, args)
}
fn lit(v: serde_json::Value) -> ArgHint {
    ArgHint::Literal(v)
}

#[test]
fn go_rendering() {
    assert_eq!(go_str(&Value::Float(1e6)), "1e+06");
    assert_eq!(go_str(&Value::array(vec![i(1), s("a"), Value::Null])), "[1 a <nil>]");
    let mut m = crate::value::Map::new();
    m.insert("b".into(), i(2));
    m.insert("a".into(), Value::Bool(true));
    assert_eq!(go_str(&Value::map(m)), "map[a:true b:2]");
    assert_eq!(go_str(&Value::bytes(b"hi".to_vec())), "[104 105]");
    assert_eq!(go_str(&Value::datetime_from_millis(0)), "1970-01-01 00:00:00 +0000 UTC");
    assert_eq!(go_str(&Value::Null), "");
}

#[test]
fn concat_renders_everything() {
    assert_eq!(call("concat", &[s("1"), Value::Null, s("2")]).unwrap(), s("12"));
    assert_eq!(call("concat", &[s("a"), i(1), Value::Float(2.5), Value::Bool(true)]).unwrap(), s("a12.5true"));
    // Arrays are rendered with Go's %v, not concatenated (eKuiper's code).
    assert_eq!(call("concat", &[Value::array(vec![i(1)]), Value::array(vec![i(2)])]).unwrap(), s("[1][2]"));
    assert!(call("concat", &[]).is_err());
}

#[test]
fn starts_ends_index() {
    assert_eq!(call("endswith", &[s("abc"), s("bc")]).unwrap(), Value::Bool(true));
    assert_eq!(call("startswith", &[s("abc"), s("bc")]).unwrap(), Value::Bool(false));
    assert_eq!(call("startswith", &[Value::Null, s("a")]).unwrap(), Value::Bool(false));
    assert_eq!(call("endswith", &[s("a"), Value::Null]).unwrap(), Value::Bool(false));
    assert_eq!(call("indexof", &[s("héllo"), s("l")]).unwrap(), i(3));
    assert_eq!(call("indexof", &[s("abc"), s("z")]).unwrap(), i(-1));
    assert_eq!(call("indexof", &[Value::Null, s("z")]).unwrap(), i(-1));
    assert!(call("indexof", &[s("a")]).is_err());
}

#[test]
fn length_and_numbytes() {
    assert_eq!(call("length", &[s("héllo")]).unwrap(), i(5));
    assert_eq!(call("numbytes", &[s("héllo")]).unwrap(), i(6));
    assert_eq!(call("length", &[Value::array(vec![i(1), i(2)])]).unwrap(), i(2));
    assert_eq!(call("length", &[Value::Null]).unwrap(), i(0));
    assert_eq!(call("numbytes", &[Value::Null]).unwrap(), i(0));
    assert_eq!(call("length", &[i(1234)]).unwrap(), i(4));
}

#[test]
fn case_trim_reverse() {
    assert_eq!(call("lower", &[s("AbC")]).unwrap(), s("abc"));
    assert_eq!(call("upper", &[s("AbC")]).unwrap(), s("ABC"));
    assert_eq!(call("trim", &[s(" \t a b \n")]).unwrap(), s("a b"));
    assert_eq!(call("ltrim", &[s("  a ")]).unwrap(), s("a "));
    assert_eq!(call("rtrim", &[s("  a ")]).unwrap(), s("  a"));
    assert_eq!(call("reverse", &[s("héllo")]).unwrap(), s("olléh"));
    assert_eq!(call("upper", &[Value::Null]).unwrap(), Value::Null);
    assert_eq!(call("lower", &[Value::array(vec![])]).unwrap(), Value::Null);
    assert!(call("lower", &[s("a"), s("b")]).is_err());
}

#[test]
fn pads() {
    assert_eq!(call("lpad", &[s("a"), i(2)]).unwrap(), s("  a"));
    assert_eq!(call("rpad", &[s("a"), Value::Float(2.0)]).unwrap(), s("a  "));
    assert!(call("lpad", &[s("a"), s("2")]).is_err());
    assert!(call("rpad", &[s("a"), i(-1)]).is_err());
    assert_eq!(call("lpad", &[Value::Null, i(2)]).unwrap(), Value::Null);
}

#[test]
fn regexps() {
    assert_eq!(call("regexp_matches", &[s("abc123"), s(r"\d+")]).unwrap(), Value::Bool(true));
    assert_eq!(call("regexp_matches", &[s("abc"), s(r"^\d")]).unwrap(), Value::Bool(false));
    assert_eq!(call("regexp_matches", &[Value::Null, s("a")]).unwrap(), Value::Bool(false));
    assert_eq!(call("regexp_replace", &[s("a1b22"), s(r"\d+"), s("#")]).unwrap(), s("a#b#"));
    assert_eq!(call("regexp_replace", &[s("ab"), s(r"(a)(b)"), s("$2$1")]).unwrap(), s("ba"));
    assert_eq!(call("regexp_substr", &[s("ab123cd45"), s(r"\d+")]).unwrap(), s("123"));
    assert_eq!(call("regexp_substr", &[s("abc"), s(r"\d+")]).unwrap(), s(""));
    assert!(call("regexp_matches", &[s("a"), s("(")]).is_err());
}

#[test]
fn substring_uses_byte_indexes() {
    assert_eq!(call("substring", &[s("hello"), i(1)]).unwrap(), s("ello"));
    assert_eq!(call("substring", &[s("hello"), i(1), i(3)]).unwrap(), s("el"));
    assert_eq!(call("substring", &[s("hello"), i(1), i(30)]).unwrap(), s("ello"));
    assert_eq!(call("substring", &[s("hello"), i(10)]).unwrap(), s(""));
    assert_eq!(call("substring", &[s("hello"), i(10), i(20)]).unwrap(), s(""));
    assert!(call("substring", &[s("hello"), i(-1)]).is_err());
    assert!(call("substring", &[s("hello"), i(3), i(1)]).is_err());
    assert!(call("substring", &[s("hello"), i(0), i(-1)]).is_err());
    // Cutting inside a character does not panic.
    assert!(call("substring", &[s("é"), i(1)]).is_ok());
    let v = |a: Vec<ArgHint>| Registry::builtins().validate("substring", &a);
    assert!(v(vec![ArgHint::Expr, lit(serde_json::json!(-1))]).is_err());
    assert!(v(vec![ArgHint::Expr, lit(serde_json::json!(3)), lit(serde_json::json!(1))]).is_err());
    assert!(v(vec![lit(serde_json::json!(1)), lit(serde_json::json!(1))]).is_err());
}

#[test]
fn split_value_cases() {
    assert_eq!(call("split_value", &[s("a/b/c"), s("/"), i(0)]).unwrap(), s("a"));
    assert_eq!(call("split_value", &[s("a/b/c"), s("/"), i(-1)]).unwrap(), s("c"));
    assert_eq!(call("split_value", &[s("a/b/c"), s("/"), i(3)]).unwrap_err().0, "3 out of index array (size = 3)");
    assert_eq!(call("split_value", &[s("a/b/c"), s("/"), i(-4)]).unwrap_err().0, "-4 out of index array (size = 3)");
    assert_eq!(call("split_value", &[s("abc"), s(""), i(1)]).unwrap(), s("b"));
    assert_eq!(call("split_value", &[Value::Null, s("/"), i(0)]).unwrap(), Value::Null);
}

#[test]
fn format_numbers() {
    let f = |x: f64, d: i64| call("format", &[Value::Float(x), i(d)]).unwrap();
    assert_eq!(f(12332.123456, 4), s("12332.1235"));
    assert_eq!(f(12332.1, 4), s("12332.1000"));
    assert_eq!(f(12332.2, 0), s("12332"));
    assert_eq!(f(12332.2, 2), s("12332.20"));
    assert_eq!(
        call("format", &[Value::Float(1.0), i(-1)]).unwrap_err().0,
        "the decimal places must greater or equal than 0"
    );
    let l = |x: f64, d: i64, loc: &str| call("format", &[Value::Float(x), i(d), s(loc)]);
    for (x, d, loc, want) in [
        (12332.123456, 4, "en_US", "12,332.1235"),
        (12332.2, 0, "en_US", "12,332"),
        (12332.2, 2, "de_DE", "12.332,20"),
        (12332.2, 2, "zh_CN", "12,332.20"),
        (-123456.7899, 2, "de_CH", "-123\u{2019}456.79"),
        (12332.2, 0, "ar_DZ", "12.332"),
        (12332.12341111, 4, "ar_IN", "١٢٬٣٣٢٫١٢٣٤"),
        (12332.2, 2, "fr_FR", "12\u{a0}332,20"),
        (12332.2, 2, "ru_RU", "12\u{a0}332,20"),
        (12332.2, 2, "pt_BR", "12.332,20"),
        (12332.2, 2, "pt_PT", "12\u{a0}332,20"),
        (12332.2, 2, "es_MX", "12,332.20"),
        (12332.2, 2, "es_CR", "12\u{a0}332,20"),
        (12332.2, 2, "fr_LU", "12.332,20"),
        (12332.2, 2, "no_NO", "12,332.20"),
        (12332.2, 2, "sv_FI", "12\u{a0}332,20"),
        (12332.2, 2, "it_CH", "12\u{2019}332.20"),
    ] {
        assert_eq!(l(x, d, loc).unwrap(), s(want), "{loc}");
    }
    assert_eq!(l(1.0, 2, "not_exist_locale").unwrap_err().0, "not support for the specific locale:not_exist_locale");
    assert!(l(1.0, 2, "ff").is_err());
    assert_eq!(call("format", &[Value::Null, i(2)]).unwrap(), Value::Null);
    let v = |a: Vec<ArgHint>| Registry::builtins().validate("format", &a);
    assert_eq!(
        v(vec![lit(serde_json::json!(1)), lit(serde_json::json!("1"))]).unwrap_err(),
        "Expect integer type for parameter 2"
    );
    assert_eq!(
        v(vec![lit(serde_json::json!(1)), lit(serde_json::json!(0)), lit(serde_json::json!(0))]).unwrap_err(),
        "Expect string type for parameter 3"
    );
    assert!(v(vec![lit(serde_json::json!(1)), lit(serde_json::json!(0)), lit(serde_json::json!("en"))]).is_ok());
}

#[test]
fn validators_reject_literals_of_wrong_type() {
    let r = Registry::builtins();
    assert_eq!(r.validate("lower", &[lit(serde_json::json!(1))]).unwrap_err(), "Expect string type for parameter 1");
    assert!(r.validate("lower", &[ArgHint::Expr]).is_ok());
    assert!(r.validate("lpad", &[ArgHint::Expr, lit(serde_json::json!(1.5))]).is_err());
    assert!(r.validate("split_value", &[ArgHint::Expr, ArgHint::Expr, lit(serde_json::json!(-1))]).is_err());
}
