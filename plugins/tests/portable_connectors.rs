//! The sample plugin's source (`pyfurnace`) and sink (`pyfile`), written
//! with the PyPI `ekuiper` SDK, as connector types: a stream reads the
//! source in order with its `sources/pyfurnace.yaml` configuration, the
//! sink writes and acknowledges, ack errors surface, and a plugin killed
//! under a running rule neither hangs it nor stops its data for good.
//!
//! The plugin runs as a copy named `pyconn` whose function list is empty:
//! the SDK fixes the control and function socket paths in /tmp by plugin
//! and symbol name, and `portable.rs` runs `pyml` at the same time.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use weir_connectors::{Environment, SinkContext};
use weir_planner::{parse_statement, plan, Catalog, PhysicalPlan, RuleOptions, Statement};
use weir_plugins::portable::{PortableConfig, PortablePlugins};
use weir_runtime::clock::SystemClock;
use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::rule::RunningRule;
use weir_runtime::{Registry, Value};

/// Installs the sample plugin as `pyconn`, sources and sinks only.
fn install(plugins: &PortablePlugins, tmp: &Path) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/portable/pyml");
    let pkg = tmp.join("pyconn_pkg");
    std::fs::create_dir_all(pkg.join("sources")).unwrap();
    let code = std::fs::read_to_string(example.join("pyml.py")).unwrap();
    std::fs::write(pkg.join("pyconn.py"), code.replace("PluginConfig(\"pyml\"", "PluginConfig(\"pyconn\"")).unwrap();
    std::fs::copy(example.join("model.py"), pkg.join("model.py")).unwrap();
    std::fs::copy(example.join("sources/pyfurnace.yaml"), pkg.join("sources/pyfurnace.yaml")).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example.join("pyml.json")).unwrap()).unwrap();
    meta["executable"] = json!("pyconn.py");
    meta["functions"] = json!([]);
    std::fs::write(pkg.join("pyconn.json"), meta.to_string()).unwrap();
    plugins.install("pyconn", pkg.to_str().unwrap(), &[], false).unwrap();
    plugins.get("pyconn").unwrap().wait_running(Duration::from_secs(60)).unwrap();
}

fn stream(catalog: &mut Catalog, sql: &str) {
    let Statement::Create(def) = parse_statement(sql).unwrap() else { panic!("not a CREATE: {sql}") };
    catalog.insert(*def);
}

fn rule(id: &str, sql: &str, catalog: &Catalog) -> PhysicalPlan {
    plan(id, sql, catalog, &RuleOptions::default(), Registry::builtins()).unwrap()
}

/// Records the rows of every emission.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Value>>>);

