//! Built-in functions: objects (eKuiper's `funcs_obj.go`).
//!
//! Go iterates maps in random order; weir's maps are sorted, so `keys`,
//! `values`, `items` and `obj_to_kvpair_array` list entries by key.

use super::golike::{go_to_string_all, go_v};
use super::{nil_checked, FuncError, Registry};
use crate::value::{Map, Value};
use weir_planner::ArgHint;

fn map_arg<'a>(v: &'a Value, msg: &str) -> Result<&'a Map, FuncError> {
    v.as_map().ok_or_else(|| FuncError::new(msg))
}

pub(crate) fn register(r: &mut Registry) {
    const NOT_MAP: &str = "the argument should be map[string]interface{}";
    nil_checked(r, "keys", 1, Some(1), |a| {
        let m = map_arg(&a[0], NOT_MAP)?;
        Ok(Value::array(m.keys().map(Value::str).collect()))
    });
    nil_checked(r, "values", 1, Some(1), |a| {
        let m = map_arg(&a[0], NOT_MAP)?;
        Ok(Value::array(m.values().cloned().collect()))
    });
    nil_checked(r, "object", 2, Some(2), |a| {
        const KEYS: &str = "first argument should be []string";
        let keys = a[0].as_array().ok_or_else(|| FuncError::new(KEYS))?;
        let vals = a[1].as_array().ok_or_else(|| FuncError::new("second argument should be []interface{}"))?;
        if keys.len() != vals.len() {
            return Err(FuncError::new("the length of the arguments should be same"));
        }
        let mut m = Map::new();
        for (k, v) in keys.iter().zip(vals.iter()) {
            let k = k.as_str().ok_or_else(|| FuncError::new(KEYS))?;
            m.insert(k.to_string(), v.clone());
        }
        Ok(Value::map(m))
    });
    nil_checked(r, "zip", 1, Some(1), |a| {
        const EACH: &str = "each argument should be [][2]interface{}";
        let lists = a[0].as_array().ok_or_else(|| FuncError::new(EACH))?;
        let mut m = Map::new();
        for item in lists {
            if item.is_null() {
                continue;
            }
            match item.as_array() {
                Some([k, v]) => {
                    let k = k
                        .as_str()
                        .ok_or_else(|| FuncError::new("the first element in the list item should be string"))?;
                    m.insert(k.to_string(), v.clone());
                }
                _ => return Err(FuncError::new(EACH)),
            }
        }
        Ok(Value::map(m))
    });
    nil_checked(r, "items", 1, Some(1), |a| {
        let m = map_arg(&a[0], "first argument should be map[string]interface{}")?;
        Ok(Value::array(m.iter().map(|(k, v)| Value::array(vec![Value::str(k), v.clone()])).collect()))
    });
    r.scalar("object_concat", 2, None, |_, a| {
        let mut res = Map::new();
        for v in a {
            match v {
                Value::Null => {}
                Value::Map(m) => res.extend(m.iter().map(|(k, v)| (k.clone(), v.clone()))),
                other => {
                    return Err(FuncError::new(format!(
                        "the argument should be map[string]interface{{}}, got {}",
                        go_v(other)
                    )))
                }
            }
        }
        Ok(Value::map(res))
    });
    r.scalar("object_construct", 0, None, |_, a| {
        if !a.len().is_multiple_of(2) {
            return Err(FuncError::new("the args must be key value pairs"));
        }
        let mut res = Map::new();
        for pair in a.chunks_exact(2) {
            match &pair[0] {
                Value::Null => {}
                Value::String(k) => {
                    res.insert(k.to_string(), pair[1].clone());
                }
                Value::Bytes(b) => {
                    res.insert(String::from_utf8_lossy(b).into_owned(), pair[1].clone());
                }
                other => return Err(FuncError::new(format!("key {} is not a string", go_v(other)))),
            }
        }
        Ok(Value::map(res))
    });
    r.set_validate("object_construct", validate_object_construct);
    nil_checked(r, "erase", 2, None, |a| {
        if a.len() != 2 {
            return Err(FuncError::new(format!("the argument number should be 2, got {}", a.len())));
        }
        let m = a[0].as_map().ok_or_else(|| {
            FuncError::new(format!("the first argument should be map[string]interface{{}}, got {}", go_v(&a[0])))
        })?;
        let erase: Vec<String> = match &a[1] {
            Value::String(k) => vec![k.to_string()],
            Value::Array(ks) => ks.iter().map(go_to_string_all).collect(),
            Value::Bytes(b) => b.iter().map(|x| x.to_string()).collect(),
            _ => return Err(FuncError::new("the argument should be slice or string")),
        };
        Ok(Value::map(
            m.iter().filter(|(k, _)| !erase.iter().any(|e| e == *k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        ))
    });
    r.scalar("object_size", 1, Some(1), |_, a| match &a[0] {
        Value::Null => Ok(Value::Int(0)),
        Value::Map(m) => Ok(Value::Int(m.len() as i64)),
        other => Err(FuncError::new(format!("the first argument should be map[string]any, got {}", go_v(other)))),
    });
    r.scalar("object_pick", 2, None, |_, a| {
        let m = match &a[0] {
            Value::Null => return Ok(Value::Null),
            Value::Map(m) => m,
            other => return Err(FuncError::new(format!("the first argument should be a map, got {}", go_v(other)))),
        };
        let mut res = Map::new();
        match &a[1] {
            // Non-string keys are logged and skipped by eKuiper.
            Value::Array(ks) => {
                for k in ks.iter().filter_map(Value::as_str) {
                    pick(&mut res, m, k);
                }
            }
            Value::String(k) => {
                pick(&mut res, m, k);
                for k in a[2..].iter().filter_map(Value::as_str) {
                    pick(&mut res, m, k);
                }
            }
            _ => {}
        }
        Ok(Value::map(res))
    });
    nil_checked(r, "obj_to_kvpair_array", 1, Some(1), |a| {
        let m = a[0].as_map().ok_or_else(|| {
            FuncError::new(format!("the first argument should be map[string]interface{{}}, got {}", go_v(&a[0])))
        })?;
        Ok(Value::array(
            m.iter()
                .map(|(k, v)| {
                    let mut p = Map::new();
                    p.insert("key".into(), Value::str(k));
                    p.insert("value".into(), v.clone());
                    Value::map(p)
                })
                .collect(),
        ))
    });
}

/// eKuiper's `pick`: a dotted key selects a nested value and rebuilds the
/// nesting in the result. Quirk kept from eKuiper: once the first level of
/// a dotted key exists in the result, later dotted keys under it are stored
/// at the top level (`object_pick(o, "a.b", "a.c")` gives `{"a":{"b":..},"c":..}`).
fn pick(res: &mut Map, m: &Map, k: &str) {
    if !k.contains('.') {
        if let Some(v) = m.get(k) {
            res.insert(k.to_string(), v.clone());
        }
        return;
    }
    let keys: Vec<&str> = k.split('.').collect();
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut cur = m;
    for p in parents {
        match cur.get(*p) {
            Some(Value::Map(inner)) => cur = inner,
            _ => return,
        }
    }
    let Some(v) = cur.get(*last) else {
        return;
    };
    insert_nested(res, parents, last, v.clone());
}

fn insert_nested(rr: &mut Map, parents: &[&str], last: &str, v: Value) {
    match parents.split_first() {
        None => {
            rr.insert(last.to_string(), v);
        }
        Some((p, rest)) => {
            let absent = rr.get(*p).is_none_or(Value::is_null);
            if absent {
                let mut inner = Map::new();
                insert_nested(&mut inner, rest, last, v);
                rr.insert(p.to_string(), Value::map(inner));
            } else {
                // eKuiper does not descend into an existing level.
                insert_nested(rr, rest, last, v);
            }
        }
    }
}

fn validate_object_construct(args: &[ArgHint]) -> Result<(), String> {
    if !args.len().is_multiple_of(2) {
        return Err("the args must be key value pairs".into());
    }
    for (i, a) in args.iter().enumerate().step_by(2) {
        if let ArgHint::Literal(serde_json::Value::Number(_) | serde_json::Value::Bool(_)) = a {
            return Err(format!("Expect string type for parameter {}", i + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::call_scalar;
    use crate::functions::test_util::{i, obj, s};

    fn call(name: &str, args: &[Value]) -> Result<Value, String> {
        call_scalar(Registry::builtins(), name, args).map_err(|e| e.0)
    }

    fn ab() -> Value {
        obj(&[("a", i(1)), ("b", i(2))])
    }

    const NOT_MAP: &str = "the argument should be map[string]interface{}";

    #[test]
    fn keys_values_items() {
        assert_eq!(call("keys", &[ab()]), Ok(Value::array(vec![s("a"), s("b")])));
        assert_eq!(call("keys", &[i(1)]).unwrap_err(), NOT_MAP);
        assert_eq!(call("keys", &[i(1), i(2)]).unwrap_err(), "Expect 1 arguments but found 2.");
        assert_eq!(call("values", &[obj(&[("a", s("c")), ("b", s("d"))])]), Ok(Value::array(vec![s("c"), s("d")])));
        assert_eq!(call("values", &[s("x")]).unwrap_err(), NOT_MAP);
        assert_eq!(call("values", &[Value::Null]), Ok(Value::Null));
        assert_eq!(
            call("items", &[ab()]),
            Ok(Value::array(vec![Value::array(vec![s("a"), i(1)]), Value::array(vec![s("b"), i(2)])]))
        );
        assert_eq!(call("items", &[i(1)]).unwrap_err(), "first argument should be map[string]interface{}");
        assert_eq!(call("items", &[obj(&[])]), Ok(Value::Null));
    }

    #[test]
    fn object_and_zip() {
        let keys = Value::array(vec![s("a"), s("b")]);
        let vals = Value::array(vec![i(1), i(2)]);
        assert_eq!(call("object", &[keys.clone(), vals.clone()]), Ok(ab()));
        assert_eq!(call("object", &[i(1), vals.clone()]).unwrap_err(), "first argument should be []string");
        assert_eq!(call("object", &[vals.clone(), vals.clone()]).unwrap_err(), "first argument should be []string");
        assert_eq!(call("object", &[vals.clone(), i(1)]).unwrap_err(), "second argument should be []interface{}");
        assert_eq!(
            call("object", &[keys, Value::array(vec![i(1), i(2), i(3)])]).unwrap_err(),
            "the length of the arguments should be same"
        );
        assert_eq!(call("object", &[Value::Null, vals]), Ok(Value::Null));

        let pair = |k: Value, v: Value| Value::array(vec![k, v]);
        assert_eq!(call("zip", &[Value::array(vec![pair(s("a"), i(1)), pair(s("b"), i(2))])]), Ok(ab()));
        let each = "each argument should be [][2]interface{}";
        assert_eq!(call("zip", &[i(1)]).unwrap_err(), each);
        assert_eq!(call("zip", &[Value::array(vec![i(1), i(2)])]).unwrap_err(), each);
        assert_eq!(call("zip", &[Value::array(vec![Value::array(vec![s("a"), i(1), i(3)])])]).unwrap_err(), each);
        assert_eq!(
            call("zip", &[Value::array(vec![pair(i(1), i(3))])]).unwrap_err(),
            "the first element in the list item should be string"
        );
    }

    #[test]
    fn concat_construct() {
        let r = call("object_concat", &[ab(), obj(&[("b", i(3)), ("c", i(4))]), obj(&[("a", i(2)), ("d", i(1))])]);
        assert_eq!(r, Ok(obj(&[("a", i(2)), ("b", i(3)), ("c", i(4)), ("d", i(1))])));
        assert_eq!(
            call("object_concat", &[ab(), Value::array(vec![i(1), i(2)])]).unwrap_err(),
            "the argument should be map[string]interface{}, got [1 2]"
        );
        assert_eq!(call("object_concat", &[ab(), Value::Null]), Ok(ab()));
        assert_eq!(call("object_concat", &[ab()]).unwrap_err(), "Expect at least 2 arguments but found 1.");

        assert_eq!(call("object_construct", &[s("foo"), s("bar")]), Ok(obj(&[("foo", s("bar"))])));
        assert_eq!(call("object_construct", &[Value::Bool(true), s("bar")]).unwrap_err(), "key true is not a string");
        // Null keys are dropped; null values are kept.
        assert_eq!(
            call("object_construct", &[s("key1"), Value::Null, Value::Null, s("x"), s("key2"), s("foo")]),
            Ok(obj(&[("key1", Value::Null), ("key2", s("foo"))]))
        );
        let lit = |v: serde_json::Value| ArgHint::Literal(v);
        assert_eq!(
            validate_object_construct(&[lit(serde_json::json!("foo"))]),
            Err("the args must be key value pairs".into())
        );
        assert_eq!(
            validate_object_construct(&[lit(serde_json::json!(true)), lit(serde_json::json!("baz"))]),
            Err("Expect string type for parameter 1".into())
        );
        assert_eq!(validate_object_construct(&[lit(serde_json::json!("a")), ArgHint::Expr]), Ok(()));
    }

    #[test]
    fn erase_pick_size() {
        let abc = obj(&[("a", i(1)), ("b", i(2)), ("c", i(3))]);
        assert_eq!(call("erase", &[abc.clone(), s("a")]), Ok(obj(&[("b", i(2)), ("c", i(3))])));
        assert_eq!(call("erase", &[abc.clone(), Value::array(vec![s("a"), s("b")])]), Ok(obj(&[("c", i(3))])));
        assert_eq!(
            call("erase", &[abc.clone(), Value::array(vec![s("a")]), s("c")]).unwrap_err(),
            "the argument number should be 2, got 3"
        );
        assert_eq!(call("erase", &[abc.clone(), i(1)]).unwrap_err(), "the argument should be slice or string");
        assert_eq!(call("erase", &[Value::Null, s("a")]), Ok(Value::Null));

        assert_eq!(
            call("object_pick", &[abc.clone(), Value::array(vec![s("a"), s("c")])]),
            Ok(obj(&[("a", i(1)), ("c", i(3))]))
        );
        assert_eq!(call("object_pick", &[abc.clone(), s("a")]), Ok(obj(&[("a", i(1))])));
        assert_eq!(call("object_pick", &[abc.clone(), s("a"), s("b")]), Ok(obj(&[("a", i(1)), ("b", i(2))])));
        assert_eq!(call("object_pick", &[abc.clone(), s("d")]), Ok(obj(&[])));
        assert_eq!(call("object_pick", &[Value::Null, s("d")]), Ok(Value::Null));
        assert!(call("object_pick", &[i(1), s("d")]).is_err());
        let nested = obj(&[("a", obj(&[("b", i(1)), ("c", i(2))])), ("x", i(0))]);
        assert_eq!(call("object_pick", &[nested.clone(), s("a.b")]), Ok(obj(&[("a", obj(&[("b", i(1))]))])));
        assert_eq!(
            call("object_pick", &[nested.clone(), s("a.b"), s("a.c")]),
            Ok(obj(&[("a", obj(&[("b", i(1))])), ("c", i(2))]))
        );
        assert_eq!(call("object_pick", &[nested, s("x.y")]), Ok(obj(&[])));

        assert_eq!(call("object_size", &[ab()]), Ok(i(2)));
        assert_eq!(call("object_size", &[Value::Null]), Ok(i(0)));
        assert!(call("object_size", &[i(1)]).is_err());
    }

    #[test]
    fn kvpairs() {
        let kv = |k: &str, v: Value| obj(&[("key", s(k)), ("value", v)]);
        assert_eq!(call("obj_to_kvpair_array", &[ab()]), Ok(Value::array(vec![kv("a", i(1)), kv("b", i(2))])));
        assert_eq!(
            call("obj_to_kvpair_array", &[i(1)]).unwrap_err(),
            "the first argument should be map[string]interface{}, got 1"
        );
        // Round trip.
        let arr = call("obj_to_kvpair_array", &[ab()]).unwrap();
        assert_eq!(call("kvpair_array_to_obj", &[arr]), Ok(ab()));
    }
}
