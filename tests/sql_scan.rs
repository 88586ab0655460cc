//! SQL scan tables (issue 7 item 3): product specs pulled from the
//! database every `interval` and joined by measurements without a window;
//! changes in the database reach later joins, no event joins a spec twice,
//! also across a kill -9 under `qos: 2`.

use std::time::{Duration, Instant};

use serde_json::json;
use weir_connectors::sql_testing::{execute, mes, query, sqlite_url, Postgres};

use crate::sql::{block_on, status_sum, PushNode};

/// `(part_id, verdict)` of `spec_check`, sorted (duplicates kept).
fn verdicts(url: &str) -> Vec<(String, String)> {
    let rows = block_on(query(url, "SELECT part_id, verdict FROM spec_check ORDER BY part_id, verdict")).unwrap();
    let s = |r: &weir_runtime::Map, k: &str| r.get(k).and_then(|v| v.as_str()).map(str::to_string).unwrap_or_default();
    rows.iter().map(|r| (s(r, "part_id"), s(r, "verdict"))).collect()
}

/// The verdicts given to part `id` (one unless it was joined twice).
fn verdict_of(v: &[(String, String)], id: &str) -> Vec<String> {
    v.iter().filter(|(p, _)| p == id).map(|(_, v)| v.clone()).collect()
}

/// A measurement of a diameter.
fn diameter(id: &str, product: &str, value: f64) -> serde_json::Value {
    json!({"part_id": id, "product": product, "characteristic": "diameter", "value": value})
}

/// Pushes probes (12.07 mm, P-100) until one is judged `verdict`: the
/// scan table then holds the pull that gives it. The probes' ids go to
/// `probes`.
fn probe_until(node: &PushNode, url: &str, probes: &mut Vec<String>, verdict: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let id = format!("probe-{:03}", probes.len());
        node.push("/measure", &json!([diameter(&id, "P-100", 12.07)]));
        probes.push(id.clone());
        std::thread::sleep(Duration::from_millis(100));
        if verdicts(url).iter().any(|(p, v)| *p == id && v == verdict) {
            return;
        }
        assert!(Instant::now() < deadline, "no probe judged {verdict}: {:?}", verdicts(url));
    }
}

