//! Native C model libraries end to end: the sample model of
//! `examples/native/` is compiled with the system C compiler, loaded,
//! called through the function registry and planned from SQL; the broken
//! variants of `broken_model.c` must be rejected with clear errors.
//!
//! Without a C compiler (`$CC`, `cc` or `gcc`) each test prints why and
//! passes without checking anything; CI has gcc.

use std::path::{Path, PathBuf};
use std::process::Command;

use weir_planner::{parse_statement, plan, Catalog, RuleOptions, Statement};
use weir_plugins::native::{DescriptorProblem, NativeError, NativeLibrary, ValueType};
use weir_runtime::functions::{call_scalar, FuncContext, Registry};
use weir_runtime::value::Value;

// ---------------------------------------------------------------- util

fn compiler() -> Option<String> {
    let candidates = std::env::var("CC").ok().into_iter().chain(["cc".to_string(), "gcc".to_string()]);
    candidates.into_iter().find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `examples/native/<source>` with `defines` into a shared library
/// in `dir`; `None` (after saying so) if there is no C compiler.
fn build(dir: &Path, source: &str, defines: &[&str]) -> Option<PathBuf> {
    let Some(cc) = compiler() else {
        eprintln!("SKIPPED: no C compiler ($CC, cc or gcc) to build the native test models");
        return None;
    };
    let out = dir.join(format!("lib{}{}.so", source.trim_end_matches(".c"), defines.join("").to_lowercase()));
    let status = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-O2"])
        .arg("-I")
        .arg(plugin_dir().join("include"))
        .args(defines)
        .arg(plugin_dir().join("examples/native").join(source))
        .arg("-o")
        .arg(&out)
        .arg("-lm")
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "{cc} failed on {source} {defines:?}");
    Some(out)
}

/// The sample model, loaded with `config`.
fn gasflow(dir: &Path, config: &str) -> Option<NativeLibrary> {
    let path = build(dir, "gasflow_model.c", &[])?;
    Some(NativeLibrary::load(path, config).expect("load the sample model"))
}

fn broken(dir: &Path, define: &str) -> Option<Result<NativeLibrary, NativeError>> {
    let path = build(dir, "broken_model.c", &[define])?;
    Some(NativeLibrary::load(path, "{}"))
}

fn registry_with(lib: &NativeLibrary) -> Registry {
    let mut reg = Registry::with_builtins();
    lib.register_functions(&mut reg, "").expect("register");
    reg
}

/// Whether `got` is a float within 1e-9 of `want` (C's libm and Rust's
/// may differ in the last bits).
fn close(got: &Result<Value, weir_runtime::functions::FuncError>, want: f64) -> bool {
    matches!(got, Ok(Value::Float(f)) if (f - want).abs() <= 1e-9 * want.abs().max(1.0))
}

fn floats(v: &[f64]) -> Value {
    Value::array(v.iter().map(|&f| Value::Float(f)).collect())
}

/// `gasflow_step` of gasflow_model.c, in Rust.
fn gasflow_expected(t: f64, p: f64, o2: f64) -> f64 {
    let u = [(t - 850.0) / 150.0, (p - 2.5) / 1.5, (o2 - 4.0) / 2.0];
    let w1 = [[0.8, -0.4, 0.3], [-0.5, 0.9, 0.1], [0.2, 0.3, -0.7], [0.6, 0.1, 0.5]];
    let b1 = [0.1, -0.2, 0.05, 0.0];
    let w2 = [1.5, -0.8, 0.6, 1.1];
    let mut acc = 0.3;
    for i in 0..4 {
        let mut h = b1[i];
        for j in 0..3 {
            h += w1[i][j] * u[j];
        }
        acc += w2[i] * f64::tanh(h);
    }
    120.0 + 40.0 * acc
}

// ---------------------------------------------------------------- the sample model

#[test]
fn gasflow_matches_the_same_formula_in_rust() {
    let dir = tempfile::tempdir().unwrap();
    let Some(lib) = gasflow(dir.path(), "{}") else { return };
    let names: Vec<&str> = lib.functions().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["gasflow", "scale", "valve_position", "in_spec"]);
    assert_eq!(lib.functions()[1].ret, ValueType::F64Array);
    let reg = registry_with(&lib);
    for (t, p, o2) in [(850.0, 2.5, 4.0), (700.0, 0.0, 2.1), (1020.5, 4.75, 6.3)] {
        let got = call_scalar(&reg, "gasflow", &[Value::Float(t), Value::Float(p), Value::Float(o2)]);
        assert!(close(&got, gasflow_expected(t, p, o2)), "gasflow({t}, {p}, {o2}) = {got:?}");
    }
    // Integers convert to the declared doubles; the name is case-insensitive.
    let int_args = [Value::Int(850), Value::Int(2), Value::Int(4)];
    assert!(close(&call_scalar(&reg, "GASFLOW", &int_args), gasflow_expected(850.0, 2.0, 4.0)));
}

