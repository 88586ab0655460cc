//! The `sql` source: a query run every `interval`, its rows sent to the
//! rule as decoded objects (no `FORMAT`).
//!
//! Properties (`etc/sources/sql.yaml` sections, `CONF_KEY`, `EXTRA`): `url`
//! (alias `dburl`), `interval` (10 s), and one of
//!
//! * `internalSqlQueryCfg {table, limit, indexField, indexValue,
//!   indexFieldType, dateTimeFormat}`: `SELECT * FROM table WHERE
//!   indexField > ? ORDER BY indexField ASC LIMIT limit` (no `WHERE`
//!   before the first index value is known, no `ORDER BY` without an
//!   index field, no `LIMIT` when 0). Without `table`, the stream's
//!   `DATASOURCE` names it.
//! * `templateSqlQueryCfg {TemplateSql, indexField, indexValue, ...}`:
//!   the statement as written, where each `{{.indexField}}` (quoted as
//!   `'{{.x}}'` or not) becomes a bound parameter. eKuiper renders a Go
//!   template into the SQL text; weir binds instead, so only `{{.name}}`
//!   placeholders of the index field are accepted.
//!
//! With an index field, the largest value read so far is the next query's
//! lower bound; it is written to
//! `<data_dir>/sql/rules/<rule>/<stream>.offset.json` (one per rule: each
//! rule reading the stream pulls on its own) once the rule took the rows,
//! and read back at start, so a restart continues where the last run
//! stopped (at-least-once: rows sent but not
//! yet recorded when the node died are read again). The file is ignored
//! when the URL, table, template or index field changed. `indexFieldType:
//! "DATETIME"` parses `indexValue` with `dateTimeFormat` (eKuiper's
//! `YYYY-MM-dd HH:mm:ss` style); SQLite compares such indexes as text in
//! that format.
//!
//! As a scan table (`CREATE TABLE ... WITH (TYPE="sql")`, KIND scan) the
//! source refreshes the table every `interval`. Without an index field each
//! pull is the table's whole content: its rows go out in one send behind a
//! snapshot marker ([`Payload::snapshot_marker`]) and replace the table's
//! rows at once (the latest RETAIN_SIZE of them), so a row changed in the
//! database shows up in later joins, a deleted one goes, and repeated pulls
//! do not pile up copies. eKuiper's table processor instead appends every
//! pulled row to a window of the latest RETAIN_SIZE rows (default 1), so a
//! RETAIN_SIZE above the result size repeats rows; the two agree when
//! RETAIN_SIZE is the result size. With an index field each pull brings only
//! the new rows, which are added to the latest RETAIN_SIZE as in eKuiper: a
//! row updated in the database (with a new index value) is then in the
//! table twice, old and new, until RETAIN_SIZE pushes the old one out, so
//! reference data that changes in place is better pulled without an index.
//!
//! A failed pull is logged and tried again at the next interval (a table
//! keeps its rows meanwhile); the pool reconnects by itself.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use weir_planner::{StreamDef, StreamKind};
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{Source, SourceSender};
use weir_runtime::{Map, Value};

use super::db::{Db, DbError};
use super::offset::IndexStore;
use super::{check_ident, check_table, field, pg, sqlite, DbConfig, Dialect};
use crate::outlet::Outlet;
use crate::props::{invalid, Props};
use crate::{Environment, Result, SourceContext};

/// Rows handed to the rule in one `send` at most.
const MAX_BATCH: usize = 512;

/// A stream or scan table pulled from a database.
pub(crate) struct SqlSource {
    db: Db,
    query: Query,
    interval: Duration,
    index: Option<Index>,
    store: Option<IndexStore>,
    /// Each pull is a scan table's whole content (see the module doc).
    snapshot: bool,
}

