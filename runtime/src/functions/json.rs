//! Built-in functions: JSON (`to_json`, `parse_json` and the JSONPath
//! functions of eKuiper's `funcs_misc.go`). The JSONPath dialect is in
//! [`super::jsonpath`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use weir_planner::ArgHint;

use super::golike::go_v;
use super::jsonpath::JsonPath;
use super::{nil_checked, validate_first_str, FuncError, Registry};
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    nil_checked(r, "to_json", 1, Some(1), |a| {
        if has_non_finite(&a[0]) {
            return Err(FuncError::new(format!("fail to convert {} to json", go_v(&a[0]))));
        }
        Ok(Value::str(a[0].to_json()))
    });
    r.scalar("parse_json", 1, Some(1), |_, a| {
        let text = match &a[0] {
            Value::Null => return Ok(Value::Null),
            Value::String(s) if &**s == "null" => return Ok(Value::Null),
            Value::String(s) => s.to_string(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            other => return Err(FuncError::new(format!("fail to convert {} to string", go_v(other)))),
        };
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| FuncError::new(format!("fail to parse json: {e}")))?;
        Ok(Value::from_json(v, false))
    });
    r.set_validate("parse_json", validate_first_str);
    r.scalar("json_path_query", 2, Some(2), |_, a| json_call(a).map_err(FuncError::new));
    r.scalar("json_path_query_first", 2, Some(2), |_, a| {
        match json_call(a).map_err(FuncError::new)? {
            // eKuiper indexes [0] without a check (a Go panic); weir gives null.
            Value::Array(v) => Ok(v.first().cloned().unwrap_or(Value::Null)),
            other => Err(FuncError::new(format!("query result ({}) is not an array", go_v(&other)))),
        }
    });
    r.scalar("json_path_exists", 2, Some(2), |_, a| {
        Ok(Value::Bool(match json_call(a) {
            Err(_) | Ok(Value::Null) => false,
            Ok(Value::Array(v)) => !v.is_empty(),
            Ok(_) => true,
        }))
    });
    for name in ["json_path_query", "json_path_query_first", "json_path_exists"] {
        r.set_validate(name, validate_json_func);
    }
}

fn has_non_finite(v: &Value) -> bool {
    match v {
        Value::Float(f) => !f.is_finite(),
        Value::Array(a) => a.iter().any(has_non_finite),
        Value::Map(m) => m.values().any(has_non_finite),
        _ => false,
    }
}

/// eKuiper's `jsonCall`: compile (cached) and evaluate the path.
fn json_call(a: &[Value]) -> Result<Value, String> {
    let path = a[1].as_str().ok_or_else(|| format!("invalid jsonPath, must be a string but got {}", go_v(&a[1])))?;
    let compiled = compile(path)?;
    let data = match &a[0] {
        Value::Map(_) | Value::Array(_) => a[0].clone(),
        Value::String(s) => {
            let v: serde_json::Value =
                serde_json::from_str(s).map_err(|_| format!("data '{s}' is not a valid json string"))?;
            Value::from_json(v, false)
        }
        Value::Null => return Err("invalid data nil for jsonpath".into()),
        other => return Err(format!("invalid data {} for jsonpath", go_v(other))),
    };
    compiled.eval(&data)
}

fn compile(path: &str) -> Result<Arc<JsonPath>, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<JsonPath>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(c) = cache.lock() {
        if let Some(p) = c.get(path) {
            return Ok(p.clone());
        }
    }
    let p = Arc::new(JsonPath::parse(path)?);
    if let Ok(mut c) = cache.lock() {
        if c.len() >= 1024 {
            c.clear();
        }
        c.insert(path.to_string(), p.clone());
    }
    Ok(p)
}

