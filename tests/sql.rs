//! SQL sources and sinks in a running `weir serve` (issue 7), against an
//! SQLite file and a PostgreSQL server of the test's own (skipped with a
//! message when PostgreSQL is not installed). The connectors' own tests
//! (`connectors/src/sql/tests.rs`) cover row kinds, injection, failures
//! and lookups; this one checks the wiring and that a restarted node
//! continues the incremental pull instead of reading the table again.

use std::time::{Duration, Instant};

use serde_json::json;
use weir_connectors::sql_testing::{execute, mes, query, sqlite_url, Postgres};

use crate::util::Server;

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// The `order_id`s in `machine_job`, sorted.
fn jobs(url: &str) -> Vec<i64> {
    let rows = block_on(query(url, "SELECT order_id FROM machine_job ORDER BY order_id")).unwrap();
    rows.iter().filter_map(|r| r.get("order_id").and_then(|v| v.as_i64())).collect()
}

/// Waits (up to 60 s) until `machine_job` holds `order_id`.
fn wait_for_job(url: &str, order_id: i64) {
    let start = Instant::now();
    while !jobs(url).contains(&order_id) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "order {order_id} never reached machine_job: {:?}",
            jobs(url)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Work orders pulled incrementally from the MES database; the running
/// ones are written to `machine_job` by a rule; after a kill -9 and a
/// restart, only the orders changed since are read.
fn running_orders_flow_into_a_table_and_resume_after_restart(url: &str) {
    block_on(async {
        mes::install(url).await.unwrap();
        // No primary key: a re-read order would show up twice.
        execute(url, "CREATE TABLE machine_job (order_id INTEGER, machine_id VARCHAR(32), product_id VARCHAR(32))")
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("sources")).unwrap();
    let conf = json!({"default": {"interval": 50},
        "mes": {"url": url, "internalSqlQueryCfg": {"table": "work_order", "indexField": "updated_seq", "indexValue": 0}}});
    std::fs::write(etc.join("sources/sql.yaml"), serde_json::to_string(&conf).unwrap()).unwrap();
    let data = dir.path().join("data");
    let args = ["--etc-dir", etc.to_str().unwrap()];

    let s = Server::start_with(&data, &args);
    let stream = r#"{"sql":"CREATE STREAM orders () WITH (TYPE=\"sql\", CONF_KEY=\"mes\")"}"#;
    let r = s.call("POST", "/streams", Some(stream));
    assert_eq!(r.status, 201, "{}", r.body);
    let rule = json!({"id": "jobs",
        "sql": "SELECT order_id, machine_id, product_id FROM orders WHERE status = 'running'",
        "actions": [{"sql": {"url": url, "table": "machine_job"}}]});
    let r = s.call("POST", "/rules", Some(&rule.to_string()));
    assert_eq!(r.status, 201, "{}", r.body);
    wait_for_job(url, 1002);
    assert_eq!(jobs(url), [1001, 1002]);
    s.kill();

    block_on(execute(
        url,
        "UPDATE work_order SET status = 'running', updated_seq = 5 WHERE order_id = 1003;
         INSERT INTO work_order VALUES (1004, 'M1', 'P-200', 10, 'running', 4);",
    ))
    .unwrap();
    let s = Server::start_with(&data, &args);
    wait_for_job(url, 1003);
    // A last order marks the end: once it is written, so is all before it.
    block_on(execute(url, "INSERT INTO work_order VALUES (1005, 'M2', 'P-100', 5, 'running', 6)")).unwrap();
    wait_for_job(url, 1005);
    assert_eq!(jobs(url), [1001, 1002, 1003, 1004, 1005]);
    let status = s.call("GET", "/rules/jobs/status", None).json();
    assert_eq!(status["status"], "running", "{status}");
}

#[test]
fn sqlite_orders_flow_through_a_rule_and_resume_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    running_orders_flow_into_a_table_and_resume_after_restart(&sqlite_url(dir.path(), "mes.db"));
}

#[test]
fn postgres_orders_flow_through_a_rule_and_resume_after_restart() {
    let Some(pg) = Postgres::start() else { return };
    let url = block_on(pg.create_database("mes"));
    running_orders_flow_into_a_table_and_resume_after_restart(&url);
}