#[test]
fn errors_from_c_surface_with_the_library_message() {
    let dir = tempfile::tempdir().unwrap();
    let Some(lib) = gasflow(dir.path(), "{}") else { return };
    let reg = registry_with(&lib);
    let e = call_scalar(&reg, "gasflow", &[Value::Float(850.0), Value::Float(-1.5), Value::Float(4.0)]).unwrap_err();
    assert_eq!(e.0, "gasflow: pressure must be non-negative, got -1.5 (code 1)");
    let e = call_scalar(&reg, "valve_position", &[Value::Float(10.0), Value::Int(11), Value::Bool(false)]).unwrap_err();
    assert_eq!(e.0, "valve_position: mode must be 0..10, got 11 (code 1)");
}

#[test]
fn the_batch_form_answers_each_row() {
    let dir = tempfile::tempdir().unwrap();
    let Some(lib) = gasflow(dir.path(), "{}") else { return };
    let reg = registry_with(&lib);
    let batch = reg.get("gasflow").and_then(|d| d.batch.clone()).expect("gasflow has a batch form");
    let row = |t: f64, p: f64| vec![Value::Float(t), Value::Float(p), Value::Float(4.0)];
    let rows = vec![
        row(800.0, 2.0),
        row(800.0, -2.0),
        vec![Value::Null, Value::Float(1.0), Value::Float(4.0)],
        vec![Value::str("hot"), Value::Float(1.0), Value::Float(4.0)],
        row(900.0, 3.0),
    ];
    let out = batch(&FuncContext::default(), &rows);
    assert_eq!(out.len(), 5);
    assert!(close(&out[0], gasflow_expected(800.0, 2.0, 4.0)), "{:?}", out[0]);
    assert_eq!(out[1].as_ref().unwrap_err().0, "gasflow: pressure must be non-negative, got -2 (code 1)");
    assert_eq!(out[2], Ok(Value::Null));
    assert_eq!(out[3].as_ref().unwrap_err().0, "gasflow: argument 1 (temperature) must be a number, got string");
    assert!(close(&out[4], gasflow_expected(900.0, 3.0, 4.0)), "{:?}", out[4]);
    // A function without a batch entry point is called row by row.
    let rows = vec![vec![Value::Float(3.0)], vec![Value::Float(9.0)]];
    assert_eq!(lib.call_batch("in_spec", &rows), vec![Ok(Value::Bool(true)), Ok(Value::Bool(false))]);
}

#[test]
fn arguments_convert_to_the_declared_types_or_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let Some(lib) = gasflow(dir.path(), "{}") else { return };
    let reg = registry_with(&lib);
    let valve = |flow: Value, mode: Value, manual: Value| call_scalar(&reg, "valve_position", &[flow, mode, manual]);
    assert_eq!(valve(Value::Float(41.0), Value::Int(0), Value::Bool(false)), Ok(Value::Int(21)));
    assert_eq!(valve(Value::Float(0.0), Value::Float(3.0), Value::Bool(true)), Ok(Value::Int(30)));
    assert_eq!(
        valve(Value::Float(0.0), Value::Float(3.5), Value::Bool(true)).unwrap_err().0,
        "valve_position: argument 2 (mode) must be a whole number, got 3.5"
    );
    assert_eq!(
        valve(Value::str("open"), Value::Int(1), Value::Bool(true)).unwrap_err().0,
        "valve_position: argument 1 (flow) must be a number, got string"
    );
    assert_eq!(
        valve(Value::Float(1.0), Value::Int(1), Value::Int(1)).unwrap_err().0,
        "valve_position: argument 3 (manual) must be a boolean, got bigint"
    );
    assert_eq!(valve(Value::Null, Value::Int(1), Value::Bool(true)), Ok(Value::Null));
    assert_eq!(call_scalar(&reg, "in_spec", &[Value::Float(4.2)]), Ok(Value::Bool(true)));
    assert_eq!(call_scalar(&reg, "gasflow", &[Value::Float(1.0)]).unwrap_err().0, "Expect 3 arguments but found 1.");
}

