//! Tests of the aggregate functions, ported from eKuiper's
//! `funcs_agg_test.go` where it has expected values.

use crate::functions::test_util::{f, i, s, N};
use crate::functions::{check_arity, FunctionImpl, Registry};
use crate::value::{Map, Value};
use weir_planner::{ArgHint, FunctionLookup};

/// Runs aggregate `name` over rows of arguments.
fn agg(name: &str, rows: &[Vec<Value>]) -> Result<Value, String> {
    agg_checked(name, true, rows)
}

/// Like [`agg`]; `check` false skips the arity check (for the hidden `*`
/// argument of `deduplicate`).
fn agg_checked(name: &str, check: bool, rows: &[Vec<Value>]) -> Result<Value, String> {
    let def = Registry::builtins().get(name).expect("registered");
    let FunctionImpl::Aggregate(factory) = &def.imp else { panic!("{name} is not an aggregate") };
    let mut acc = factory();
    for r in rows {
        if check {
            check_arity(def, r.len()).map_err(|e| e.0)?;
        }
        acc.update(r).map_err(|e| e.0)?;
    }
    acc.finish().map_err(|e| e.0)
}

/// One-argument rows.
fn col(vals: &[Value]) -> Vec<Vec<Value>> {
    vals.iter().map(|v| vec![v.clone()]).collect()
}

#[test]
fn basic_stats_from_ekuiper() {
    let strs = col(&[s("foo"), s("bar"), s("self")]);
    assert_eq!(agg("avg", &strs).unwrap_err(), "run avg function error: found invalid arg string(foo)");
    assert_eq!(agg("max", &strs), Ok(s("self")));
    assert_eq!(agg("min", &strs), Ok(s("bar")));
    let e = "requires float64 slice but found []interface {}([foo bar self])";
    for name in ["stddev", "stddevs", "var", "vars"] {
        assert_eq!(agg(name, &strs).unwrap_err(), e, "{name}");
    }

    for rows in [col(&[i(100), i(150), i(200)]), col(&[i(100), i(150), N, i(200), N])] {
        assert_eq!(agg("avg", &rows), Ok(i(150)));
        assert_eq!(agg("max", &rows), Ok(i(200)));
        assert_eq!(agg("min", &rows), Ok(i(100)));
        assert_eq!(agg("stddev", &rows), Ok(f(40.824829046386306)));
        assert_eq!(agg("stddevs", &rows), Ok(f(50.0)));
        assert_eq!(agg("var", &rows), Ok(f(1666.6666666666667)));
        assert_eq!(agg("vars", &rows), Ok(f(2500.0)));
    }
    let rows = col(&[f(100.0), f(150.0), f(200.0)]);
    assert_eq!(agg("avg", &rows), Ok(f(150.0)));
    assert_eq!(agg("max", &rows), Ok(f(200.0)));
    assert_eq!(agg("min", &rows), Ok(f(100.0)));
    assert_eq!(agg("stddev", &rows), Ok(f(40.824829046386306)));

    for name in ["avg", "max", "min", "stddev", "stddevs", "var", "vars", "sum", "count", "median", "collect"] {
        assert_eq!(agg(name, &[]), Ok(N), "{name} of no rows");
    }
}

#[test]
fn count_sum_avg() {
    assert_eq!(agg("count", &col(&[i(1), N, s("x")])), Ok(i(2)));
    assert_eq!(agg("count", &col(&[N, N])), Ok(i(0)));
    let row = Value::map(Map::from([("a".to_string(), i(1))]));
    assert_eq!(agg("count", &col(&[row.clone(), row])), Ok(i(2)));
    assert_eq!(agg("sum", &col(&[i(1), i(2), N])), Ok(i(3)));
    assert_eq!(agg("sum", &col(&[f(1.5), f(2.0)])), Ok(f(3.5)));
    // The first value decides: ints truncate later floats, floats reject ints.
    assert_eq!(agg("sum", &col(&[i(1), f(2.7)])), Ok(i(3)));
    assert_eq!(agg("sum", &col(&[f(1.0), i(2)])).unwrap_err(), "requires float64 but found int64(2)");
    assert_eq!(agg("sum", &col(&[i(1), s("2")])).unwrap_err(), "requires int but found string(2)");
    assert_eq!(agg("sum", &col(&[N, N])), Ok(N));
    assert_eq!(
        agg("sum", &col(&[Value::Bool(true)])).unwrap_err(),
        "run sum function error: found invalid arg bool(true)"
    );
    assert_eq!(agg("avg", &col(&[i(1), i(2)])), Ok(i(1)));
    assert_eq!(agg("avg", &col(&[f(1.0), f(2.0)])), Ok(f(1.5)));
    assert_eq!(agg("avg", &col(&[N])), Ok(N));
    assert_eq!(agg("sum", &[vec![]]).unwrap_err(), "Expect 1 arguments but found 0.");
    assert_eq!(agg("count", &[vec![i(1), i(2)]]).unwrap_err(), "Expect 1 arguments but found 2.");
}

