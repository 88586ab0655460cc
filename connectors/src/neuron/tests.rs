use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use weir_runtime::row::PayloadData;
use weir_runtime::{Map, Value};

use super::sink::NeuronSink;
use super::{flatten, Request, Uuids, WriteBuilder};
use crate::mqtt::tests::{free_port, start_rumqttd, Publisher, LIMIT};
use crate::outlet::testing::channel;
use crate::props::Props;
use crate::{Environment, SinkContext};

fn row(pairs: &[(&str, Value)]) -> Value {
    Value::map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Map>())
}

fn map_of(v: serde_json::Value) -> Value {
    Value::from_json(v, false)
}

#[test]
fn flattens_values_tags_and_nng_uploads() {
    let values = br#"{"timestamp":1646125996000,"node":"modbus","group":"grp","values":{"tag0":123,"s":"x"},
        "errors":{"tag1":2014},"metas":{}}"#;
    let f = flatten(values).unwrap();
    assert_eq!((f.node.as_str(), f.group.as_str()), ("modbus", "grp"));
    assert_eq!(f.row.get("node_name"), Some(&Value::str("modbus")));
    assert_eq!(f.row.get("group_name"), Some(&Value::str("grp")));
    assert_eq!(f.row.get("timestamp"), Some(&Value::Int(1646125996000)));
    assert_eq!(f.row.get("values"), Some(&map_of(json!({"tag0": 123.0, "s": "x"}))));
    assert_eq!(f.row.get("errors"), Some(&row(&[("tag1", Value::Int(2014))])));
    assert_eq!(f.errors.get("tag1"), Some(&Value::Int(2014)));

    let nng = br#"{"node_name":"modbus1","group_name":"grp1","timestamp":1,"values":{"t":11.22},"errors":{}}"#;
    let f = flatten(nng).unwrap();
    assert_eq!((f.node.as_str(), f.group.as_str()), ("modbus1", "grp1"));
    assert_eq!(f.row.get("values"), Some(&map_of(json!({"t": 11.22}))));

    let tags = br#"{"timestamp":2,"node":"n","group":"g","tags":[{"name":"a","value":1},{"name":"b","error":2014},
        {"name":"c","value":true,"type":1}]}"#;
    let f = flatten(tags).unwrap();
    assert_eq!(f.row.get("values"), Some(&map_of(json!({"a": 1.0, "c": true}))));
    assert_eq!(f.row.get("errors"), Some(&row(&[("b", Value::Int(2014))])));

    let mut traced = vec![0x0A, 0xCE];
    traced.extend([7u8; 24]);
    traced.extend_from_slice(nng);
    assert_eq!(flatten(&traced).unwrap().node, "modbus1");

    assert!(flatten(br#"{"uuid":"1","node":"n","group":"g","tag":"t","value":1}"#).is_none());
    assert!(flatten(br#"{"uuid":"1","error":0}"#).is_none());
    assert!(flatten(b"not json").is_none());
}

#[test]
fn builds_single_multi_and_raw_write_requests() {
    let b = WriteBuilder::new(&Props::new(&json!({"nodeName": "modbus", "groupName": "{{.g}}"}))).unwrap();
    let one = row(&[("g", Value::str("grp"))]);
    // `g` itself is a field: with no `tags` every field is a tag.
    assert_eq!(
        b.build(&one).unwrap(),
        Some(Request::Single { node: "modbus".into(), group: "grp".into(), tag: "g".into(), value: json!("grp") })
    );

    let b = WriteBuilder::new(&Props::new(
        &json!({"nodeName": "modbus", "groupName": "grp", "tags": ["sp", "mode", "nope"]}),
    ))
    .unwrap();
    let r = row(&[("sp", Value::Float(25.5)), ("mode", Value::Int(2)), ("other", Value::Int(9))]);
    let req = b.build(&r).unwrap().unwrap();
    assert_eq!(
        req.mqtt_body("u-1"),
        json!({"uuid": "u-1", "node": "modbus", "group": "grp", "tags": [{"tag": "sp", "value": 25.5}, {"tag": "mode", "value": 2}]})
    );
    assert_eq!(
        req.rest(),
        (
            "/api/v2/write/tags",
            json!({"node": "modbus", "group": "grp", "tags": [{"tag": "sp", "value": 25.5}, {"tag": "mode", "value": 2}]})
        )
    );
    assert_eq!(b.build(&row(&[("other", Value::Int(1))])).unwrap(), None, "no selected tag: no request");

    let b = WriteBuilder::new(&Props::new(&json!({"nodeName": "n", "groupName": "g", "tags": "sp"}))).unwrap();
    let single = b.build(&r).unwrap().unwrap();
    assert_eq!(single.mqtt_body("u"), json!({"uuid": "u", "node": "n", "group": "g", "tag": "sp", "value": 25.5}));
    assert_eq!(single.rest(), ("/api/v2/write", json!({"node": "n", "group": "g", "tag": "sp", "value": 25.5})));

    let raw = WriteBuilder::new(&Props::new(&json!({"raw": true}))).unwrap();
    assert_eq!(raw.build(&r).unwrap().unwrap().mqtt_body("ignored"), json!({"sp": 25.5, "mode": 2, "other": 9}));
    assert!(WriteBuilder::new(&Props::new(&json!({"nodeName": "n"}))).is_err(), "groupName required");
}

#[test]
fn uuids_are_deterministic_per_action() {
    let p = Props::new(&json!({}));
    let (mut a, mut b) = (Uuids::new(&p, "r1", 0).unwrap(), Uuids::new(&p, "r1", 0).unwrap());
    let first = a.next_id();
    assert_eq!(first, b.next_id());
    assert_ne!(first, a.next_id());
    assert_ne!(first, Uuids::new(&p, "r1", 1).unwrap().next_id());
    assert_eq!(first.len(), 36);
    let r = Uuids::new(&Props::new(&json!({"uuid": "random"})), "r", 0).unwrap().next_id();
    assert_eq!(&r[14..15], "4");
    assert!(Uuids::new(&Props::new(&json!({"uuid": "x"})), "r", 0).is_err());
}

fn ctx() -> SinkContext {
    SinkContext { rule_id: "control".into(), index: 0 }
}

#[test]
fn nng_urls_are_rejected_with_a_reason() {
    let env = Environment::new(std::env::temp_dir());
    let p = Props::new(&json!({"url": "tcp://127.0.0.1:7081", "nodeName": "n", "groupName": "g"}));
    let err = NeuronSink::new(&p, &ctx(), &env).err().unwrap().to_string();
    assert!(err.contains("NNG"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_flattens_uploads_from_the_mqtt_app() {
    let port = free_port();
    start_rumqttd(port, None);
    let env = Environment::new(std::env::temp_dir());
    env.set_source_conf("neuron", json!({"default": {"server": format!("tcp://127.0.0.1:{port}")}})).unwrap();
    let def = weir_planner::StreamDef {
        name: "neuronStream".into(),
        kind: weir_planner::StreamKind::Stream,
        fields: None,
        options: weir_planner::StreamOptions { source_type: Some("neuron".into()), ..Default::default() },
        sql: String::new(),
    };
    let (outlet, mut rx, _stop) = channel(8);
    tokio::spawn(super::source::new(&def, &env).unwrap().pump(outlet));
    let publisher = Publisher::new(port, "neuron-app");
    // Probes are not uploads: the source skips them, so probe with one.
    let upload = r#"{"timestamp":5,"node":"modbus","group":"grp","values":{"t":1},"errors":{"e":2014},"metas":{}}"#;
    let got = tokio::time::timeout(LIMIT, async {
        loop {
            publisher.publish("/neuron/app/modbus/grp", rumqttc::QoS::AtLeastOnce, upload).await;
            if let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
                return b;
            }
        }
    })
    .await
    .unwrap();
    let p = &got[0];
    let PayloadData::Object(m) = &p.data else { panic!("neuron rows are objects") };
    assert_eq!(m.get("node_name"), Some(&Value::str("modbus")));
    assert_eq!(m.get("values"), Some(&map_of(json!({"t": 1.0}))));
    let meta = p.meta.as_ref().unwrap();
    assert_eq!(meta.get("topic"), Some(&Value::str("/neuron/app/modbus/grp")));
    assert_eq!(meta.get("node"), Some(&Value::str("modbus")));
    assert_eq!(meta.get("group"), Some(&Value::str("grp")));
    assert_eq!(meta.get("errors"), Some(&row(&[("e", Value::Int(2014))])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_writes_exact_requests_to_the_mqtt_write_topic() {
    let port = free_port();
    start_rumqttd(port, None);
    let mut o = rumqttc::MqttOptions::new("neuron-mqtt-app", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (sub, mut el) = rumqttc::AsyncClient::new(o, 100);
    sub.subscribe("/neuron/app/write/req", rumqttc::QoS::AtLeastOnce).await.unwrap();
    let (tx, mut received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let _ = tx.send(serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap());
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = tx.send(json!("suback"));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    assert_eq!(tokio::time::timeout(LIMIT, received.recv()).await.unwrap().unwrap(), json!("suback"));

    let env = Environment::new(std::env::temp_dir());
    let props_json = json!({"server": format!("tcp://127.0.0.1:{port}"), "topic": "/neuron/app/write/req",
        "qos": 1, "nodeName": "modbus", "groupName": "{{.g}}", "tags": ["sp", "mode"]});
    let props = Props::new(&props_json);
    let mut sink = crate::sink("neuron", &props_json, &ctx(), &env).unwrap();
    let rows = [
        row(&[("g", Value::str("grp1")), ("sp", Value::Float(25.5))]),
        row(&[("g", Value::str("grp2")), ("sp", Value::Int(1)), ("mode", Value::str("auto"))]),
        row(&[("g", Value::str("grp3"))]),
    ];
    tokio::time::timeout(LIMIT, sink.emit(&rows)).await.unwrap().unwrap();
    let mut ids = Uuids::new(&props, "control", 0).unwrap();
    let a = tokio::time::timeout(LIMIT, received.recv()).await.unwrap().unwrap();
    let b = tokio::time::timeout(LIMIT, received.recv()).await.unwrap().unwrap();
    assert_eq!(a, json!({"uuid": ids.next_id(), "node": "modbus", "group": "grp1", "tag": "sp", "value": 25.5}));
    assert_eq!(
        b,
        json!({"uuid": ids.next_id(), "node": "modbus", "group": "grp2",
            "tags": [{"tag": "sp", "value": 1}, {"tag": "mode", "value": "auto"}]})
    );
    sink.close().await;
}

/// A one-route HTTP/1.1 server standing in for Neuron's API: records
/// (method, path, authorization, body) and answers `{"error":0}`.
async fn fake_neuron_http() -> (u16, mpsc::UnboundedReceiver<(String, String, String, serde_json::Value)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let head = &text[..head_end];
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)))
                            .map(|(_, v)| v.trim().to_string())
                            .unwrap_or_default()
                    };
                    let len: usize = header("content-length").parse().unwrap_or(0);
                    if buf.len() < head_end + 4 + len {
                        continue;
                    }
                    let body = serde_json::from_slice(&buf[head_end + 4..head_end + 4 + len]).unwrap();
                    let mut first = head.lines().next().unwrap().split(' ');
                    let (method, path) = (first.next().unwrap().to_string(), first.next().unwrap().to_string());
                    let _ = tx.send((method, path, header("authorization"), body));
                    let reply = "{\"error\":0}";
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    buf.clear();
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn sink_posts_exact_requests_to_the_http_api() {
    let (port, mut rx) = fake_neuron_http().await;
    let env = Environment::new(std::env::temp_dir());
    let props = json!({"url": format!("http://127.0.0.1:{port}"), "token": "tk",
        "nodeName": "modbus", "groupName": "grp", "tags": ["sp", "mode"]});
    let mut sink = crate::sink("neuron", &props, &ctx(), &env).unwrap();
    let rows = [row(&[("sp", Value::Float(25.5))]), row(&[("sp", Value::Int(1)), ("mode", Value::Int(3))])];
    tokio::time::timeout(LIMIT, sink.emit(&rows)).await.unwrap().unwrap();
    let a = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
    let b = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(
        a,
        (
            "POST".into(),
            "/api/v2/write".into(),
            "Bearer tk".into(),
            json!({"node": "modbus", "group": "grp", "tag": "sp", "value": 25.5})
        )
    );
    assert_eq!(
        b,
        (
            "POST".into(),
            "/api/v2/write/tags".into(),
            "Bearer tk".into(),
            json!({"node": "modbus", "group": "grp", "tags": [{"tag": "sp", "value": 1}, {"tag": "mode", "value": 3}]})
        )
    );
}
