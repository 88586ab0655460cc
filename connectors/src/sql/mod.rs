//! The `sql` connectors: eKuiper's SQL source, lookup table and sink, over
//! PostgreSQL and SQLite.
//!
//! * [`source::SqlSource`] (`TYPE="sql"` streams and scan tables) runs a
//!   query every `interval`: `internalSqlQueryCfg` builds
//!   `SELECT * FROM table [WHERE indexField > ?] [ORDER BY indexField] [LIMIT n]`,
//!   `templateSqlQueryCfg` takes the statement from `TemplateSql`. The
//!   largest `indexField` value read so far is kept per rule in a JSON
//!   file under the data directory, so a restarted node continues where
//!   it stopped.
//! * [`lookup::SqlLookup`] (`KIND="lookup"` tables; `DATASOURCE` is the
//!   table) answers a batch of join keys with one query per chunk of keys.
//! * [`sink::SqlSink`] writes each emission in one transaction: batched
//!   multi-row inserts, or per row `insert`/`update`/`upsert`/`delete` by
//!   `rowkindField` and `keyField`; lost connections are retried.
//!
//! Injection: every value (rows, keys, index values) is bound as a
//! parameter. Identifiers that come from configuration or data (table,
//! columns, key and index fields) must match `[A-Za-z_][A-Za-z0-9_]*`
//! (a table may be `schema.table`) and are written unquoted, as eKuiper
//! does, so PostgreSQL folds them to lower case.
//!
//! URLs: `postgres://user:pass@host:port/db` (or `postgresql://`; plain
//! TCP, no TLS yet) and `sqlite:/path/file.db` (`sqlite3:` and
//! `sqlite:///abs/path` too). MySQL and SQL Server are not supported yet.
//!
//! Connection properties besides `url`/`dburl` (weir's, not eKuiper's):
//! `connectTimeout` (5 s), `queryTimeout` (30 s), `maxConnections` (4).
//! Connectors with the same URL and settings share one pool ([`db`]).

pub(crate) mod db;
pub(crate) mod lookup;
mod offset;
mod pg;
pub(crate) mod sink;
pub(crate) mod source;
mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

pub(crate) use offset::forget as forget_rule;

use std::time::Duration;

use weir_runtime::{Map, Value};

use crate::props::{invalid, Props};
use crate::Result;

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Backend {
    /// A PostgreSQL server: the URL as `tokio_postgres` parses it.
    Postgres(String),
    /// An SQLite file.
    Sqlite(std::path::PathBuf),
}

/// Where and how to connect; equal configs share a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DbConfig {
    /// The database.
    pub(crate) backend: Backend,
    /// Time to open a connection (or wait for a free one).
    pub(crate) connect_timeout: Duration,
    /// Time one query or transaction may take.
    pub(crate) query_timeout: Duration,
    /// Connections kept open at most.
    pub(crate) max_connections: usize,
}

impl DbConfig {
    /// Reads `url` (alias `dburl`), `connectTimeout`, `queryTimeout` and
    /// `maxConnections`.
    ///
    /// # Errors
    /// No URL, an unsupported or malformed one, bad numbers.
    pub(crate) fn from_props(p: &Props) -> Result<DbConfig> {
        let (name, url) = match (p.str("url")?, p.str("dburl")?) {
            (Some(u), _) if !u.is_empty() => ("url", u),
            (_, Some(u)) if !u.is_empty() => ("dburl", u),
            _ => return Err(invalid("url", "is required".into())),
        };
        let backend = parse_url(url).map_err(|m| invalid(name, m))?;
        let max_connections = match p.int("maxConnections")? {
            None => 4,
            Some(n) if n > 0 => n as usize,
            Some(n) => return Err(invalid("maxConnections", format!("must be positive, got {n}"))),
        };
        Ok(DbConfig {
            backend,
            connect_timeout: Duration::from_millis(p.duration_ms("connectTimeout")?.unwrap_or(5_000).max(1)),
            query_timeout: Duration::from_millis(p.duration_ms("queryTimeout")?.unwrap_or(30_000).max(1)),
            max_connections,
        })
    }

    /// The SQL dialect of the backend.
    pub(crate) fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Postgres(_) => Dialect::Postgres,
            Backend::Sqlite(_) => Dialect::Sqlite,
        }
    }
}

/// Parses a database URL.
fn parse_url(url: &str) -> std::result::Result<Backend, String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        url.parse::<tokio_postgres::Config>().map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
        return Ok(Backend::Postgres(url.to_string()));
    }
    for prefix in ["sqlite3:", "sqlite:"] {
        if lower.starts_with(prefix) {
            let mut path = &url[prefix.len()..];
            // `sqlite:///abs` and `sqlite://rel` are URL spellings of a path.
            if let Some(rest) = path.strip_prefix("//") {
                path = rest;
            }
            let path = path.split('?').next().unwrap_or("");
            if path.is_empty() {
                return Err(format!("no file in SQLite URL {url:?}"));
            }
            return Ok(Backend::Sqlite(path.into()));
        }
    }
    let scheme = url.split(':').next().unwrap_or(url);
    Err(format!("unsupported database {scheme:?}: weir speaks postgres:// and sqlite: URLs"))
}

/// Differences in SQL text between the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `$1` placeholders.
    Postgres,
    /// `?1` placeholders.
    Sqlite,
}

impl Dialect {
    /// The placeholder of the `n`th parameter (1-based).
    pub(crate) fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite => format!("?{n}"),
        }
    }

    /// Parameters one statement may bind at most (PostgreSQL's wire limit
    /// is 65535, SQLite's default since 3.32 is 32766; kept below both).
    pub(crate) fn max_params(self) -> usize {
        30_000
    }
}

/// A row's field, by exact name or else case-insensitively (PostgreSQL
/// folds unquoted column names to lower case).
pub(crate) fn field<'a>(row: &'a Map, name: &str) -> Option<&'a Value> {
    row.get(name).or_else(|| row.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// Checks an identifier taken from configuration or data: letters, digits
/// and `_`, not starting with a digit.
pub(crate) fn valid_ident(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a table name: an identifier, or `schema.table`.
pub(crate) fn valid_table(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| valid_ident(p))
}

/// [`valid_ident`] as a property check.
pub(crate) fn check_ident(property: &str, name: &str) -> Result<()> {
    if valid_ident(name) {
        Ok(())
    } else {
        Err(invalid(property, format!("{name:?} is not a valid column name ([A-Za-z_][A-Za-z0-9_]*)")))
    }
}

/// [`valid_table`] as a property check.
pub(crate) fn check_table(property: &str, name: &str) -> Result<()> {
    if valid_table(name) {
        Ok(())
    } else {
        Err(invalid(property, format!("{name:?} is not a valid table name ([A-Za-z_][A-Za-z0-9_]*, or schema.table)")))
    }
}
