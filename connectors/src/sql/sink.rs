//! The `sql` sink: writes rows into a table.
//!
//! Properties: `url` (alias `dburl`), `table` (required), `fields` (the
//! columns to write, a missing one is NULL; default: every key of each
//! row), `tableDataField` / `dataField` (write the rows nested under that
//! key), `rowkindField` + `keyField` (each row says what to do:
//! `insert` (also when the field is absent), `update`, `upsert`
//! (`INSERT ... ON CONFLICT (keyField) DO UPDATE`, which needs a unique
//! index on the key) or `delete`), and weir's `retryCount` (3) and
//! `retryInterval` (1 s, doubled per attempt up to 30 s). The rowkind field
//! is not written as a column unless `fields` names it.
//!
//! It goes through the common sink layer like the memory sink, reading the
//! rows ([`Outgoing::value`]) rather than encoded bytes; `fields` is
//! handled here, not by that layer, so that it cannot drop the rowkind
//! field before the sink sees it.
//!
//! One emission is one transaction: runs of plain inserts become multi-row
//! `INSERT ... VALUES (...), (...)` statements, other row kinds one
//! statement per row. Every value is a bound parameter; column names come
//! from `fields` or the rows' keys and must match `[A-Za-z_][A-Za-z0-9_]*`
//! (a row with another key is refused). When the database refuses the
//! batch (a constraint, a type), the rows are written one by one so that
//! only the bad ones fail.
//!
//! A database outage (lost connection, refused connection, timeout): the
//! emission is retried `retryCount` times, waiting `retryInterval`
//! doubled per attempt (by default 1 s, 2 s, 4 s: about 7 s in all).
//! Meanwhile it is held, later emissions queue up behind it in order and,
//! once the layer's queue is full, the rule slows down (backpressure).
//! * Database back within the retries: the held rows are written, then
//!   the queued ones, in order, each once (a failed attempt's transaction
//!   was rolled back). The one exception: a connection lost during the
//!   `COMMIT` itself leaves it unknown whether the batch was written, and
//!   the retry may then write it a second time.
//! * Retries exhausted: the emission is given up. Its rows are not
//!   written, and the failure is counted on the sink (`exceptions_total`,
//!   `last_exception` "N rows not written to T: ...") when the next
//!   emission arrives, as eKuiper drops a failed message of a sink without
//!   `enableCache`. Raise `retryCount` to ride out longer outages.
//!
//! Rows that arrive after the database came back are written as usual:
//! the pool drops connections that failed and opens new ones.

use std::time::Duration;

use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::{Map, Value};

use super::db::{Db, DbError, Statement};
use super::{check_ident, check_table, valid_ident, DbConfig, Dialect};
use crate::props::{invalid, Props};
use crate::transform::{Outgoing, SinkConnector};
use crate::Result;

/// Rows per multi-row `INSERT` at most.
const MAX_INSERT_ROWS: usize = 500;

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Builds the sink with the common layer around it.
///
/// # Errors
/// Invalid sink or common properties.
pub(crate) fn build(props: &serde_json::Value) -> Result<Box<dyn Sink>> {
    let sink = SqlSink::new(&Props::new(props))?;
    let mut common = props.clone();
    if let Some(m) = common.as_object_mut() {
        m.retain(|k, _| !k.eq_ignore_ascii_case("fields"));
    }
    crate::transformed(&common, sink)
}

/// Writes rows into a table.
pub(crate) struct SqlSink {
    db: Db,
    table: String,
    fields: Vec<String>,
    rowkind_field: Option<String>,
    key_field: Option<String>,
    retry_count: u32,
    retry_interval: Duration,
}

/// What a row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Insert,
    Update,
    Upsert,
    Delete,
}

/// One row's write.
#[derive(Debug, Clone, PartialEq)]
struct RowWrite {
    action: Action,
    columns: Vec<String>,
    values: Vec<Value>,
    key: Option<Value>,
}

