#![allow(clippy::cloned_ref_to_slice_refs, clippy::approx_constant)]

use super::*;
use crate::functions::test_util::{f, i};
use crate::functions::{call_scalar, FuncError, FunctionLookup};

fn call(name: &str, args: &[Value]) -> Result<Value, FuncError> {
    call_scalar(Registry::builtins(), name, args)
}
fn err(name: &str, args: &[Value]) -> String {
    call(name, args).unwrap_err().0
}

/// Ports eKuiper's TestFuncMath table (args -10, 10, -10.5, 10.5, 0 with 2).
#[test]
fn ekuiper_math_table() {
    // abs keeps ints
    assert_eq!(call("abs", &[i(-10)]).unwrap(), i(10));
    assert_eq!(call("abs", &[f(-10.5)]).unwrap(), f(10.5));
    assert_eq!(call("abs", &[i(i64::MIN)]).unwrap(), i(i64::MIN));
    // ceil / floor are floats
    assert_eq!(call("ceil", &[i(-10)]).unwrap(), f(-10.0));
    assert_eq!(call("ceiling", &[f(10.5)]).unwrap(), f(11.0));
    assert_eq!(call("floor", &[f(-10.5)]).unwrap(), f(-11.0));
    assert_eq!(call("exp", &[i(0)]).unwrap(), f(1.0));
    assert_eq!(err("ln", &[i(-10)]), "The argument must be a strictly positive number but got -10");
    assert_eq!(err("log", &[f(-10.5)]), "The argument must be a strictly positive number but got -10.5");
    assert_eq!(err("sqrt", &[i(-10)]), "The argument must be a positive number but got -10");
    assert_eq!(call("ln", &[i(0)]).unwrap(), f(f64::NEG_INFINITY));
    assert_eq!(call("log", &[i(10)]).unwrap(), f(1.0));
    assert_eq!(call("log", &[i(2), i(8)]).unwrap(), f(3.0));
    assert_eq!(call("sqrt", &[i(0)]).unwrap(), f(0.0));
    assert_eq!(call("power", &[i(-10), i(2)]).unwrap(), f(100.0));
    assert_eq!(call("pow", &[f(10.5), i(2)]).unwrap(), f(110.25));
    assert_eq!(call("bitand", &[i(-10), i(2)]).unwrap(), i(2));
    assert_eq!(call("bitor", &[i(-10), i(2)]).unwrap(), i(-10));
    assert_eq!(call("bitxor", &[i(-10), i(2)]).unwrap(), i(-12));
    assert_eq!(call("bitnot", &[i(-10)]).unwrap(), i(9));
    assert_eq!(call("bitnot", &[i(10)]).unwrap(), i(-11));
    assert_eq!(call("bitand", &[f(10.0), i(2)]).unwrap(), i(2));
    assert_eq!(err("bitand", &[f(-10.5), i(2)]), "Expect int type for the first operand but got -10.5");
    assert_eq!(err("bitor", &[i(1), f(0.5)]), "Expect int type for the second operand but got 0.5");
    assert_eq!(err("bitnot", &[f(10.5)]), "Expect int type for operand but got 10.5");
    assert_eq!(call("acos", &[i(-10)]).unwrap(), Value::Null);
    assert_eq!(call("asin", &[i(10)]).unwrap(), Value::Null);
    assert_eq!(call("acos", &[i(0)]).unwrap(), f(0f64.acos()));
    assert_eq!(call("atan", &[i(10)]).unwrap(), f(10f64.atan()));
    assert_eq!(call("atan2", &[i(-10), i(2)]).unwrap(), f((-10f64).atan2(2.0)));
    assert_eq!(call("cos", &[i(10)]).unwrap(), f(10f64.cos()));
    assert_eq!(call("cosh", &[i(10)]).unwrap(), f(10f64.cosh()));
    assert_eq!(call("sin", &[i(10)]).unwrap(), f(10f64.sin()));
    assert_eq!(call("sinh", &[i(10)]).unwrap(), f(10f64.sinh()));
    assert_eq!(call("tan", &[i(10)]).unwrap(), f(10f64.tan()));
    assert_eq!(call("tanh", &[i(10)]).unwrap(), f(10f64.tanh()));
    assert_eq!(call("mod", &[f(-10.5), i(2)]).unwrap(), f(-0.5));
    assert_eq!(call("mod", &[i(10), i(2)]).unwrap(), f(0.0));
    assert_eq!(call("sign", &[f(-10.5)]).unwrap(), i(-1));
    assert_eq!(call("sign", &[i(0)]).unwrap(), i(0));
    assert_eq!(call("sign", &[i(10)]).unwrap(), i(1));
    assert_eq!(call("pi", &[]).unwrap(), f(std::f64::consts::PI));
    assert_eq!(err("cot", &[i(0)]), "out-of-range error");
    let c = call("cot", &[i(10)]).unwrap().as_f64().unwrap();
    assert!((c - 1.0 / 10f64.tan()).abs() < 1e-12);
    let c = call("cot", &[f(0.1)]).unwrap().as_f64().unwrap();
    assert!((c - 1.0 / 0.1f64.tan()).abs() < 1e-9);
}

