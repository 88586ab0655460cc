//! Tests of the analytic functions, ported from eKuiper's
//! `funcs_analytic_test.go` and `funcs_acc_test.go` (without the hidden
//! WHEN/partition arguments).

use crate::functions::test_util::{b, f, i, s, N};
use crate::functions::{check_arity, AnalyticState, FunctionImpl, Registry};
use crate::value::Value;
use weir_planner::{ArgHint, FunctionLookup};

fn state(name: &str) -> Box<dyn AnalyticState> {
    let def = Registry::builtins().get(name).expect("registered");
    let FunctionImpl::Analytic(factory) = &def.imp else { panic!("{name} is not analytic") };
    factory()
}

/// Feeds events to one state and collects the results (errors as text).
fn run(name: &str, events: &[Vec<Value>]) -> Vec<Result<Value, String>> {
    let def = Registry::builtins().get(name).expect("registered");
    let mut st = state(name);
    events
        .iter()
        .map(|a| {
            check_arity(def, a.len()).map_err(|e| e.0)?;
            st.call(a).map_err(|e| e.0)
        })
        .collect()
}

fn oks(v: &[Value]) -> Vec<Result<Value, String>> {
    v.iter().cloned().map(Ok).collect()
}

#[test]
fn lag_with_default_and_ignore_null() {
    let ev = |v: Value| vec![v, i(1), s("default"), b(true)];
    let got = run("lag", &[ev(s("foo")), ev(N), ev(s("bar")), ev(s("foo")), ev(s("foo"))]);
    assert_eq!(got, oks(&[s("default"), s("foo"), s("foo"), s("bar"), s("foo")]));
    let got = run("lag", &[vec![s("foo"), i(1), s("default"), i(23)]]);
    assert_eq!(got, vec![Err("The fourth arg is not a bool but got foo".to_string())]);
}

#[test]
fn lag_basics() {
    assert_eq!(run("lag", &[vec![s("foo")], vec![s("bar")], vec![s("baz")]]), oks(&[N, s("foo"), s("bar")]));
    // ignoreNull defaults to true: nulls are skipped.
    assert_eq!(run("lag", &[vec![i(1)], vec![N], vec![i(2)]]), oks(&[N, i(1), i(1)]));
    // ignoreNull false: nulls are queued.
    let ev = |v: Value| vec![v, i(1), N, b(false)];
    assert_eq!(run("lag", &[ev(i(1)), ev(N), ev(i(2))]), oks(&[N, i(1), N]));
    // offset 2.
    let ev = |v: i64| vec![i(v), i(2), i(0)];
    assert_eq!(run("lag", &[ev(1), ev(2), ev(3), ev(4)]), oks(&[i(0), i(0), i(1), i(2)]));
    // offset 0 always gives null.
    assert_eq!(run("lag", &[vec![i(1), i(0)], vec![i(2), i(0)]]), oks(&[N, N]));
    assert!(run("lag", &[vec![i(1), i(-1)]])[0].is_err());
    assert!(run("lag", &[vec![i(1), s("x")]])[0]
        .as_ref()
        .unwrap_err()
        .starts_with("error converting second arg x to int"));
    assert_eq!(run("lag", &[vec![]])[0], Err("Expect 1 to 4 arguments but found 0.".into()));
    let reg = Registry::builtins();
    let lit = |v| ArgHint::Literal(v);
    assert_eq!(
        reg.validate("lag", &[ArgHint::Expr, lit(serde_json::json!(-1))]),
        Err("the index should not be a nagtive integer".into())
    );
    assert_eq!(
        reg.validate("lag", &[ArgHint::Expr, lit(serde_json::json!(1.5))]),
        Err("Expect int type for parameter 2".into())
    );
    assert!(reg
        .validate("lag", &[ArgHint::Expr, lit(serde_json::json!(2)), ArgHint::Expr, lit(serde_json::json!(true))])
        .is_ok());
}

