//! Model inference in the engine vs in a Python plugin (issue 6 item 6).
//!
//! One small MLP, `plugins/tests/models/gasflow.onnx` (scikit-learn
//! `MLPRegressor` 3→16→8→1, float32 input `[N, 3]`), run two ways in one
//! process and one run:
//!
//! - **tract**, in-engine: `infer('gasflow', temperature, pressure, o2)`,
//!   called as a projection calls it (the batch form, one tract run per
//!   batch of 64 or 1024 rows, and the row form for 1 row), and end to end
//!   through a rule;
//! - **python**: the sample plugin's `py_gasflow_onnx(temperature,
//!   pressure, o2)` (`plugins/examples/portable/pyml`: onnxruntime in the
//!   plugin process, reached over NNG IPC, one call per row as eKuiper
//!   calls functions), called directly and end to end through a rule.
//!
//! The rule is `SELECT <call> AS pred FROM s` on a schema'd stream of JSON
//! payloads `{"temperature":..,"pressure":..,"o2":..}`, pushed 1024 (or 64)
//! at a time (as `src/bench.rs` does) into a sink that keeps `pred`; a rule without
//! the model (`SELECT temperature AS pred`) gives the engine's own cost,
//! and `py_sleep(0)` (answers at once) the plugin call's cost without the
//! model.
//!
//! Figures: rows per wall second, rows per CPU second (this process, plus
//! the plugin process for python), and each one's ratio to the python
//! case of the same kind (direct call or rule) in the same run. Every prediction of either path, direct or through a
//! rule, is checked against tract's batch results for the same row (within
//! 1e-4 relative), so both paths did the same work.
//!
//! `cargo bench --bench models` runs the full counts (about a minute);
//! `cargo bench --bench models -- --test` (CI) runs a few hundred rows.
//! Needs python3 with numpy, scikit-learn, onnxruntime and ekuiper
//! (`scripts/setup.sh`); `WEIR_PYTHON` picks the interpreter. Don't run it
//! while the `portable` test runs: the SDK's IPC socket paths are fixed.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use weir_planner::{parse_statement, plan, Catalog, RuleOptions, Statement};
use weir_plugins::onnx::{register_functions, OnnxModels, INFER};
use weir_plugins::portable::{PortableConfig, PortablePlugins};
use weir_runtime::clock::{Clock, SystemClock};
use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::functions::{call_scalar, FuncContext};
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{RunningRule, Source, SourceSender};
use weir_runtime::{Registry, Value};

const PY_FUNC: &str = "py_gasflow_onnx";
const STREAM: &str =
    r#"CREATE STREAM s (temperature FLOAT, pressure FLOAT, o2 FLOAT) WITH (DATASOURCE="s", FORMAT="json")"#;
/// Largest relative difference accepted between two predictions of a row.
const TOLERANCE: f64 = 1e-4;

/// Row counts of a run.
struct Counts {
    /// Rows through tract's batch form, and through a rule calling it.
    tract: usize,
    /// Rows through the python plugin (and tract's row form), direct and
    /// through a rule.
    python: usize,
}

