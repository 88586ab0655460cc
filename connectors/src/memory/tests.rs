use std::time::Duration;

use weir_runtime::row::PayloadData;
use weir_runtime::{Map, Value};

use super::sink::MemorySink;
use super::source::MemorySource;
use super::Change;
use crate::outlet::testing::channel;
use crate::props::Props;
use crate::Environment;

const LIMIT: Duration = Duration::from_secs(10);

fn def(topic: &str) -> weir_planner::StreamDef {
    weir_planner::StreamDef {
        name: "m".into(),
        kind: weir_planner::StreamKind::Stream,
        fields: None,
        options: weir_planner::StreamOptions {
            datasource: Some(topic.into()),
            source_type: Some("memory".into()),
            ..Default::default()
        },
        sql: String::new(),
    }
}

fn row(dev: &str, v: i64) -> Value {
    let mut m = Map::new();
    m.insert("dev".into(), Value::str(dev));
    m.insert("v".into(), Value::Int(v));
    Value::map(m)
}

async fn got(rx: &mut tokio::sync::mpsc::Receiver<Vec<weir_runtime::row::Payload>>, n: usize) -> Vec<(String, i64)> {
    let mut rows = Vec::new();
    while rows.len() < n {
        for p in tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap() {
            let PayloadData::Object(m) = p.data else { panic!("memory payloads are objects") };
            let topic = p.meta.unwrap().get("topic").unwrap().to_text();
            rows.push((topic, m.get("v").unwrap().as_i64().unwrap()));
        }
    }
    rows
}

