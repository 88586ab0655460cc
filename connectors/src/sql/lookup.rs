//! The `sql` lookup table: `CREATE TABLE t () WITH (TYPE="sql",
//! KIND="lookup", DATASOURCE="table", CONF_KEY=...)`.
//!
//! [`Lookup::lookup`] gets the join columns and a batch of keys; it
//! queries each chunk of distinct keys at once, always with bound
//! parameters: `SELECT * FROM table WHERE c IN ($1, $2, ...)` for one
//! column, `WHERE (a = $1 AND b = $2) OR (a = $3 AND b = $4) ...` for
//! several. Rows are then handed back to every key they match. A key with
//! a null part matches nothing (SQL `=`) and is not sent. Matching back is
//! by value, with numbers compared across int, float and numeric text, as
//! the database compared them (a `product_id` `"7"` key finds the rows
//! of an integer column 7).
//!
//! Errors are [`LookupError`]s; the pool reconnects on the next call, so
//! the join operator only needs to count them and carry on.

use std::collections::{HashMap, HashSet};

use weir_planner::StreamDef;
use weir_runtime::connector::{BoxFuture, Lookup, LookupError};
use weir_runtime::{Map, Value};

use super::db::Db;
use super::{check_table, field, valid_ident, DbConfig};
use crate::lookup::normal_key;
use crate::props::invalid;
use crate::{Environment, Result};

/// Distinct keys per query at most.
const KEYS_PER_QUERY: usize = 256;

/// A table queried by key.
pub(crate) struct SqlLookup {
    db: Db,
    table: String,
}

impl SqlLookup {
    /// `DATASOURCE` is the table; connection properties come from the
    /// `sql` source configuration (`CONF_KEY`, `EXTRA`).
    ///
    /// # Errors
    /// No URL, no or an invalid table name.
    pub(crate) fn new(def: &StreamDef, env: &Environment) -> Result<SqlLookup> {
        let p = env.source_props("sql", def.options.conf_key.as_deref(), def.options.extra.as_deref())?;
        let config = DbConfig::from_props(&p)?;
        let table = def.options.datasource.as_deref().unwrap_or("").to_string();
        if table.is_empty() {
            return Err(invalid("DATASOURCE", "names the table of a sql lookup table and is required".into()));
        }
        check_table("DATASOURCE", &table)?;
        Ok(SqlLookup::with_db(Db::open(&config), table))
    }

    pub(crate) fn with_db(db: Db, table: String) -> SqlLookup {
        SqlLookup { db, table }
    }

    async fn find(&self, columns: &[String], keys: &[Vec<Value>]) -> std::result::Result<Vec<Vec<Map>>, LookupError> {
        if columns.is_empty() {
            return Err(LookupError("lookup needs at least one key column".into()));
        }
        if let Some(bad) = columns.iter().find(|c| !valid_ident(c)) {
            return Err(LookupError(format!("invalid lookup column {bad:?}: expected [A-Za-z_][A-Za-z0-9_]*")));
        }
        if let Some(k) = keys.iter().find(|k| k.len() != columns.len()) {
            return Err(LookupError(format!("a key has {} values for {} columns", k.len(), columns.len())));
        }
        // Distinct, fully non-null keys, by normal form.
        let mut wanted: Vec<&Vec<Value>> = Vec::new();
        let mut seen = HashSet::new();
        for k in keys {
            if normal_key(k).is_some_and(|n| seen.insert(n)) {
                wanted.push(k);
            }
        }
        let mut found: HashMap<Vec<String>, Vec<Map>> = HashMap::new();
        let dialect = self.db.dialect();
        for chunk in wanted.chunks(KEYS_PER_QUERY) {
            let mut params = Vec::with_capacity(chunk.len() * columns.len());
            let condition = if columns.len() == 1 {
                let ph: Vec<String> = chunk
                    .iter()
                    .map(|k| {
                        params.push(k[0].clone());
                        dialect.param(params.len())
                    })
                    .collect();
                format!("{} IN ({})", columns[0], ph.join(", "))
            } else {
                let terms: Vec<String> = chunk
                    .iter()
                    .map(|k| {
                        let parts: Vec<String> = columns
                            .iter()
                            .zip(k.iter())
                            .map(|(c, v)| {
                                params.push(v.clone());
                                format!("{c} = {}", dialect.param(params.len()))
                            })
                            .collect();
                        format!("({})", parts.join(" AND "))
                    })
                    .collect();
                terms.join(" OR ")
            };
            let sql = format!("SELECT * FROM {} WHERE {condition}", self.table);
            let rows = self.db.query(&sql, &params).await.map_err(|e| LookupError(format!("sql lookup: {e}")))?;
            for row in rows {
                let values: Option<Vec<Value>> = columns.iter().map(|c| field(&row, c).cloned()).collect();
                if let Some(n) = values.as_deref().and_then(normal_key) {
                    found.entry(n).or_default().push(row);
                }
            }
        }
        Ok(keys.iter().map(|k| normal_key(k).and_then(|n| found.get(&n).cloned()).unwrap_or_default()).collect())
    }
}

impl Lookup for SqlLookup {
    fn lookup<'a>(
        &'a mut self,
        columns: &'a [String],
        keys: &'a [Vec<Value>],
    ) -> BoxFuture<'a, std::result::Result<Vec<Vec<Map>>, LookupError>> {
        Box::pin(self.find(columns, keys))
    }
}
