//! The SQL connectors against real databases: an SQLite file, and a
//! PostgreSQL server per test (skipped with a message when PostgreSQL is
//! not installed).

use std::time::Duration;

use serde_json::json;
use weir_planner::{StreamDef, StreamKind, StreamOptions};
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::{Map, Value};

use super::lookup::SqlLookup;
use super::sink::SqlSink;
use super::source::SqlSource;
use super::testing::{execute, mes, query, sqlite_url, Postgres};
use crate::outlet::testing::channel;
use crate::props::Props;
use crate::{Environment, SinkContext, SourceContext};

/// A database with the MES schema installed, kept alive with the test.
struct Fixture {
    url: String,
    _dir: tempfile::TempDir,
    _pg: Option<Postgres>,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "mes.db");
    mes::install(&url).await.unwrap();
    Fixture { url, _dir: dir, _pg: None }
}

async fn postgres() -> Option<Fixture> {
    let pg = Postgres::start()?;
    let url = pg.create_database("mes").await;
    mes::install(&url).await.unwrap();
    Some(Fixture { url, _dir: tempfile::tempdir().unwrap(), _pg: Some(pg) })
}

fn stream(name: &str, datasource: &str, props: serde_json::Value) -> StreamDef {
    StreamDef {
        name: name.into(),
        kind: StreamKind::Stream,
        fields: None,
        options: StreamOptions {
            datasource: Some(datasource.into()).filter(|d: &String| !d.is_empty()),
            source_type: Some("sql".into()),
            extra: Some(props.to_string()),
            ..Default::default()
        },
        sql: String::new(),
    }
}

fn row(v: serde_json::Value) -> Value {
    Value::from_json(v, true)
}

fn ints(batch: &[Payload], field: &str) -> Vec<i64> {
    batch
        .iter()
        .map(|p| match &p.data {
            PayloadData::Object(m) => m.get(field).and_then(Value::as_i64).expect("int field"),
            PayloadData::Bytes(_) => panic!("objects expected"),
        })
        .collect()
}

async fn next<T>(rx: &mut tokio::sync::mpsc::Receiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("a batch in time").expect("source running")
}

fn text(rows: &[Map], field: &str) -> Vec<String> {
    rows.iter().map(|r| r.get(field).map(Value::to_text).unwrap_or_default()).collect()
}

// ---- source ----

/// The context of a source read by rule `id`.
fn rule(id: &str) -> SourceContext {
    SourceContext { rule_id: id.into(), ..SourceContext::default() }
}

async fn incremental_pull_and_restart(url: &str) {
    let data = tempfile::tempdir().unwrap();
    let env = Environment::new(data.path());
    let def = stream(
        "orders",
        "",
        json!({"url": url, "interval": "10ms",
               "internalSqlQueryCfg": {"table": "work_order", "indexField": "updated_seq", "indexValue": 0, "limit": 2}}),
    );
    let (outlet, mut rx, stop) = channel(1);
    let task = tokio::spawn(SqlSource::new(&def, &rule("r"), &env).unwrap().pump(outlet));
    assert_eq!(ints(&next(&mut rx).await, "updated_seq"), [1, 2]);
    assert_eq!(ints(&next(&mut rx).await, "updated_seq"), [3]);
    execute(url, "INSERT INTO work_order VALUES (1004, 'M1', 'P-200', 10, 'planned', 4)").await.unwrap();
    assert_eq!(ints(&next(&mut rx).await, "order_id"), [1004]);
    stop.send(true).unwrap();
    task.await.unwrap();

    // A new run starts from the recorded index, not from indexValue 0.
    execute(url, "INSERT INTO work_order VALUES (1005, 'M2', 'P-100', 20, 'planned', 5)").await.unwrap();
    let source = SqlSource::new(&def, &rule("r"), &env).unwrap();
    assert_eq!(source.index_value(), Some(&Value::Int(4)));
    let (outlet, mut rx, stop) = channel(1);
    let task = tokio::spawn(source.pump(outlet));
    assert_eq!(ints(&next(&mut rx).await, "order_id"), [1005]);
    stop.send(true).unwrap();
    task.await.unwrap();
    assert!(data.path().join("sql/rules/r/orders.offset.json").exists());

    // Another query does not resume from this one's index.
    let other = stream(
        "orders",
        "",
        json!({"url": url, "internalSqlQueryCfg": {"table": "work_order", "indexField": "order_id", "indexValue": 1003}}),
    );
    assert_eq!(SqlSource::new(&other, &rule("r"), &env).unwrap().index_value(), Some(&Value::Int(1003)));
}

