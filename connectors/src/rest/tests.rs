use weir_runtime::connector::Sink;
use weir_runtime::Value;

use crate::http::testserver::TestServer;
use crate::{sink, Environment, SinkContext};

fn v(json: &str) -> Value {
    Value::from_json(serde_json::from_str(json).unwrap(), false)
}

fn rest(props: serde_json::Value) -> Box<dyn Sink> {
    let ctx = SinkContext { rule_id: "r1".into(), index: 0 };
    sink("rest", &props, &ctx, &Environment::new(std::env::temp_dir())).unwrap()
}

#[tokio::test]
async fn post_with_template_url_headers_and_body() {
    let srv = TestServer::start().await;
    let mut s = rest(serde_json::json!({
        "url": format!("{}/devices/{{{{.id}}}}/cmd", srv.url),
        "method": "post",
        "sendSingle": true,
        "dataTemplate": r#"{"setpoint":{{.sp}}}"#,
        "headers": {"Authorization": "Bearer {{.tok}}", "X-Const": "1"}
    }));
    s.emit(&[v(r#"{"id":"f1","sp":850.5,"tok":"abc"}"#), v(r#"{"id":"f2","sp":1e6,"tok":"x"}"#)]).await.unwrap();
    s.close().await;
    let got = srv.received();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("POST", "/devices/f1/cmd"));
    assert_eq!(got[0].body_text(), r#"{"setpoint":850.5}"#);
    assert_eq!(got[1].body_text(), r#"{"setpoint":1e+06}"#);
    assert_eq!(got[0].header("authorization"), Some("Bearer abc"));
    assert_eq!(got[0].header("x-const"), Some("1"));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn default_is_get_without_body_and_array_payloads_otherwise() {
    let srv = TestServer::start().await;
    let mut s = rest(serde_json::json!({"url": format!("{}/ping", srv.url)}));
    s.emit(&[v(r#"{"a":1}"#)]).await.unwrap();
    s.close().await;
    let mut p = rest(serde_json::json!({"url": format!("{}/in", srv.url), "method": "PUT"}));
    p.emit(&[v(r#"{"a":1}"#), v(r#"{"a":2}"#)]).await.unwrap();
    p.close().await;
    let got = srv.received();
    assert_eq!((got[0].method.as_str(), got[0].body.len()), ("GET", 0));
    assert_eq!(got[0].header("content-type"), None);
    assert_eq!(got[1].method, "PUT");
    assert_eq!(got[1].body_text(), r#"[{"a":1},{"a":2}]"#);
}

#[tokio::test]
async fn form_and_text_bodies() {
    let srv = TestServer::start().await;
    let mut s = rest(serde_json::json!({"url": srv.url, "method": "post", "bodyType": "form", "sendSingle": true}));
    s.emit(&[v(r#"{"a":"x y","b":2.5}"#)]).await.unwrap();
    s.close().await;
    let mut t = rest(serde_json::json!({"url": srv.url, "method": "post", "bodyType": "text",
        "sendSingle": true, "dataTemplate": "t={{.t}}"}));
    t.emit(&[v(r#"{"t":3}"#)]).await.unwrap();
    t.close().await;
    let got = srv.received();
    assert_eq!(got[0].body_text(), "a=x+y&b=2.5");
    assert_eq!(got[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(got[1].body_text(), "t=3");
    assert_eq!(got[1].header("content-type"), Some("text/plain"));
}

#[tokio::test]
async fn retries_5xx_with_backoff_but_not_4xx() {
    let srv = TestServer::start().await;
    srv.answer(503, "busy");
    srv.answer(500, "oops");
    let mut s = rest(serde_json::json!({"url": srv.url, "method": "post", "retryCount": 3, "retryInterval": 1}));
    s.emit(&[v(r#"{"a":1}"#)]).await.unwrap();
    s.close().await;
    assert_eq!(srv.received().len(), 3, "two failures then success");

    let srv = TestServer::start().await;
    srv.answer(400, "bad");
    let mut s = rest(serde_json::json!({"url": srv.url, "method": "post", "retryInterval": 1, "omitIfEmpty": true}));
    s.emit(&[v(r#"{"a":1}"#)]).await.unwrap();
    // The failure surfaces on the next emission.
    let mut err = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        if let Err(e) = s.emit(&[]).await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the 400 should be reported");
    assert!(err.0.contains("400") && err.0.contains("bad"), "{}", err.0);
    s.close().await;
    assert_eq!(srv.received().len(), 1, "no retry on 4xx");
}

#[tokio::test]
async fn transport_errors_give_up_after_retries() {
    // A port nothing listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let mut s = rest(serde_json::json!({"url": url, "retryCount": 2, "retryInterval": 1, "omitIfEmpty": true}));
    s.emit(&[v(r#"{"a":1}"#)]).await.unwrap();
    let mut reported = false;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        if s.emit(&[]).await.is_err() {
            reported = true;
            break;
        }
    }
    assert!(reported);
    s.close().await;
}

#[test]
fn bad_properties() {
    let ctx = SinkContext { rule_id: "r".into(), index: 0 };
    let env = Environment::new(std::env::temp_dir());
    for p in [
        serde_json::json!({}),
        serde_json::json!({"url": "http://x", "method": "patch"}),
        serde_json::json!({"url": "http://x", "bodyType": "yaml"}),
        serde_json::json!({"url": "http://x/{{.a"}),
        serde_json::json!({"url": "http://x", "headers": "h"}),
        serde_json::json!({"url": "http://x", "timeout": "soon"}),
    ] {
        assert!(sink("rest", &p, &ctx, &env).is_err(), "{p}");
    }
}
