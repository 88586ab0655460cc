use super::*;
use crate::ast::*;
use crate::types::DataType;

fn select(sql: &str) -> Select {
    match parse_statement(sql).unwrap() {
        Statement::Select(s) => *s,
        s => panic!("not a select: {s:?}"),
    }
}

#[test]
fn create_stream_with_types_and_options() {
    let sql = r#"CREATE STREAM demo (id BIGINT, tags ARRAY(STRING), addr STRUCT(st STRING, n BIGINT), t FLOAT DEFAULT 12.0,) WITH (DATASOURCE="demo", FORMAT="json", TIMESTAMP="ts", SHARED=TRUE, RETAIN_SIZE="10");"#;
    let Statement::Create(def) = parse_statement(sql).unwrap() else { panic!() };
    assert_eq!(def.name, "demo");
    let f = def.fields.as_ref().unwrap();
    assert_eq!(f.len(), 4);
    assert_eq!(f[1].data_type, DataType::Array(Box::new(DataType::String)));
    assert_eq!(f[3].default.as_deref(), Some("12.0"));
    assert_eq!(def.options.timestamp.as_deref(), Some("ts"));
    assert!(def.options.shared);
    assert_eq!(def.options.retain_size, Some(10));
}

#[test]
fn schemaless_and_unknown_option() {
    let Statement::Create(def) = parse_statement(r#"CREATE TABLE t () WITH (TYPE="file")"#).unwrap() else { panic!() };
    assert!(def.fields.is_none());
    assert_eq!(def.retain_size(), 9999);
    let err = parse_statement(r#"CREATE STREAM s () WITH (FOO="x")"#).unwrap_err();
    assert!(err.to_string().contains("unknown option keys"), "{err}");
}

#[test]
fn select_with_window_filter_and_over() {
    let s = select(
        "SELECT color, count(*) AS c FROM demo WHERE size > 2 GROUP BY color, TUMBLINGWINDOW(ss, 10) FILTER (WHERE size < 9) HAVING count(*) > 1 ORDER BY c DESC LIMIT 3",
    );
    assert_eq!(s.fields.len(), 2);
    let w = s.window.unwrap();
    assert_eq!(w.kind, WindowKind::Tumbling);
    assert!(w.filter.is_some());
    assert_eq!(s.dimensions.len(), 1);
    assert!(s.order_by[0].descending);
    assert_eq!(s.limit, Some(3));
}

#[test]
fn precedence_and_paths() {
    let s = select("SELECT a + b * 2 > 3 AND NOT c OR d, x->y->z, arr[0], arr[1:3], s.col FROM s");
    let SelectField::Expr { expr, .. } = &s.fields[0] else { panic!() };
    let Expr::Binary { op: BinOp::Or, left, .. } = expr else { panic!("{expr:?}") };
    assert!(matches!(**left, Expr::Binary { op: BinOp::And, .. }));
    let SelectField::Expr { expr, .. } = &s.fields[1] else { panic!() };
    assert!(matches!(expr, Expr::Arrow { key, .. } if key == "z"));
    let SelectField::Expr { expr, .. } = &s.fields[3] else { panic!() };
    assert!(matches!(expr, Expr::Slice { .. }));
    let SelectField::Expr { expr, .. } = &s.fields[4] else { panic!() };
    assert!(matches!(expr, Expr::Column { qualifier: Some(q), name, .. } if q == "s" && name == "col"));
}

#[test]
fn in_between_like_case() {
    let s = select(
        "SELECT CASE WHEN a IN (1,2) THEN 'x' ELSE 'y' END, b NOT BETWEEN 1 AND 5, c LIKE 'a%', d NOT IN arr FROM s",
    );
    assert_eq!(s.fields.len(), 4);
    let SelectField::Expr { expr, .. } = &s.fields[1] else { panic!() };
    assert!(matches!(expr, Expr::Between { negated: true, .. }));
    let SelectField::Expr { expr, .. } = &s.fields[3] else { panic!() };
    assert!(matches!(expr, Expr::In { negated: true, parenthesised: false, .. }));
}

#[test]
fn analytic_over_partition_when() {
    let s = select("SELECT lag(temp) OVER (PARTITION BY id WHEN temp > 1) AS l FROM s");
    let SelectField::Expr { expr: Expr::Call { over: Some(o), .. }, .. } = &s.fields[0] else { panic!() };
    assert_eq!(o.partition_by.len(), 1);
    assert!(o.when.is_some());
}

#[test]
fn joins_and_bare_join() {
    let s =
        select("SELECT * FROM a INNER JOIN b ON a.id = b.id LEFT JOIN c ON a.x = c.x GROUP BY TUMBLINGWINDOW(ss, 1)");
    assert_eq!(s.joins.len(), 2);
    assert_eq!(s.joins[1].kind, JoinKind::Left);
    let err = parse_statement("SELECT * FROM a JOIN b ON a.id = b.id").unwrap_err();
    assert!(err.to_string().contains("bare JOIN"), "{err}");
}

#[test]
fn wildcard_except_replace_and_invisible() {
    let s = select("SELECT * EXCEPT(a, b) REPLACE(c + 1 AS c), d INVISIBLE, s.* FROM s");
    assert!(
        matches!(&s.fields[0], SelectField::Wildcard { except, replace, .. } if except.len() == 2 && replace.len() == 1)
    );
    assert!(matches!(&s.fields[1], SelectField::Expr { invisible: true, .. }));
    assert!(matches!(&s.fields[2], SelectField::Wildcard { qualifier: Some(q), .. } if q == "s"));
}

#[test]
fn errors_have_positions() {
    let err = parse_statement("SELECT a,\n FROM s").unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    let err = parse_statement("SELECT a FROM").unwrap_err();
    assert!(err.to_string().contains("expected identifier"), "{err}");
    assert!(parse_statement("SELECT a FROM s WHERE").is_err());
    assert!(parse_statement("SELECT (a FROM s").is_err());
}

#[test]
fn drop_describe_show() {
    assert_eq!(parse_statement("DROP STREAM s").unwrap(), Statement::Drop(StreamKind::Stream, "s".into()));
    assert_eq!(parse_statement("describe table t").unwrap(), Statement::Describe(StreamKind::Table, "t".into()));
    assert_eq!(parse_statement("SHOW STREAMS").unwrap(), Statement::Show(StreamKind::Stream));
}