#[test]
fn max_min_types() {
    assert_eq!(agg("max", &col(&[i(1), f(3.2), f(4.1), i(2)])), Ok(i(4)));
    assert_eq!(agg("min", &col(&[f(1.5), i(1)])).unwrap_err(), "requires float64 but found int64(1)");
    assert_eq!(agg("max", &col(&[i(1), s("4")])).unwrap_err(), "requires int64 but found string(4)");
    assert_eq!(agg("max", &col(&[Value::Bool(true)])).unwrap_err(), "found invalid arg bool(true)");
    assert_eq!(agg("max", &col(&[N, N])), Ok(N));
}

#[test]
fn median() {
    assert_eq!(agg("median", &col(&[i(3), i(1), i(2)])), Ok(i(2)));
    assert_eq!(agg("median", &col(&[i(4), i(1), i(2), i(3)])), Ok(f(2.5)));
    assert_eq!(agg("median", &col(&[f(3.0), f(1.0), N])), Ok(f(2.0)));
    assert_eq!(agg("median", &col(&[f(3.0), i(1), i(2)])), Ok(f(2.0)));
    // eKuiper checks the first value, null included.
    assert_eq!(agg("median", &col(&[N, i(1)])).unwrap_err(), "<nil> should be number");
    assert!(agg("median", &col(&[i(1), N]))
        .unwrap_err()
        .starts_with("cannot convert []interface {}([1 <nil>]) to int slice"));
    assert_eq!(agg("median", &col(&[s("a")])).unwrap_err(), "a should be number");
}

#[test]
fn percentiles_from_ekuiper() {
    let p = f(0.5);
    let rows = |vals: &[Value]| -> Vec<Vec<Value>> { vals.iter().map(|v| vec![v.clone(), p.clone()]).collect() };
    for vals in [vec![i(100), i(150), i(200)], vec![f(100.0), f(150.0), f(200.0)], vec![i(100), i(150), N, i(200)]] {
        assert_eq!(agg("percentile_cont", &rows(&vals)), Ok(f(125.0)));
        assert_eq!(agg("percentile_disc", &rows(&vals)), Ok(f(150.0)));
    }
    let e = "requires float64 slice but found []interface {}([foo bar self])";
    assert_eq!(agg("percentile_cont", &rows(&[s("foo"), s("bar"), s("self")])).unwrap_err(), e);
    assert_eq!(agg("percentile_disc", &rows(&[s("foo"), s("bar"), s("self")])).unwrap_err(), e);
    assert_eq!(agg("percentile_cont", &[vec![i(1)]]).unwrap_err(), "Expect 2 arguments but found 1.");
    assert_eq!(agg("percentile_cont", &[]), Ok(N));
    // v0.7.1 rules: exact rank, single value, bounds.
    let four = |p: f64| -> Vec<Vec<Value>> { [1.0, 2.0, 3.0, 4.0].iter().map(|x| vec![f(*x), f(p)]).collect() };
    assert_eq!(agg("percentile_cont", &four(0.5)), Ok(f(2.0)));
    assert_eq!(agg("percentile_cont", &four(1.0)), Ok(f(4.0)));
    assert_eq!(
        agg("percentile_cont", &four(0.1)).unwrap_err(),
        "percentile exec with error: Input is outside of range."
    );
    assert_eq!(
        agg("percentile_cont", &four(0.0)).unwrap_err(),
        "percentile exec with error: Input is outside of range."
    );
    assert_eq!(agg("percentile_disc", &four(0.0)), Ok(f(1.0)));
    assert_eq!(agg("percentile_disc", &four(1.0)), Ok(f(4.0)));
    assert!(agg("percentile_disc", &four(1.5)).is_err());
    assert_eq!(agg("percentile_cont", &[vec![f(7.0), f(0.0)]]), Ok(f(7.0)));
    assert!(agg("percentile_cont", &[vec![f(7.0), s("x")]])
        .unwrap_err()
        .starts_with("the second parameter requires float64"));
}