#[test]
fn latest() {
    assert_eq!(
        run("latest", &[vec![N, s("dflt")], vec![s("a"), s("dflt")], vec![N, s("dflt")], vec![s("b")]]),
        oks(&[s("dflt"), s("a"), s("a"), s("b")])
    );
    assert_eq!(run("latest", &[vec![N]]), oks(&[N]));
    assert!(run("latest", &[vec![i(1), i(2), i(3)]])[0].is_err());
}

#[test]
fn changed_col() {
    let ev = |v: Value| vec![b(true), v];
    assert_eq!(
        run("changed_col", &[ev(s("foo")), ev(s("foo")), ev(N), ev(s("bar")), ev(s("foo"))]),
        oks(&[s("foo"), N, N, s("bar"), s("foo")])
    );
    let ev = |v: Value| vec![b(false), v];
    assert_eq!(run("changed_col", &[ev(N), ev(i(1)), ev(N), ev(N)]), oks(&[N, i(1), N, N]));
    // Go deep equality: 1 and 1.0 differ.
    assert_eq!(run("changed_col", &[ev(i(1)), ev(f(1.0))]), oks(&[i(1), f(1.0)]));
    assert_eq!(run("changed_col", &[vec![s("x"), i(1)]]), vec![Err("first arg is not a bool but got x".to_string())]);
    let reg = Registry::builtins();
    assert_eq!(
        reg.validate("changed_col", &[ArgHint::Literal(serde_json::json!("foo")), ArgHint::Expr]),
        Err("Expect boolean type for parameter 1".into())
    );
}

#[test]
fn had_changed() {
    let ev = |a: Value, c: Value| vec![b(true), a, c];
    assert_eq!(
        run("had_changed", &[ev(i(1), s("x")), ev(i(1), s("x")), ev(N, s("x")), ev(i(1), s("y")), ev(i(2), N)]),
        oks(&[b(true), b(false), b(false), b(true), b(true)])
    );
    let ev = |a: Value| vec![b(false), a];
    assert_eq!(run("had_changed", &[ev(N), ev(i(1)), ev(N)]), oks(&[b(false), b(true), b(true)]));
    assert_eq!(run("had_changed", &[vec![i(1), i(1)]]), vec![Err("first arg is not a bool but got 1".to_string())]);
    assert_eq!(run("had_changed", &[vec![b(true)]]), vec![Err("Expect at least 2 arguments but found 1.".to_string())]);
}

#[test]
fn acc_with_conditions_from_ekuiper() {
    let ev = |v: i64, start: bool, reset: bool| vec![i(v), b(start), b(reset)];
    let flags = [(false, false), (true, false), (false, false), (false, true), (false, false)];
    let same = |v: i64| -> Vec<Vec<Value>> { flags.iter().map(|(s, r)| ev(v, *s, *r)).collect() };
    assert_eq!(run("acc_avg", &same(1)), oks(&[f(0.0), f(1.0), f(1.0), f(1.0), f(0.0)]));
    assert_eq!(run("acc_sum", &same(1)), oks(&[f(0.0), f(1.0), f(2.0), f(3.0), f(0.0)]));
    assert_eq!(run("acc_count", &same(1)), oks(&[i(0), i(1), i(2), i(3), i(0)]));
    let vals = [1, 5, 4, 3, 2];
    let evs: Vec<Vec<Value>> = vals.iter().zip(flags.iter()).map(|(v, (s, r))| ev(*v, *s, *r)).collect();
    assert_eq!(run("acc_min", &evs), oks(&[f(0.0), f(5.0), f(4.0), f(3.0), f(0.0)]));
    assert_eq!(run("acc_max", &evs), oks(&[f(0.0), f(5.0), f(5.0), f(5.0), f(0.0)]));
    assert_eq!(run("acc_sum", &[vec![i(1), i(1), b(false)]]), vec![Err("onBegin should be boolean".to_string())]);
    assert_eq!(run("acc_sum", &[vec![i(1), b(true), N]]), vec![Err("onReset should be boolean".to_string())]);
}