/// The statement to run.
#[derive(Debug, Clone, PartialEq)]
enum Query {
    /// `internalSqlQueryCfg`.
    Table { table: String, limit: u64 },
    /// `templateSqlQueryCfg`.
    Template(Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Text(String),
    /// `{{.name}}`: the index value.
    Index,
}

/// The incremental column and the largest value read from it.
#[derive(Debug, Clone, PartialEq)]
struct Index {
    field: String,
    value: Option<Value>,
    /// chrono format of `dateTimeFormat`, for DATETIME indexes.
    datetime_format: Option<String>,
}

impl SqlSource {
    /// # Errors
    /// Missing URL or query configuration, invalid names, a template with
    /// unsupported placeholders, an unparsable `indexValue`.
    pub(crate) fn new(def: &StreamDef, ctx: &SourceContext, env: &Environment) -> Result<SqlSource> {
        let p = env.source_props("sql", def.options.conf_key.as_deref(), def.options.extra.as_deref())?;
        let mut s = SqlSource::from_props(&p, def.options.datasource.as_deref().unwrap_or(""))?;
        if s.index.is_some() {
            let store = IndexStore::new(env.data_dir.join("sql"), &ctx.rule_id, &def.name, s.fingerprint());
            if let Some(v) = store.load() {
                if let Some(i) = s.index.as_mut() {
                    i.value = Some(v);
                }
            }
            s.store = Some(store);
        }
        s.snapshot = def.kind == StreamKind::Table && !def.is_lookup() && s.index.is_none();
        Ok(s)
    }

    pub(crate) fn from_props(p: &Props, datasource: &str) -> Result<SqlSource> {
        let config = DbConfig::from_props(p)?;
        let interval = Duration::from_millis(p.duration_ms("interval")?.unwrap_or(10_000).max(1));
        let (query, cfg_name, cfg) = match (nested(p, "templateSqlQueryCfg")?, nested(p, "internalSqlQueryCfg")?) {
            (Some(t), _) => {
                let sql = t
                    .required_str("TemplateSql")
                    .map_err(|_| invalid("templateSqlQueryCfg.TemplateSql", "is required".into()))?;
                (Query::Template(parse_template(sql)?), "templateSqlQueryCfg", t)
            }
            (None, Some(i)) => {
                let table = match i.str("table")? {
                    Some(t) if !t.is_empty() => t.to_string(),
                    _ if !datasource.is_empty() => datasource.to_string(),
                    _ => return Err(invalid("internalSqlQueryCfg.table", "is required".into())),
                };
                check_table("internalSqlQueryCfg.table", &table)?;
                let limit = match i.int("limit")? {
                    None => 0,
                    Some(n) if n >= 0 => n as u64,
                    Some(n) => {
                        return Err(invalid("internalSqlQueryCfg.limit", format!("must not be negative, got {n}")))
                    }
                };
                (Query::Table { table, limit }, "internalSqlQueryCfg", i)
            }
            (None, None) if !datasource.is_empty() => {
                check_table("DATASOURCE", datasource)?;
                (Query::Table { table: datasource.to_string(), limit: 0 }, "", Props::default())
            }
            (None, None) => {
                return Err(invalid(
                    "internalSqlQueryCfg",
                    "or templateSqlQueryCfg (or a DATASOURCE table) is required".into(),
                ))
            }
        };
        let index = index_spec(&cfg, cfg_name)?;
        if let Query::Template(segments) = &query {
            if segments.contains(&Segment::Index) && index.as_ref().and_then(|i| i.value.as_ref()).is_none() {
                return Err(invalid(
                    &format!("{cfg_name}.indexValue"),
                    "is required when TemplateSql has {{.indexField}} placeholders".into(),
                ));
            }
        }
        Ok(SqlSource { db: Db::open(&config), query, interval, index, store: None, snapshot: false })
    }

    /// What identifies the query: a persisted index of another query is
    /// not this one's.
    fn fingerprint(&self) -> String {
        format!("{:?}|{:?}|{:?}", self.db, self.query, self.index.as_ref().map(|i| &i.field))
    }

    /// The statement and parameters of the next pull.
    fn statement(&self) -> (String, Vec<Value>) {
        let dialect = self.db.dialect();
        let bound = self.index.as_ref().and_then(|i| i.value.as_ref().map(|v| i.bind(v, dialect)));
        match &self.query {
            Query::Table { table, limit } => {
                let mut sql = format!("SELECT * FROM {table}");
                let mut params = Vec::new();
                if let Some(index) = &self.index {
                    if let Some(v) = bound {
                        sql.push_str(&format!(" WHERE {} > {}", index.field, dialect.param(1)));
                        params.push(v);
                    }
                    sql.push_str(&format!(" ORDER BY {} ASC", index.field));
                }
                if *limit > 0 {
                    sql.push_str(&format!(" LIMIT {limit}"));
                }
                (sql, params)
            }
            Query::Template(segments) => {
                let mut sql = String::new();
                let mut params = Vec::new();
                for s in segments {
                    match s {
                        Segment::Text(t) => sql.push_str(t),
                        Segment::Index => {
                            params.push(bound.clone().unwrap_or(Value::Null));
                            sql.push_str(&dialect.param(params.len()));
                        }
                    }
                }
                (sql, params)
            }
        }
    }

