use std::time::Duration;

use weir_runtime::row::PayloadData;
use weir_runtime::{Map, Value};

use super::sink::MemorySink;
use super::source::MemorySource;
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
    assert_eq!(env.memory().publish("t", Map::new()).await, 1);
    let bus = env.memory().clone();
    let blocked = tokio::spawn(async move { bus.publish("t", Map::new()).await });
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
