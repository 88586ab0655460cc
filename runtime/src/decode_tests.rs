//! Tests of the payload decoder.

use super::*;
use weir_planner::{parse_statement, ColumnSlot, Statement};

fn source(ddl: &str, cols: &[&str]) -> SourcePlan {
    let Statement::Create(def) = parse_statement(ddl).unwrap() else { panic!() };
    SourcePlan {
        name: def.name.clone(),
        alias: None,
        columns: cols
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnSlot {
                name: c.to_string(),
                slot: i as u32,
                data_type: def.field(c).map(|f| f.data_type.clone()),
            })
            .collect(),
        def: *def,
        all_slot: None,
        meta_slot: None,
    }
}

#[test]
fn schema_converts_and_skips_unread_fields() {
    let s = source(r#"CREATE STREAM s (a BIGINT, b STRING, ts BIGINT) WITH (DATASOURCE="x")"#, &["a", "b"]);
    let d = Decoder::new(&s, 0, 2, Some("ts"));
    let mut out = Vec::new();
    d.decode_json(br#"{"a": 3, "b": 7, "c": {"x": [1]}, "ts": 1000}"#, 5, &mut out).unwrap();
    assert_eq!(out[0].slots, vec![Value::Int(3), Value::str("7")]);
    assert_eq!(out[0].ts, 1000);
    let err = d.decode_json(br#"{"a": 3.5}"#, 5, &mut out).unwrap_err();
    assert!(err.to_string().contains("field a"), "{err}");
}

#[test]
fn schemaless_numbers_are_floats_and_arrays_give_rows() {
    let s = source(r#"CREATE STREAM s () WITH (DATASOURCE="x")"#, &["a"]);
    let d = Decoder::new(&s, 0, 1, None);
    let mut out = Vec::new();
    d.decode_json(br#"[{"a": 1}, {"a": "x"}]"#, 5, &mut out).unwrap();
    assert_eq!(out[0].slots[0], Value::Float(1.0));
    assert_eq!(out[1].slots[0], Value::str("x"));
    assert!(d.decode_json(b"{not json", 5, &mut out).is_err());
    assert!(d.decode_json(b"42", 5, &mut out).is_err());
}

/// Decodes `payload` with the serde path only.
fn serde_only(d: &Decoder, payload: &[u8]) -> Result<Vec<Row>, String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(payload);
    PayloadSeed { dec: d, ts: 5, out: &mut out }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn flat_fast_path_matches_serde() {
    let schema = source(
        r#"CREATE STREAM s (a BIGINT, b STRING, f FLOAT, ok BOOLEAN, ts BIGINT) WITH (DATASOURCE="x")"#,
        &["a", "b", "f", "ok"],
    );
    let schemaless = source(r#"CREATE STREAM s () WITH (DATASOURCE="x")"#, &["a", "b", "f", "ok"]);
    let mut all = schemaless.clone();
    all.all_slot = Some(4);
    let typed = source(
        r#"CREATE STREAM s (a BIGINT, b STRING, f FLOAT, ok BOOLEAN, d DATETIME, y BYTEA) WITH (DATASOURCE="x")"#,
        &["a", "b", "f", "ok", "d", "y"],
    );
    let strict = source(
        r#"CREATE STREAM s (a BIGINT, b STRING DEFAULT "z", f FLOAT, d DATETIME, ts BIGINT)
           WITH (DATASOURCE="x", STRICT_VALIDATION="true")"#,
        &["a", "b", "d"],
    );
    let decoders = [
        Decoder::new(&schema, 0, 4, Some("ts")),
        Decoder::new(&schemaless, 0, 4, None),
        Decoder::new(&all, 0, 5, None),
        Decoder::new(&typed, 0, 6, None),
        Decoder::new(&strict, 0, 3, None),
        Decoder::new(&strict, 0, 3, Some("ts")),
    ];
    assert!(decoders[3].null_keys && !decoders[0].null_keys);
    let cases: &[&str] = &[
        r#"{"a":1,"b":"x","f":2.5,"ok":true,"ts":1000}"#,
        r#" { "a" : -0 , "b" : "hé" , "f" : -0.0 , "ts" : 12 } "#,
        r#"{"a":3,"b":"é","f":1e3,"ok":false,"ts":1e3,"zz":null}"#,
        r#"{"a":123456789012345678,"f":0.1,"ts":2}"#,
        r#"{"a":12345678901234567890,"ts":3}"#,
        r#"{"a":-9223372036854775808,"ts":3}"#,
        r#"{"f":1.7976931348623157e308,"a":1E-2,"ts":4}"#,
        r#"{"f":1e400,"ts":4}"#,
        r#"{"a":1,"a":2,"ts":5}"#,
        r#"{"b":"tab	here","ts":5}"#,
        "{\"b\":\"ctl\u{1}\",\"ts\":5}",
        r#"{"x":{"y":[1,2]},"a":1,"ts":6}"#,
        r#"{}"#,
        r#"{"ts":7,}"#,
        r#"{"a":01,"ts":7}"#,
        r#"{"a":1.,"ts":7}"#,
        r#"{"a":-,"ts":7}"#,
        r#"{"a":truex,"ts":7}"#,
        r#"{"a":1,"ts":7} x"#,
        r#"{"a":1,"ts":7"#,
        r#"{"ok":nul}"#,
        r#"[{"a":1,"ts":8}]"#,
        r#"{"a":"3","b":7,"ok":"true","ts":"2024-01-01T00:00:00Z"}"#,
        r#"{"a":3.5,"ts":9}"#,
        r#"{"b":null,"ts":9}"#,
        // Integer literals apart from floats; -0 is a float in serde.
        r#"{"a":3.0,"b":3.0,"f":3,"ts":10}"#,
        r#"{"a":1e2,"b":1e2,"ok":1e2,"ts":10}"#,
        r#"{"a":-0,"b":-0,"f":-0,"ok":-0,"d":-0,"ts":10}"#,
        r#"{"a":-12,"b":1234567,"f":-12,"ok":0,"d":1541152486013,"ts":10}"#,
        r#"{"a":999999999999999999,"b":0.00001,"ts":10}"#,
        r#"{"a":9223372036854775807,"b":9223372036854775808,"ts":10}"#,
        // Strings and booleans for each type.
        r#"{"ok":"T","b":"x","d":"2018-11-02T09:54:46Z","y":"aGk=","ts":11}"#,
        r#"{"ok":"tRuE","ts":11}"#,
        r#"{"ok":"0","d":"not a time","y":"hi!","ts":11}"#,
        r#"{"b":true,"ts":11}"#,
        r#"{"a":true,"ts":11}"#,
        r#"{"f":"1.5","ts":11}"#,
        r#"{"y":5,"ts":11}"#,
        // Explicit nulls, under targets and other keys.
        r#"{"a":null,"b":null,"f":null,"ok":null,"d":null,"y":null,"ts":12}"#,
        r#"{"a":1,"zz":null,"yy":5,"zz":1,"ts":12}"#,
        r#"{"a":1,"zz":1,"zz":null,"ww":null,"ts":12}"#,
        r#"{"a":1,"b":"x","d":5,"ts":null}"#,
    ];
    for d in &decoders {
        for c in cases {
            let mut fast = Vec::new();
            let got = d.decode_json(c.as_bytes(), 5, &mut fast).map(|_| fast).map_err(|e| e.to_string());
            let want = serde_only(d, c.as_bytes());
            match (&got, &want) {
                (Ok(g), Ok(w)) => {
                    assert_eq!(g.len(), w.len(), "{c}");
                    for (g, w) in g.iter().zip(w) {
                        assert_eq!(g.ts, w.ts, "{c}");
                        assert_eq!(g.nulls, w.nulls, "{c}");
                        // Compare through the text form so -0.0 and 0.0 differ.
                        let text = |r: &Row| r.slots.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>();
                        assert_eq!(text(g), text(w), "{c}");
                    }
                }
                (Err(_), Err(_)) => {}
                _ => panic!("{c}: fast {got:?} vs serde {want:?}"),
            }
        }
    }
}

#[test]
fn ndjson_chunks_give_one_row_per_line() {
    let s = source(r#"CREATE STREAM s (a BIGINT) WITH (DATASOURCE="x")"#, &["a"]);
    let d = Decoder::new(&s, 0, 1, None);
    let mut out = Vec::new();
    let errors = d.decode_ndjson(b"{\"a\":1}\n\n  \n{\"a\":2}\r\n{bad\n[{\"a\":3},{\"a\":4}]", 0, &mut out);
    assert_eq!(out.iter().map(|r| r.slots[0].clone()).collect::<Vec<_>>(), [1, 2, 3, 4].map(Value::Int));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 4);
}
/// Decodes one payload into its rows, or the error text.
fn decode(d: &Decoder, payload: &str) -> Result<Vec<Row>, String> {
    let mut out = Vec::new();
    d.decode_json(payload.as_bytes(), 5, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn first(d: &Decoder, payload: &str) -> Result<Vec<Value>, String> {
    decode(d, payload).map(|rows| rows[0].slots.clone())
}

#[test]
fn converter_rules_per_type() {
    let s = source(
        r#"CREATE STREAM s (a BIGINT, x STRING, ok BOOLEAN, d DATETIME, y BYTEA, f FLOAT) WITH (DATASOURCE="x")"#,
        &["a", "x", "ok", "d", "y", "f"],
    );
    let d = Decoder::new(&s, 0, 6, None);
    // BIGINT takes integer literals only.
    assert_eq!(first(&d, r#"{"a":-4}"#).unwrap()[0], Value::Int(-4));
    assert!(first(&d, r#"{"a":3.0}"#).is_err());
    assert!(first(&d, r#"{"a":1e2}"#).is_err());
    assert!(first(&d, r#"{"a":9223372036854775808}"#).is_err());
    assert!(first(&d, r#"{"a":"3"}"#).is_err());
    // STRING: numbers as Go's %v, booleans are an error.
    assert_eq!(first(&d, r#"{"x":7}"#).unwrap()[1], Value::str("7"));
    assert_eq!(first(&d, r#"{"x":0.5}"#).unwrap()[1], Value::str("0.5"));
    assert_eq!(first(&d, r#"{"x":1234567}"#).unwrap()[1], Value::str("1.234567e+06"));
    assert!(first(&d, r#"{"x":true}"#).is_err());
    // BOOLEAN: numbers non-zero, strings as strconv.ParseBool.
    for (p, want) in [("1", true), ("0", false), ("2.5", true), ("\"1\"", true), ("\"F\"", false)] {
        assert_eq!(first(&d, &format!(r#"{{"ok":{p}}}"#)).unwrap()[2], Value::Bool(want), "{p}");
    }
    assert!(first(&d, r#"{"ok":"tRuE"}"#).is_err());
    assert!(first(&d, r#"{"ok":"yes"}"#).is_err());
    // DATETIME is left as is without strict validation.
    assert_eq!(first(&d, r#"{"d":1541152486013}"#).unwrap()[3], Value::Float(1541152486013.0));
    assert_eq!(first(&d, r#"{"d":"not a time"}"#).unwrap()[3], Value::str("not a time"));
    // BYTEA: base64, or else the raw bytes; numbers are an error.
    assert_eq!(first(&d, r#"{"y":"aGk="}"#).unwrap()[4], Value::bytes(b"hi".to_vec()));
    assert_eq!(first(&d, r#"{"y":"hi!"}"#).unwrap()[4], Value::bytes(b"hi!".to_vec()));
    assert!(first(&d, r#"{"y":5}"#).is_err());
    // FLOAT takes any number, no string.
    assert_eq!(first(&d, r#"{"f":3}"#).unwrap()[5], Value::Float(3.0));
    assert!(first(&d, r#"{"f":"3"}"#).is_err());
}

#[test]
fn explicit_nulls_are_present() {
    let ddl = r#"CREATE STREAM s (a BIGINT, b BIGINT, st STRUCT(x BIGINT)) WITH (DATASOURCE="x")"#;
    let d = Decoder::new(&source(ddl, &["a", "b"]), 0, 2, None);
    let rows = decode(&d, r#"{"a":1,"b":null}"#).unwrap();
    assert!(rows[0].is_present_null(1) && !rows[0].is_present_null(0));
    let rows = decode(&d, r#"{"a":1}"#).unwrap();
    assert!(rows[0].nulls.is_none());
    // Every declared field read (as with `*`): undeclared null keys are
    // kept, and nulls inside structs too.
    let d = Decoder::new(&source(ddl, &["a", "b", "st"]), 0, 3, None);
    let rows = decode(&d, r#"{"a":1,"zz":null,"yy":5,"st":{"x":2,"w":null,"v":3}}"#).unwrap();
    assert_eq!(rows[0].nulls.as_ref().unwrap().keys, vec!["zz".to_string()]);
    let st = rows[0].slots[2].as_map().unwrap();
    assert_eq!(st.get("x"), Some(&Value::Int(2)));
    assert_eq!(st.get("w"), Some(&Value::Null));
    assert_eq!(st.get("v"), None);
    let schemaless = source(r#"CREATE STREAM s () WITH (DATASOURCE="x")"#, &["b"]);
    let d = Decoder::new(&schemaless, 0, 1, None);
    assert!(decode(&d, r#"{"b":null}"#).unwrap()[0].is_present_null(0));
}

#[test]
fn one_bad_element_drops_the_array() {
    let s = source(r#"CREATE STREAM s (a BIGINT) WITH (DATASOURCE="x")"#, &["a"]);
    let d = Decoder::new(&s, 0, 1, None);
    let mut out = Vec::new();
    assert!(d.decode_json(br#"[{"a": 1}, {"a": "x"}, {"a": 3}]"#, 5, &mut out).is_err());
    assert!(d.decode_json(br#"[{"a": 6}, 7]"#, 5, &mut out).is_err());
    assert!(out.is_empty());
    d.decode_json(br#"[{"a": 4}, {"a": 5}]"#, 5, &mut out).unwrap();
    assert_eq!(out.len(), 2);
}

#[test]
fn strict_checks_read_fields_only() {
    let ddl = r#"CREATE STREAM s (a BIGINT, b BIGINT DEFAULT 7, c BIGINT, d DATETIME, l ARRAY(BIGINT),
        st STRUCT(x BIGINT, y STRING DEFAULT "q")) WITH (DATASOURCE="x", STRICT_VALIDATION="true")"#;
    let d = Decoder::new(&source(ddl, &["a", "b"]), 0, 2, None);
    // c is declared but not read: not checked.
    assert_eq!(first(&d, r#"{"a":1}"#).unwrap(), vec![Value::Int(1), Value::Int(7)]);
    assert!(first(&d, r#"{"b":1}"#).is_err());
    // A present null is a type mismatch, not a missing field.
    assert!(first(&d, r#"{"a":1,"b":null}"#).is_err());
    // DATETIME converts; ARRAY and STRUCT take null; struct fields are checked.
    let d = Decoder::new(&source(ddl, &["d", "l", "st"]), 0, 3, None);
    let v = first(&d, r#"{"d":1541152486013,"l":null,"st":{"x":1}}"#).unwrap();
    assert_eq!(v[0], Value::datetime_from_millis(1541152486013));
    let rows = decode(&d, r#"{"d":1541152486013,"l":null,"st":{"x":1}}"#).unwrap();
    assert!(rows[0].is_present_null(1));
    assert_eq!(v[2].as_map().unwrap().get("y"), Some(&Value::str("q")));
    assert!(first(&d, r#"{"d":"not a time","l":[],"st":{"x":1}}"#).is_err());
    assert!(first(&d, r#"{"d":1,"l":[1,null],"st":{"x":1}}"#).is_err());
    assert!(first(&d, r#"{"d":1,"l":[],"st":{"y":"a"}}"#).is_err());
    // Without STRICT_VALIDATION, missing and null fields are just absent.
    let lax = source(&ddl.replace(r#", STRICT_VALIDATION="true""#, ""), &["a", "b"]);
    let d = Decoder::new(&lax, 0, 2, None);
    assert_eq!(first(&d, r#"{"b":null}"#).unwrap(), vec![Value::Null, Value::Null]);
}
