//! Sink layer cases, after eKuiper's `transform_op_test.go`.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::Value;

use super::{Outgoing, SinkConnector, SinkOptions, Transform, TransformSink};
use crate::props::Props;

fn v(json: &str) -> Value {
    Value::from_json(serde_json::from_str(json).unwrap(), false)
}

fn rows(json: &str) -> Vec<Value> {
    v(json).as_array().unwrap().to_vec()
}

fn transform(props: serde_json::Value) -> Transform {
    Transform::new(SinkOptions::from_props(&Props::new(&props)).unwrap())
}

/// Message texts (or `ERR: ...`) of one emission.
fn out(t: &mut Transform, emission: &str) -> Vec<String> {
    t.apply(&rows(emission))
        .into_iter()
        .map(|m| match m {
            Ok(m) => String::from_utf8(m.bytes).unwrap(),
            Err(e) => format!("ERR: {e}"),
        })
        .collect()
}

#[test]
fn default_is_one_json_array_per_emission() {
    let mut t = transform(serde_json::json!({}));
    assert_eq!(out(&mut t, r#"[{"a":1,"b":2}]"#), vec![r#"[{"a":1,"b":2}]"#]);
    assert_eq!(out(&mut t, "[]"), vec!["[]"]);
    let mut t = transform(serde_json::json!({"sendSingle": true}));
    assert_eq!(out(&mut t, r#"[{"a":1},{"a":2.5}]"#), vec![r#"{"a":1}"#, r#"{"a":2.5}"#]);
}

#[test]
fn omit_if_empty() {
    let mut t = transform(serde_json::json!({"omitIfEmpty": true}));
    assert!(out(&mut t, "[]").is_empty());
    let mut t = transform(serde_json::json!({"omitIfEmpty": true, "sendSingle": true}));
    assert_eq!(out(&mut t, r#"[{},{"a":1}]"#), vec![r#"{"a":1}"#]);
}

#[test]
fn fields_and_data_field() {
    // "only fields without omit empty": missing fields become null.
    let mut t = transform(serde_json::json!({"fields": ["a", "b"], "sendSingle": true}));
    assert_eq!(
        out(&mut t, r#"[{"a":3,"b":4,"sourceConf":"hello"},{"data":{"a":5}}]"#),
        vec![r#"{"a":3,"b":4}"#, r#"{"a":null,"b":null}"#]
    );
    // "field transform": dataField first, then fields.
    let mut t = transform(serde_json::json!({"fields": ["a", "b"], "dataField": "data", "sendSingle": true}));
    let got = out(&mut t, r#"[{"data":{"a":5,"b":6,"sourceConf":"world"}},{"a":1,"b":2}]"#);
    assert_eq!(got[0], r#"{"a":5,"b":6}"#);
    assert!(got[1].starts_with("ERR: unsupported type"), "{}", got[1]);
    // "only data field" over an emission: the first row's field.
    let mut t = transform(serde_json::json!({"dataField": "data"}));
    assert_eq!(out(&mut t, r#"[{"data":{"a":5}},{"a":3}]"#), vec![r#"{"a":5}"#]);
    let mut t = transform(serde_json::json!({"excludeFields": "b,c"}));
    assert_eq!(out(&mut t, r#"[{"a":1,"b":2,"c":3}]"#), vec![r#"[{"a":1}]"#]);
    assert!(
        SinkOptions::from_props(&Props::new(&serde_json::json!({"fields": ["a"], "excludeFields": ["b"]}))).is_err()
    );
}

#[test]
fn data_template_output_is_sent_as_is() {
    let mut t = transform(serde_json::json!({"dataTemplate": r#"{"ab":{{.a}},"bb":{{.b}}}"#, "sendSingle": true}));
    assert_eq!(
        out(&mut t, r#"[{"a":1,"b":2},{"data":1}]"#),
        vec![r#"{"ab":1,"bb":2}"#, r#"{"ab":<no value>,"bb":<no value>}"#]
    );
    let mut t = transform(serde_json::json!({"dataTemplate": r#"{"ab":{{index . 0 "a"}}}"#}));
    assert_eq!(out(&mut t, r#"[{"a":1,"b":2},{"a":3}]"#), vec![r#"{"ab":1}"#]);
    assert!(out(&mut t, "[]")[0].starts_with("ERR: fail to encode data [] with dataTemplate"));
}

#[test]
fn data_template_then_fields() {
    // "data template collection": the template output is decoded, then selected.
    let mut t = transform(
        serde_json::json!({"dataTemplate": r#"{"ab":{{.a}},"bb":{{.b}}}"#, "fields": ["ab"], "sendSingle": true}),
    );
    let got = out(&mut t, r#"[{"a":1,"b":2},{"data":{"a":5}}]"#);
    assert_eq!(got[0], r#"{"ab":1}"#);
    assert!(got[1].starts_with(r#"ERR: fail to decode data {"ab":<no value>,"bb":<no value>}"#), "{}", got[1]);
}

#[test]
fn delimited_and_binary_formats() {
    let mut t =
        transform(serde_json::json!({"format": "delimited", "delimiter": ";", "hasHeader": true, "sendSingle": true}));
    assert_eq!(out(&mut t, r#"[{"b":1,"a":"x"},{"a":"y","b":2}]"#), vec!["a;b\nx;1\n", "y;2\n"]);
    let mut t = transform(serde_json::json!({"format": "binary", "sendSingle": true, "dataTemplate": "{{.raw}}"}));
    assert_eq!(out(&mut t, r#"[{"raw":"bytes!"}]"#), vec!["bytes!"]);
    let mut t = transform(serde_json::json!({"format": "binary", "sendSingle": true}));
    let m = t.apply(&[Value::map([("img".to_string(), Value::bytes(vec![1u8, 2, 3]))].into_iter().collect())]);
    assert_eq!(m[0].as_ref().unwrap().bytes, vec![1, 2, 3]);
    assert!(SinkOptions::from_props(&Props::new(&serde_json::json!({"format": "protobuf"}))).is_err());
}

#[test]
fn bad_properties_are_rejected_at_creation() {
    for p in [
        serde_json::json!({"dataTemplate": "{{if .a}}"}),
        serde_json::json!({"sendSingle": "true"}),
        serde_json::json!({"bufferLength": 0}),
    ] {
        assert!(SinkOptions::from_props(&Props::new(&p)).is_err(), "{p}");
    }
    let e = SinkOptions::from_props(&Props::new(&serde_json::json!({"dataTemplate": "{{nosuch .}}"}))).unwrap_err();
    assert!(e.to_string().contains("dataTemplate") && e.to_string().contains("nosuch"), "{e}");
}

/// Records what it publishes; waits for a permit per message when gated.
#[derive(Clone, Default)]
struct Collect {
    got: Arc<Mutex<Vec<String>>>,
    gate: Option<Arc<Semaphore>>,
    fail: bool,
}

impl SinkConnector for Collect {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            if let Some(g) = &self.gate {
                g.acquire().await.unwrap().forget();
            }
            if self.fail {
                return Err(SinkError("boom".into()));
            }
            self.got.lock().unwrap().push(String::from_utf8(msg.bytes.clone()).unwrap());
            Ok(())
        })
    }
}

#[tokio::test]
async fn sink_publishes_in_order_and_flushes_at_close() {
    let c = Collect::default();
    let opts = SinkOptions::from_props(&Props::new(&serde_json::json!({"sendSingle": true}))).unwrap();
    let mut s = TransformSink::new(opts, c.clone());
    for i in 0..50 {
        s.emit(&[v(&format!(r#"{{"i":{i}}}"#))]).await.unwrap();
    }
    s.close().await;
    let got = c.got.lock().unwrap().clone();
    assert_eq!(got.len(), 50);
    assert_eq!(got[49], r#"{"i":49}"#);
}

#[tokio::test]
async fn full_buffer_blocks_emit_instead_of_dropping() {
    let gate = Arc::new(Semaphore::new(0));
    let c = Collect { gate: Some(gate.clone()), ..Collect::default() };
    let opts = SinkOptions::from_props(&Props::new(&serde_json::json!({"bufferLength": 2}))).unwrap();
    let mut s = TransformSink::new(opts, c.clone());
    // One message in the connector, two queued: the fourth emit must wait.
    for i in 0..3 {
        s.emit(&[v(&format!(r#"{{"i":{i}}}"#))]).await.unwrap();
    }
    let row = [v(r#"{"i":3}"#)];
    let mut fourth = Box::pin(s.emit(&row));
    assert!(futures_poll_once(&mut fourth).await.is_none(), "emit should block on a full buffer");
    gate.add_permits(1);
    fourth.await.unwrap();
    gate.add_permits(10);
    s.close().await;
    assert_eq!(c.got.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn publish_failures_surface_on_the_next_emit() {
    let c = Collect { fail: true, ..Collect::default() };
    let opts = SinkOptions::from_props(&Props::new(&serde_json::json!({}))).unwrap();
    let mut s = TransformSink::new(opts, c);
    s.emit(&[v(r#"{"a":1}"#)]).await.unwrap();
    // Let the publisher run.
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    let err = s.emit(&[v(r#"{"a":2}"#)]).await.unwrap_err();
    assert_eq!(err.0, "boom");
    s.close().await;
}

/// Polls a future once; `Some` if it completed.
async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    use std::task::Poll;
    // Give the publishing task a chance to take what it can first.
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// (payload, id) of a published message.
type Published = (String, Option<String>);

/// Records (payload, id) of what it publishes.
#[derive(Clone, Default)]
struct CollectIds(Arc<Mutex<Vec<Published>>>);

impl SinkConnector for CollectIds {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.0.lock().unwrap().push((String::from_utf8(msg.bytes.clone()).unwrap(), msg.id.clone()));
            Ok(())
        })
    }
}

#[tokio::test]
async fn emit_with_id_carries_the_id_to_the_connector_and_id_field() {
    let got = |props: serde_json::Value| async move {
        let c = CollectIds::default();
        let mut s = TransformSink::new(SinkOptions::from_props(&Props::new(&props)).unwrap(), c.clone());
        s.emit_with_id(&rows(r#"[{"a":1},{"a":2}]"#), "r1/7/0").await.unwrap();
        s.emit(&rows(r#"[{"a":3}]"#)).await.unwrap();
        s.close().await;
        let v = c.0.lock().unwrap().clone();
        v
    };
    let id = |s: &str| Some(s.to_string());
    assert_eq!(
        got(serde_json::json!({})).await,
        vec![(r#"[{"a":1},{"a":2}]"#.to_string(), id("r1/7/0")), (r#"[{"a":3}]"#.to_string(), None)]
    );
    assert_eq!(
        got(serde_json::json!({"idField": "_id"})).await,
        vec![
            (r#"[{"_id":"r1/7/0","a":1},{"_id":"r1/7/0","a":2}]"#.to_string(), id("r1/7/0")),
            (r#"[{"a":3}]"#.to_string(), None)
        ]
    );
    assert_eq!(
        got(serde_json::json!({"idField": "_id", "sendSingle": true})).await,
        vec![
            (r#"{"_id":"r1/7/0/0","a":1}"#.to_string(), id("r1/7/0/0")),
            (r#"{"_id":"r1/7/0/1","a":2}"#.to_string(), id("r1/7/0/1")),
            (r#"{"a":3}"#.to_string(), None)
        ]
    );
}
