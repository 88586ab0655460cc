use weir_planner::StreamDef;
use weir_runtime::row::PayloadData;
use weir_runtime::Value;

use super::source::FileSource;
use crate::outlet::testing::channel;
use crate::{sink, Environment, SinkContext};

fn def(datasource: &str, extra: serde_json::Value) -> StreamDef {
    let mut d = StreamDef {
        name: "t".into(),
        kind: weir_planner::StreamKind::Table,
        fields: None,
        options: Default::default(),
        sql: String::new(),
    };
    d.options.datasource = Some(datasource.into());
    d.options.extra = Some(extra.to_string());
    d
}

fn rows(data: &[PayloadData]) -> Vec<String> {
    data.iter()
        .map(|d| match d {
            PayloadData::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            PayloadData::Object(m) => Value::map(m.clone()).to_json(),
        })
        .collect()
}

fn parse(env: &Environment, name: &str, extra: serde_json::Value, text: &str) -> Vec<String> {
    let s = FileSource::new(&def(name, extra), env).unwrap();
    rows(&s.parse(text).unwrap())
}

#[test]
fn parses_json_lines_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let env = Environment::new(dir.path());
    assert_eq!(
        parse(&env, "a.json", serde_json::json!({}), r#"[{"id":1},{"id":2,"n":"x"}]"#),
        vec![r#"{"id":1}"#, r#"{"id":2,"n":"x"}"#]
    );
    assert_eq!(
        parse(
            &env,
            "a.txt",
            serde_json::json!({"fileType": "lines", "ignoreStartLines": 1}),
            "skip\n{\"a\":1}\n\n{\"a\":2}\n"
        ),
        vec![r#"{"a":1}"#, r#"{"a":2}"#]
    );
    let csv = "# comment\nid,name\n1,furnace\n2,kiln\n# end\n";
    let extra = serde_json::json!({"fileType": "csv", "hasHeader": true, "ignoreStartLines": 1, "ignoreEndLines": 1});
    assert_eq!(parse(&env, "a.csv", extra, csv), vec![r#"{"id":"1","name":"furnace"}"#, r#"{"id":"2","name":"kiln"}"#]);
    let extra = serde_json::json!({"fileType": "csv", "delimiter": ";", "columns": ["a", "b"]});
    assert_eq!(parse(&env, "a.csv", extra, "1;2\n"), vec![r#"{"a":"1","b":"2"}"#]);
    assert_eq!(
        parse(&env, "a.csv", serde_json::json!({"fileType": "csv"}), "1,2\n"),
        vec![r#"{"col0":"1","col1":"2"}"#]
    );
    assert!(FileSource::new(&def("", serde_json::json!({})), &env).is_err());
    assert!(FileSource::new(&def("x", serde_json::json!({"fileType": "xml"})), &env).is_err());
}

#[tokio::test]
async fn reads_once_then_ends_and_deletes_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let env = Environment::new(dir.path());
    let mut text = String::from("[");
    for i in 0..3000 {
        text.push_str(&format!("{}{{\"i\":{i}}}", if i > 0 { "," } else { "" }));
    }
    text.push(']');
    std::fs::write(dir.path().join("big.json"), text).unwrap();
    let s = FileSource::new(&def("big.json", serde_json::json!({"actionAfterRead": 1})), &env).unwrap();
    let (outlet, mut rx, _stop) = channel(4);
    let task = tokio::spawn(s.pump(outlet));
    let mut n = 0;
    while let Some(batch) = rx.recv().await {
        n += batch.len();
    }
    task.await.unwrap();
    assert_eq!(n, 3000);
    assert!(!dir.path().join("big.json").exists());
}

fn file_sink(env: &Environment, props: serde_json::Value) -> Box<dyn weir_runtime::connector::Sink> {
    sink("file", &props, &SinkContext { rule_id: "r".into(), index: 0 }, env).unwrap()
}

fn v(json: &str) -> Value {
    Value::from_json(serde_json::from_str(json).unwrap(), false)
}

#[tokio::test]
async fn sink_writes_lines_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let env = Environment::new(dir.path());
    let mut s = file_sink(&env, serde_json::json!({"path": "out/lines.txt", "sendSingle": true}));
    s.emit(&[v(r#"{"a":1}"#), v(r#"{"a":2.5}"#)]).await.unwrap();
    s.close().await;
    assert_eq!(std::fs::read_to_string(dir.path().join("out/lines.txt")).unwrap(), "{\"a\":1}\n{\"a\":2.5}\n");

    let mut s = file_sink(&env, serde_json::json!({"path": "o.json", "fileType": "json"}));
    s.emit(&[v(r#"{"a":1}"#)]).await.unwrap();
    s.emit(&[v(r#"{"a":2}"#)]).await.unwrap();
    s.close().await;
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("o.json")).unwrap()).unwrap();
    assert_eq!(back, serde_json::json!([[{"a": 1}], [{"a": 2}]]));

    let mut s =
        file_sink(&env, serde_json::json!({"path": "o.csv", "fileType": "csv", "hasHeader": true, "delimiter": ";"}));
    s.emit(&[v(r#"{"b":1,"a":"x"}"#), v(r#"{"a":"y","b":2}"#)]).await.unwrap();
    s.emit(&[v(r#"{"a":"z","b":3}"#)]).await.unwrap();
    s.close().await;
    assert_eq!(std::fs::read_to_string(dir.path().join("o.csv")).unwrap(), "a;b\nx;1\ny;2\nz;3\n");
}

#[tokio::test]
async fn sink_path_is_a_template() {
    let dir = tempfile::tempdir().unwrap();
    let env = Environment::new(dir.path());
    let mut s =
        file_sink(&env, serde_json::json!({"path": "by-dev/{{.dev}}.log", "sendSingle": true, "fields": ["t"]}));
    s.emit(&[v(r#"{"dev":"f1","t":1}"#), v(r#"{"dev":"f2","t":2}"#), v(r#"{"dev":"f1","t":3}"#)]).await.unwrap();
    s.close().await;
    assert_eq!(std::fs::read_to_string(dir.path().join("by-dev/f1.log")).unwrap(), "{\"t\":1}\n{\"t\":3}\n");
    assert_eq!(std::fs::read_to_string(dir.path().join("by-dev/f2.log")).unwrap(), "{\"t\":2}\n");
}