impl SqlSink {
    /// # Errors
    /// No URL or table, invalid table/field/key names, `rowkindField`
    /// without `keyField`.
    pub(crate) fn new(p: &Props) -> Result<SqlSink> {
        let config = DbConfig::from_props(p)?;
        let table = p.required_str("table")?.to_string();
        check_table("table", &table)?;
        let fields = p.str_list("fields")?.unwrap_or_default();
        for f in &fields {
            check_ident("fields", f)?;
        }
        let rowkind_field = p.str("rowkindField")?.filter(|s| !s.is_empty()).map(str::to_string);
        let key_field = p.str("keyField")?.filter(|s| !s.is_empty()).map(str::to_string);
        if let Some(k) = &key_field {
            check_ident("keyField", k)?;
        }
        if rowkind_field.is_some() && key_field.is_none() {
            return Err(invalid("keyField", "is required when rowkindField is set".into()));
        }
        let retry_count = match p.int("retryCount")? {
            None => 3,
            Some(n) if (0..=1000).contains(&n) => n as u32,
            Some(n) => return Err(invalid("retryCount", format!("must be 0..=1000, got {n}"))),
        };
        Ok(SqlSink {
            db: Db::open(&config),
            table,
            fields,
            rowkind_field,
            key_field,
            retry_count,
            retry_interval: Duration::from_millis(p.duration_ms("retryInterval")?.unwrap_or(1_000)),
        })
    }

    /// Writes the rows of one message; an error names the rows that
    /// could not be written.
    pub(crate) async fn write(&self, rows: &[Value]) -> std::result::Result<(), SinkError> {
        let mut errors = Vec::new();
        let mut writes = Vec::with_capacity(rows.len());
        for row in rows {
            match row {
                Value::Map(m) => match self.row_write(m) {
                    Ok(Some(w)) => writes.push(w),
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                },
                Value::Null => {}
                other => errors.push(format!("sql sink expects rows as maps, got {}", other.type_name())),
            }
        }
        if !writes.is_empty() {
            let dialect = self.db.dialect();
            let batched = self.statements(&writes, dialect);
            match self.execute_with_retry(batched, true).await {
                Ok(_) => {}
                Err(e) if !e.is_retryable() && writes.len() > 1 => {
                    tracing::debug!("sql sink: batch refused ({e}), writing rows one by one");
                    for w in &writes {
                        let one = self.statements(std::slice::from_ref(w), dialect);
                        if let Err(e) = self.execute_with_retry(one, false).await {
                            errors.push(e.message);
                        }
                    }
                }
                Err(e) => errors.push(format!("{} rows not written to {}: {e}", writes.len(), self.table)),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SinkError(format!("sql sink: {}", errors.join("; "))))
        }
    }