/// eKuiper requires the path to be a string literal.
fn validate_json_func(args: &[ArgHint]) -> Result<(), String> {
    match args.get(1) {
        Some(ArgHint::Literal(serde_json::Value::String(_))) => Ok(()),
        _ => Err("Expect string type for parameter 2".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::call_scalar;
    use crate::functions::test_util::s;
    use weir_planner::FunctionLookup;

    fn call(name: &str, args: &[Value]) -> Result<Value, String> {
        call_scalar(Registry::builtins(), name, args).map_err(|e| e.0)
    }

    fn j(v: serde_json::Value) -> Value {
        Value::from_json(v, false)
    }

    #[test]
    fn to_json() {
        let m = j(serde_json::json!({"b": 1.5, "a": [1, "x<"]}));
        assert_eq!(call("to_json", &[m]), Ok(s(r#"{"a":[1,"x\u003c"],"b":1.5}"#)));
        assert_eq!(call("to_json", &[Value::Int(3)]), Ok(s("3")));
        assert_eq!(call("to_json", &[s("a")]), Ok(s(r#""a""#)));
        assert_eq!(call("to_json", &[Value::Null]), Ok(Value::Null));
        assert_eq!(call("to_json", &[Value::array(vec![])]), Ok(Value::Null));
        assert!(call("to_json", &[Value::Float(f64::NAN)]).is_err());
        assert_eq!(call("to_json", &[]).unwrap_err(), "Expect 1 arguments but found 0.");
    }

    #[test]
    fn parse_json() {
        assert_eq!(
            call("parse_json", &[s(r#"{"a":1,"b":[true,null]}"#)]),
            Ok(j(serde_json::json!({"a": 1.0, "b": [true, null]})))
        );
        assert_eq!(call("parse_json", &[s("12")]), Ok(Value::Float(12.0)));
        assert_eq!(call("parse_json", &[s("null")]), Ok(Value::Null));
        assert_eq!(call("parse_json", &[Value::Null]), Ok(Value::Null));
        assert!(call("parse_json", &[s("{")]).unwrap_err().starts_with("fail to parse json: "));
        assert_eq!(call("parse_json", &[Value::Int(1)]).unwrap_err(), "fail to convert 1 to string");
        let reg = Registry::builtins();
        assert!(reg.validate("parse_json", &[ArgHint::Literal(serde_json::json!(1))]).is_err());
        assert!(reg.validate("parse_json", &[ArgHint::Expr]).is_ok());
    }

    #[test]
    fn json_path() {
        let data = j(serde_json::json!({"a": {"b": [1, 2, 3]}, "c": "x"}));
        assert_eq!(call("json_path_query", &[data.clone(), s("$.a.b")]), Ok(j(serde_json::json!([1, 2, 3]))));
        assert_eq!(call("json_path_query", &[data.clone(), s("$.a.b[1]")]), Ok(Value::Float(2.0)));
        assert_eq!(call("json_path_query", &[data.clone(), s("$..b[?(@ > 1)]")]), Ok(j(serde_json::json!([2, 3]))));
        assert_eq!(call("json_path_query", &[data.clone(), s("$.z")]).unwrap_err(), "unknown key z");
        assert_eq!(call("json_path_query", &[Value::Null, s("$.z")]).unwrap_err(), "invalid data nil for jsonpath");
        assert_eq!(call("json_path_query", &[Value::Int(1), s("$")]).unwrap_err(), "invalid data 1 for jsonpath");
        assert_eq!(call("json_path_query", &[s(r#"{"k":5}"#), s("$.k")]), Ok(Value::Float(5.0)));
        assert_eq!(call("json_path_query", &[s("{"), s("$.k")]).unwrap_err(), "data '{' is not a valid json string");
        assert_eq!(
            call("json_path_query", &[data.clone(), Value::Int(1)]).unwrap_err(),
            "invalid jsonPath, must be a string but got 1"
        );
        assert!(call("json_path_query", &[data.clone(), s("$.")]).unwrap_err().starts_with("parsing error"));

        assert_eq!(call("json_path_query_first", &[data.clone(), s("$.a.b[*]")]), Ok(Value::Float(1.0)));
        assert_eq!(call("json_path_query_first", &[data.clone(), s("$.a.b")]), Ok(Value::Float(1.0)));
        assert_eq!(
            call("json_path_query_first", &[data.clone(), s("$.c")]).unwrap_err(),
            "query result (x) is not an array"
        );
        assert_eq!(call("json_path_query_first", &[data.clone(), s("$.a.b[?(@ > 9)]")]), Ok(Value::Null));

        assert_eq!(call("json_path_exists", &[data.clone(), s("$.a.b")]), Ok(Value::Bool(true)));
        assert_eq!(call("json_path_exists", &[data.clone(), s("$.c")]), Ok(Value::Bool(true)));
        assert_eq!(call("json_path_exists", &[data.clone(), s("$.z")]), Ok(Value::Bool(false)));
        assert_eq!(call("json_path_exists", &[data.clone(), s("$.a.b[?(@ > 9)]")]), Ok(Value::Bool(false)));
        assert_eq!(call("json_path_exists", &[Value::Null, s("$.a")]), Ok(Value::Bool(false)));
        assert_eq!(call("json_path_exists", &[data, s("$[")]), Ok(Value::Bool(false)));
        assert_eq!(call("json_path_exists", &[s("x")]).unwrap_err(), "Expect 2 arguments but found 1.");

        let reg = Registry::builtins();
        let lit = |v| ArgHint::Literal(v);
        assert!(reg.validate("json_path_query", &[ArgHint::Expr, lit(serde_json::json!("$.a"))]).is_ok());
        assert_eq!(
            reg.validate("json_path_exists", &[ArgHint::Expr, ArgHint::Expr]),
            Err("Expect string type for parameter 2".into())
        );
    }
}