/// Waits (up to 60 s) until `ids` were all judged; the rows of
/// `spec_check`.
fn judged(url: &str, ids: &[&str]) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = verdicts(url);
        if ids.iter().all(|id| v.iter().any(|(p, _)| p == id)) {
            return v;
        }
        assert!(Instant::now() < deadline, "{ids:?} not all judged: {v:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node judging diameters against the product specs of `url`, read as a
/// scan table (pulled every 200 ms, RETAIN_SIZE 100) by rule `check`
/// with `options`; verdicts go to `spec_check` (no primary key: an event
/// joined twice shows up twice).
fn spec_check_node(url: &str, options: serde_json::Value) -> PushNode {
    block_on(async {
        mes::install(url).await?;
        execute(url, "CREATE TABLE spec_check (part_id VARCHAR(64), verdict VARCHAR(16))").await
    })
    .unwrap();
    let node = PushNode::start(&json!({"mes": {"url": url, "interval": 200}}));
    let s = &node.server;
    node.create_push_stream("m", "/measure");
    crate::util::created(
        s,
        "/tables",
        r#"{"sql":"CREATE TABLE spec () WITH (TYPE=\"sql\", DATASOURCE=\"product_spec\", CONF_KEY=\"mes\", RETAIN_SIZE=\"100\")"}"#,
    );
    let rule = json!({"id": "check",
        "sql": "SELECT m.part_id AS part_id, \
                CASE WHEN m.value > spec.upper_limit OR m.value < spec.lower_limit THEN 'NOK' ELSE 'OK' END AS verdict \
                FROM m INNER JOIN spec ON m.product = spec.product_id AND m.characteristic = spec.characteristic",
        "actions": [{"sql": {"url": url, "table": "spec_check"}}],
        "options": options});
    crate::util::created(s, "/rules", &rule.to_string());
    node
}

/// Widens the tolerance of P-100 diameter to 12.10 and adds a spec for
/// P-300 diameter (2.9..3.1).
fn change_specs(url: &str) {
    block_on(execute(
        url,
        "UPDATE product_spec SET upper_limit = 12.10 WHERE product_id = 'P-100' AND characteristic = 'diameter';
         INSERT INTO product_spec VALUES ('P-300', 'diameter', 3.0, 2.9, 3.1, 'mm');",
    ))
    .unwrap();
}

/// The product specs as a scan table (issue 7 item 3): `CREATE TABLE spec
/// () WITH (TYPE="sql", ...)` loads `product_spec` into the rule and
/// pulls it again every `interval`; measurements pushed over HTTP join it
/// without a window. The tolerance of P-100 diameter is widened and a
/// spec for P-300 is added in the database while the rule runs: later
/// events join the new rows, and no event ever joins a spec twice, though
/// the table has been pulled many times and RETAIN_SIZE leaves room for
/// every copy.
fn scan_table_follows_the_database(url: &str) {
    let node = spec_check_node(url, json!({}));
    let mut probes = Vec::new();
    // The table is loaded once a probe is judged (12.07 > 12.05: NOK).
    probe_until(&node, url, &mut probes, "NOK");
    let parts = [diameter("A-1", "P-100", 12.07), diameter("A-2", "P-100", 12.01), diameter("A-3", "P-300", 3.0)];
    node.push("/measure", &json!(parts));
    let v = judged(url, &["A-1", "A-2"]);
    assert_eq!(verdict_of(&v, "A-1"), ["NOK"]);
    assert_eq!(verdict_of(&v, "A-2"), ["OK"]);

    change_specs(url);
    // A later pull brings the wider band: the same 12.07 mm is OK now.
    probe_until(&node, url, &mut probes, "OK");
    let parts = [diameter("B-1", "P-100", 12.07), diameter("B-2", "P-300", 3.0), diameter("B-3", "P-300", 3.5)];
    node.push("/measure", &json!(parts));
    let v = judged(url, &["B-1", "B-2", "B-3"]);
    assert_eq!(verdict_of(&v, "B-1"), ["OK"]);
    assert_eq!(verdict_of(&v, "B-2"), ["OK"]);
    assert_eq!(verdict_of(&v, "B-3"), ["NOK"]);
    // A-3 came before P-300 had a spec: the inner join dropped it.
    assert!(verdict_of(&v, "A-3").is_empty(), "{v:?}");

    // Let more pulls happen, then check that every event was judged once.
    std::thread::sleep(Duration::from_millis(600));
    node.push("/measure", &json!([diameter("C-1", "P-100", 12.2)]));
    let v = judged(url, &["C-1"]);
    assert_eq!(verdict_of(&v, "C-1"), ["NOK"]);
    let mut ids: Vec<String> = v.iter().map(|(p, _)| p.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), v.len(), "an event joined a spec twice: {v:?}");
    // Probes pushed before the first pull found no spec; all later ones
    // were judged.
    let parts: Vec<&String> = ids.iter().filter(|p| !p.starts_with("probe-")).collect();
    assert_eq!(parts, ["A-1", "A-2", "B-1", "B-2", "B-3", "C-1"]);
    assert!(probes.iter().skip_while(|p| !ids.contains(p)).all(|p| ids.contains(p)), "{probes:?} {ids:?}");
    let st = node.server.call("GET", "/rules/check/status", None).json();
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(status_sum(&st, "exceptions_total"), 0, "{st}");
}

#[test]
fn sqlite_scan_table_follows_the_database() {
    let dir = tempfile::tempdir().unwrap();
    scan_table_follows_the_database(&sqlite_url(dir.path(), "mes.db"));
}

#[test]
fn postgres_scan_table_follows_the_database() {
    let Some(pg) = Postgres::start() else { return };
    let url = block_on(pg.create_database("mes"));
    scan_table_follows_the_database(&url);
}

/// The scan table under exactly-once checkpoints (`qos` 2): its pulls go
/// through the ingest log and its rows into the checkpoints. The node is
/// killed (SIGKILL) after some checkpoints, the specs change while it is
/// down, and after the restart (restored table, replayed pulls, new
/// pulls) an event joins the new spec once: a replayed pull replaced the
/// table as the live one did, it was not added to it.
#[test]
fn sqlite_scan_table_is_restored_and_refreshed_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "mes.db");
    let node = spec_check_node(&url, json!({"qos": 2, "checkpointInterval": 200}));
    let mut probes = Vec::new();
    probe_until(&node, &url, &mut probes, "NOK");
    // Some checkpoints with the table in them, and pulls in the log after.
    std::thread::sleep(Duration::from_millis(700));
    let node = node.restart(|| change_specs(&url));
    probe_until(&node, &url, &mut probes, "OK");
    let parts = [diameter("B-1", "P-100", 12.07), diameter("B-2", "P-300", 3.0), diameter("B-3", "P-100", 12.2)];
    node.push("/measure", &json!(parts));
    let v = judged(&url, &["B-1", "B-2", "B-3"]);
    assert_eq!(verdict_of(&v, "B-1"), ["OK"]);
    assert_eq!(verdict_of(&v, "B-2"), ["OK"]);
    assert_eq!(verdict_of(&v, "B-3"), ["NOK"]);
    let st = node.server.call("GET", "/rules/check/status", None).json();
    assert_eq!(st["status"], "running", "{st}");
}