#[test]
fn collect_merge_last() {
    assert_eq!(agg("collect", &col(&[i(1), N, s("a")])), Ok(Value::array(vec![i(1), N, s("a")])));
    let m = |k: &str, v: Value| Value::map(Map::from([(k.to_string(), v)]));
    assert_eq!(
        agg("merge_agg", &col(&[m("a", i(1)), i(5), m("b", i(2)), m("a", i(3))])),
        Ok(Value::map(Map::from([("a".to_string(), i(3)), ("b".to_string(), i(2))])))
    );
    assert_eq!(agg("merge_agg", &col(&[i(1), N])), Ok(N));

    let t = Value::Bool(true);
    let fl = Value::Bool(false);
    let rows = |vals: &[Value], flag: &Value| -> Vec<Vec<Value>> {
        vals.iter().map(|v| vec![v.clone(), flag.clone()]).collect()
    };
    assert_eq!(agg("last_value", &rows(&[i(1), i(2), N], &t)), Ok(i(2)));
    assert_eq!(agg("last_value", &rows(&[i(1), i(2), N], &fl)), Ok(N));
    assert_eq!(agg("last_value", &rows(&[N, N], &t)), Ok(N));
    assert_eq!(
        agg("last_value", &rows(&[i(1)], &i(1))).unwrap_err(),
        "the second parameter requires bool but found int64(1)"
    );
}

#[test]
fn deduplicate() {
    let t = Value::Bool(true);
    let fl = Value::Bool(false);
    let row = |c: i64| Value::map(Map::from([("c".to_string(), i(c))]));
    let rows =
        |cs: &[i64], all: &Value| -> Vec<Vec<Value>> { cs.iter().map(|c| vec![row(*c), i(*c), all.clone()]).collect() };
    assert_eq!(
        agg_checked("deduplicate", false, &rows(&[1, 2, 1, 3], &t)),
        Ok(Value::array(vec![row(1), row(2), row(3)]))
    );
    assert_eq!(agg_checked("deduplicate", false, &rows(&[1, 2, 3], &fl)), Ok(row(3)));
    assert_eq!(agg_checked("deduplicate", false, &rows(&[1, 2, 1], &fl)), Ok(N));
    assert_eq!(
        agg_checked("deduplicate", false, &[vec![row(1), i(1), i(1)]]).unwrap_err(),
        "Invalid argument type found."
    );
    // Without the row argument, the column value stands for the row.
    assert_eq!(agg("deduplicate", &[vec![i(1), t.clone()], vec![i(1), t]]), Ok(Value::array(vec![i(1)])));
}

#[test]
fn validators() {
    let reg = Registry::builtins();
    let lit = |v| ArgHint::Literal(v);
    assert_eq!(
        reg.validate("sum", &[lit(serde_json::json!("a"))]),
        Err("Expect number - float or int type for parameter 1".into())
    );
    assert!(reg.validate("count", &[ArgHint::Wildcard]).is_ok());
    assert!(reg.validate("percentile_cont", &[ArgHint::Expr, lit(serde_json::json!(true))]).is_err());
    assert!(reg.validate("last_value", &[ArgHint::Expr, lit(serde_json::json!(1))]).is_err());
    assert!(reg.validate("last_value", &[ArgHint::Expr, lit(serde_json::json!(true))]).is_ok());
    assert!(reg.get("percentile").is_none());
}