#[test]
fn acc_without_conditions_from_ekuiper() {
    let evs = |vals: &[Value]| -> Vec<Vec<Value>> { vals.iter().map(|v| vec![v.clone()]).collect() };
    assert_eq!(run("acc_count", &evs(&[s("1"), f(1.0), i(1), N, i(1)])), oks(&[i(1), i(2), i(3), i(3), i(4)]));
    let num_err = Err("the value should be number".to_string());
    let got = run("acc_avg", &evs(&[s("1"), f(1.0), f(2.0), i(3)]));
    assert_eq!(got, vec![num_err.clone(), Ok(f(1.0)), Ok(f(1.5)), Ok(f(2.0))]);
    let got = run("acc_max", &evs(&[s("1"), f(1.0), f(3.0), i(2)]));
    assert_eq!(got, vec![num_err.clone(), Ok(f(1.0)), Ok(f(3.0)), Ok(f(3.0))]);
    let got = run("acc_min", &evs(&[f(5.0), i(2), N, f(4.0)]));
    assert_eq!(got, vec![Ok(f(5.0)), Ok(f(2.0)), num_err.clone(), Ok(f(2.0))]);
    let got = run("acc_sum", &evs(&[i(1), N, f(2.5), s("x")]));
    assert_eq!(got, vec![Ok(f(1.0)), Ok(f(1.0)), Ok(f(3.5)), num_err]);
    assert_eq!(
        Registry::builtins().validate("acc_sum", &[ArgHint::Expr, ArgHint::Expr]),
        Err("Expect 1/3 arguments but found 2.".into())
    );
    assert_eq!(run("acc_sum", &[vec![i(1), b(true)]]), vec![Err("wrong args length".to_string())]);
}

/// Feeds `(args, when, partition)` events as eKuiper's tests do (its two
/// hidden arguments): one state per partition, `call_skipped` when the WHEN
/// result is false.
fn run_when(name: &str, events: &[(Vec<Value>, bool, &str)]) -> Vec<Result<Value, String>> {
    let mut states = std::collections::HashMap::new();
    events
        .iter()
        .map(|(args, when, key)| {
            let st = states.entry(*key).or_insert_with(|| state(name));
            let r = if *when { st.call(args) } else { st.call_skipped(args) };
            r.map_err(|e| e.0)
        })
        .collect()
}

/// eKuiper's `TestChangedColPartitionWithWhen`.
#[test]
fn changed_col_partition_with_when() {
    let got = run_when(
        "changed_col",
        &[
            (vec![b(true), s("bar")], true, "2"),
            (vec![b(true), s("bar")], true, "1"),
            (vec![b(true), s("baz")], true, "2"),
            (vec![b(true), s("bar")], false, "2"),
            (vec![b(false), N], true, "1"),
            (vec![b(false), s("baz")], true, "2"),
            (vec![b(true), s("foo")], true, "1"),
            (vec![b(true), s("bar")], false, "1"),
        ],
    );
    assert_eq!(got, oks(&[s("bar"), s("bar"), s("baz"), N, N, N, s("foo"), N]));
    // The flag is still checked on a skipped event.
    assert_eq!(
        run_when("changed_col", &[(vec![s("x"), i(1)], false, "")]),
        vec![Err("first arg is not a bool but got x".to_string())]
    );
}

/// eKuiper's `TestHadChangedPartitionWithWhen`.
#[test]
fn had_changed_partition_with_when() {
    let not_bool = Err("first arg is not a bool but got foo".to_string());
    let got = run_when(
        "had_changed",
        &[
            (vec![s("foo"), s("bar"), s("baz")], true, "1"),
            (vec![s("foo"), s("bar")], true, "1"),
            (vec![b(true), s("bar"), i(20)], true, "3"),
            (vec![b(true), s("baz"), i(44)], true, "2"),
            (vec![b(true), s("baz"), i(44)], true, "2"),
            (vec![b(true), s("baz"), i(44)], true, "2"),
            (vec![b(true), s("foo"), i(45)], false, "2"),
            (vec![b(true), s("foo"), N], true, "1"),
            (vec![b(true), s("foo"), i(44)], true, "2"),
            (vec![b(true), s("baz"), i(44)], false, "3"),
        ],
    );
    let mut want = vec![not_bool.clone(), not_bool];
    want.extend(oks(&[b(true), b(true), b(false), b(false), b(false), b(true), b(true), b(false)]));
    assert_eq!(got, want);
    // eKuiper answers a skipped event before checking the flag.
    assert_eq!(run_when("had_changed", &[(vec![s("foo"), i(1)], false, "")]), oks(&[b(false)]));
}

