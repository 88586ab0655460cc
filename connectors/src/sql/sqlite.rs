//! SQLite calls (synchronous; [`super::db`] runs them on the blocking
//! pool) and value conversions.
//!
//! SQLite stores what it is given: ints, floats, text, blobs. Datetimes are
//! bound as `YYYY-MM-DD HH:MM:SS[.fff]` text in UTC (what SQLite's own date
//! functions write and compare), maps and arrays as JSON text, booleans as
//! 0/1. Columns read back as ints, floats, strings or bytes.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as LiteValue, ValueRef};
use weir_runtime::{Map, Value};

use super::db::{DbError, Done, ErrorKind, Op};

/// Opens (creating if needed) the file, with a busy timeout so writers wait
/// for each other instead of failing at once.
pub(crate) fn open(path: &Path, busy: Duration) -> Result<rusqlite::Connection, DbError> {
    let conn = rusqlite::Connection::open(path).map_err(|e| classify(&e, &path.display().to_string()))?;
    conn.busy_timeout(busy).map_err(|e| classify(&e, "busy_timeout"))?;
    Ok(conn)
}

/// Runs one call.
pub(crate) fn run(c: &mut rusqlite::Connection, op: &Op) -> Result<Done, DbError> {
    match op {
        Op::Query(s) => {
            let mut stmt = c.prepare_cached(&s.sql).map_err(|e| classify(&e, &s.sql))?;
            let names: Vec<String> = stmt.column_names().into_iter().map(str::to_string).collect();
            let mut rows =
                stmt.query(rusqlite::params_from_iter(s.params.iter().map(Param))).map_err(|e| classify(&e, &s.sql))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(|e| classify(&e, &s.sql))? {
                let mut m = Map::new();
                for (i, name) in names.iter().enumerate() {
                    let v = row.get_ref(i).map_err(|e| classify(&e, &s.sql))?;
                    m.insert(name.clone(), read(v));
                }
                out.push(m);
            }
            Ok(Done::Rows(out))
        }
        Op::Execute { statements, atomic } => {
            if *atomic && statements.len() > 1 {
                let tx = c.transaction().map_err(|e| classify(&e, "BEGIN"))?;
                // Dropping the transaction on error rolls it back.
                let n = execute_all(&tx, statements)?;
                tx.commit().map_err(|e| classify(&e, "COMMIT"))?;
                Ok(Done::Count(n))
            } else {
                execute_all(c, statements).map(Done::Count)
            }
        }
        Op::Script(sql) => {
            c.execute_batch(sql).map_err(|e| classify(&e, sql))?;
            Ok(Done::Count(0))
        }
    }
}

fn execute_all(conn: &rusqlite::Connection, statements: &[super::db::Statement]) -> Result<u64, DbError> {
    let mut total = 0u64;
    for s in statements {
        let mut stmt = conn.prepare_cached(&s.sql).map_err(|e| classify(&e, &s.sql))?;
        let n =
            stmt.execute(rusqlite::params_from_iter(s.params.iter().map(Param))).map_err(|e| classify(&e, &s.sql))?;
        total += n as u64;
    }
    Ok(total)
}

fn classify(e: &rusqlite::Error, context: &str) -> DbError {
    use rusqlite::ErrorCode as C;
    let kind = match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked | C::CannotOpen | C::SystemIoFailure | C::OutOfMemory) => {
            ErrorKind::Connection
        }
        _ => ErrorKind::Data,
    };
    DbError::new(kind, format!("{e} (in {context})"))
}

/// A weir value as an SQLite parameter.
struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(LiteValue::Null),
            Value::Bool(b) => ToSqlOutput::Owned(LiteValue::Integer(i64::from(*b))),
            Value::Int(i) => ToSqlOutput::Owned(LiteValue::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(LiteValue::Real(*f)),
            Value::String(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Datetime(t) => ToSqlOutput::Owned(LiteValue::Text(datetime_text(t))),
            v @ (Value::Map(_) | Value::Array(_)) => ToSqlOutput::Owned(LiteValue::Text(v.to_json())),
        })
    }
}

/// A datetime as SQLite's text form, in UTC.
pub(crate) fn datetime_text(t: &weir_runtime::value::Datetime) -> String {
    t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string()
}

fn read(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::str(String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => Value::bytes(b.to_vec()),
    }
}