    /// One query.
    pub(crate) async fn pull(&self) -> std::result::Result<Vec<Map>, DbError> {
        let (sql, params) = self.statement();
        self.db.query(&sql, &params).await
    }

    /// Raises the index to the largest value in `rows`; true when it
    /// changed.
    pub(crate) fn advance(&mut self, rows: &[Map]) -> bool {
        let Some(index) = self.index.as_mut() else { return false };
        let mut changed = false;
        for row in rows {
            let Some(v) = field(row, &index.field) else { continue };
            if v.is_null() {
                continue;
            }
            let greater = match &index.value {
                None => true,
                Some(cur) => v.compare(cur).is_some_and(|o| o.is_gt()) || cur.compare(v).is_none(),
            };
            if greater {
                index.value = Some(v.clone());
                changed = true;
            }
        }
        changed
    }

    /// Pulls until `out` stops.
    pub(crate) async fn pump(mut self, mut out: impl Outlet) {
        loop {
            match self.pull().await {
                // One send, so that the table is swapped whole: an event
                // never joins part of a pull.
                Ok(rows) if self.snapshot => {
                    let ts = out.now_ms();
                    let mut batch = Vec::with_capacity(rows.len() + 1);
                    batch.push(Payload::snapshot_marker(ts));
                    batch.extend(rows.into_iter().map(|r| Payload { data: PayloadData::Object(r), ts, meta: None }));
                    if !out.send(batch).await {
                        return;
                    }
                }
                Ok(rows) => {
                    for chunk in rows.chunks(MAX_BATCH) {
                        let ts = out.now_ms();
                        let batch = chunk
                            .iter()
                            .map(|r| Payload { data: PayloadData::Object(r.clone()), ts, meta: None })
                            .collect();
                        if !out.send(batch).await {
                            return;
                        }
                        if self.advance(chunk) {
                            self.persist().await;
                        }
                    }
                }
                Err(e) => tracing::warn!("sql source: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = out.stopped() => return,
            }
        }
    }

    async fn persist(&self) {
        if let (Some(store), Some(v)) = (&self.store, self.index.as_ref().and_then(|i| i.value.as_ref())) {
            if let Err(e) = store.save(v).await {
                tracing::warn!("sql source: cannot record the index value: {e}");
            }
        }
    }

    /// The current index value.
    #[cfg(test)]
    pub(crate) fn index_value(&self) -> Option<&Value> {
        self.index.as_ref()?.value.as_ref()
    }
}

impl Source for SqlSource {
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.pump(out))
    }
}

impl Index {
    /// The value to bind: SQLite keeps datetimes as text, so a datetime
    /// index is written in the column's format there.
    fn bind(&self, v: &Value, dialect: Dialect) -> Value {
        match (v, dialect) {
            (Value::Datetime(t), Dialect::Sqlite) => match &self.datetime_format {
                Some(f) => Value::str(t.format(f).to_string()),
                None => Value::str(sqlite::datetime_text(t)),
            },
            _ => v.clone(),
        }
    }
}

/// A nested property object (`internalSqlQueryCfg`...).
fn nested(p: &Props, name: &str) -> Result<Option<Props>> {
    match p.get(name) {
        None => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => Ok(Some(Props::new(v))),
        Some(v) => Err(invalid(name, format!("expects an object, got {v}"))),
    }
}

