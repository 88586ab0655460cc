//! The eKuiper-compatible REST API of `weir serve` (issue 4 items 1, 2, 6):
//! eKuiper's request bodies and answers, bad input, persistence.

use serde_json::{json, Value};

use crate::util::{free_port, start_rumqttd, weir_bin, Server};

/// eKuiper's documented stream body, with a memory source so rules run
/// without a broker.
const STREAM: &str = r#"{"sql":"create stream demo (id bigint, name string, score float) WITH ( datasource = \"topic/demo\", FORMAT = \"json\", TYPE = \"memory\", KEY = \"id\")"}"#;

fn rule(id: &str, sql: &str) -> String {
    json!({"id": id, "sql": sql, "actions": [{"log": {}}, {"nop": {}}]}).to_string()
}

fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    (dir, server)
}

/// An eKuiper error answer: status, code, and the message.
fn error_of(r: &crate::util::Response) -> (u16, u64, String) {
    let v = r.json();
    (r.status, v["error"].as_u64().unwrap(), v["message"].as_str().unwrap().to_string())
}

#[test]
fn streams_and_tables_crud() {
    let (_dir, s) = start();
    assert_eq!(s.call("GET", "/ping", None).status, 200);
    assert_eq!(s.call("GET", "/streams", None).json(), json!([]));

    let r = s.call("POST", "/streams", Some(STREAM));
    assert_eq!((r.status, r.body.as_str()), (201, "Stream demo is created."));
    assert_eq!(s.call("GET", "/streams", None).json(), json!(["demo"]));
    let d = s.call("GET", "/streams/demo", None);
    assert!(d.content_type.starts_with("application/json"));
    let d = d.json();
    assert_eq!(d["Name"], "demo");
    assert_eq!(d["StreamType"], 0);
    assert_eq!(d["StreamFields"][0], json!({"FieldType": "bigint", "Name": "id"}));
    assert_eq!(d["Options"]["datasource"], "topic/demo");
    assert_eq!(d["Options"]["format"], "JSON");
    assert_eq!(
        s.call("GET", "/streamdetails", None).json(),
        json!([{"name": "demo", "type": "memory", "format": "json"}])
    );

    // Duplicate: 400 with a stream error.
    let (status, code, msg) = error_of(&s.call("POST", "/streams", Some(STREAM)));
    assert_eq!((status, code), (400, 3000));
    assert!(msg.contains("already exists"), "{msg}");

    let put = r#"{"sql":"CREATE STREAM demo () WITH (DATASOURCE=\"topic/other\", TYPE=\"memory\")"}"#;
    let r = s.call("PUT", "/streams/demo", Some(put));
    assert_eq!((r.status, r.body.as_str()), (200, "Stream demo is replaced."));
    assert_eq!(s.call("GET", "/streams/demo", None).json()["StreamFields"], Value::Null);

    // Tables: own routes, own texts, `?kind=`.
    let table = r#"{"sql":"CREATE TABLE lk () WITH (DATASOURCE=\"t\", TYPE=\"memory\", KIND=\"lookup\", KEY=\"id\")"}"#;
    let r = s.call("POST", "/tables", Some(table));
    assert_eq!((r.status, r.body.as_str()), (201, "Table lk is created."));
    assert_eq!(s.call("GET", "/tables", None).json(), json!(["lk"]));
    assert_eq!(s.call("GET", "/tables?kind=lookup", None).json(), json!(["lk"]));
    assert_eq!(s.call("GET", "/tables?kind=scan", None).json(), json!([]));
    assert_eq!(s.call("GET", "/tables/lk", None).json()["StreamType"], 1);
    // A table is not a stream.
    assert_eq!(error_of(&s.call("GET", "/streams/lk", None)).0, 400);

    let r = s.call("DELETE", "/tables/lk", None);
    assert_eq!((r.status, r.body.as_str()), (200, "Table lk is dropped."));
    let r = s.call("DELETE", "/streams/demo", None);
    assert_eq!((r.status, r.body.as_str()), (200, "Stream demo is dropped."));
    // Missing: drop is 404/1002, describe is 400/3000 (eKuiper's asymmetry).
    assert_eq!(error_of(&s.call("DELETE", "/streams/demo", None)).0, 404);
    let (status, code, _) = error_of(&s.call("GET", "/streams/demo", None));
    assert_eq!((status, code), (400, 3000));
}