#[tokio::test]
async fn wildcard_routing_from_sink_to_sources() {
    let env = Environment::new(std::env::temp_dir());
    let mut outs = Vec::new();
    for filter in ["plant/+/temp", "plant/#", "other"] {
        let (outlet, rx, stop) = channel(16);
        tokio::spawn(MemorySource::new(&def(filter), &env).unwrap().pump(outlet));
        outs.push((rx, stop));
    }
    // Let the three sources subscribe.
    tokio::time::timeout(LIMIT, async {
        while env.memory().subscriptions() != 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();

    let ctx = crate::SinkContext { rule_id: "r".into(), index: 0 };
    let mut sink = crate::sink("memory", &serde_json::json!({"topic": "plant/{{.dev}}/temp"}), &ctx, &env).unwrap();
    sink.emit(&[row("f1", 1), row("f2", 2)]).await.unwrap();
    let mut plain = crate::sink("memory", &serde_json::json!({"topic": "plant/status"}), &ctx, &env).unwrap();
    plain.emit(&[row("f3", 3)]).await.unwrap();
    sink.close().await;
    plain.close().await;

    assert_eq!(got(&mut outs[0].0, 2).await, [("plant/f1/temp".to_string(), 1), ("plant/f2/temp".to_string(), 2)]);
    assert_eq!(got(&mut outs[1].0, 3).await.iter().map(|r| r.1).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(outs[2].0.try_recv().is_err());

    for (_, stop) in &outs {
        stop.send(true).unwrap();
    }
    tokio::time::timeout(LIMIT, async {
        while env.memory().subscriptions() != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_full_subscriber_holds_the_publisher_back() {
    let env = Environment::new(std::env::temp_dir());
    let mut sub = env.memory().subscribe(vec!["t".into()], 1);
    assert_eq!(env.memory().publish("t", Map::new(), Change::Put).await, 1);
    let bus = env.memory().clone();
    let blocked = tokio::spawn(async move { bus.publish("t", Map::new(), Change::Put).await });
    tokio::task::yield_now().await;
    assert!(!blocked.is_finished(), "the second row waits for room");
    sub.recv().await.unwrap();
    assert_eq!(tokio::time::timeout(LIMIT, blocked).await.unwrap().unwrap(), 1);
}

#[test]
fn config_errors() {
    let env = Environment::new(std::env::temp_dir());
    assert!(MemorySource::new(&def(""), &env).is_err());
    assert!(MemorySource::new(&def("a/#/b"), &env).is_err());
    assert!(MemorySink::new(&Props::new(&serde_json::json!({"topic": "a/+"})), &env).is_err());
    assert!(MemorySink::new(&Props::new(&serde_json::json!({})), &env).is_err());
    assert!(MemorySink::new(&Props::new(&serde_json::json!({"topic": "a/{{.x"})), &env).is_err());
}

#[tokio::test]
async fn sink_applies_fields_and_data_template_to_rows() {
    let env = Environment::new(std::env::temp_dir());
    let (outlet, mut rx, stop) = channel(16);
    tokio::spawn(MemorySource::new(&def("chain/#"), &env).unwrap().pump(outlet));
    tokio::time::timeout(LIMIT, async {
        while env.memory().subscriptions() != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let ctx = crate::SinkContext { rule_id: "r".into(), index: 0 };
    let props = serde_json::json!({"topic": "chain/{{.dev}}", "sendSingle": true,
        "dataTemplate": r#"{"dev":"{{.dev}}","v":{{.v}}0}"#});
    let mut sink = crate::sink("memory", &props, &ctx, &env).unwrap();
    sink.emit(&[row("a", 1), row("b", 2)]).await.unwrap();
    sink.close().await;
    assert_eq!(got(&mut rx, 2).await, [("chain/a".to_string(), 10), ("chain/b".to_string(), 20)]);
    stop.send(true).unwrap();
}

fn table(topic: &str, key: Option<&str>) -> weir_planner::StreamDef {
    let mut d = def(topic);
    d.kind = weir_planner::StreamKind::Table;
    d.options.kind = Some("lookup".into());
    d.options.key = key.map(str::to_string);
    d
}

fn order(dev: &str, order: i64, action: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("dev".into(), Value::str(dev));
    m.insert("order".into(), Value::Int(order));
    if let Some(a) = action {
        m.insert("action".into(), Value::str(a));
    }
    Value::map(m)
}

/// The `order` of the rows found for each key of `column`.
async fn orders(lookup: &mut Box<dyn weir_runtime::connector::Lookup>, column: &str, keys: &[Value]) -> Vec<Vec<i64>> {
    let keys: Vec<Vec<Value>> = keys.iter().map(|k| vec![k.clone()]).collect();
    let found = lookup.lookup(&[column.to_string()], &keys).await.unwrap();
    found
        .iter()
        .map(|rows| {
            let mut o: Vec<i64> = rows.iter().map(|r| r.get("order").and_then(Value::as_i64).unwrap()).collect();
            o.sort_unstable();
            o
        })
        .collect()
}

/// A memory sink with `rowkindField`/`keyField` maintains a memory lookup
/// table: inserts, updates, upserts (no row kind) and deletes by key.
#[tokio::test]
async fn an_updatable_sink_maintains_a_lookup_table() {
    let env = Environment::new(std::env::temp_dir());
    let mut lookup = crate::lookup(&table("mes/orders", Some("dev")), &env).unwrap();
    let ctx = crate::SinkContext { rule_id: "r".into(), index: 0 };
    let props = serde_json::json!({"topic": "mes/orders", "rowkindField": "action", "keyField": "dev"});
    let mut sink = crate::sink("memory", &props, &ctx, &env).unwrap();
    let (m1, m2, m3) = (Value::str("M1"), Value::str("M2"), Value::str("M3"));

    sink.emit(&[order("M1", 1001, Some("insert")), order("M2", 1002, Some("insert"))]).await.unwrap();
    sink.emit(&[order("M3", 1003, None)]).await.unwrap();
    sink.close().await;
    assert_eq!(orders(&mut lookup, "dev", &[m1.clone(), m2.clone(), m3.clone()]).await, [[1001], [1002], [1003]]);

    let mut sink = crate::sink("memory", &props, &ctx, &env).unwrap();
    let mut delete = Map::new();
    delete.insert("dev".into(), Value::str("M2"));
    delete.insert("action".into(), Value::str("delete"));
    sink.emit(&[order("M1", 1004, Some("update")), Value::map(delete), order("M3", 1005, Some("upsert"))])
        .await
        .unwrap();
    sink.close().await;
    assert_eq!(
        orders(&mut lookup, "dev", &[m1.clone(), m2.clone(), m3.clone(), Value::Null]).await,
        [vec![1004], vec![], vec![1005], vec![]]
    );
    // Other columns are scanned; numbers match across spellings.
    assert_eq!(orders(&mut lookup, "order", &[Value::str("1005"), Value::Float(1004.0)]).await, [[1005], [1004]]);

    // A bad row kind or a missing key refuses that row only.
    let mut sink = crate::sink("memory", &props, &ctx, &env).unwrap();
    let mut no_key = Map::new();
    no_key.insert("order".into(), Value::Int(9));
    sink.emit(&[order("M1", 1006, Some("replace")), Value::map(no_key), order("M2", 1007, None)]).await.unwrap();
    sink.close().await;
    assert_eq!(orders(&mut lookup, "dev", &[m1, m2]).await, [[1004], [1007]]);
}

/// A table lives while rules use it: shared by the lookups of one topic
/// and key, dropped with its rows after the last one.
#[tokio::test]
async fn a_lookup_table_lives_while_rules_use_it() {
    let env = Environment::new(std::env::temp_dir());
    let mut a = crate::lookup(&table("plant/+/orders", Some("dev")), &env).unwrap();
    let mut b = crate::lookup(&table("plant/+/orders", Some("dev")), &env).unwrap();
    let other_key = crate::lookup(&table("plant/+/orders", Some("order")), &env).unwrap();
    assert_eq!(env.memory().tables().live(), 2);
    let ctx = crate::SinkContext { rule_id: "r".into(), index: 0 };
    let mut sink = crate::sink("memory", &serde_json::json!({"topic": "plant/{{.dev}}/orders"}), &ctx, &env).unwrap();
    sink.emit(&[order("M1", 1001, None)]).await.unwrap();
    sink.close().await;
    assert_eq!(orders(&mut a, "dev", &[Value::str("M1")]).await, [[1001]]);
    assert_eq!(orders(&mut b, "dev", &[Value::str("M1")]).await, [[1001]]);

    drop(a);
    assert_eq!(orders(&mut b, "dev", &[Value::str("M1")]).await, [[1001]], "b still holds the table");
    drop(b);
    drop(other_key);
    assert_eq!(env.memory().tables().live(), 0);
    let mut c = crate::lookup(&table("plant/+/orders", Some("dev")), &env).unwrap();
    assert_eq!(orders(&mut c, "dev", &[Value::str("M1")]).await, [Vec::<i64>::new()]);
}

#[test]
fn lookup_table_config_errors() {
    let env = Environment::new(std::env::temp_dir());
    assert!(crate::lookup(&table("t", None), &env).is_err(), "KEY is required");
    assert!(crate::lookup(&table("", Some("id")), &env).is_err(), "DATASOURCE is required");
    assert!(crate::lookup(&table("a,b", Some("id")), &env).is_err(), "one topic");
    let p = serde_json::json!({"topic": "t", "rowkindField": "action"});
    assert!(MemorySink::new(&Props::new(&p), &env).is_err(), "rowkindField needs keyField");
}