fn main() {
    let test = std::env::args().any(|a| a == "--test");
    let counts = if test { Counts { tract: 4096, python: 300 } } else { Counts { tract: 1 << 20, python: 50_000 } };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("plugins/tests/models/gasflow.onnx");

    let models = Arc::new(OnnxModels::new());
    models.register("gasflow", &model).unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let plugins = PortablePlugins::new(&tmp.path().join("portables"), PortableConfig::default());
    // The model ships inside the plugin package, as a user would ship it.
    let package = tmp.path().join("pyml");
    std::fs::create_dir_all(&package).expect("package folder");
    for f in ["pyml.json", "pyml.py", "model.py"] {
        std::fs::copy(root.join("plugins/examples/portable/pyml").join(f), package.join(f)).expect("copy plugin");
    }
    std::fs::copy(&model, package.join("gasflow.onnx")).expect("copy model");
    plugins.install("pyml", package.to_str().expect("utf-8 path"), &[], false).unwrap_or_else(|e| panic!("{e}"));
    let plugin = plugins.get("pyml").expect("installed");
    plugin.wait_running(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    let py_pid = plugin.status().pid;

    let mut registry = Registry::with_builtins();
    register_functions(&mut registry, models);
    plugins.register_functions(&mut registry);

    let rows = furnace_rows(counts.tract, 42);
    let args: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| vec![Value::str("gasflow"), Value::Float(r[0]), Value::Float(r[1]), Value::Float(r[2])])
        .collect();
    // Warm-up: the plugin loads onnxruntime and the model on its first call.
    for a in args.iter().take(200) {
        call_scalar(&registry, PY_FUNC, &a[1..]).unwrap_or_else(|e| panic!("{e}"));
        call_scalar(&registry, INFER, a).unwrap_or_else(|e| panic!("{e}"));
    }

    let batch_fn = registry.get(INFER).and_then(|d| d.batch.clone()).expect("infer has a batch form");
    let mut results = Vec::new();
    let mut reference = Vec::new();
    for size in [1024, 64] {
        let mut preds = Vec::with_capacity(args.len());
        let m = measure(&format!("call  tract    batch {size:>4}"), args.len(), None, || {
            for chunk in args.chunks(size) {
                preds.extend(batch_fn(&FuncContext::default(), chunk).into_iter().map(|r| prediction(&r.unwrap())));
            }
        });
        if reference.is_empty() {
            reference = preds;
        } else {
            check("tract batch 64", &preds, &reference);
        }
        results.push(m);
    }
    let few = &args[..counts.python];
    for (label, func, skip) in [("call  tract    row form  ", INFER, 0), ("call  python   row form  ", PY_FUNC, 1)] {
        let mut preds = Vec::with_capacity(few.len());
        let pid = (func == PY_FUNC).then_some(py_pid);
        results.push(measure(label, few.len(), pid, || {
            for a in few {
                preds.push(prediction(&call_scalar(&registry, func, &a[skip..]).unwrap_or_else(|e| panic!("{e}"))));
            }
        }));
        check(label.trim(), &preds, &reference);
    }
    // The plugin's floor: `py_sleep(0)` answers at once, so this is the
    // NNG round trip, JSON and the SDK's dispatch without the model.
    let zero = [Value::Float(0.0)];
    results.push(measure("call  python   no model  ", few.len(), Some(py_pid), || {
        for _ in few {
            call_scalar(&registry, "py_sleep", &zero).unwrap_or_else(|e| panic!("{e}"));
        }
    }));

    let infer_sql = "SELECT infer('gasflow', temperature, pressure, o2) AS pred FROM s";
    let py_sql = format!("SELECT {PY_FUNC}(temperature, pressure, o2) AS pred FROM s");
    let rules = [
        ("rule  no model push 1024", "SELECT temperature AS pred FROM s", counts.tract, 1024, None),
        ("rule  tract    push 1024", infer_sql, counts.tract, 1024, None),
        ("rule  tract    push   64", infer_sql, counts.tract, 64, None),
        ("rule  python   push 1024", &py_sql, counts.python, 1024, Some(py_pid)),
    ];
    for (label, sql, n, push, pid) in rules {
        let (m, preds) = run_rule(label, sql, &registry, &rows[..n], push, pid);
        if label.contains("no model") {
            let temps: Vec<f64> = rows[..n].iter().map(|r| r[0]).collect();
            check(label.trim(), &preds, &temps);
        } else {
            check(label.trim(), &preds, &reference);
        }
        results.push(m);
    }
    plugins.uninstall("pyml").unwrap_or_else(|e| panic!("{e}"));

    // Direct calls are compared with the direct python call, rules with
    // the python rule.
    let python = |kind: &str| {
        let m = results
            .iter()
            .find(|m| m.label.starts_with(kind) && m.label.contains("python") && !m.label.contains("no model"))
            .expect("measured");
        (m.per_wall(), m.per_cpu())
    };
    println!("\nmodels: gasflow.onnx (MLP 3-16-8-1), tract in-engine vs python plugin (onnxruntime over NNG)");
    println!("predictions of every path equal tract's batch results within {TOLERANCE} relative");
    println!(
        "{:<26} {:>8} {:>8} {:>8} {:>8} {:>12} {:>13} {:>9} {:>9}",
        "case", "rows", "wall s", "cpu s", "plugin", "rows/s", "rows/cpu-s", "x python", "x py cpu"
    );
    for m in &results {
        let (wall, cpu) = python(&m.label[..4]);
        println!(
            "{:<26} {:>8} {:>8.3} {:>8.2} {:>8.2} {:>12.0} {:>13} {:>9.1} {:>9}",
            m.label,
            m.rows,
            m.wall.as_secs_f64(),
            m.cpu.as_secs_f64(),
            m.plugin_cpu.as_secs_f64(),
            m.per_wall(),
            m.per_cpu().map_or("-".into(), |c| format!("{c:.0}")),
            m.per_wall() / wall,
            m.per_cpu().zip(cpu).map_or("-".into(), |(c, b)| format!("{:.1}", c / b))
        );
    }
    println!("(x python: ratio to the python case of the same kind, call or rule, in this run;");
    println!(" python cpu s include the plugin process's, shown as plugin)");
}

/// One timed case.
struct Measured {
    label: String,
    rows: usize,
    wall: Duration,
    /// User + system CPU of this process, plus the plugin process's when
    /// the case runs Python.
    cpu: Duration,
    /// The plugin process's share of `cpu`.
    plugin_cpu: Duration,
}