/// Runs `source` until it sent `batches` batches; their `order_id`s.
async fn pull_batches(source: SqlSource, batches: usize) -> Vec<i64> {
    let (outlet, mut rx, stop) = channel(1);
    let task = tokio::spawn(source.pump(outlet));
    let mut ids = Vec::new();
    for _ in 0..batches {
        ids.extend(ints(&next(&mut rx).await, "order_id"));
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    ids
}

/// Two rules reading one stream each keep their own index: one rule
/// having read further does not make the other skip rows when it starts.
/// A rule without an index of its own starts from the stream-wide file of
/// earlier versions.
#[tokio::test]
async fn two_rules_on_one_stream_resume_from_their_own_index() {
    let db = sqlite().await;
    let data = tempfile::tempdir().unwrap();
    let env = Environment::new(data.path());
    let def = stream(
        "orders",
        "",
        json!({"url": db.url, "interval": "10ms",
               "internalSqlQueryCfg": {"table": "work_order", "indexField": "updated_seq", "indexValue": 0}}),
    );
    assert_eq!(pull_batches(SqlSource::new(&def, &rule("a"), &env).unwrap(), 1).await, [1001, 1002, 1003]);
    execute(&db.url, "INSERT INTO work_order VALUES (1004, 'M1', 'P-200', 10, 'planned', 4)").await.unwrap();
    assert_eq!(pull_batches(SqlSource::new(&def, &rule("a"), &env).unwrap(), 1).await, [1004]);

    // Rule b never ran: it reads everything, whatever rule a recorded.
    let b = SqlSource::new(&def, &rule("b"), &env).unwrap();
    assert_eq!(b.index_value(), Some(&Value::Int(0)));
    assert_eq!(pull_batches(b, 1).await, [1001, 1002, 1003, 1004]);

    // Both continue from their own index.
    execute(&db.url, "INSERT INTO work_order VALUES (1005, 'M2', 'P-100', 20, 'planned', 5)").await.unwrap();
    assert_eq!(pull_batches(SqlSource::new(&def, &rule("b"), &env).unwrap(), 1).await, [1005]);
    let a = SqlSource::new(&def, &rule("a"), &env).unwrap();
    assert_eq!(a.index_value(), Some(&Value::Int(4)));
    assert_eq!(pull_batches(a, 1).await, [1005]);
    assert!(data.path().join("sql/rules/a/orders.offset.json").exists());
    assert!(data.path().join("sql/rules/b/orders.offset.json").exists());
    assert!(!data.path().join("sql/orders.offset.json").exists());

    // An index of the stream as a whole (earlier versions, or a source
    // outside a rule) is where a rule without its own starts.
    let outside = SqlSource::new(&def, &SourceContext::default(), &env).unwrap();
    assert_eq!(pull_batches(outside, 1).await, [1001, 1002, 1003, 1004, 1005]);
    assert!(data.path().join("sql/orders.offset.json").exists());
    let c = SqlSource::new(&def, &rule("c"), &env).unwrap();
    assert_eq!(c.index_value(), Some(&Value::Int(5)));
    assert_eq!(SqlSource::new(&def, &rule("b"), &env).unwrap().index_value(), Some(&Value::Int(5)));

    // A dropped rule's index goes with it; the others stay.
    crate::forget_rule("b", &env);
    assert!(!data.path().join("sql/rules/b").exists());
    assert!(data.path().join("sql/rules/a/orders.offset.json").exists());
}

#[tokio::test]
async fn sqlite_source_pulls_incrementally_and_resumes_after_restart() {
    let db = sqlite().await;
    incremental_pull_and_restart(&db.url).await;
}

#[tokio::test]
async fn postgres_source_pulls_incrementally_and_resumes_after_restart() {
    let Some(db) = postgres().await else { return };
    incremental_pull_and_restart(&db.url).await;
}

/// A scan table without an index field: every pull is one send, the
/// snapshot marker first, then the whole query result (more rows than
/// one stream batch holds, still one send), so the table can replace its
/// rows. As a stream, or with an index field, there is no marker.
async fn scan_table_pulls_are_snapshots(url: &str) {
    execute(url, "CREATE TABLE many (id INTEGER NOT NULL PRIMARY KEY, v INTEGER NOT NULL)").await.unwrap();
    let values: Vec<String> = (0..600).map(|i| format!("({i}, {i})")).collect();
    execute(url, &format!("INSERT INTO many VALUES {}", values.join(", "))).await.unwrap();
    let env = Environment::new(tempfile::tempdir().unwrap().path());
    let table = |props: serde_json::Value| StreamDef { kind: StreamKind::Table, ..stream("t", "many", props) };
    let data = |batch: &[Payload]| batch.iter().filter(|p| !p.is_snapshot_marker()).cloned().collect::<Vec<_>>();
    // (id, v) sorted: without ORDER BY, PostgreSQL returns an updated row last.
    let pairs = |batch: &[Payload]| {
        let d = data(batch);
        let mut p: Vec<(i64, i64)> = ints(&d, "id").into_iter().zip(ints(&d, "v")).collect();
        p.sort_unstable();
        p
    };

    let def = table(json!({"url": url, "interval": "10ms"}));
    let (outlet, mut rx, stop) = channel(1);
    let task = tokio::spawn(SqlSource::new(&def, &rule("r"), &env).unwrap().pump(outlet));
    let first = next(&mut rx).await;
    assert!(first[0].is_snapshot_marker());
    assert_eq!(pairs(&first), (0..600).map(|i| (i, i)).collect::<Vec<_>>());
    execute(url, "UPDATE many SET v = -1 WHERE id = 7; DELETE FROM many WHERE id >= 10").await.unwrap();
    // A pull may have started before the change: wait for one after it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let batch = next(&mut rx).await;
        assert!(batch[0].is_snapshot_marker());
        if batch.len() == 11 {
            let want: Vec<(i64, i64)> = (0..10).map(|i| (i, if i == 7 { -1 } else { i })).collect();
            assert_eq!(pairs(&batch), want);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the change never showed up");
    }
    execute(url, "DELETE FROM many").await.unwrap();
    loop {
        let batch = next(&mut rx).await;
        if batch.len() == 1 {
            assert!(batch[0].is_snapshot_marker(), "an empty pull is a lone marker");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the delete never showed up");
    }
    stop.send(true).unwrap();
    task.await.unwrap();

    execute(url, "INSERT INTO many VALUES (1, 1), (2, 2)").await.unwrap();
    let incremental = table(json!({"url": url, "internalSqlQueryCfg": {"table": "many", "indexField": "id"}}));
    let as_stream = stream("t", "many", json!({"url": url}));
    for def in [incremental, as_stream] {
        let (outlet, mut rx, stop) = channel(1);
        let task = tokio::spawn(SqlSource::new(&def, &rule("r"), &env).unwrap().pump(outlet));
        let batch = next(&mut rx).await;
        assert!(!batch.iter().any(Payload::is_snapshot_marker), "{def:?}");
        assert_eq!(ints(&batch, "id"), [1, 2]);
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}

#[tokio::test]
async fn sqlite_scan_table_pulls_are_snapshots() {
    let db = sqlite().await;
    scan_table_pulls_are_snapshots(&db.url).await;
}

#[tokio::test]
async fn postgres_scan_table_pulls_are_snapshots() {
    let Some(db) = postgres().await else { return };
    scan_table_pulls_are_snapshots(&db.url).await;
}

async fn template_and_datetime_index(url: &str) {
    let env = Environment::new(tempfile::tempdir().unwrap().path());
    let def = stream(
        "t",
        "",
        json!({"url": url, "templateSqlQueryCfg": {
            "TemplateSql": "SELECT * FROM work_order WHERE updated_seq > {{.updated_seq}} ORDER BY updated_seq",
            "indexField": "updated_seq", "indexValue": 1}}),
    );
    let s = SqlSource::new(&def, &SourceContext::default(), &env).unwrap();
    assert_eq!(ints(&rows_of(s.pull().await.unwrap()), "order_id"), [1002, 1003]);

    execute(
        url,
        "CREATE TABLE reading (ts TIMESTAMP NOT NULL, v INTEGER NOT NULL);
         INSERT INTO reading VALUES ('2024-03-01 08:00:00', 1), ('2024-03-01 09:30:00', 2), ('2024-03-02 00:00:00', 3);",
    )
    .await
    .unwrap();
    let def = stream(
        "r",
        "reading",
        json!({"url": url, "internalSqlQueryCfg": {"indexField": "ts", "indexValue": "2024-03-01 08:00:00",
               "indexFieldType": "DATETIME", "dateTimeFormat": "YYYY-MM-dd HH:mm:ss"}}),
    );
    let mut s = SqlSource::new(&def, &SourceContext::default(), &env).unwrap();
    let rows = s.pull().await.unwrap();
    assert_eq!(ints(&rows_of(rows.clone()), "v"), [2, 3]);
    assert!(s.advance(&rows));
    assert_eq!(s.pull().await.unwrap(), Vec::<Map>::new());
}

fn rows_of(rows: Vec<Map>) -> Vec<Payload> {
    rows.into_iter().map(|m| Payload { data: PayloadData::Object(m), ts: 0, meta: None }).collect()
}

#[tokio::test]
async fn sqlite_template_queries_and_datetime_indexes() {
    let db = sqlite().await;
    template_and_datetime_index(&db.url).await;
}

#[tokio::test]
async fn postgres_template_queries_and_datetime_indexes() {
    let Some(db) = postgres().await else { return };
    template_and_datetime_index(&db.url).await;
}

// ---- sink ----

async fn row_kinds(url: &str) {
    let env = Environment::new(tempfile::tempdir().unwrap().path());
    let ctx = SinkContext { rule_id: "r".into(), index: 0 };
    let props = json!({"url": url, "table": "quality_result", "rowkindField": "action", "keyField": "part_id"});
    let mut sink = crate::sink("sql", &props, &ctx, &env).unwrap();
    sink.emit(&[
        row(json!({"action": "insert", "part_id": "A1", "measured": 12.01, "verdict": "ok"})),
        row(json!({"part_id": "A2", "measured": 11.9, "verdict": "low"})),
        row(json!({"action": "insert", "part_id": "A3", "verdict": "ok"})),
    ])
    .await
    .unwrap();
    sink.emit(&[row(json!({"action": "update", "part_id": "A2", "verdict": "rework"}))]).await.unwrap();
    sink.emit(&[
        row(json!({"action": "upsert", "part_id": "A3", "verdict": "nok", "measured": 13.0})),
        row(json!({"action": "upsert", "part_id": "A4", "verdict": "ok", "measured": 12.0})),
    ])
    .await
    .unwrap();
    sink.emit(&[row(json!({"action": "delete", "part_id": "A1"}))]).await.unwrap();
    sink.close().await;
    let rows = query(url, "SELECT part_id, verdict, measured FROM quality_result ORDER BY part_id").await.unwrap();
    assert_eq!(text(&rows, "part_id"), ["A2", "A3", "A4"]);
    assert_eq!(text(&rows, "verdict"), ["rework", "nok", "ok"]);
    let measured: Vec<Option<f64>> = rows.iter().map(|r| r.get("measured").and_then(Value::as_f64)).collect();
    assert_eq!(measured, [Some(11.9), Some(13.0), Some(12.0)]);
}

#[tokio::test]
async fn sqlite_sink_row_kinds() {
    let db = sqlite().await;
    row_kinds(&db.url).await;
}

#[tokio::test]
async fn postgres_sink_row_kinds() {
    let Some(db) = postgres().await else { return };
    row_kinds(&db.url).await;
}

async fn injection_is_data(url: &str) {
    let evil = "'; DROP TABLE quality_result; --";
    let evil_key = "x'); DROP TABLE quality_result; --";
    let sink = SqlSink::new(&Props::new(&json!({"url": url, "table": "quality_result"}))).unwrap();
    sink.write(&[row(json!({"part_id": evil_key, "note": evil, "verdict": "ok"}))]).await.unwrap();
    let rows = query(url, "SELECT part_id, note FROM quality_result").await.unwrap();
    assert_eq!(text(&rows, "part_id"), [evil_key]);
    assert_eq!(text(&rows, "note"), [evil]);

    // Names are checked, not quoted: a key that is not a column name is refused.
    let err = sink
        .write(&[
            row(json!({"part_id": "B1", "note; DROP TABLE quality_result; --": 1})),
            row(json!({"part_id": "B2"})),
        ])
        .await
        .unwrap_err();
    assert!(err.0.contains("invalid column name"), "{err}");
    assert!(SqlSink::new(&Props::new(&json!({"url": url, "table": "quality_result; DROP TABLE x"}))).is_err());
    assert!(SqlSink::new(&Props::new(&json!({"url": url, "table": "t", "fields": ["a", "b c"]}))).is_err());

    let env = Environment::new(tempfile::tempdir().unwrap().path());
    let mut lookup = crate::lookup(&stream("spec", "product_spec", json!({"url": url})), &env).unwrap();
    let got = lookup.lookup(&["product_id".into()], &[vec![Value::str("' OR '1'='1")]]).await.unwrap();
    assert_eq!(got, [Vec::<Map>::new()]);
    assert!(lookup.lookup(&["product_id = product_id --".into()], &[vec![Value::Int(1)]]).await.is_err());

    let rows = query(url, "SELECT part_id FROM quality_result ORDER BY part_id").await.unwrap();
    assert_eq!(text(&rows, "part_id"), ["B2", evil_key]);
}

#[tokio::test]
async fn sqlite_values_that_look_like_sql_are_stored_as_data() {
    let db = sqlite().await;
    injection_is_data(&db.url).await;
}

#[tokio::test]
async fn postgres_values_that_look_like_sql_are_stored_as_data() {
    let Some(db) = postgres().await else { return };
    injection_is_data(&db.url).await;
}

async fn batches(url: &str) {
    let sink = SqlSink::new(&Props::new(
        &json!({"url": url, "table": "quality_result", "fields": ["part_id", "measured", "verdict"]}),
    ))
    .unwrap();
    let rows: Vec<Value> =
        (0..1200).map(|i| row(json!({"part_id": format!("P{i:04}"), "measured": i, "ignored": true}))).collect();
    sink.write(&rows).await.unwrap();
    let n = query(url, "SELECT COUNT(*) AS n, COUNT(verdict) AS v FROM quality_result").await.unwrap();
    assert_eq!(n[0].get("n").and_then(Value::as_i64), Some(1200));
    assert_eq!(n[0].get("v").and_then(Value::as_i64), Some(0), "a field missing from the row is NULL");

    // A duplicate key refuses the batch; the other rows still go in.
    let err = sink
        .write(&[row(json!({"part_id": "Q1"})), row(json!({"part_id": "P0001"})), row(json!({"part_id": "Q2"}))])
        .await
        .unwrap_err();
    assert_eq!(err.0.matches("(in INSERT").count(), 1, "{err}");
    let q = query(url, "SELECT part_id FROM quality_result WHERE part_id LIKE 'Q%' ORDER BY part_id").await.unwrap();
    assert_eq!(text(&q, "part_id"), ["Q1", "Q2"]);
}

#[tokio::test]
async fn sqlite_sink_batches_and_isolates_bad_rows() {
    let db = sqlite().await;
    batches(&db.url).await;
}

#[tokio::test]
async fn postgres_sink_batches_and_isolates_bad_rows() {
    let Some(db) = postgres().await else { return };
    batches(&db.url).await;
}

// ---- lookup ----

async fn lookup_keys(url: &str) {
    let env = Environment::new(tempfile::tempdir().unwrap().path());
    let mut lookup = crate::lookup(&stream("spec", "product_spec", json!({"url": url})), &env).unwrap();
    let s = Value::str;
    let cols = vec!["product_id".to_string(), "characteristic".to_string()];
    let keys = vec![
        vec![s("P-100"), s("diameter")],
        vec![s("P-200"), s("weight")],
        vec![s("P-999"), s("diameter")],
        vec![s("P-100"), Value::Null],
        vec![s("P-100"), s("diameter")],
    ];
    let got = lookup.lookup(&cols, &keys).await.unwrap();
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 0, 0, 1]);
    let f = |m: &Map, k: &str| m.get(k).and_then(Value::as_f64);
    assert_eq!(f(&got[0][0], "nominal"), Some(12.0));
    assert_eq!(f(&got[1][0], "lower_limit"), Some(40.5));
    assert_eq!(f(&got[1][0], "upper_limit"), Some(42.0));
    assert_eq!(got[4], got[0]);

    let got =
        lookup.lookup(&["product_id".into()], &[vec![s("P-200")], vec![s("P-100")], vec![s("none")]]).await.unwrap();
    let mut chars = text(&got[0], "characteristic");
    chars.sort();
    assert_eq!(chars, ["diameter", "weight"]);
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 0]);
    // An integer key finds an integer column from text and numbers alike.
    let mut orders = SqlLookup::new(&stream("wo", "work_order", json!({"url": url})), &env).unwrap();
    let got = crate::Lookup::lookup(&mut orders, &["order_id".into()], &[vec![Value::Int(1002)], vec![s("1003")]])
        .await
        .unwrap();
    assert_eq!(text(&got[0], "machine_id"), ["M2"]);
    assert_eq!(text(&got[1], "machine_id"), ["M3"]);
}

