//! Tests of the array functions, mostly ported from eKuiper's
//! `funcs_array_test.go` (Go `int` test values are weir ints).

use crate::functions::test_util::{arr, f, i, obj, s};
use crate::functions::{call_scalar, Registry};
use crate::value::Value;

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    call_scalar(Registry::builtins(), name, args).map_err(|e| e.0)
}

fn ok(name: &str, args: &[Value]) -> Value {
    call(name, args).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn err(name: &str, args: &[Value]) -> String {
    match call(name, args) {
        Err(e) => e,
        Ok(v) => panic!("{name}: expected an error, got {v:?}"),
    }
}

fn ints(v: &[i64]) -> Value {
    arr(v.iter().map(|x| i(*x)).collect())
}

const NOT_ARRAY: &str = "first argument should be array of interface{}";
const NOT_ARRAY2: &str = "second argument should be array of interface{}";

#[test]
fn create_and_cardinality() {
    assert_eq!(ok("array_create", &[i(1), s("2"), i(3)]), arr(vec![i(1), s("2"), i(3)]));
    assert_eq!(ok("array_create", &[i(1), Value::Null, i(2)]), ints(&[1, 2]));
    assert_eq!(ok("array_create", &[Value::Null]), Value::Null);
    assert_eq!(ok("array_create", &[]), Value::Null);
    assert_eq!(ok("cardinality", &[ints(&[1, 2, 3])]), i(3));
    assert_eq!(ok("cardinality", &[Value::Null]), i(0));
    assert_eq!(ok("cardinality", &[s("abc")]), i(0));
    assert_eq!(err("cardinality", &[]), "Expect 1 arguments but found 0.");
}

#[test]
fn positions() {
    assert_eq!(err("array_position", &[i(1), i(2)]), NOT_ARRAY);
    assert_eq!(ok("array_position", &[ints(&[3, 2, 1]), i(1)]), i(2));
    assert_eq!(ok("array_position", &[ints(&[3, 2, 1]), i(4)]), i(-1));
    assert_eq!(ok("array_position", &[Value::Null, i(4)]), i(-1));
    // Go `==`: an int never equals a float.
    assert_eq!(ok("array_position", &[arr(vec![f(1.0)]), i(1)]), i(-1));
    assert_eq!(ok("array_position", &[arr(vec![i(1), Value::Null, i(2)]), i(1)]), i(0));
    let a = arr(vec![i(5), Value::Null, i(5)]);
    assert_eq!(ok("array_last_position", &[a.clone(), i(5)]), i(2));
    assert_eq!(ok("array_last_position", &[a, s("hello")]), i(-1));
    assert_eq!(ok("array_last_position", &[arr(vec![i(5), Value::Null, i(7)]), i(5)]), i(0));
    assert_eq!(err("array_last_position", &[i(1), i(2)]), NOT_ARRAY);
    assert_eq!(ok("array_last_position", &[arr(vec![i(5), s("hello"), Value::Null]), Value::Null]), i(2));
    assert_eq!(ok("array_last_position", &[Value::Null, i(1)]), i(-1));
    assert_eq!(err("array_position", &[i(1)]), "Expect 2 arguments but found 1.");
}

#[test]
fn element_at() {
    assert_eq!(err("element_at", &[i(1), i(2)]), "first argument should be []interface{} or map[string]interface{}");
    assert_eq!(err("element_at", &[ints(&[1, 2, 3]), i(4)]), "index out of range");
    assert_eq!(err("element_at", &[ints(&[1, 2, 3]), i(-4)]), "index out of range");
    assert_eq!(ok("element_at", &[ints(&[1, 2, 3]), i(1)]), i(2));
    assert_eq!(ok("element_at", &[ints(&[1, 2, 3]), i(-1)]), i(3));
    assert_eq!(ok("element_at", &[ints(&[1, 2, 3]), f(0.0)]), i(1));
    assert_eq!(err("element_at", &[ints(&[1, 2, 3]), s("a")]), "cannot convert string(a) to int");
    assert_eq!(err("element_at", &[ints(&[1, 2, 3]), i(i64::MIN)]), "index out of range");
}

#[test]
fn element_at_maps_and_nulls() {
    let m = obj(&[("a", i(1)), ("b", i(2))]);
    assert_eq!(ok("element_at", &[m.clone(), s("a")]), i(1));
    assert_eq!(ok("element_at", &[m.clone(), s("z")]), Value::Null);
    assert_eq!(err("element_at", &[m, i(2)]), "second argument should be string");
    assert_eq!(ok("element_at", &[Value::Null, i(2)]), Value::Null);
    assert_eq!(ok("element_at", &[arr(vec![]), i(0)]), Value::Null);
}

#[test]
fn contains_remove() {
    assert_eq!(err("array_contains", &[i(1), i(2)]), NOT_ARRAY);
    assert_eq!(ok("array_contains", &[ints(&[1, 2]), i(2)]), Value::Bool(true));
    assert_eq!(ok("array_contains", &[ints(&[1, 2]), i(3)]), Value::Bool(false));
    assert_eq!(ok("array_contains", &[arr(vec![i(1), Value::Null]), Value::Null]), Value::Bool(true));
    assert_eq!(ok("array_contains", &[Value::Null, Value::Null]), Value::Bool(false));
    assert_eq!(ok("array_remove", &[ints(&[3, 1, 2]), i(1)]), ints(&[3, 2]));
    assert_eq!(ok("array_remove", &[ints(&[1, 2, 3, 4, 3]), i(3)]), ints(&[1, 2, 4]));
    assert_eq!(ok("array_remove", &[ints(&[3, 3, 3]), i(3)]), ints(&[]));
    assert_eq!(ok("array_remove", &[Value::Null, i(3)]), Value::Null);
    assert_eq!(err("array_remove", &[s("x"), i(3)]), NOT_ARRAY);
}

#[test]
fn set_operations() {
    assert_eq!(ok("array_contains_any", &[ints(&[1, 2, 3]), ints(&[0, 2, 4])]), Value::Bool(true));
    assert_eq!(ok("array_contains_any", &[ints(&[1, 2, 3]), arr(vec![i(4), s("hello"), i(6)])]), Value::Bool(false));
    assert_eq!(ok("array_contains_any", &[Value::Null, ints(&[4])]), Value::Bool(false));
    assert_eq!(ok("array_contains_any", &[ints(&[1, 2, 3]), ints(&[])]), Value::Bool(false));
    assert_eq!(err("array_contains_any", &[ints(&[1, 2, 3, 4]), i(1)]), NOT_ARRAY2);

    assert_eq!(ok("array_intersect", &[ints(&[1, 1, 2, 3]), ints(&[1, 3, 4])]), ints(&[1, 3]));
    assert_eq!(
        ok("array_intersect", &[arr(vec![s("hello"), s("ekuiper"), i(2), i(3)]), arr(vec![s("ekuiper"), i(3), i(4)])]),
        arr(vec![s("ekuiper"), i(3)])
    );
    assert_eq!(err("array_intersect", &[ints(&[1]), s("ekuiper")]), NOT_ARRAY2);
    assert_eq!(err("array_intersect", &[s("1"), ints(&[1, 2, 3])]), NOT_ARRAY);
    assert_eq!(
        ok("array_intersect", &[arr(vec![i(1), Value::Null, i(2)]), arr(vec![i(1), Value::Null, i(3)])]),
        arr(vec![i(1), Value::Null])
    );
    assert_eq!(ok("array_intersect", &[Value::Null, ints(&[1])]), Value::Null);

    assert_eq!(ok("array_union", &[ints(&[1, 1, 2, 3]), ints(&[1, 3, 4])]), ints(&[1, 2, 3, 4]));
    assert_eq!(err("array_union", &[ints(&[1]), s("ekuiper")]), NOT_ARRAY2);
    assert_eq!(err("array_union", &[s("1"), ints(&[1])]), NOT_ARRAY);
    assert_eq!(ok("array_union", &[ints(&[1, 2]), Value::Null]), ints(&[1, 2]));
    assert_eq!(
        ok("array_union", &[arr(vec![i(1), Value::Null, i(2)]), arr(vec![i(1), Value::Null, i(3)])]),
        arr(vec![i(1), Value::Null, i(2), i(3)])
    );

    assert_eq!(ok("array_except", &[ints(&[1, 2, 3]), ints(&[1, 3, 4])]), ints(&[2]));
    assert_eq!(ok("array_except", &[ints(&[1, 2, 3]), ints(&[4, 5, 6])]), ints(&[1, 2, 3]));
    assert_eq!(ok("array_except", &[ints(&[1, 2, 1, 2, 3]), ints(&[1, 2, 1, 1, 2, 2, 4])]), ints(&[3]));
    assert_eq!(ok("array_except", &[ints(&[1, 1, 1, 1, 3]), ints(&[4])]), ints(&[1, 3]));
    assert_eq!(ok("array_except", &[Value::Null, ints(&[1])]), Value::Null);
    assert_eq!(ok("array_except", &[arr(vec![i(1), Value::Null, i(2)]), arr(vec![i(1), Value::Null])]), ints(&[2]));
}

#[test]
fn max_min() {
    assert_eq!(ok("array_max", &[ints(&[1])]), i(1));
    assert_eq!(ok("array_max", &[arr(vec![i(1), Value::Null, i(3)])]), i(3));
    assert_eq!(err("array_max", &[arr(vec![i(1), s("4"), i(3)])]), "requires int64 but found string(4)");
    assert_eq!(ok("array_max", &[arr(vec![f(1.2), f(4.2), f(3.0)])]), f(4.2));
    assert_eq!(ok("array_max", &[arr(vec![i(1), f(3.2), f(4.1), i(2)])]), i(4));
    assert_eq!(ok("array_min", &[arr(vec![i(1), Value::Null, i(3)])]), i(1));
    assert_eq!(err("array_min", &[arr(vec![i(1), s("0"), i(3)])]), "requires int64 but found string(0)");
    assert_eq!(ok("array_min", &[arr(vec![f(1.2), f(4.2), f(3.0)])]), f(1.2));
    assert_eq!(ok("array_min", &[arr(vec![s("b"), s("a")])]), s("a"));
    assert_eq!(ok("array_min", &[arr(vec![])]), Value::Null);
    assert_eq!(ok("array_max", &[Value::Null]), Value::Null);
    assert_eq!(err("array_max", &[i(1)]), NOT_ARRAY);
}

#[test]
fn repeat_and_sequence() {
    assert_eq!(ok("repeat", &[i(1), i(5)]), ints(&[1, 1, 1, 1, 1]));
    assert_eq!(err("repeat", &[i(1), s("hellow")]), "second argument should be int");
    assert_eq!(ok("repeat", &[s("hello"), i(3)]), arr(vec![s("hello"); 3]));
    assert_eq!(ok("repeat", &[s("rockset"), i(0)]), ints(&[]));
    assert!(call("repeat", &[s("x"), i(-1)]).is_err());
    assert!(call("repeat", &[s("x"), i(i64::MAX)]).is_err());
    assert_eq!(ok("repeat", &[Value::Null, i(3)]), Value::Null);

    assert_eq!(ok("sequence", &[i(1), i(5)]), ints(&[1, 2, 3, 4, 5]));
    assert_eq!(err("sequence", &[s("1"), i(10), i(2)]), "first argument should be int");
    assert_eq!(err("sequence", &[i(1), s("6"), i(2)]), "second argument should be int");
    assert_eq!(err("sequence", &[i(1), i(7), s("1")]), "third argument should be int");
    assert_eq!(ok("sequence", &[i(1), i(10), i(2)]), ints(&[1, 3, 5, 7, 9]));
    assert_eq!(ok("sequence", &[i(10), i(1), i(-3)]), ints(&[10, 7, 4, 1]));
    assert_eq!(ok("sequence", &[i(5), i(1)]), ints(&[5, 4, 3, 2, 1]));
    assert_eq!(ok("sequence", &[i(3), i(3)]), ints(&[3]));
    assert_eq!(err("sequence", &[i(1), i(7), i(0)]), "invalid step: should not be zero");
    assert!(call("sequence", &[i(5), i(1), i(1)]).is_err());
    assert!(call("sequence", &[i(i64::MIN), i(i64::MAX)]).is_err());
    assert_eq!(err("sequence", &[i(1)]), "Expect 2 to 3 arguments but found 1.");
}

#[test]
fn cardinality_flatten_distinct() {
    assert_eq!(ok("array_cardinality", &[ints(&[1, 2, 3])]), i(3));
    assert_eq!(ok("array_cardinality", &[arr(vec![i(1), Value::Null, i(2)])]), i(2));
    assert_eq!(ok("array_cardinality", &[Value::Null]), i(0));
    assert_eq!(err("array_cardinality", &[i(1)]), NOT_ARRAY);

    assert_eq!(ok("array_flatten", &[arr(vec![ints(&[1, 2, 3])])]), ints(&[1, 2, 3]));
    assert_eq!(err("array_flatten", &[i(1)]), NOT_ARRAY);
    assert_eq!(ok("array_flatten", &[ints(&[1, 2, 3])]), ints(&[1, 2, 3]));
    assert_eq!(ok("array_flatten", &[arr(vec![ints(&[1, 2, 3]), ints(&[4, 5, 6])])]), ints(&[1, 2, 3, 4, 5, 6]));
    assert_eq!(ok("array_flatten", &[arr(vec![ints(&[1, 2, 3]), i(4)])]), ints(&[1, 2, 3, 4]));

    assert_eq!(ok("array_distinct", &[ints(&[1, 1, 1])]), ints(&[1]));
    assert_eq!(ok("array_distinct", &[ints(&[1, 2, 2, 1])]), ints(&[1, 2]));
    let t = Value::Bool(true);
    assert_eq!(
        ok("array_distinct", &[arr(vec![i(1), i(1), t.clone(), t.clone(), Value::Null, Value::Null])]),
        arr(vec![i(1), t, Value::Null])
    );
    let m1 = obj(&[("a", i(1))]);
    let maps = arr(vec![m1.clone(), m1.clone(), obj(&[("a", i(2))])]);
    assert_eq!(ok("array_distinct", std::slice::from_ref(&maps)), maps);
    assert_eq!(err("array_distinct", &[i(1)]), NOT_ARRAY);
}

#[test]
fn array_map() {
    assert_eq!(ok("array_map", &[s("cardinality"), arr(vec![ints(&[1, 2]), i(1)])]), ints(&[2, 0]));
    assert_eq!(err("array_map", &[i(123), ints(&[1])]), "first argument should be string");
    assert_eq!(err("array_map", &[s("round"), i(1)]), "second argument should be array of interface{}");
    assert_eq!(err("array_map", &[s("sequence"), ints(&[1])]), "validate sequence arguments failed");
    assert_eq!(err("array_map", &[s("avg"), ints(&[1])]), "first argument should be a scalar function.");
    assert_eq!(err("array_map", &[s("nope"), ints(&[1])]), "unknown built-in function: nope.");
    assert_eq!(ok("array_map", &[s("nope"), ints(&[])]), Value::Null);
}

#[test]
fn array_join() {
    assert_eq!(err("array_join", &[s("a"), s("")]), NOT_ARRAY);
    let abc = arr(vec![s("a"), s("b"), s("c")]);
    assert_eq!(err("array_join", &[abc.clone(), i(123), s("a")]), "second argument should be string");
    assert_eq!(err("array_join", &[abc.clone(), s(":"), i(123)]), "third argument should be string");
    assert_eq!(ok("array_join", &[arr(vec![i(123), s("b"), s("c")]), s(":"), s("a")]), s("123:b:c"));
    assert_eq!(ok("array_join", &[abc.clone(), s("")]), s("abc"));
    assert_eq!(ok("array_join", &[arr(vec![s("a"), Value::Null, s("b")]), s(":")]), s("a:b"));
    assert_eq!(ok("array_join", &[abc.clone(), s(":,%")]), s("a:,%b:,%c"));
    assert_eq!(
        ok("array_join", &[arr(vec![s("a"), Value::Null, s("c")]), s(":"), s("nullReplacementStr")]),
        s("a:nullReplacementStr:c")
    );
    assert_eq!(ok("array_join", &[arr(vec![Value::Null, Value::Null, Value::Null]), s(","), s("n")]), s("n,n,n"));
    assert_eq!(ok("array_join", &[arr(vec![Value::Null, Value::Null]), s(",")]), s(""));
    assert_eq!(ok("array_join", &[arr(vec![f(1.5), Value::Bool(true)]), s(",")]), s("1.5,true"));
    assert_eq!(ok("array_join", &[abc, s(","), Value::Null]), Value::Null);
}

#[test]
fn shuffle_sort_concat() {
    let r = ok("array_shuffle", &[ints(&[1, 2, 3])]);
    let mut got: Vec<i64> = r.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, vec![1, 2, 3]);
    assert_eq!(err("array_shuffle", &[i(1)]), NOT_ARRAY);

    assert_eq!(ok("array_sort", &[ints(&[3, 2, 1])]), ints(&[1, 2, 3]));
    assert_eq!(ok("array_sort", &[arr(vec![i(3), f(1.6), f(-0.83)])]), arr(vec![f(-0.83), f(1.6), i(3)]));
    assert_eq!(
        ok("array_sort", &[arr(vec![s("abc"), i(3), s("def"), f(1.6), f(-0.83)])]),
        arr(vec![f(-0.83), f(1.6), i(3), s("abc"), s("def")])
    );
    // Sorted as text, like eKuiper.
    assert_eq!(ok("array_sort", &[ints(&[10, 9])]), ints(&[10, 9]));
    assert_eq!(err("array_sort", &[s("x")]), "array elements should be array");
    assert_eq!(err("array_sort", &[ints(&[1]), ints(&[1])]), "Expect 1 arguments but found 2.");

    assert_eq!(
        ok("array_concat", &[ints(&[1]), ints(&[2]), arr(vec![s("3")]), arr(vec![Value::Null])]),
        arr(vec![i(1), i(2), s("3"), Value::Null])
    );
    assert_eq!(ok("array_concat", &[ints(&[1]), Value::Null, ints(&[2])]), ints(&[1, 2]));
    assert_eq!(err("array_concat", &[ints(&[1]), i(2)]), "array elements should be array");
    assert_eq!(err("array_concat", &[]), "Expect at least 1 arguments but found 0.");
}

#[test]
fn kvpairs() {
    let kv = |k: &str, v: Value| obj(&[("key", s(k)), ("value", v)]);
    assert_eq!(
        ok("kvpair_array_to_obj", &[arr(vec![kv("a", i(1)), kv("b", arr(vec![s("foo"), s("bar")]))])]),
        obj(&[("a", i(1)), ("b", arr(vec![s("foo"), s("bar")]))])
    );
    assert_eq!(
        err("kvpair_array_to_obj", &[arr(vec![obj(&[("wrongKey", s("a")), ("value", i(1))])])]),
        "array item should be key-value pair"
    );
    assert_eq!(
        err("kvpair_array_to_obj", &[arr(vec![obj(&[("key", s("a"))])])]),
        "array item should be key-value pair"
    );
    assert_eq!(err("kvpair_array_to_obj", &[arr(vec![i(1)])]), "array item should be map[string]interface{}");
    assert_eq!(ok("kvpair_array_to_obj", &[Value::Null]), Value::Null);
}