#[test]
fn array_results_use_the_configured_state() {
    let dir = tempfile::tempdir().unwrap();
    let Some(lib) = gasflow(dir.path(), r#"{"gain": 2.5}"#) else { return };
    let reg = registry_with(&lib);
    assert_eq!(call_scalar(&reg, "scale", &[floats(&[1.0, -2.0, 4.0])]), Ok(floats(&[2.5, -5.0, 10.0])));
    // Nested arrays flatten; a lone number is an array of one.
    let nested = Value::array(vec![Value::Int(1), Value::array(vec![Value::Int(2)])]);
    assert_eq!(call_scalar(&reg, "scale", &[nested]), Ok(floats(&[2.5, 5.0])));
    assert_eq!(call_scalar(&reg, "scale", &[Value::Int(2)]), Ok(floats(&[5.0])));
    let e = call_scalar(&reg, "scale", &[floats(&[])]).unwrap_err();
    assert_eq!(e.0, "scale: values must not be empty (code 1)");
    let e = call_scalar(&reg, "scale", &[floats(&[1.0; 65])]).unwrap_err();
    assert_eq!(e.0, "scale: at most 64 values (code 1)");
    let e = call_scalar(&reg, "scale", &[Value::array(vec![Value::Int(1), Value::str("x")])]).unwrap_err();
    assert_eq!(e.0, "scale: argument 1 (values) must be an array of numbers, got an array containing string");
}

#[test]
fn init_errors_carry_the_library_message() {
    let dir = tempfile::tempdir().unwrap();
    let Some(path) = build(dir.path(), "gasflow_model.c", &[]) else { return };
    let e = NativeLibrary::load(&path, r#"{"gain": -1}"#).unwrap_err();
    assert!(
        matches!(&e, NativeError::Init { code: 3, message, .. } if message == "gain must be positive, got -1"),
        "{e}"
    );
    assert!(e.to_string().contains("libgasflow_model.so: weir_model_init failed with code 3"), "{e}");
    let e = NativeLibrary::load(&path, "{gain: 2").unwrap_err();
    assert!(matches!(e, NativeError::Config { .. }), "{e}");
}

#[test]
fn calls_from_many_threads_stay_correct() {
    let dir = tempfile::tempdir().unwrap();
    let Some(lib) = gasflow(dir.path(), "{}") else { return };
    let threads: Vec<_> = (0..4)
        .map(|k| {
            let lib = lib.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let t = 700.0 + f64::from(k * 500 + i) * 0.1;
                    let got = lib.call("gasflow", &[Value::Float(t), Value::Float(2.0), Value::Float(3.0)]);
                    assert!(close(&got, gasflow_expected(t, 2.0, 3.0)), "{got:?}");
                    assert!(lib.call("in_spec", &[Value::Float(t / 200.0)]).is_ok());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

// ---------------------------------------------------------------- rejected libraries

#[test]
fn missing_symbols_are_named_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let Some(res) = broken(dir.path(), "-DMISSING_FREE") else { return };
    let e = res.unwrap_err();
    assert!(matches!(&e, NativeError::MissingSymbols { symbols, .. } if symbols == &["weir_model_free"]), "{e}");
    let text = e.to_string();
    assert!(text.contains("libbroken_model-dmissing_free.so is not a weir model library"), "{text}");
    assert!(text.contains("missing symbol(s) weir_model_free"), "{text}");

    let e = NativeLibrary::load(dir.path().join("absent.so"), "{}").unwrap_err();
    assert!(matches!(e, NativeError::File { .. }), "{e}");
    let not_a_library = dir.path().join("notes.so");
    std::fs::write(&not_a_library, "not an ELF file").unwrap();
    let e = NativeLibrary::load(&not_a_library, "{}").unwrap_err();
    assert!(matches!(e, NativeError::Open { .. }), "{e}");
}

#[test]
fn a_wrong_abi_version_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let Some(res) = broken(dir.path(), "-DWRONG_ABI") else { return };
    let e = res.unwrap_err();
    assert!(matches!(e, NativeError::AbiVersion { found: 99, expected: 1, .. }), "{e}");
    assert!(e.to_string().contains("built for weir model ABI version 99, this weir supports version 1"), "{e}");
}

#[test]
fn invalid_function_tables_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("-DDUPLICATE_NAME", DescriptorProblem::DuplicateName { name: "one".into() }),
        ("-DBAD_TYPE", DescriptorProblem::UnknownArgType { function: "one".into(), position: 1, code: 42 }),
        ("-DNULL_CALL", DescriptorProblem::NullCall { function: "one".into() }),
    ];
    for (define, want) in cases {
        let Some(res) = broken(dir.path(), define) else { return };
        match res.unwrap_err() {
            NativeError::Descriptor { problem, .. } => assert_eq!(problem, want, "{define}"),
            other => panic!("{define}: {other}"),
        }
    }
    // Without a defect the same source loads.
    let Some(res) = broken(dir.path(), "-DNO_DEFECT") else { return };
    assert_eq!(res.unwrap().call("one", &[Value::Int(5)]), Ok(Value::Float(1.0)));
}

#[test]
fn a_result_longer_than_its_buffer_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let Some(res) = broken(dir.path(), "-DBAD_RESULT_LEN") else { return };
    let e = res.unwrap().call("one", &[Value::Int(5)]).unwrap_err();
    assert_eq!(e.0, "one: the library returned 5 values, more than the declared maximum 4");
}