#[tokio::test]
async fn sqlite_lookup_of_several_keys() {
    let db = sqlite().await;
    lookup_keys(&db.url).await;
}

#[tokio::test]
async fn postgres_lookup_of_several_keys() {
    let Some(db) = postgres().await else { return };
    lookup_keys(&db.url).await;
}

// ---- failures ----

#[tokio::test]
async fn postgres_going_down_and_coming_back() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("mes").await;
    mes::install(&url).await.unwrap();
    let env = Environment::new(tempfile::tempdir().unwrap().path());
    let conn = json!({"url": url, "connectTimeout": "1s", "retryCount": 2, "retryInterval": "20ms"});
    let mut props = conn.clone();
    props["table"] = json!("quality_result");
    let sink = SqlSink::new(&Props::new(&props)).unwrap();
    let ctx = SinkContext { rule_id: "r".into(), index: 0 };
    let mut rule_sink = crate::sink("sql", &props, &ctx, &env).unwrap();
    let mut lookup = crate::lookup(&stream("spec", "product_spec", conn.clone()), &env).unwrap();
    let mut source_conn = conn.clone();
    source_conn["interval"] = json!("20ms");
    source_conn["internalSqlQueryCfg"] = json!({"table": "work_order", "indexField": "updated_seq", "indexValue": 3});
    let (outlet, mut rx, stop) = channel(1);
    let task = tokio::spawn(SqlSource::new(&stream("wo", "", source_conn), &rule("r"), &env).unwrap().pump(outlet));
    let key = [vec![Value::str("P-100")]];
    let cols = ["product_id".to_string()];

    sink.write(&[row(json!({"part_id": "before"}))]).await.unwrap();
    assert_eq!(lookup.lookup(&cols, &key).await.unwrap()[0].len(), 2);

    pg.stop();
    let err = sink.write(&[row(json!({"part_id": "down"}))]).await.unwrap_err();
    assert!(err.0.contains("not written"), "{err}");
    assert!(lookup.lookup(&cols, &key).await.is_err());
    // Through the rule's sink: the failure comes back from a later emit,
    // where the rule counts it.
    rule_sink.emit(&[row(json!({"part_id": "down2"}))]).await.unwrap();
    let counted = async {
        loop {
            if rule_sink.emit(&[]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), counted).await.expect("the failure is reported");

    pg.restart();
    sink.write(&[row(json!({"part_id": "after"}))]).await.unwrap();
    rule_sink.emit(&[row(json!({"part_id": "after2"}))]).await.unwrap();
    rule_sink.close().await;
    assert_eq!(lookup.lookup(&cols, &key).await.unwrap()[0].len(), 2);
    execute(&url, "INSERT INTO work_order VALUES (1004, 'M1', 'P-200', 10, 'planned', 4)").await.unwrap();
    assert_eq!(ints(&next(&mut rx).await, "order_id"), [1004]);
    stop.send(true).unwrap();
    task.await.unwrap();

    let rows = query(&url, "SELECT part_id FROM quality_result ORDER BY part_id").await.unwrap();
    assert_eq!(text(&rows, "part_id"), ["after", "after2", "before"]);
}