fn index_spec(cfg: &Props, cfg_name: &str) -> Result<Option<Index>> {
    let name = |k: &str| format!("{cfg_name}.{k}");
    let Some(field) = cfg.str("indexField")?.filter(|f| !f.is_empty()) else { return Ok(None) };
    check_ident(&name("indexField"), field)?;
    let is_datetime = cfg.str("indexFieldType")?.is_some_and(|t| t.eq_ignore_ascii_case("datetime"));
    let datetime_format = match cfg.str("dateTimeFormat")? {
        Some(f) if !f.is_empty() => Some(chrono_format(f)),
        _ => None,
    };
    let value = match cfg.get("indexValue") {
        None => None,
        Some(serde_json::Value::String(s)) if s.is_empty() => None,
        Some(serde_json::Value::String(s)) if is_datetime => {
            let parsed = match &datetime_format {
                Some(f) => parse_with(s, f),
                None => pg::parse_datetime(s),
            };
            Some(Value::Datetime(
                parsed
                    .ok_or_else(|| invalid(&name("indexValue"), format!("{s:?} does not match the dateTimeFormat")))?,
            ))
        }
        Some(v) => Some(Value::from_json(v.clone(), true)),
    };
    Ok(Some(Index { field: field.to_string(), value, datetime_format: datetime_format.filter(|_| is_datetime) }))
}

/// Parses `s` with a chrono format; a format without a time reads midnight,
/// and times without a zone are UTC.
fn parse_with(s: &str, f: &str) -> Option<weir_runtime::value::Datetime> {
    if let Ok(t) = chrono::DateTime::parse_from_str(s, f) {
        return Some(t);
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
        return Some(t.and_utc().fixed_offset());
    }
    NaiveDate::parse_from_str(s, f).ok().map(|d| d.and_time(NaiveTime::MIN).and_utc().fixed_offset())
}

/// Converts eKuiper's date pattern (`YYYY-MM-dd HH:mm:ss.SSS`) to chrono's.
fn chrono_format(pattern: &str) -> String {
    const TOKENS: [(&str, &str); 14] = [
        ("YYYY", "%Y"),
        ("yyyy", "%Y"),
        ("YY", "%y"),
        ("yy", "%y"),
        ("MM", "%m"),
        ("dd", "%d"),
        ("HH", "%H"),
        ("hh", "%I"),
        ("mm", "%M"),
        ("ss", "%S"),
        ("SSS", "%3f"),
        ("a", "%p"),
        ("Z", "%z"),
        ("%", "%%"),
    ];
    let mut out = String::new();
    let mut rest = pattern;
    'outer: while !rest.is_empty() {
        for (from, to) in TOKENS {
            if let Some(r) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Splits `TemplateSql` at its `{{.field}}` placeholders.
///
/// # Errors
/// Any other template syntax: weir binds values, it does not render them
/// into SQL text.
fn parse_template(sql: &str) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            return Err(invalid("templateSqlQueryCfg.TemplateSql", "unclosed {{".into()));
        };
        let inner = rest[start + 2..start + len].trim();
        let Some(name) = inner.strip_prefix('.').filter(|n| super::valid_ident(n)) else {
            return Err(invalid(
                "templateSqlQueryCfg.TemplateSql",
                format!("only {{{{.indexField}}}} placeholders are supported, got {{{{{inner}}}}}"),
            ));
        };
        let mut text = &rest[..start];
        let mut after = &rest[start + len + 2..];
        // '{{.x}}' is the Go way to write a string literal; a bound
        // parameter needs no quotes.
        if text.ends_with('\'') && after.starts_with('\'') {
            text = &text[..text.len() - 1];
            after = &after[1..];
        }
        if !text.is_empty() {
            out.push(Segment::Text(text.to_string()));
        }
        let _ = name;
        out.push(Segment::Index);
        rest = after;
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn templates_bind_the_index() {
        let segs = parse_template("select * from t where id > '{{ .id }}' and x = 1").unwrap();
        assert_eq!(
            segs,
            vec![
                Segment::Text("select * from t where id > ".into()),
                Segment::Index,
                Segment::Text(" and x = 1".into())
            ]
        );
        assert!(parse_template("select {{if .x}}1{{end}}").is_err());
        assert!(parse_template("select {{.x").is_err());
    }

    #[test]
    fn ekuiper_date_patterns() {
        assert_eq!(chrono_format("YYYY-MM-dd HH:mm:ss.SSS"), "%Y-%m-%d %H:%M:%S.%3f");
        let t = parse_with("2022-04-21 10:23:55", &chrono_format("YYYY-MM-dd HH:mm:ss")).unwrap();
        assert_eq!(t.to_rfc3339(), "2022-04-21T10:23:55+00:00");
    }
}