/// eKuiper's `TestLagExecWithWhen` and `TestLagPartitionWithWhen`.
#[test]
fn lag_with_when() {
    let got = run_when(
        "lag",
        &[
            (vec![s("foo")], true, "self"),
            (vec![s("bar")], false, "self"),
            (vec![s("bar")], true, "self"),
            (vec![s("foo")], false, "self"),
            (vec![s("foo")], true, "self"),
        ],
    );
    assert_eq!(got, oks(&[N, s("foo"), s("foo"), s("bar"), s("bar")]));
    let got = run_when(
        "lag",
        &[
            (vec![s("foo")], true, "1"),
            (vec![s("bar")], false, "1"),
            (vec![s("bar")], true, "2"),
            (vec![s("foo")], true, "1"),
            (vec![s("foo")], true, "2"),
        ],
    );
    assert_eq!(got, oks(&[N, s("foo"), N, s("foo"), s("bar")]));
    // A skipped first event still creates the queue with its default.
    let ev = |v: &str| vec![s(v), i(1), s("dflt")];
    let got = run_when("lag", &[(ev("a"), false, ""), (ev("b"), true, ""), (ev("c"), true, "")]);
    assert_eq!(got, oks(&[s("dflt"), s("dflt"), s("b")]));
    // Arguments are still checked.
    assert!(run_when("lag", &[(vec![i(1), s("x")], false, "")])[0]
        .as_ref()
        .unwrap_err()
        .starts_with("error converting second arg x to int"));
}

/// eKuiper's `TestLatestExecWithWhen`.
#[test]
fn latest_with_when() {
    let got = run_when(
        "latest",
        &[
            (vec![s("foo")], true, "self"),
            (vec![N], true, "self"),
            (vec![s("bar")], false, "self"),
            (vec![N], true, "self"),
            (vec![s("foo")], true, "self"),
        ],
    );
    assert_eq!(got, oks(&[s("foo"), s("foo"), s("foo"), s("foo"), s("foo")]));
    assert_eq!(run_when("latest", &[(vec![s("bar"), s("dflt")], false, "")]), oks(&[s("dflt")]));
}

/// eKuiper's `TestAccumulateAgg` (second part): a skipped first event
/// gives the empty total, without checking the value's type.
#[test]
fn acc_skipped() {
    for (name, want) in
        [("acc_sum", f(0.0)), ("acc_max", f(0.0)), ("acc_min", f(0.0)), ("acc_avg", f(0.0)), ("acc_count", i(0))]
    {
        for arg in [i(1), s("x")] {
            assert_eq!(run_when(name, &[(vec![arg], false, "")]), vec![Ok(want.clone())], "{name}");
        }
    }
    // Start and reset conditions still apply on skipped events
    // (`accFuncWithCond`): the start at event 2 holds although its value is
    // not added, and the reset at event 4 ends the run.
    let ev = |v: i64, start: bool, reset: bool, when: bool| (vec![i(v), b(start), b(reset)], when, "");
    let got = run_when(
        "acc_sum",
        &[
            ev(1, false, false, true),
            ev(1, true, false, false),
            ev(2, false, false, true),
            ev(5, false, true, false),
            ev(1, false, false, true),
        ],
    );
    assert_eq!(got, oks(&[f(0.0), f(0.0), f(2.0), f(2.0), f(0.0)]));
    // The condition flags are still type-checked.
    assert_eq!(
        run_when("acc_sum", &[(vec![i(1), i(1), b(false)], false, "")]),
        vec![Err("onBegin should be boolean".to_string())]
    );
}
