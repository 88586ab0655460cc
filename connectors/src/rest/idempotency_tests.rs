//! `qos: 2` through the REST sink: every request carries its message's
//! deterministic id as `Idempotency-Key`, and a rule restored after a kill
//! sends the restored epoch again under the same keys.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use weir_planner::{parse_statement, plan, Catalog, RuleOptions, Statement};
use weir_runtime::clock::SystemClock;
use weir_runtime::connector::Sink;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{RunningRule, Source, SourceSender};
use weir_runtime::state::{MemoryBackend, StateBackend};
use weir_runtime::{Registry, Value};

use crate::http::testserver::{Request, TestServer};
use crate::{sink, Environment, SinkContext};

fn rest(props: serde_json::Value) -> Box<dyn Sink> {
    let ctx = SinkContext { rule_id: "r1".into(), index: 0 };
    sink("rest", &props, &ctx, &Environment::new(std::env::temp_dir())).unwrap()
}

fn v(json: &str) -> Value {
    Value::from_json(serde_json::from_str(json).unwrap(), false)
}

#[tokio::test]
async fn each_request_carries_its_id_as_idempotency_key() {
    let srv = TestServer::start().await;
    let mut whole = rest(serde_json::json!({"url": srv.url, "method": "post"}));
    whole.emit_with_id(&[v(r#"{"a":1}"#), v(r#"{"a":2}"#)], "r1/4/0").await.unwrap();
    whole.emit(&[v(r#"{"a":3}"#)]).await.unwrap();
    whole.close().await;
    let mut single = rest(serde_json::json!({"url": srv.url, "method": "post", "sendSingle": true}));
    single.emit_with_id(&[v(r#"{"a":1}"#), v(r#"{"a":2}"#)], "r1/4/1").await.unwrap();
    single.emit_with_id(&[v(r#"{"a":1}"#)], "règle/5/0").await.unwrap();
    single.close().await;
    let own = serde_json::json!({"url": srv.url, "method": "post", "sendSingle": true, "headers": {"Idempotency-Key": "k-{{.a}}"}});
    let mut own = rest(own);
    own.emit_with_id(&[v(r#"{"a":7}"#)], "r1/6/0").await.unwrap();
    own.close().await;
    let got = srv.received();
    let keys: Vec<Option<&str>> = got.iter().map(|r| r.header("idempotency-key")).collect();
    assert_eq!(
        keys,
        vec![
            Some("r1/4/0"),   // the window's rows in one request: the emission's id
            None,             // no id without qos 2
            Some("r1/4/1/0"), // sendSingle: one request, one id per row
            Some("r1/4/1/1"),
            Some("r%C3%A8gle/5/0/0"), // not visible ASCII: percent-encoded
            Some("k-7"),              // the user's own header wins
        ]
    );
    assert_eq!(got[0].body_text(), r#"[{"a":1},{"a":2}]"#);
}

/// Sends `{"v": i}` for each event, then waits for the rule to stop.
struct Events(Vec<i64>);

impl Source for Events {
    fn run(self: Box<Self>, mut out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            for v in self.0 {
                let data = PayloadData::Bytes(format!("{{\"v\":{v}}}").into_bytes());
                if !out.send(vec![Payload { data, ts: out.now_ms(), meta: None }]).await {
                    return;
                }
            }
            out.stopped().await;
        })
    }
}

/// Runs the exactly-once count-window rule `r1` with a REST sink posting
/// to `url` until `done` holds, then kills
/// it (the actix system is dropped: no clean stop, no last checkpoint).
fn run_then_kill(backend: Arc<dyn StateBackend>, url: &str, events: Vec<i64>, done: impl Fn() -> bool) {
    let mut catalog = Catalog::new();
    let Statement::Create(def) = parse_statement(r#"CREATE STREAM s (v BIGINT) WITH (DATASOURCE="s")"#).unwrap() else {
        unreachable!()
    };
    catalog.insert(*def);
    // A slow checkpoint cadence: the kill comes right after the first
    // outputs arrive, long before the next epoch can commit, so the
    // restored epoch is the one whose outputs were sent.
    let options = RuleOptions::from_json(&serde_json::json!({"qos": 2, "checkpointInterval": 1000})).unwrap();
    let sql = "SELECT collect(v) AS vs FROM s GROUP BY COUNTWINDOW(3)";
    let p = plan("r1", sql, &catalog, &options, Registry::builtins()).unwrap();
    let sink = rest(serde_json::json!({"url": url, "method": "post"}));
    actix::System::new().block_on(async move {
        let rule = RunningRule::start_with(
            &p,
            Registry::builtins(),
            Arc::new(SystemClock),
            vec![Box::new(Events(events))],
            vec![("sink_rest_0".into(), sink)],
            Some(backend),
            Vec::new(),
        )
        .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "the expected requests did not arrive");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(rule);
    });
}

fn keyed(requests: &[Request]) -> Vec<(String, String)> {
    requests
        .iter()
        .map(|r| (r.header("idempotency-key").expect("every qos 2 request has a key").to_string(), r.body_text()))
        .collect()
}

#[test]
fn restored_epoch_is_sent_again_under_the_same_keys() {
    // The recorder outlives both runs of the rule.
    let io = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let srv = io.block_on(TestServer::start());
    let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let srv2 = srv.clone();
    run_then_kill(backend.clone(), &srv.url, vec![1, 2, 3, 4, 5, 6], move || srv2.received().len() >= 2);
    let first = keyed(&srv.received());
    // The restored epoch is the newest one sent (the kill came long before
    // another commit); usually both windows are in it.
    let epoch = |key: &str| key.split('/').nth(1).and_then(|e| e.parse::<u64>().ok()).unwrap();
    let newest = first.iter().map(|(k, _)| epoch(k)).max().unwrap();
    let restored: Vec<_> = first.iter().filter(|(k, _)| epoch(k) == newest).cloned().collect();
    // Restarted on the same store: the restored epoch's windows come again
    // (and older ones whose delivery was not confirmed yet), with the same
    // keys and bodies, then the new events' window.
    let (srv2, n) = (srv.clone(), first.len());
    let resent_and_new = move || {
        let again = keyed(&srv2.received()[n..]);
        again.iter().any(|(_, b)| b.contains("[7,8,9]")) && restored.iter().all(|r| again.contains(r))
    };
    run_then_kill(backend, &srv.url, vec![7, 8, 9], resent_and_new);
    let all = keyed(&srv.received());
    let mut by_key = BTreeMap::new();
    for (k, body) in &all {
        if let Some(prev) = by_key.insert(k.clone(), body.clone()) {
            assert_eq!(&prev, body, "key {k} carried two bodies");
        }
    }
    let mut bodies: Vec<String> = by_key.into_values().collect();
    bodies.sort();
    assert_eq!(bodies, vec![r#"[{"vs":[1,2,3]}]"#, r#"[{"vs":[4,5,6]}]"#, r#"[{"vs":[7,8,9]}]"#]);
    assert!(all.iter().all(|(k, _)| k.starts_with("r1/")), "{all:?}");
}