#[test]
fn radians_degrees_exact() {
    assert_eq!(call("radians", &[i(90)]).unwrap(), f(std::f64::consts::FRAC_PI_2));
    assert_eq!(call("radians", &[i(180)]).unwrap(), f(std::f64::consts::PI));
    assert_eq!(call("radians", &[i(45)]).unwrap(), f(std::f64::consts::FRAC_PI_4));
    assert_eq!(call("degrees", &[f(std::f64::consts::FRAC_PI_2)]).unwrap(), f(90.0));
    assert_eq!(call("degrees", &[f(std::f64::consts::PI)]).unwrap(), f(180.0));
    assert_eq!(call("degrees", &[f(std::f64::consts::FRAC_PI_4)]).unwrap(), f(45.0));
}

#[test]
fn round_cases() {
    assert_eq!(call("round", &[i(16), i(2)]).unwrap(), f(16.0));
    assert_eq!(call("round", &[f(25.987), i(2)]).unwrap(), f(25.99));
    assert_eq!(call("round", &[f(25.919), i(1)]).unwrap(), f(25.9));
    assert_eq!(call("round", &[f(9.9999), i(3)]).unwrap(), f(10.0));
    assert_eq!(call("round", &[f(56788.34), i(-3)]).unwrap(), f(57000.0));
    assert_eq!(call("round", &[f(1.8e306 + 0.56784), i(2)]).unwrap(), f(1.8e306 + 0.57));
    assert_eq!(call("round", &[f(10.5)]).unwrap(), f(11.0));
    assert_eq!(call("round", &[f(-10.5)]).unwrap(), f(-11.0));
    assert!(err("round", &[i(1), Value::array(vec![Value::str("sa")])])
        .starts_with("The second argument must be an integer: cannot convert"));
    assert!(call("round", &[i(1), i(2), i(3)]).is_err());
    let r = Registry::builtins();
    assert_eq!(
        r.validate("round", &[ArgHint::Literal(serde_json::json!("1"))]).unwrap_err(),
        "Expect number - float or int type for parameter 1"
    );
    assert_eq!(
        r.validate("round", &[ArgHint::Literal(serde_json::json!(1)), ArgHint::Literal(serde_json::json!("2"))])
            .unwrap_err(),
        "Expect number - float or int type for parameter 2"
    );
}

#[test]
fn conv_cases() {
    let c = |a: &str, b: i64, d: i64| call("conv", &[Value::str(a), i(b), i(d)]).unwrap();
    assert_eq!(c("a", 16, 2), Value::str("1010"));
    assert_eq!(c("6E", 18, 8), Value::str("172"));
    assert_eq!(c("-17", 10, -18), Value::str("-H"));
    assert_eq!(c("-17", 10, 18), Value::str("2D3FGB0B9CG4BD1H"));
    assert_eq!(c("+18aZ", 7, 36), Value::str("1"));
    assert_eq!(c("18446744073709551615", -10, 16), Value::str("7FFFFFFFFFFFFFFF"));
    assert_eq!(c("12F", -10, 16), Value::str("C"));
    assert_eq!(c("  FF ", 16, 10), Value::str("255"));
    assert_eq!(c("aa", 10, 2), Value::str("0"));
    assert_eq!(c(" A", -10, 16), Value::str("0"));
    assert_eq!(c("random_str", 10, 8), Value::str("0"));
    assert_eq!(c("a6a", 10, 8), Value::str("0"));
    assert_eq!(c("a6a", 1, 8), Value::Null);
    assert_eq!(call("conv", &[i(255), i(10), i(16)]).unwrap(), Value::str("FF"));
    assert!(call("conv", &[Value::str("99999999999999999999"), i(10), i(16)]).is_err());
    assert_eq!(valid_prefix("-123456D1f", 5), "-1234");
    assert_eq!(valid_prefix("+12azD", 16), "12a");
    assert_eq!(valid_prefix("+", 12), "");
}

#[test]
fn nulls_wrong_types_and_arity() {
    for name in [
        "abs", "acos", "asin", "atan", "cos", "cosh", "sin", "sinh", "tan", "tanh", "cot", "exp", "ln", "log", "sqrt",
        "ceil", "ceiling", "floor", "sign", "radians", "degrees", "bitnot", "round",
    ] {
        assert_eq!(call(name, &[Value::Null]).unwrap(), Value::Null, "{name}");
    }
    for name in ["atan2", "bitand", "bitor", "bitxor", "mod", "power", "pow"] {
        assert_eq!(call(name, &[Value::Null, i(1)]).unwrap(), Value::Null, "{name}");
    }
    assert_eq!(call("conv", &[Value::Null, i(1), i(2)]).unwrap(), Value::Null);
    assert!(call("sin", &[Value::str("a")]).is_err());
    assert!(call("abs", &[Value::str("a")]).is_err());
    assert!(call("power", &[Value::Bool(true), i(1)]).is_err());
    assert_eq!(err("sin", &[]), "Expect 1 arguments but found 0.");
    assert!(call("pi", &[i(1)]).is_err());
    let r = call("rand", &[]).unwrap().as_f64().unwrap();
    assert!((0.0..1.0).contains(&r));
    let reg = Registry::builtins();
    assert!(reg.validate("sin", &[ArgHint::Literal(serde_json::json!("x"))]).is_err());
    assert!(reg.validate("bitand", &[ArgHint::Literal(serde_json::json!(1.5)), ArgHint::Expr]).is_err());
    assert!(reg.validate("conv", &[ArgHint::Expr, ArgHint::Literal(serde_json::json!(1.5)), ArgHint::Expr]).is_err());
}
