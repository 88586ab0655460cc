use std::sync::Arc;

use weir_planner::{parse_statement, plan, Catalog, RuleOptions, Statement};
use weir_runtime::functions::{call_scalar, FuncContext, Registry};
use weir_runtime::value::Value;

use super::test_util::{array_f64, floats, model_path};
use super::{register_functions, OnnxError, OnnxModels};

fn setup() -> (Arc<OnnxModels>, Registry) {
    let models = Arc::new(OnnxModels::new());
    models.register("gasflow", model_path("gasflow.onnx")).unwrap();
    models.register("pair", model_path("two_inputs.onnx")).unwrap();
    let mut reg = Registry::with_builtins();
    register_functions(&mut reg, models.clone());
    (models, reg)
}

fn plan_sql(reg: &Registry, sql: &str) -> Result<(), String> {
    let mut catalog = Catalog::new();
    let ddl = r#"CREATE STREAM s (furnace STRING, a FLOAT, b FLOAT, c FLOAT, v ARRAY(FLOAT)) WITH (DATASOURCE="t")"#;
    let Ok(Statement::Create(def)) = parse_statement(ddl) else { panic!("bad DDL") };
    catalog.insert(*def);
    plan("r1", sql, &catalog, &RuleOptions::default(), reg).map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn registry_lists_gets_and_removes() {
    let (models, _) = setup();
    let names: Vec<String> = models.list().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["gasflow", "pair"]);
    assert_eq!(models.get("pair").unwrap().name(), "pair");
    assert!(models.remove("pair").is_some());
    assert!(models.remove("pair").is_none());
    assert_eq!(models.len(), 1);
    let e = models.register("bad name", model_path("gasflow.onnx")).unwrap_err();
    assert!(matches!(e, OnnxError::InvalidName { .. }), "{e:?}");
    // A failed load leaves the registry as it was.
    assert!(models.register("gasflow", model_path("quality_zipmap.onnx")).is_err());
    assert_eq!(models.get("gasflow").unwrap().outputs()[0].name, "variable");
}

#[test]
fn plan_accepts_calls_that_fit() {
    let (_, reg) = setup();
    for sql in [
        "SELECT furnace, infer('gasflow', a, b, c) AS p FROM s",
        "SELECT infer('gasflow', v) AS p FROM s",
        "SELECT infer('gasflow', a, 2.5, 4) AS p FROM s",
        "SELECT infer('gasflow', 900, 2.5, 4) AS p FROM s",
        "SELECT infer('pair', v, 3) AS p FROM s",
    ] {
        plan_sql(&reg, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[test]
fn plan_rejects_unknown_models_and_bad_arguments() {
    let (_, reg) = setup();
    let cases = [
        ("SELECT infer('nosuch', a) AS p FROM s", "model nosuch is not registered"),
        (
            "SELECT infer(furnace, a, b, c) AS p FROM s",
            "the first argument must be a string literal naming a registered model",
        ),
        (
            "SELECT infer('gasflow', 1, 2) AS p FROM s",
            "expected 3 numbers for input input f32[3], got 2 numbers in literals",
        ),
        ("SELECT infer('gasflow', a, 1, 2, 3, 4) AS p FROM s", "got 4 numbers in literals"),
        ("SELECT infer('gasflow', a, 'x', c) AS p FROM s", "argument 3 must be a number or an array of numbers"),
        ("SELECT infer('gasflow', *) AS p FROM s", "* is not a model input"),
        (
            "SELECT infer('pair', a, b, c) AS p FROM s",
            "expected 2 arguments, one per input (a f32[2], b i64[1]), got 3 arguments",
        ),
        ("SELECT infer('pair', 1, 2) AS p FROM s", "expected 2 numbers for input a f32[2] (argument 2), got 1 numbers"),
        ("SELECT infer('gasflow') AS p FROM s", "infer"),
    ];
    for (sql, want) in cases {
        let e = plan_sql(&reg, sql).expect_err(sql);
        assert!(e.contains(want), "{sql}: {e}");
    }
}

#[test]
fn batch_form_groups_rows_by_model() {
    let (models, reg) = setup();
    models.register("gasflow2", model_path("gasflow.onnx")).unwrap();
    let def = reg.get("infer").unwrap();
    let batch = def.batch.as_ref().unwrap();
    let row = |m: &str, x: &[f64]| {
        let mut r = vec![Value::str(m)];
        r.extend(floats(x));
        r
    };
    let rows = vec![
        row("gasflow", &[900.0, 2.5, 4.0]),
        row("gasflow2", &[900.0, 2.5, 4.0]),
        row("nosuch", &[1.0]),
        vec![Value::Int(3), Value::Float(1.0)],
        row("gasflow", &[1000.0, 3.0, 5.0]),
    ];
    let got = batch(&FuncContext::default(), &rows);
    assert_eq!(got.len(), 5);
    assert_eq!(array_f64(&got[0]), array_f64(&got[1]));
    assert_eq!(got[2].clone().unwrap_err().0, "model nosuch is not registered");
    assert_eq!(got[3].clone().unwrap_err().0, "infer: argument 1 must be the name of a registered model, got bigint");
    assert!(got[4].is_ok());
    // The row-at-a-time form gives the same answer.
    let one = call_scalar(&reg, "infer", &rows[4]);
    assert_eq!(array_f64(&one), array_f64(&got[4]));
}

#[test]
fn removed_model_fails_at_run_time() {
    let (models, reg) = setup();
    plan_sql(&reg, "SELECT infer('gasflow', a, b, c) AS p FROM s").unwrap();
    models.remove("gasflow");
    let e = call_scalar(&reg, "infer", &[Value::str("gasflow"), Value::Float(1.0)]).unwrap_err();
    assert_eq!(e.0, "model gasflow is not registered");
}