#[test]
fn rule_lifecycle_status_and_topo() {
    let (_dir, s) = start();
    assert_eq!(s.call("POST", "/streams", Some(STREAM)).status, 201);
    let r = s.call("POST", "/rules", Some(&rule("r1", "SELECT id, score * 2 AS s FROM demo WHERE score > 1")));
    assert_eq!((r.status, r.body.as_str()), (201, "Rule r1 was created successfully."));

    let st = s.call("GET", "/rules/r1/status", None);
    assert_eq!(st.status, 200);
    let v = st.json();
    assert_eq!(v["status"], "running", "{}", st.body);
    assert!(v["lastStartTimestamp"].as_i64().unwrap() > 0);
    // eKuiper's keys, in topology order.
    let keys: Vec<&str> = st.body.split(",\"").filter_map(|kv| kv.split("\":").next()).collect();
    let pos = |k: &str| {
        keys.iter().position(|x| x.trim_start_matches(['{', '"']) == k).unwrap_or_else(|| panic!("{k} in {}", st.body))
    };
    assert!(pos("status") < pos("source_demo_0_records_in_total"));
    assert!(pos("source_demo_0_records_in_total") < pos("op_2_decoder_0_records_in_total"));
    assert!(pos("op_2_decoder_0_records_in_total") < pos("op_3_filter_0_records_in_total"));
    assert!(pos("op_3_filter_0_records_in_total") < pos("op_4_project_0_records_in_total"));
    assert!(pos("op_4_project_0_records_in_total") < pos("sink_log_0_0_records_in_total"));
    assert!(pos("sink_log_0_0_records_in_total") < pos("sink_nop_1_0_records_out_total"));
    assert_eq!(v["source_demo_0_connection_status"], 1);

    assert_eq!(
        s.call("GET", "/rules/r1/topo", None).json(),
        json!({"sources": ["source_demo"], "edges": {
            "source_demo": ["op_2_decoder"], "op_2_decoder": ["op_3_filter"],
            "op_3_filter": ["op_4_project"], "op_4_project": ["sink_log_0", "sink_nop_1"]}})
    );
    let list = s.call("GET", "/rules", None).json();
    assert_eq!(list[0]["id"], "r1");
    assert_eq!(list[0]["status"], "running");
    assert_eq!(s.call("GET", "/rules/status/all", None).json()["r1"]["status"], "running");
    assert_eq!(s.call("GET", "/rules/r1", None).json()["sql"], "SELECT id, score * 2 AS s FROM demo WHERE score > 1");

    let r = s.call("POST", "/rules/r1/stop", None);
    assert_eq!((r.status, r.body.as_str()), (200, "Rule r1 was stopped."));
    let v = s.call("GET", "/rules/r1/status", None).json();
    assert_eq!(v["status"], "stopped");
    assert_eq!(v["message"], "canceled manually");
    assert!(v.get("source_demo_0_records_in_total").is_none());
    assert_eq!(s.call("GET", "/rules/r1", None).json()["triggered"], false);
    let r = s.call("POST", "/rules/r1/start", None);
    assert_eq!((r.status, r.body.as_str()), (200, "Rule r1 was started"));
    assert_eq!(s.call("GET", "/rules/r1/status", None).json()["status"], "running");
    let r = s.call("POST", "/rules/r1/restart", None);
    assert_eq!((r.status, r.body.as_str()), (200, "Rule r1 was restarted"));
    assert_eq!(s.call("GET", "/rules/r1/status", None).json()["status"], "running");

    // A stream in use is not dropped without force.
    let (status, _, msg) = error_of(&s.call("DELETE", "/streams/demo", None));
    assert_eq!(status, 400);
    assert!(msg.contains("stream demo has been referenced by other rules"), "{msg}");

    // Update: an invalid definition leaves the old rule running.
    let bad = rule("r1", "SELECT nope( FROM demo");
    assert_eq!(s.call("PUT", "/rules/r1", Some(&bad)).status, 400);
    assert_eq!(s.call("GET", "/rules/r1/status", None).json()["status"], "running");
    let r = s.call("PUT", "/rules/r1", Some(&rule("r1", "SELECT * FROM demo")));
    assert_eq!((r.status, r.body.as_str()), (200, "Rule r1 was updated successfully."));
    assert_eq!(s.call("GET", "/rules/r1", None).json()["sql"], "SELECT * FROM demo");

    // Created stopped.
    let stopped = json!({"id": "r2", "sql": "SELECT * FROM demo", "actions": [{"log": {}}], "triggered": false});
    assert_eq!(s.call("POST", "/rules", Some(&stopped.to_string())).status, 201);
    assert_eq!(s.call("GET", "/rules/r2/status", None).json()["status"], "stopped");

    let v = s.call("POST", "/rules/validate", Some(&rule("r3", "SELECT * FROM demo")));
    assert_eq!((v.status, v.json()), (200, json!({"sources": ["demo"], "valid": true})));
    let v = s.call("POST", "/rules/validate", Some(r#"{"id":"r3","sql":"SELECT * FROM demo"}"#));
    assert_eq!((v.status, v.body.as_str()), (422, "invalid rule json: Missing rule actions."));

    let metrics = s.call("GET", "/metrics", None);
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("kuiper_op_records_in_total{op=\"2_decoder\""), "{}", metrics.body);

    let r = s.call("DELETE", "/rules/r1", None);
    assert_eq!((r.status, r.body.as_str()), (200, "Rule r1 is dropped."));
    assert_eq!(s.call("DELETE", "/rules/r1", None).status, 400);
    let (status, code, _) = error_of(&s.call("GET", "/rules/r1/status", None));
    assert_eq!((status, code), (404, 1002));
}

#[test]
fn bad_bodies_get_4xx_and_the_server_stays_up() {
    let (_dir, mut s) = start();
    assert_eq!(s.call("POST", "/streams", Some(STREAM)).status, 201);
    let check = |method: &str, path: &str, body: &str, status: u16, needle: &str| {
        let r = s.call(method, path, Some(body));
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.body);
        assert!(r.body.contains(needle), "{method} {path}: {:?} lacks {needle:?}", r.body);
        if status != 422 {
            let v = r.json();
            assert!(v["error"].is_u64() && v["message"].is_string(), "{}", r.body);
        }
    };
    check("POST", "/streams", "{not json", 400, "Invalid body");
    check("POST", "/streams", r#"{"sql":"CREATE STREAM x (a bigint WITH ()"}"#, 400, "line 1");
    check("POST", "/streams", r#"{"sql":"CREATE STREAM `a/b` () WITH (TYPE=\"memory\")"}"#, 400, "invalid stream name");
    check("POST", "/rules", "{not json", 400, "invalid rule json");
    check("POST", "/rules", r#"[1,2]"#, 400, "invalid rule json");
    check("POST", "/rules", &rule("r1", "SELECT * FROM nowhere"), 400, "nowhere");
    check("POST", "/rules", &rule("r1", "SELECT * FORM demo"), 400, "line 1");
    check("POST", "/rules", r#"{"sql":"SELECT * FROM demo","actions":[{"log":{}}]}"#, 400, "Missing rule id.");
    check("POST", "/rules", &rule("bad id", "SELECT * FROM demo"), 400, "invalid rule name");
    check("POST", "/rules", r#"{"id":"r1","sql":"SELECT * FROM demo","actions":[{"nosuch":{}}]}"#, 400, "nosuch");
    check(
        "POST",
        "/rules",
        r#"{"id":"r1","sql":"SELECT * FROM demo","actions":[{"log":{}}],"options":{"qos":9}}"#,
        400,
        "qos",
    );
    let sharded = |shards: i64| {
        json!({"id": "r1", "sql": "SELECT id, count(*) FROM demo GROUP BY id, TumblingWindow(ss, 1)",
            "actions": [{"log": {}}], "options": {"qos": 2, "shards": shards}})
        .to_string()
    };
    check("POST", "/rules", &sharded(0), 400, "shards");
    check("POST", "/rules", &sharded(3), 400, "needs a cluster");
    assert_eq!(s.call("POST", "/rules", Some(&rule("r1", "SELECT * FROM demo"))).status, 201);
    check("POST", "/rules", &rule("r1", "SELECT * FROM demo"), 400, "rule r1 already exists");
    check("POST", "/rules/nope/start", "", 404, "nope");
    check("PUT", "/rules/r1", &rule("r9", "SELECT * FROM demo"), 400, "r9");

    // Oversized body: 413 with a message, and the server keeps serving.
    let big = format!("{{\"sql\":\"{}\"}}", "x".repeat(11 * 1024 * 1024));
    for path in ["/streams", "/rules"] {
        let r = s.call("POST", path, Some(&big));
        assert_eq!(r.status, 413, "{path}");
        assert!(r.json()["message"].as_str().unwrap().contains("larger than"));
    }
    let r = s.call("GET", "/no/such/path", None);
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found\n"));
    assert!(s.alive());
    assert_eq!(s.call("GET", "/ping", None).status, 200);
    assert_eq!(s.call("GET", "/rules/r1/status", None).json()["status"], "running");
}

#[test]
fn definitions_and_running_rules_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    assert_eq!(s.call("POST", "/streams", Some(STREAM)).status, 201);
    let table = r#"{"sql":"CREATE TABLE t1 (id bigint) WITH (DATASOURCE=\"t1\", TYPE=\"memory\")"}"#;
    assert_eq!(s.call("POST", "/tables", Some(table)).status, 201);
    assert_eq!(s.call("POST", "/rules", Some(&rule("running", "SELECT * FROM demo"))).status, 201);
    assert_eq!(s.call("POST", "/rules", Some(&rule("paused", "SELECT id FROM demo"))).status, 201);
    assert_eq!(s.call("POST", "/rules/paused/stop", None).status, 200);
    // kill -9: nothing is flushed at exit; what was acknowledged is on disk.
    s.kill();

    let s = Server::start(dir.path());
    assert_eq!(s.call("GET", "/streams", None).json(), json!(["demo"]));
    assert_eq!(s.call("GET", "/tables", None).json(), json!(["t1"]));
    assert_eq!(s.call("GET", "/streams/demo", None).json()["Options"]["datasource"], "topic/demo");
    let list = s.call("GET", "/rules", None).json();
    let status: Vec<(&str, &str)> =
        list.as_array().unwrap().iter().map(|r| (r["id"].as_str().unwrap(), r["status"].as_str().unwrap())).collect();
    assert_eq!(status, [("paused", "stopped"), ("running", "running")]);
    assert_eq!(s.call("GET", "/rules/running/status", None).json()["status"], "running");
    assert_eq!(s.call("POST", "/rules/paused/start", None).status, 200);
    assert_eq!(s.call("GET", "/rules/paused/status", None).json()["status"], "running");
}

#[test]
fn cli_talks_to_the_rest_api() {
    let (dir, s) = start();
    let weir = |args: &[&str]| {
        let out = std::process::Command::new(weir_bin()).args(args).args(["--host", &s.url]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = weir(&["stream", "create", r#"CREATE STREAM demo () WITH (DATASOURCE="d", TYPE="memory")"#]);
    assert_eq!((code, out.trim()), (Some(0), "Stream demo is created."));
    let (code, out, _) = weir(&["stream", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"demo\""));
    let file = dir.path().join("rule.json");
    std::fs::write(&file, r#"{"sql":"SELECT * FROM demo","actions":[{"log":{}}]}"#).unwrap();
    let (code, out, _) = weir(&["rule", "create", "r1", "--file", file.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (Some(0), "Rule r1 was created successfully."));
    let (code, out, _) = weir(&["rule", "status", "r1"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("{\"status\":\"running\""), "{out}");
    let (code, _, err) = weir(&["rule", "create", "r1", "--file", file.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("rule r1 already exists"), "{err}");
    let (code, _, err) = weir(&["rule", "show", "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
    let (code, out, _) = weir(&["rule", "stop", "r1"]);
    assert_eq!((code, out.trim()), (Some(0), "Rule r1 was stopped."));
    let (code, out, _) = weir(&["rule", "drop", "r1"]);
    assert_eq!((code, out.trim()), (Some(0), "Rule r1 is dropped."));
    let (code, out, _) = weir(&["stream", "drop", "demo"]);
    assert_eq!((code, out.trim()), (Some(0), "Stream demo is dropped."));

    // No server there: a clear error, not a panic.
    let out =
        std::process::Command::new(weir_bin()).args(["rule", "list", "--host", "http://127.0.0.1:1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach weir"));
    let help = std::process::Command::new(weir_bin()).args(["rule", "create", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--file"));
}

/// eKuiper's REST bodies end to end: an MQTT stream (broker from
/// `etc/mqtt_source.yaml`), a filter rule with an MQTT sink; messages
/// published in come out transformed, and the status counts them.
#[test]
fn mqtt_rule_created_over_rest_moves_data() {
    use std::time::Duration;
    let port = free_port();
    start_rumqttd(port);
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("mqtt_source.yaml"), format!("default:\n  qos: 1\n  server: tcp://127.0.0.1:{port}\n"))
        .unwrap();
    let s = Server::start_with(&dir.path().join("data"), &["--etc-dir", etc.to_str().unwrap()]);
    let stream =
        r#"{"sql":"create stream demo (id bigint, temp float) WITH (DATASOURCE=\"weir/in\", FORMAT=\"json\")"}"#;
    assert_eq!(s.call("POST", "/streams", Some(stream)).status, 201);
    let rule = json!({"id": "hot", "sql": "SELECT id, temp * 2 AS t2 FROM demo WHERE temp > 20",
        "actions": [{"mqtt": {"server": format!("tcp://127.0.0.1:{port}"), "topic": "weir/out", "sendSingle": true}}]});
    assert_eq!(s.call("POST", "/rules", Some(&rule.to_string())).status, 201);
    assert_eq!(s.call("GET", "/rules/hot/status", None).json()["status"], "running");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let got: Vec<Value> = rt.block_on(async {
        let mut o = rumqttc::MqttOptions::new("rest-test", "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::AsyncClient::new(o, 100);
        client.subscribe("weir/out", rumqttc::QoS::AtLeastOnce).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(ev) = el.poll().await {
                if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = ev {
                    let _ = tx.send(serde_json::from_slice::<Value>(&p.payload).unwrap());
                }
            }
        });
        // The rule's subscription may lag its start: publish until it answers.
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), async {
            let mut id = 0;
            while got.len() < 3 {
                id += 1;
                let cold = json!({"id": id, "temp": 10.0}).to_string();
                let hot = json!({"id": id, "temp": 25.5}).to_string();
                client.publish("weir/in", rumqttc::QoS::AtLeastOnce, false, cold).await.unwrap();
                client.publish("weir/in", rumqttc::QoS::AtLeastOnce, false, hot).await.unwrap();
                if let Ok(Some(v)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
                    got.push(v);
                }
            }
        })
        .await
        .expect("the rule's output arrives");
        got
    });
    // One row per message with sendSingle; tolerate a one-row array too.
    for v in &got {
        let row = if v.is_array() { &v[0] } else { v };
        assert_eq!(row["t2"].as_f64(), Some(51.0), "{v}");
    }
    let v = s.call("GET", "/rules/hot/status", None).json();
    assert!(v["source_demo_0_records_in_total"].as_u64().unwrap() >= 6, "{v}");
    assert!(v["op_3_filter_0_records_out_total"].as_u64().unwrap() >= 3, "{v}");
    assert!(v["sink_mqtt_0_0_records_in_total"].as_u64().unwrap() >= 3, "{v}");
}