impl Sink for Collect {
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, Result<(), SinkError>> {
        self.0.lock().unwrap().extend(rows.iter().cloned());
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Awaits `cond`, polling, failing after `secs` with `what`.
async fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn block_on<F: Future>(f: Pin<Box<F>>) -> F::Output {
    actix::System::new().block_on(f)
}

#[test]
fn plugin_sources_and_sinks_run_in_rules_and_survive_a_crash() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let tmp = tempfile::tempdir().unwrap();
    let config = PortableConfig { call_timeout: Duration::from_secs(3), ..PortableConfig::default() };
    let plugins = Arc::new(PortablePlugins::new(&tmp.path().join("portables"), config));
    install(&plugins, tmp.path());
    let env = Environment::new(tmp.path());
    env.set_extensions(plugins.clone()).unwrap();
    let mut catalog = Catalog::new();
    // `quick` in the package's yaml: 5 readings of F2, no pause.
    stream(&mut catalog, r#"CREATE STREAM quick () WITH (TYPE="pyfurnace", CONF_KEY="quick")"#);
    // The default section (F1), EXTRA on top: many readings, 20 ms apart.
    stream(&mut catalog, r#"CREATE STREAM slow () WITH (TYPE="pyfurnace", EXTRA="{\"count\": 100000}")"#);
    stream(&mut catalog, r#"CREATE STREAM nope () WITH (TYPE="pyfurnace", CONF_KEY="missing")"#);
    let ctx = SinkContext { rule_id: "r".into(), index: 0 };

    // Unknown names stay unknown; a bad CONF_KEY is the stream's error.
    assert!(weir_connectors::sink("pynosuch", &json!({}), &ctx, &env).is_err());
    let e = weir_connectors::source(catalog.get("nope").unwrap(), &env).err().unwrap();
    assert!(e.to_string().contains("missing"), "{e}");

    block_on(Box::pin(async {
        // The sink writes what it gets; acks, and ack errors, come back per message.
        let out = tmp.path().join("sink.txt");
        let props = json!({"path": out, "sendSingle": true, "requireAck": true, "failOn": "bad"});
        let mut sink = weir_connectors::sink("pyfile", &props, &ctx, &env).unwrap();
        let row = |k: &str, v: i64| Value::map([(k.to_string(), Value::Int(v))].into_iter().collect());
        sink.emit(&[row("a", 1), row("a", 2)]).await.unwrap();
        sink.emit(&[row("bad", 3)]).await.unwrap();
        // A publish failure is returned by the next emission.
        let deadline = Instant::now() + Duration::from_secs(10);
        let e = loop {
            match sink.emit(&[]).await {
                Err(e) => break e,
                Ok(()) => assert!(Instant::now() < deadline, "the ack error did not surface"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(e.0.contains("refused {\"bad\":3}"), "{e}");
        sink.emit(&[row("a", 4)]).await.unwrap();
        sink.close().await;
        assert_eq!(lines(&out), vec![json!({"a": 1}), json!({"a": 2}), json!({"a": 4})]);

        // The source yields its readings in order, configured by CONF_KEY.
        let seen = Collect::default();
        let source = weir_connectors::source(catalog.get("quick").unwrap(), &env).unwrap();
        let r = rule("quick", "SELECT seq, furnace FROM quick", &catalog);
        let running = RunningRule::start(
            &r,
            Registry::builtins(),
            Arc::new(SystemClock),
            vec![source],
            vec![("sink_collect_0".into(), Box::new(seen.clone()))],
        )
        .unwrap();
        until(30, "5 readings", || seen.0.lock().unwrap().len() >= 5).await;
        running.stop().await;
        let got: Vec<String> = seen.0.lock().unwrap().iter().map(Value::to_json).collect();
        let want: Vec<String> = (0..5).map(|i| format!(r#"{{"furnace":"F2","seq":{i}}}"#)).collect();
        assert_eq!(got, want);

        // Source to sink through a rule; the plugin is killed meanwhile.
        let out = tmp.path().join("slow.txt");
        let source = weir_connectors::source(catalog.get("slow").unwrap(), &env).unwrap();
        let sink = weir_connectors::sink("pyfile", &json!({"path": out, "sendSingle": true}), &ctx, &env).unwrap();
        let r = rule("slow", "SELECT seq, furnace FROM slow", &catalog);
        let running = RunningRule::start(
            &r,
            Registry::builtins(),
            Arc::new(SystemClock),
            vec![source],
            vec![("sink_pyfile_0".into(), sink)],
        )
        .unwrap();
        until(30, "readings before the crash", || lines(&out).len() >= 3).await;
        let plugin = plugins.get("pyconn").unwrap();
        let pid = plugin.status().pid;
        assert!(std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status().unwrap().success());
        let before = lines(&out).len();
        until(60, "the plugin restarted", || plugin.status().restarts >= 1 && plugin.status().status == "running")
            .await;
        // The restarted plugin starts the source and sink again: a new run
        // of readings (seq from 0) reaches the file.
        until(60, "readings after the restart", || {
            let l = lines(&out);
            l.len() > before + 3 && l[before..].iter().any(|v| v["seq"] == 0)
        })
        .await;
        assert!(lines(&out).iter().all(|v| v["furnace"] == "F1"));
        let stopped = Instant::now();
        running.stop().await;
        assert!(stopped.elapsed() < Duration::from_secs(10), "stopping took {:?}", stopped.elapsed());
    }));
    plugins.uninstall("pyconn").unwrap();
    let leftovers: Vec<PathBuf> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(&format!("pyfurnace_{}x", std::process::id())))
        .collect();
    assert!(leftovers.is_empty(), "channels left behind: {leftovers:?}");
}