/// A pooled connection that died unnoticed (the server restarted while
/// nothing polled the connection) costs no failed lookup: the query goes
/// to a new connection.
#[tokio::test]
async fn postgres_dead_pooled_connections_are_replaced() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("mes").await;
    mes::install(&url).await.unwrap();
    let env = Environment::new(tempfile::tempdir().unwrap().path());
    let mut lookup = crate::lookup(&stream("spec", "product_spec", json!({"url": url})), &env).unwrap();
    let key = [vec![Value::str("P-100")]];
    let cols = ["product_id".to_string()];
    assert_eq!(lookup.lookup(&cols, &key).await.unwrap()[0].len(), 2);
    // Blocking calls on the test's only thread: the pooled connection's
    // task does not run in between, so the pool cannot know it is dead.
    pg.stop();
    pg.restart();
    assert_eq!(lookup.lookup(&cols, &key).await.unwrap()[0].len(), 2);
}

#[test]
fn bad_configurations() {
    let p = |v: serde_json::Value| Props::new(&v);
    assert!(SqlSink::new(&p(json!({"table": "t"}))).is_err(), "no url");
    assert!(SqlSink::new(&p(json!({"url": "mysql://u@h/db", "table": "t"}))).is_err(), "mysql");
    assert!(SqlSink::new(&p(json!({"url": "sqlite:/tmp/x.db"}))).is_err(), "no table");
    assert!(SqlSink::new(&p(json!({"url": "sqlite:/tmp/x.db", "table": "t", "rowkindField": "a"}))).is_err());
    assert!(SqlSource::from_props(&p(json!({"url": "sqlite:/tmp/x.db"})), "").is_err(), "no query");
    assert!(SqlSource::from_props(
        &p(json!({"url": "sqlite:/tmp/x.db", "internalSqlQueryCfg": {"table": "t", "indexField": "a-b"}})),
        ""
    )
    .is_err());
    assert!(SqlSource::from_props(
        &p(json!({"url": "sqlite:/tmp/x.db", "templateSqlQueryCfg": {"TemplateSql": "select {{.a}}", "indexField": "a"}})),
        ""
    )
    .is_err(), "a template placeholder needs an indexValue");
    assert!(SqlSource::from_props(&p(json!({"dburl": "sqlite:///tmp/x.db"})), "t").is_ok());
}
