//! The sample Python plugin (`examples/portable/pyml`, written with the PyPI
//! `ekuiper` SDK, using numpy, scikit-learn and onnxruntime) run by weir: install,
//! calls, errors, a crash and a hang with restarts, bad packages.
//!
//! One test, because the SDK fixes the IPC socket paths in /tmp by symbol
//! name: two tests running the same plugin at once would share them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use weir_plugins::portable::{PortableConfig, PortableError, PortablePlugins};
use weir_runtime::functions::{call_scalar, Registry};
use weir_runtime::value::Value;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/portable/pyml")
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

fn python() -> String {
    std::env::var("WEIR_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The model's predictions computed by Python itself, outside weir.
fn expected_predictions(rows: &[[f64; 3]]) -> Vec<f64> {
    let script = format!(
        "import sys, json; sys.path.insert(0, {:?}); import model; print(json.dumps(model.predict({:?})))",
        example().display().to_string(),
        rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()
    );
    let out = Command::new(python()).arg("-c").arg(script).output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("a JSON list")
}

fn registry(plugins: &PortablePlugins) -> Registry {
    let mut reg = Registry::with_builtins();
    plugins.register_functions(&mut reg);
    reg
}

fn f(v: f64) -> Value {
    Value::Float(v)
}

#[test]
fn the_sample_python_plugin_runs_fails_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let config = PortableConfig {
        init_timeout: Duration::from_secs(60),
        call_timeout: Duration::from_secs(3),
        ..PortableConfig::default()
    };
    let plugins = PortablePlugins::new(&tmp.path().join("portables"), config);

    // Bad packages are refused with the reason.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let e = plugins.install("bad", bad.to_str().unwrap(), &[], false).unwrap_err();
    assert!(e.to_string().contains("cannot read bad.json"), "{e}");
    std::fs::write(bad.join("bad.json"), r#"{"language":"go","executable":"x","functions":["f"]}"#).unwrap();
    let e = plugins.install("bad", bad.to_str().unwrap(), &[], false).unwrap_err();
    assert!(e.to_string().contains("language \"go\" is not supported"), "{e}");
    let e = plugins.install("../evil", bad.to_str().unwrap(), &[], false).unwrap_err();
    assert!(matches!(e, PortableError::Package { .. }), "{e}");
    let zip = tmp.path().join("slip.zip");
    let made = Command::new(python())
        .arg("-c")
        .arg(format!(
            "import zipfile; z = zipfile.ZipFile({:?}, 'w'); z.writestr('../../escape.py', 'x'); z.close()",
            zip.display().to_string()
        ))
        .status()
        .unwrap();
    assert!(made.success());
    let e = plugins.install("slip", &format!("file://{}", zip.display()), &[], false).unwrap_err();
    assert!(e.to_string().contains("escapes the plugin folder"), "{e}");
    assert!(!tmp.path().join("escape.py").exists());

    // Install from a zip, as eKuiper users ship plugins, with the ONNX model
    // py_gasflow_onnx runs.
    let zip = tmp.path().join("pyml.zip");
    let made = Command::new(python())
        .arg("-c")
        .arg(format!(
            "import zipfile, os; z = zipfile.ZipFile({zip:?}, 'w')\nfor f in ('pyml.json', 'pyml.py', 'model.py'): z.write(os.path.join({dir:?}, f), f)\nz.write({model:?}, 'gasflow.onnx')\nz.close()",
            zip = zip.display().to_string(),
            dir = example().display().to_string(),
            model = models().join("gasflow.onnx").display().to_string()
        ))
        .status()
        .unwrap();
    assert!(made.success());
    plugins.install("pyml", &format!("file://{}", zip.display()), &[], false).unwrap();
    let plugin = plugins.get("pyml").unwrap();
    plugin.wait_running(Duration::from_secs(60)).unwrap();
    assert!(plugin.status().pid > 0);
    let e = plugins.install("pyml", zip.to_str().unwrap(), &[], false).unwrap_err();
    assert!(matches!(e, PortableError::Conflict(_)), "{e}");

    // Calls: a scikit-learn model and numpy, checked against Python itself.
    let reg = registry(&plugins);
    let rows = [[1000.0, 1.2, 3.0], [1250.5, 0.9, 5.5], [850.0, 1.5, 1.25]];
    let want = expected_predictions(&rows);
    for (row, want) in rows.iter().zip(&want) {
        let got = call_scalar(&reg, "py_gasflow", &[f(row[0]), f(row[1]), f(row[2])]).unwrap();
        assert!((got.as_f64().unwrap() - want).abs() < 1e-9, "{got:?} vs {want}");
    }
    // The ONNX MLP through onnxruntime, against the predictions
    // make_models.py recorded.
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models().join("gasflow_expected.json")).unwrap()).unwrap();
    for (row, want) in expected["rows"].as_array().unwrap().iter().zip(expected["predictions"].as_array().unwrap()) {
        let args: Vec<Value> = row.as_array().unwrap().iter().map(|x| f(x.as_f64().unwrap())).collect();
        let got = call_scalar(&reg, "py_gasflow_onnx", &args).unwrap().as_f64().unwrap();
        let want = want[0].as_f64().unwrap();
        assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{got} vs {want}");
    }
    let z = call_scalar(&reg, "py_zscore", &[Value::array(vec![f(1.0), f(2.0), f(3.0)])]).unwrap();
    assert_eq!(z, Value::array(vec![f(-1.224745), f(0.0), f(1.224745)]));

    // Errors raised in Python reach the caller with their text.
    let e = call_scalar(&reg, "py_fail", &[Value::str("x")]).unwrap_err();
    assert!(e.0.contains("bad input: x"), "{e}");
    let e = call_scalar(&reg, "py_gasflow", &[f(1.0)]).unwrap_err();
    assert!(e.0.contains("takes 3 arguments"), "{e}");

    // A crash: the call fails, the supervisor restarts the process.
    let e = call_scalar(&reg, "py_crash", &[]).unwrap_err();
    assert!(e.0.contains("portable plugin pyml"), "{e}");
    plugin.wait_running(Duration::from_secs(60)).unwrap();
    assert!(plugin.status().restarts >= 1);
    let got = call_scalar(&reg, "py_gasflow", &[f(1000.0), f(1.2), f(3.0)]).unwrap();
    assert!((got.as_f64().unwrap() - want[0]).abs() < 1e-9);

    // A hang: the call times out, the plugin is killed and restarted.
    let restarts = plugin.status().restarts;
    let e = call_scalar(&reg, "py_sleep", &[f(10_000.0)]).unwrap_err();
    assert!(e.0.contains("no answer within"), "{e}");
    plugin.wait_running(Duration::from_secs(60)).unwrap();
    assert!(plugin.status().restarts > restarts);
    assert_eq!(call_scalar(&reg, "py_sleep", &[f(5.0)]).unwrap(), f(5.0));

    // Uninstall stops it; its functions fail cleanly.
    plugins.uninstall("pyml").unwrap();
    let e = call_scalar(&reg, "py_gasflow", &[f(1000.0), f(1.2), f(3.0)]).unwrap_err();
    assert!(e.0.contains("not running"), "{e}");
    assert!(plugins.get("pyml").is_none());
    assert!(matches!(plugins.uninstall("pyml"), Err(PortableError::NotFound(_))));
}