    async fn execute_with_retry(&self, statements: Vec<Statement>, atomic: bool) -> std::result::Result<u64, DbError> {
        let mut attempt = 0u32;
        loop {
            match self.db.execute(statements.clone(), atomic).await {
                Ok(n) => return Ok(n),
                Err(e) if e.is_retryable() && attempt < self.retry_count => {
                    let wait = self.retry_interval.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF);
                    attempt += 1;
                    tracing::warn!("sql sink: {e}; retry {attempt}/{} in {wait:?}", self.retry_count);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// What to do with one row; `None` for nothing (an update of the key
    /// alone).
    fn row_write(&self, row: &Map) -> std::result::Result<Option<RowWrite>, String> {
        let action = match &self.rowkind_field {
            None => Action::Insert,
            Some(f) => match row.get(f) {
                None | Some(Value::Null) => Action::Insert,
                Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                    "insert" => Action::Insert,
                    "update" => Action::Update,
                    "upsert" => Action::Upsert,
                    "delete" => Action::Delete,
                    other => return Err(format!("invalid rowkind {other:?}")),
                },
                Some(v) => return Err(format!("rowkind field {f} is not a string: {}", v.to_json())),
            },
        };
        let (columns, values): (Vec<String>, Vec<Value>) = if self.fields.is_empty() {
            row.iter()
                .filter(|(k, _)| Some(*k) != self.rowkind_field.as_ref())
                .map(|(k, v)| (k.clone(), v.clone()))
                .unzip()
        } else {
            self.fields.iter().map(|f| (f.clone(), row.get(f).cloned().unwrap_or(Value::Null))).unzip()
        };
        if let Some(bad) = columns.iter().find(|c| !valid_ident(c)) {
            return Err(format!("invalid column name {bad:?} ([A-Za-z_][A-Za-z0-9_]*)"));
        }
        if columns.is_empty() && action != Action::Delete {
            return Err("row has no columns to write".into());
        }
        let key = match (&self.key_field, action) {
            (_, Action::Insert) => None,
            (Some(k), _) => match row.get(k) {
                Some(v) if !v.is_null() => Some(v.clone()),
                _ => return Err(format!("field {k} does not exist in data {}", Value::map(row.clone()).to_json())),
            },
            (None, _) => None,
        };
        if action == Action::Update && columns.iter().all(|c| Some(c) == self.key_field.as_ref()) {
            return Ok(None);
        }
        Ok(Some(RowWrite { action, columns, values, key }))
    }

    /// Statements for writes in order, merging runs of inserts with the
    /// same columns.
    fn statements(&self, writes: &[RowWrite], dialect: Dialect) -> Vec<Statement> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < writes.len() {
            let w = &writes[i];
            if w.action == Action::Insert {
                let per_row = w.columns.len().max(1);
                let max_rows = (dialect.max_params() / per_row).clamp(1, MAX_INSERT_ROWS);
                let mut j = i + 1;
                while j < writes.len()
                    && j - i < max_rows
                    && writes[j].action == Action::Insert
                    && writes[j].columns == w.columns
                {
                    j += 1;
                }
                out.push(self.insert(&writes[i..j], dialect));
                i = j;
                continue;
            }
            out.push(self.single(w, dialect));
            i += 1;
        }
        out
    }

    fn insert(&self, rows: &[RowWrite], dialect: Dialect) -> Statement {
        let cols = rows[0].columns.join(",");
        let mut params = Vec::with_capacity(rows.len() * rows[0].columns.len());
        let mut groups = Vec::with_capacity(rows.len());
        for r in rows {
            let ph: Vec<String> = r
                .values
                .iter()
                .map(|v| {
                    params.push(v.clone());
                    dialect.param(params.len())
                })
                .collect();
            groups.push(format!("({})", ph.join(",")));
        }
        Statement { sql: format!("INSERT INTO {} ({cols}) VALUES {}", self.table, groups.join(",")), params }
    }

    fn single(&self, w: &RowWrite, dialect: Dialect) -> Statement {
        let key_col = self.key_field.as_deref().unwrap_or_default();
        let key = w.key.clone().unwrap_or(Value::Null);
        let mut params = Vec::new();
        let mut bind = |v: Value| {
            params.push(v);
            dialect.param(params.len())
        };
        let sql = match w.action {
            Action::Insert => return self.insert(std::slice::from_ref(w), dialect),
            Action::Delete => format!("DELETE FROM {} WHERE {key_col} = {}", self.table, bind(key)),
            Action::Update => {
                let sets: Vec<String> = w
                    .columns
                    .iter()
                    .zip(&w.values)
                    .filter(|(c, _)| c.as_str() != key_col)
                    .map(|(c, v)| format!("{c} = {}", bind(v.clone())))
                    .collect();
                format!("UPDATE {} SET {} WHERE {key_col} = {}", self.table, sets.join(", "), bind(key))
            }
            Action::Upsert => {
                let mut columns = w.columns.clone();
                let mut values = w.values.clone();
                if !columns.iter().any(|c| c == key_col) {
                    columns.push(key_col.to_string());
                    values.push(key);
                }
                let ph: Vec<String> = values.into_iter().map(&mut bind).collect();
                let sets: Vec<String> =
                    columns.iter().filter(|c| c.as_str() != key_col).map(|c| format!("{c} = EXCLUDED.{c}")).collect();
                let action = if sets.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    format!("DO UPDATE SET {}", sets.join(", "))
                };
                format!(
                    "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({key_col}) {action}",
                    self.table,
                    columns.join(","),
                    ph.join(",")
                )
            }
        };
        Statement { sql, params }
    }
}

impl SinkConnector for SqlSink {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        Box::pin(async move {
            match &msg.value {
                Value::Array(rows) => self.write(rows).await,
                v @ Value::Map(_) => self.write(std::slice::from_ref(v)).await,
                Value::Null => Ok(()),
                other => Err(SinkError(format!("sql sink expects rows as maps, got {}", other.type_name()))),
            }
        })
    }
}
