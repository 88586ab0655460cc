//! Model-service functions against a small HTTP model server on
//! 127.0.0.1: batching, retries of 5xx, 4xx errors, timeouts, bad answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use weir_plugins::service::{ServiceDef, ServiceFunction, Services};
use weir_runtime::functions::{call_scalar, FunctionImpl, Registry};
use weir_runtime::value::Value;

/// What the server saw and how it misbehaves.
#[derive(Default)]
struct Server {
    /// Request bodies, in order.
    bodies: Mutex<Vec<serde_json::Value>>,
    /// Answer 503 to this many requests first.
    fail_first: AtomicUsize,
}

/// Serves `POST /predict` (`sum of each instance * 2`), `/bad` (a wrong
/// answer), `/short` (one prediction too few), `/reject` (400) and `/slow`
/// (sleeps 2 s) with HTTP/1.1 keep-alive; returns the address.
fn model_server(state: Arc<Server>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let state = state.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    state.bodies.lock().unwrap().push(req.clone());
                    let instances = req["instances"].as_array().cloned().unwrap_or_default();
                    let preds: Vec<f64> = instances
                        .iter()
                        .map(|i| {
                            i.as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).sum::<f64>() * 2.0).unwrap_or(0.0)
                        })
                        .collect();
                    let (status, answer) = if state.fail_first.load(Ordering::SeqCst) > 0 {
                        state.fail_first.fetch_sub(1, Ordering::SeqCst);
                        (503, "busy".to_string())
                    } else {
                        match path.as_str() {
                            "/predict" => (200, serde_json::json!({ "predictions": preds }).to_string()),
                            "/bad" => (200, "{\"outputs\": 1}".to_string()),
                            "/short" => (200, serde_json::json!({ "predictions": &preds[1..] }).to_string()),
                            "/slow" => {
                                std::thread::sleep(std::time::Duration::from_secs(2));
                                (200, serde_json::json!({ "predictions": preds }).to_string())
                            }
                            _ => (400, "unknown model".to_string()),
                        }
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if stream.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn def(address: &str, functions: &[(&str, &str)]) -> ServiceDef {
    serde_json::from_value(serde_json::json!({
        "name": "models",
        "address": address,
        "functions": functions.iter().map(|(n, p)| serde_json::json!({"name": n, "path": p})).collect::<Vec<_>>(),
        "timeout": 500,
        "retries": 2,
        "batchSize": 3,
    }))
    .unwrap()
}

#[test]
fn model_services_batch_retry_and_report_errors() {
    let server = Arc::new(Server::default());
    let address = model_server(server.clone());
    let services = Services::new().unwrap();
    services
        .register(def(
            &address,
            &[("predict", "/predict"), ("bad", "/bad"), ("short", "/short"), ("reject", "/reject"), ("slow", "/slow")],
        ))
        .unwrap();
    let mut reg = Registry::with_builtins();
    services.register_functions(&mut reg);

    // One row.
    assert_eq!(call_scalar(&reg, "predict", &[Value::Int(1), Value::Float(2.5)]).unwrap(), Value::Float(7.0));

    // A batch of 7 rows goes out as requests of 3, 3 and 1 rows.
    server.bodies.lock().unwrap().clear();
    let predict = reg.get("predict").unwrap();
    let batch = predict.batch.clone().expect("a batch form");
    let rows: Vec<Vec<Value>> = (0..7).map(|i| vec![Value::Int(i)]).collect();
    let out = batch(&Default::default(), &rows);
    let got: Vec<Value> = out.into_iter().map(Result::unwrap).collect();
    assert_eq!(got, (0..7).map(|i| Value::Float(i as f64 * 2.0)).collect::<Vec<_>>());
    let sizes: Vec<usize> =
        server.bodies.lock().unwrap().iter().map(|b| b["instances"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, vec![3, 3, 1]);
    assert!(matches!(predict.imp, FunctionImpl::Scalar(_)));

    // 503s are retried; after the retries the error names the service.
    server.fail_first.store(2, Ordering::SeqCst);
    assert_eq!(call_scalar(&reg, "predict", &[Value::Int(2)]).unwrap(), Value::Float(4.0));
    server.fail_first.store(3, Ordering::SeqCst);
    let e = call_scalar(&reg, "predict", &[Value::Int(2)]).unwrap_err();
    assert!(e.0.contains("HTTP 503: busy") && e.0.contains("/predict"), "{e}");

    // 4xx is not retried; bad answers and timeouts are clear errors.
    let before = server.bodies.lock().unwrap().len();
    let e = call_scalar(&reg, "reject", &[Value::Int(1)]).unwrap_err();
    assert!(e.0.contains("HTTP 400: unknown model"), "{e}");
    assert_eq!(server.bodies.lock().unwrap().len(), before + 1);
    let e = call_scalar(&reg, "bad", &[Value::Int(1)]).unwrap_err();
    assert!(e.0.contains("is not {\"predictions\": [...]}"), "{e}");
    let e = batch_err(&reg, "short");
    assert!(e.contains("1 predictions for 2 instances"), "{e}");
    let e = call_scalar(&reg, "slow", &[Value::Int(1)]).unwrap_err();
    assert!(e.0.contains("slow"), "{e}");

    // Nobody listening: an error, not a hang.
    let dead = Services::new().unwrap();
    dead.register(def("http://127.0.0.1:9", &[("gone", "/predict")])).unwrap();
    let mut reg2 = Registry::with_builtins();
    dead.register_functions(&mut reg2);
    assert!(call_scalar(&reg2, "gone", &[Value::Int(1)]).is_err());
}

fn batch_err(reg: &Registry, name: &str) -> String {
    let batch = reg.get(name).unwrap().batch.clone().unwrap();
    batch(&Default::default(), &[vec![Value::Int(1)], vec![Value::Int(2)]]).remove(0).unwrap_err().0
}

#[test]
fn bad_service_definitions_are_refused_with_the_reason() {
    let services = Services::new().unwrap();
    let mut d = def("ftp://x", &[("f", "/p")]);
    assert!(services.register(d.clone()).unwrap_err().to_string().contains("must be http"));
    d.address = "http://127.0.0.1:1".into();
    d.functions = vec![ServiceFunction { name: "f".into(), path: "p".into() }];
    assert!(services.register(d.clone()).unwrap_err().to_string().contains("must start with /"));
    d.functions[0].path = "/p".into();
    d.headers.insert("bad header".into(), "x".into());
    assert!(services.register(d.clone()).unwrap_err().to_string().contains("invalid header name"));
    let unknown = serde_json::from_value::<ServiceDef>(serde_json::json!({
        "name": "m", "address": "http://h", "functions": [], "tmeout": 1
    }));
    assert!(unknown.unwrap_err().to_string().contains("unknown field `tmeout`"));
}
