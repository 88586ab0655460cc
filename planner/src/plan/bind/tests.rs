//! Plan-time errors name the position and the problem; plans bind columns
//! to slots.

use crate::functions::{FunctionKind, FunctionLookup, FunctionSignature};
use crate::{parse_statement, plan, Catalog, Error, PExpr, ProjectField, RuleOptions, Statement};

/// A few functions, as the runtime registry would describe them.
struct Functions;

impl FunctionLookup for Functions {
    fn signature(&self, name: &str) -> Option<FunctionSignature> {
        let (kind, min, max) = match name.to_ascii_lowercase().as_str() {
            "count" | "avg" | "sum" => (FunctionKind::Aggregate, 1, Some(1)),
            "lag" => (FunctionKind::Analytic, 1, Some(4)),
            "abs" => (FunctionKind::Scalar, 1, Some(1)),
            "unnest" => (FunctionKind::SetReturning, 1, Some(1)),
            _ => return None,
        };
        Some(FunctionSignature { name: name.to_ascii_lowercase(), kind, min_args: min, max_args: max })
    }
}

fn catalog() -> Catalog {
    let mut c = Catalog::new();
    for ddl in [
        r#"CREATE STREAM demo (color STRING, size BIGINT, ts BIGINT) WITH (DATASOURCE="demo", TIMESTAMP="ts")"#,
        r#"CREATE STREAM other (id BIGINT) WITH (DATASOURCE="other")"#,
        r#"CREATE STREAM free () WITH (DATASOURCE="free")"#,
        r#"CREATE TABLE spec (id BIGINT, hi BIGINT) WITH (TYPE="memory", KIND="lookup", KEY="id", DATASOURCE="s")"#,
    ] {
        let Statement::Create(def) = parse_statement(ddl).unwrap() else { unreachable!() };
        c.insert(*def);
    }
    c
}

fn plan_err(sql: &str) -> String {
    match plan("r", sql, &catalog(), &RuleOptions::default(), &Functions) {
        Ok(_) => panic!("{sql} planned"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_problem_and_position() {
    let e = plan_err("SELECT nope FROM demo");
    assert!(e.contains("unknown field nope") && e.contains("line 1, column 8"), "{e}");
    assert!(plan_err("SELECT a FROM missing").contains("missing not found"));
    assert!(plan_err("SELECT color FROM demo WHERE count(*) > 1").contains("not allowed"));
    assert!(plan_err("SELECT color FROM demo GROUP BY color").contains("should be used with window"));
    assert!(plan_err("SELECT size FROM demo GROUP BY TUMBLINGWINDOW(ss, 1) HAVING size > 1").contains("HAVING"));
    assert!(plan_err("SELECT tumblingwindow(ss, 1) FROM demo").contains("only allowed in GROUP BY"));
    assert!(plan_err("SELECT frob(size) FROM demo").contains("function frob not found"));
    assert!(plan_err("SELECT abs(size, 1) FROM demo").contains("expect 1 arguments but found 2"));
    assert!(plan_err("SELECT * FROM demo INNER JOIN other ON demo.size = other.id").contains("window"));
    assert!(plan_err("SELECT * FROM demo LEFT JOIN spec ON spec.hi > 1").contains("ON equality"));
    assert!(plan_err("SELECT color + 1 FROM demo").contains("invalid operation string + bigint"));
    assert!(plan_err("SELECT count(sum(size)) FROM demo GROUP BY TUMBLINGWINDOW(ss, 1)").contains("nested"));
    assert!(plan_err("SELECT size FROM demo GROUP BY COUNTWINDOW(2, 3)").contains("hop 3 must not exceed size 2"));
    let e = plan(
        "r",
        "SELECT size FROM free",
        &catalog(),
        &RuleOptions { is_event_time: true, ..Default::default() },
        &Functions,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Plan { .. }) && e.to_string().contains("no TIMESTAMP"), "{e}");
}

#[test]
fn columns_bind_to_slots_and_names_follow_ekuiper() {
    let p = plan(
        "r",
        "SELECT size * 2, abs(size), color AS c, lag(size) FROM demo",
        &catalog(),
        &RuleOptions::default(),
        &Functions,
    )
    .unwrap();
    assert_eq!(p.sources[0].columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["size", "color"]);
    let names: Vec<&str> = p
        .project
        .iter()
        .map(|f| match f {
            ProjectField::Expr { name, .. } => name.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(names, vec!["kuiper_field_0", "abs", "c", "lag"]);
    assert_eq!(p.analytics.len(), 1);
    // The analytic result has its own slot, read by the projection.
    let ProjectField::Expr { expr: PExpr::Slot(s), .. } = &p.project[3] else { panic!() };
    assert_eq!(*s, p.analytics[0].slot);
}

#[test]
fn plans_round_trip_through_serde() {
    let p = plan(
        "r",
        "SELECT color, count(*) AS c FROM demo WHERE size > 1 GROUP BY color, TUMBLINGWINDOW(ss, 10) ORDER BY c DESC",
        &catalog(),
        &RuleOptions::default(),
        &Functions,
    )
    .unwrap();
    let json = serde_json::to_string(&p).unwrap();
    let back: crate::PhysicalPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    // Stable ids: planning again gives the same operators.
    let again = plan(
        "r",
        "SELECT color, count(*) AS c FROM demo WHERE size > 1 GROUP BY color, TUMBLINGWINDOW(ss, 10) ORDER BY c DESC",
        &catalog(),
        &RuleOptions::default(),
        &Functions,
    )
    .unwrap();
    assert_eq!(again.operators, p.operators);
}
