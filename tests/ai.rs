//! Models in rules, through a running `weir serve` (issue 6): a Python
//! plugin written with eKuiper's SDK installed over REST and called from
//! SQL, the plugin crashing under a running rule, and an HTTP model service.
//! The plugin crate's own tests cover the protocol and failure cases.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::{created, repo_root, Server};

/// Readings of a furnace line: (furnace, temperature, pressure, o2).
fn readings() -> Vec<(String, f64, f64, f64)> {
    (0..20)
        .map(|i| (format!("F{}", i % 3), 850.0 + 20.0 * i as f64, 0.9 + 0.03 * i as f64, 1.5 + 0.2 * i as f64))
        .collect()
}

/// Writes the readings as the JSON array a `file` stream reads.
fn write_readings(dir: &Path) {
    let rows: Vec<_> = readings()
        .iter()
        .enumerate()
        .map(|(i, (f, t, p, o))| json!({"seq": i, "furnace": f, "temperature": t, "pressure": p, "o2": o}))
        .collect();
    std::fs::write(dir.join("furnace.json"), serde_json::to_vec(&rows).unwrap()).unwrap();
}

/// The output lines of a `file` sink, parsed, once there are `n` of them.
fn wait_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "only {} of {n} outputs in {}", lines.len(), path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn python() -> String {
    std::env::var("WEIR_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The sample plugin's predictions, computed by Python outside weir.
fn plugin_predictions(rows: &[[f64; 3]]) -> Vec<f64> {
    let dir = repo_root().join("plugins/examples/portable/pyml");
    let script = format!(
        "import sys, json; sys.path.insert(0, {:?}); import model; print(json.dumps(model.predict({:?})))",
        dir.display().to_string(),
        rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()
    );
    let out = Command::new(python()).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The status of rule `id` as JSON.
fn status(s: &Server, id: &str) -> serde_json::Value {
    s.call("GET", &format!("/rules/{id}/status"), None).json()
}

#[test]
fn a_python_plugin_runs_in_a_rule_and_survives_its_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_readings(&data);
    let s = Server::start(&data);
    let example = repo_root().join("plugins/examples/portable/pyml");
    let body = json!({"name": "pyml", "file": format!("file://{}", example.display())});
    let r = s.call("POST", "/plugins/portables", Some(&body.to_string()));
    assert_eq!((r.status, r.body.as_str()), (201, "portable plugin pyml is created"));
    let r = s.call("POST", "/plugins/portables", Some(&body.to_string()));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.call("GET", "/plugins/portables/pyml", None);
    assert_eq!(r.json()["functions"][0], "py_gasflow");
    let start = Instant::now();
    while s.call("GET", "/plugins/portables/pyml/status", None).json()["status"] != "running" {
        assert!(start.elapsed() < Duration::from_secs(60), "the plugin did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // An unknown function is a plan-time error.
    let bad = json!({"id": "bad", "sql": "SELECT py_nosuch(temperature) FROM furnace", "actions": [{"nop": {}}]});
    let r = s.call(
        "POST",
        "/streams",
        Some(r#"{"sql":"CREATE STREAM furnace () WITH (TYPE=\"file\", DATASOURCE=\"furnace.json\")"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s.call("POST", "/rules", Some(&bad.to_string()));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("py_nosuch"), "{}", r.body);

    let out = dir.path().join("out.txt");
    let rule = json!({"id": "setpoint",
        "sql": "SELECT seq, furnace, py_gasflow(temperature, pressure, o2) AS sp FROM furnace",
        "actions": [{"file": {"path": out.to_str().unwrap(), "sendSingle": true}}]});
    created(&s, "/rules", &rule.to_string());
    let lines = wait_lines(&out, readings().len());
    let inputs: Vec<[f64; 3]> = readings().iter().map(|(_, t, p, o)| [*t, *p, *o]).collect();
    let want = plugin_predictions(&inputs);
    for line in &lines {
        let seq = line["seq"].as_u64().unwrap() as usize;
        let sp = line["sp"].as_f64().unwrap();
        assert!((sp - want[seq]).abs() < 1e-9, "row {seq}: {sp} vs {}", want[seq]);
    }

    // The plugin dies under a running rule: rows fail with the reason in
    // the rule's status, the rule keeps running, the plugin comes back.
    let crash = json!({"id": "crash", "sql": "SELECT py_crash() AS x FROM furnace WHERE seq = 0",
        "actions": [{"nop": {}}]});
    created(&s, "/rules", &crash.to_string());
    let start = Instant::now();
    loop {
        let st = status(&s, "crash");
        let obj = st.as_object().unwrap();
        let exceptions: i64 =
            obj.iter().filter(|(k, _)| k.ends_with("_exceptions_total")).filter_map(|(_, v)| v.as_i64()).sum();
        if exceptions >= 1 {
            assert_eq!(st["status"], "running", "{st}");
            let said = obj.iter().any(|(k, v)| {
                k.ends_with("_last_exception") && v.as_str().unwrap_or("").contains("portable plugin pyml")
            });
            assert!(said, "{st}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no exception recorded: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let start = Instant::now();
    loop {
        let st = s.call("GET", "/plugins/portables/pyml/status", None).json();
        if st["status"] == "running" && st["restarts"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the plugin did not come back: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = s.call("POST", "/rules/setpoint/restart", None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_lines(&out, 2 * readings().len());

    let r = s.call("DELETE", "/plugins/portables/pyml", None);
    assert_eq!((r.status, r.body.as_str()), (200, "portable plugin pyml is deleted"));
    assert_eq!(s.call("GET", "/plugins/portables/pyml", None).status, 404);
}

/// The sample plugin as a package named `name`, sources and sinks only:
/// the SDK fixes control and function socket paths in /tmp by plugin and
/// symbol name, and the test above runs `pyml` at the same time.
fn plugin_copy(dir: &Path, name: &str) -> std::path::PathBuf {
    let example = repo_root().join("plugins/examples/portable/pyml");
    let pkg = dir.join(name);
    std::fs::create_dir_all(pkg.join("sources")).unwrap();
    let code = std::fs::read_to_string(example.join("pyml.py")).unwrap();
    let code = code.replace("PluginConfig(\"pyml\"", &format!("PluginConfig({name:?}"));
    std::fs::write(pkg.join(format!("{name}.py")), code).unwrap();
    std::fs::copy(example.join("model.py"), pkg.join("model.py")).unwrap();
    std::fs::copy(example.join("sources/pyfurnace.yaml"), pkg.join("sources/pyfurnace.yaml")).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example.join("pyml.json")).unwrap()).unwrap();
    meta["executable"] = json!(format!("{name}.py"));
    meta["functions"] = json!([]);
    std::fs::write(pkg.join(format!("{name}.json")), meta.to_string()).unwrap();
    pkg
}

#[test]
fn a_python_plugin_source_feeds_a_rule_writing_to_a_python_sink() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let s = Server::start(&data);
    let pkg = plugin_copy(dir.path(), "pyfurnace_e2e");
    let body = json!({"name": "pyfurnace_e2e", "file": format!("file://{}", pkg.display())});
    created(&s, "/plugins/portables", &body.to_string());
    let start = Instant::now();
    while s.call("GET", "/plugins/portables/pyfurnace_e2e/status", None).json()["status"] != "running" {
        assert!(start.elapsed() < Duration::from_secs(60), "the plugin did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // CONF_KEY picks the `quick` section of the package's
    // sources/pyfurnace.yaml: 5 readings of furnace F2.
    let r = s.call(
        "POST",
        "/streams",
        Some(r#"{"sql":"CREATE STREAM furnace () WITH (TYPE=\"pyfurnace\", CONF_KEY=\"quick\")"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let out = dir.path().join("readings.txt");
    let rule = json!({"id": "readings",
        "sql": "SELECT seq, furnace, temperature FROM furnace",
        "actions": [{"pyfile": {"path": out.to_str().unwrap(), "sendSingle": true, "requireAck": true}}]});
    created(&s, "/rules", &rule.to_string());
    let lines = wait_lines(&out, 5);
    let got: Vec<(u64, String)> =
        lines.iter().map(|l| (l["seq"].as_u64().unwrap(), l["furnace"].as_str().unwrap().to_string())).collect();
    assert_eq!(got, (0..5).map(|i| (i, "F2".to_string())).collect::<Vec<_>>());
    let st = status(&s, "readings");
    assert_eq!(st["status"], "running", "{st}");
    let exceptions: i64 = st
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with("_exceptions_total"))
        .filter_map(|(_, v)| v.as_i64())
        .sum();
    assert_eq!(exceptions, 0, "{st}");
    let r = s.call("DELETE", "/rules/readings", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.call("DELETE", "/plugins/portables/pyfurnace_e2e", None);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// onnxruntime's predictions of the test model for `rows`, computed by
/// Python outside weir.
fn onnxruntime_predictions(rows: &[[f64; 3]]) -> Vec<f64> {
    let model = repo_root().join("plugins/tests/models/gasflow.onnx");
    let script = format!(
        "import json, numpy as np, onnxruntime as ort\n\
         s = ort.InferenceSession({:?}, providers=['CPUExecutionProvider'])\n\
         x = np.array({:?}, dtype=np.float32)\n\
         print(json.dumps(s.run(None, {{s.get_inputs()[0].name: x}})[0][:, 0].astype(float).tolist()))",
        model.display().to_string(),
        rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()
    );
    let out = Command::new(python()).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `weir <args> --host <url>`; returns exit success and stdout.
fn weir_cli(server: &Server, args: &[&str]) -> (bool, String) {
    let out = Command::new(crate::util::weir_bin()).args(args).args(["--host", &server.url]).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The AI scenario end to end: furnace readings uploaded by Neuron over
/// MQTT, an ONNX model (registered with the CLI) predicting each furnace's
/// gas-flow set point, the prediction written back to the furnace's Neuron
/// node; every write equals onnxruntime's own prediction.
#[test]
fn an_onnx_model_drives_neuron_set_points() {
    use crate::brokers::{runtime, Publisher, Subscriber};
    let port = crate::util::free_port();
    crate::util::start_rumqttd(port);
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("sources")).unwrap();
    std::fs::write(etc.join("sources/neuron.yaml"), format!("default:\n  server: tcp://127.0.0.1:{port}\n")).unwrap();
    let s = Server::start_with(&dir.path().join("data"), &["--etc-dir", etc.to_str().unwrap()]);

    let model = repo_root().join("plugins/tests/models/gasflow.onnx");
    let (ok, out) = weir_cli(&s, &["model", "create", "gasflow", model.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = weir_cli(&s, &["model", "describe", "gasflow"]);
    assert!(ok && out.contains("\"input\""), "{out}");
    let (ok, out) = weir_cli(&s, &["model", "create", "broken", dir.path().join("etc").to_str().unwrap()]);
    assert!(!ok, "{out}");

    let r = s.call(
        "POST",
        "/streams",
        Some(r#"{"sql":"CREATE STREAM neuronStream() WITH (TYPE=\"neuron\",FORMAT=\"json\",SHARED=\"true\")"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // Wrong models and arities are refused when the rule is created.
    for (sql, says) in [
        ("SELECT infer('nosuch', values->t) AS x FROM neuronStream", "nosuch"),
        ("SELECT infer('gasflow', 1, 2) AS x FROM neuronStream", "gasflow"),
    ] {
        let bad = json!({"id": "bad", "sql": sql, "actions": [{"nop": {}}]});
        let r = s.call("POST", "/rules", Some(&bad.to_string()));
        assert_eq!(r.status, 400, "{sql}: {}", r.body);
        assert!(r.body.contains(says), "{}", r.body);
    }
    let rule = json!({"id": "gasflow_sp",
        "sql": "SELECT node_name AS node, group_name AS grp, \
                infer('gasflow', values->temperature, values->pressure, values->o2)[0] AS sp FROM neuronStream",
        "actions": [{"neuron": {"server": format!("tcp://127.0.0.1:{port}"), "topic": "/neuron/weir/write/req",
            "qos": 1, "nodeName": "{{.node}}", "groupName": "{{.grp}}", "tags": ["sp"]}}]});
    created(&s, "/rules", &rule.to_string());

    let inputs: Vec<[f64; 3]> = readings().iter().map(|(_, t, p, o)| [*t, *p, *o]).collect();
    let want = onnxruntime_predictions(&inputs);
    let rt = runtime();
    rt.block_on(async {
        let mut neuron = Subscriber::start(port, "neuron-app", "/neuron/weir/write/req", 1, false).await;
        let publisher = Publisher::new(port, "neuron-upload");
        let mut got = std::collections::BTreeMap::new();
        tokio::time::timeout(Duration::from_secs(60), async {
            // Uploads repeat until every furnace got its write (the rule's
            // subscription starts asynchronously).
            while got.len() < inputs.len() {
                for (i, [t, p, o]) in inputs.iter().enumerate() {
                    if got.contains_key(&format!("F{i}")) {
                        continue;
                    }
                    let upload = json!({"timestamp": 1700000000000i64 + i as i64, "node": format!("F{i}"),
                        "group": "burner", "values": {"temperature": t, "pressure": p, "o2": o}, "errors": {}});
                    publisher.publish("/neuron/weir/furnaces/burner", 0, upload.to_string()).await;
                }
                let pause = tokio::time::sleep(Duration::from_millis(300));
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        m = neuron.next_json() => {
                            let node = m["node"].as_str().unwrap().to_string();
                            assert_eq!(m["group"], "burner");
                            // One tag: Neuron's single-tag write form.
                            assert_eq!(m["tag"], "sp", "{m}");
                            got.insert(node, m["value"].as_f64().unwrap());
                        }
                        _ = &mut pause => break,
                    }
                }
            }
        })
        .await
        .expect("every furnace gets a set point");
        for (i, want) in want.iter().enumerate() {
            let sp = got[&format!("F{i}")];
            assert!((sp - want).abs() <= 1e-4 * want.abs().max(1.0), "F{i}: weir {sp}, onnxruntime {want}");
        }
    });
    let (ok, out) = weir_cli(&s, &["model", "drop", "gasflow"]);
    assert!(ok, "{out}");
    let (ok, out) = weir_cli(&s, &["model", "list"]);
    assert!(ok && out.trim() == "[]", "{out}");
}

/// The sample C model (compiled here with the system C compiler) registered
/// over REST and called from a rule; a library with a missing symbol is
/// refused with the symbol's name.
#[test]
fn a_native_c_model_runs_in_a_rule() {
    let dir = tempfile::tempdir().unwrap();
    let include = repo_root().join("plugins/include");
    let compile = |src: &str, out: &Path, defines: &[&str]| {
        let ok = Command::new("cc")
            .args(["-std=c99", "-O2", "-shared", "-fPIC", "-I"])
            .arg(&include)
            .args(defines)
            .arg(repo_root().join("plugins/examples/native").join(src))
            .arg("-o")
            .arg(out)
            .arg("-lm")
            .status()
            .expect("a C compiler (cc)")
            .success();
        assert!(ok, "{src} does not compile");
    };
    let lib = dir.path().join("libgasflow.so");
    compile("gasflow_model.c", &lib, &[]);
    let broken = dir.path().join("libbroken.so");
    compile("broken_model.c", &broken, &["-DMISSING_FREE"]);

    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_readings(&data);
    let s = Server::start(&data);
    let body = json!({"name": "furnace_c", "file": lib.to_str().unwrap(), "prefix": "c_"});
    let r = s.call("POST", "/plugins/native", Some(&body.to_string()));
    assert_eq!((r.status, r.body.as_str()), (201, "native library furnace_c is created"));
    let bad = json!({"name": "broken", "file": broken.to_str().unwrap()});
    let r = s.call("POST", "/plugins/native", Some(&bad.to_string()));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("weir_model_free"), "{}", r.body);
    let r = s.call("GET", "/plugins/native/furnace_c", None);
    assert_eq!(r.json()["functions"][0], "c_gasflow", "{}", r.body);

    let r = s.call(
        "POST",
        "/streams",
        Some(r#"{"sql":"CREATE STREAM furnace () WITH (TYPE=\"file\", DATASOURCE=\"furnace.json\")"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let out = dir.path().join("out.txt");
    let rule = json!({"id": "c_setpoint",
        "sql": "SELECT seq, c_gasflow(temperature, pressure, o2) AS sp FROM furnace",
        "actions": [{"file": {"path": out.to_str().unwrap(), "sendSingle": true}}]});
    created(&s, "/rules", &rule.to_string());
    let lines = wait_lines(&out, readings().len());
    // The same model through the library's own API, outside the rule.
    let direct = weir_plugins::native::NativeLibrary::load(&lib, "{}").unwrap();
    for line in &lines {
        let seq = line["seq"].as_u64().unwrap() as usize;
        let (_, t, p, o) = &readings()[seq];
        let args = [t, p, o].map(|v| weir_runtime::value::Value::Float(*v));
        let want = direct.call("gasflow", &args).unwrap().as_f64().unwrap();
        assert_eq!(line["sp"].as_f64().unwrap(), want, "row {seq}");
    }
    // Persisted: the library comes back with the node.
    s.kill();
    let s = Server::start(&data);
    let r = s.call("GET", "/plugins/native", None);
    assert_eq!(r.json()[0]["name"], "furnace_c", "{}", r.body);
}