impl Measured {
    fn per_wall(&self) -> f64 {
        self.rows as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// `None` below 50 ms of CPU: `/proc` counts in 10 ms ticks.
    fn per_cpu(&self) -> Option<f64> {
        (self.cpu >= Duration::from_millis(50)).then(|| self.rows as f64 / self.cpu.as_secs_f64())
    }
}

/// Times `f`, counting the CPU of this process and of process `child`.
fn measure(label: &str, rows: usize, child: Option<u32>, f: impl FnOnce()) -> Measured {
    let plugin = || child.map_or(Duration::ZERO, |p| cpu_time(&p.to_string()));
    let (own0, plugin0) = (cpu_time("self"), plugin());
    let t0 = Instant::now();
    f();
    let wall = t0.elapsed();
    let plugin_cpu = plugin().saturating_sub(plugin0);
    let cpu = cpu_time("self").saturating_sub(own0) + plugin_cpu;
    eprintln!(
        "{label}: {rows} rows in {:.3} s, cpu {:.2} s (plugin process {:.2} s)",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        plugin_cpu.as_secs_f64()
    );
    Measured { label: label.to_string(), rows, wall, cpu, plugin_cpu }
}

/// Runs `sql` over `rows` (pushed `push` payloads at a time) until the
/// sink has every output row; returns the figures and the `pred` column.
fn run_rule(
    label: &str,
    sql: &str,
    registry: &Registry,
    rows: &[[f64; 3]],
    push: usize,
    child: Option<u32>,
) -> (Measured, Vec<f64>) {
    let Ok(Statement::Create(def)) = parse_statement(STREAM) else { panic!("bad stream DDL") };
    let mut catalog = Catalog::new();
    catalog.insert(*def);
    let options = RuleOptions::from_json(&serde_json::json!({})).unwrap_or_else(|e| panic!("{e}"));
    let plan = plan("models", sql, &catalog, &options, registry).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let payloads: Vec<Vec<u8>> = rows
        .iter()
        .map(|r| format!(r#"{{"temperature":{},"pressure":{},"o2":{}}}"#, r[0], r[1], r[2]).into_bytes())
        .collect();
    let sink = CollectingSink::default();
    let preds = sink.0.clone();
    let want = rows.len();
    let m = measure(label, want, child, || {
        actix::System::new().block_on(async {
            let source = PushSource { payloads, push };
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let sinks: Vec<(String, Box<dyn Sink>)> = vec![("collect".into(), Box::new(sink))];
            let mut rule = RunningRule::start(&plan, registry, clock, vec![Box::new(source)], sinks)
                .unwrap_or_else(|e| panic!("{e}"));
            rule.wait_sources().await;
            let deadline = Instant::now() + Duration::from_secs(300);
            while lock(&preds).len() < want {
                let errors: u64 = rule.metrics().iter().map(|m| m.exceptions()).sum();
                assert!(errors == 0 && Instant::now() < deadline, "{label}: {errors} exceptions, rows missing");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            rule.stop().await;
        });
    });
    let preds = std::mem::take(&mut *lock(&preds));
    (m, preds)
}

/// Sends pre-encoded JSON payloads, `push` at a time.
struct PushSource {
    payloads: Vec<Vec<u8>>,
    push: usize,
}

impl Source for PushSource {
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let PushSource { payloads, push } = *self;
        Box::pin(async move {
            let mut batch = Vec::with_capacity(push);
            for data in payloads {
                batch.push(Payload { data: PayloadData::Bytes(data), ts: out.now_ms(), meta: None });
                if batch.len() == push && !out.send(std::mem::replace(&mut batch, Vec::with_capacity(push))).await {
                    return;
                }
            }
            if !batch.is_empty() {
                out.send(batch).await;
            }
        })
    }
}

/// Keeps the `pred` column of every output row, in order.
#[derive(Default)]
struct CollectingSink(Arc<Mutex<Vec<f64>>>);

impl Sink for CollectingSink {
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, Result<(), SinkError>> {
        let mut preds = lock(&self.0);
        for r in rows {
            let Value::Map(m) = r else { panic!("output row is not a map: {r:?}") };
            preds.push(prediction(m.get("pred").unwrap_or(&Value::Null)));
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The predicted number: `infer` gives `[x]`, the plugin `x`.
fn prediction(v: &Value) -> f64 {
    match v {
        Value::Array(a) if a.len() == 1 => prediction(&a[0]),
        v => v.as_f64().unwrap_or_else(|| panic!("not a prediction: {v:?}")),
    }
}

/// Asserts `got` matches the first `got.len()` values of `want`.
fn check(what: &str, got: &[f64], want: &[f64]) {
    assert!(got.len() <= want.len(), "{what}: {} predictions for {} rows", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= TOLERANCE * w.abs().max(1e-6), "{what}: row {i}: {g} vs {w}");
    }
}

/// Deterministic furnace readings in the model's training range:
/// temperature 700..1200 °C, pressure 1..5 bar, o2 1..21 % (splitmix64).
fn furnace_rows(n: usize, seed: u64) -> Vec<[f64; 3]> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    };
    let round = |x: f64, d: f64| (x * d).round() / d;
    (0..n)
        .map(|_| {
            [round(700.0 + 500.0 * next(), 100.0), round(1.0 + 4.0 * next(), 1000.0), round(1.0 + 20.0 * next(), 100.0)]
        })
        .collect()
}

/// User + system CPU time of process `pid` (`self` or a number), from
/// `/proc/<pid>/stat` (fields 14 and 15, clock ticks of 1/100 s).
fn cpu_time(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(PathBuf::from("/proc").join(pid).join("stat")) else {
        return Duration::ZERO;
    };
    // The command name (field 2) may hold spaces: count fields after ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}