// ---------------------------------------------------------------- SQL and the model set

fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    let sql = r#"CREATE STREAM s (a FLOAT, b FLOAT, c FLOAT) WITH (DATASOURCE="s")"#;
    let Ok(Statement::Create(def)) = parse_statement(sql) else { panic!("bad DDL") };
    catalog.insert(*def);
    catalog
}

#[test]
fn the_planner_checks_arity_and_literals() {
    let dir = tempfile::tempdir().unwrap();
    let Some(lib) = gasflow(dir.path(), "{}") else { return };
    let reg = registry_with(&lib);
    let (catalog, options) = (catalog(), RuleOptions::default());
    let plan_sql = |sql: &str| plan("r1", sql, &catalog, &options, &reg).map(|_| ()).map_err(|e| e.to_string());
    plan_sql("SELECT gasflow(a, b, c) AS flow, scale(array_create(a, b)) AS s FROM s WHERE in_spec(c)").unwrap();
    plan_sql("SELECT valve_position(gasflow(a, b, c), 2, true) FROM s").unwrap();
    let e = plan_sql("SELECT gasflow(a, b) FROM s").unwrap_err();
    assert!(e.contains("function gasflow: expect 3 arguments but found 2"), "{e}");
    let e = plan_sql("SELECT gasflow('hot', b, c) FROM s").unwrap_err();
    assert!(e.contains("function gasflow: argument 1 (temperature) must be a number, got string"), "{e}");
    let e = plan_sql("SELECT valve_position(a, 2.5, true) FROM s").unwrap_err();
    assert!(e.contains("argument 2 (mode) must be a whole number, got 2.5"), "{e}");
}

#[test]
fn libraries_register_under_prefixes_and_unregister() {
    let dir = tempfile::tempdir().unwrap();
    let Some(lib) = gasflow(dir.path(), "{}") else { return };
    let Some(doubled) = gasflow(dir.path(), r#"{"gain": 2}"#) else { return };
    let mut reg = Registry::with_builtins();
    lib.register_functions(&mut reg, "").unwrap();
    // Same names again: refused, and nothing changes.
    let e = doubled.register_functions(&mut reg, "").unwrap_err();
    assert!(matches!(&e, NativeError::FunctionExists { function, .. } if function == "gasflow"), "{e}");
    assert!(reg.get("f2_gasflow").is_none());
    assert!(matches!(doubled.register_functions(&mut reg, "f-2"), Err(NativeError::InvalidPrefix { .. })));
    // A second instance of the same file keeps its own state.
    let names = doubled.register_functions(&mut reg, "F2_").unwrap();
    assert_eq!(names, ["f2_gasflow", "f2_scale", "f2_valve_position", "f2_in_spec"]);
    assert_eq!(call_scalar(&reg, "scale", &[floats(&[1.0])]), Ok(floats(&[1.0])));
    assert_eq!(call_scalar(&reg, "f2_scale", &[floats(&[1.0])]), Ok(floats(&[2.0])));

    // A rule compiled before the removal holds the function, so the library
    // stays loaded for it.
    let held = reg.get("scale").cloned().unwrap();
    assert_eq!(lib.unregister_functions(&mut reg, "").unwrap(), 4);
    drop(lib);
    assert!(reg.get("scale").is_none());
    let batch = held.batch.clone().unwrap();
    assert_eq!(batch(&FuncContext::default(), &[vec![floats(&[3.0])]]), vec![Ok(floats(&[3.0]))]);
}

#[test]
fn the_header_layout_matches_weir() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cc) = compiler() else { return };
    let probe = dir.path().join("probe.c");
    std::fs::write(
        &probe,
        r#"#include <stdio.h>
#include "weir_model.h"
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu\n", sizeof(weir_value), offsetof(weir_value, v), sizeof(weir_arg),
           sizeof(weir_function), offsetof(weir_function, call), offsetof(weir_function, call_batch));
    return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("probe");
    let ok = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Werror", "-I"])
        .arg(plugin_dir().join("include"))
        .arg(&probe)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap()
        .success();
    assert!(ok, "the probe does not compile");
    let out = Command::new(&exe).output().unwrap();
    // The sizes weir's repr(C) mirror has on 64-bit targets (pinned by the
    // unit test in src/native/ffi.rs).
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "24 8 16 64 48 56");
}
