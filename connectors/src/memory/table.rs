//! Memory lookup tables: `CREATE TABLE t () WITH (TYPE="memory",
//! KIND="lookup", DATASOURCE="topic", KEY="id")`.
//!
//! As in eKuiper, a table keeps, per value of its `KEY` column, the latest
//! row published on its topic (the `DATASOURCE` filter; `+`/`#` allowed).
//! A row from a memory sink with `rowkindField`/`keyField` says what to do:
//! `insert`, `update` and `upsert` all make it the row of its key (the
//! whole row is replaced), `delete` removes the row whose key is the row's
//! `keyField` value. A plain row (no `rowkindField`) is an upsert. A row
//! without the `KEY` column is skipped with a warning.
//!
//! The table exists while rules use it: it is created empty when the
//! first rule joining it starts, shared by every rule with the same topic
//! and key, and dropped with its rows when the last of them stops (so
//! rows published before a rule using the table started are not in it).
//!
//! Keys match as SQL lookups do ([`normal_key`]): a key `7` finds the row
//! whose key is `7`, `7.0` or `"7"`; a null key finds nothing. A join on
//! the `KEY` column is one map access; on other columns, a scan.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use weir_planner::StreamDef;
use weir_runtime::connector::{BoxFuture, Lookup, LookupError};
use weir_runtime::{Map, Value};

use super::Change;
use crate::lookup::{normal, normal_key};
use crate::mqtt::topic;
use crate::props::invalid;
use crate::{Environment, Result};

/// Rows of one table: by normal form of their key.
type Rows = HashMap<String, Map>;

/// One table's rows and what feeds it.
struct Table {
    filter: String,
    key: String,
    rows: Mutex<Rows>,
}

impl Table {
    fn rows(&self) -> MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, row: &Map, change: &Change) {
        match change {
            Change::Put => match row.get(&self.key).and_then(normal) {
                Some(k) => {
                    self.rows().insert(k, row.clone());
                }
                None => tracing::warn!(
                    "memory table on {}: row without a value of its key {} skipped",
                    self.filter,
                    self.key
                ),
            },
            Change::Delete(key) => {
                if let Some(k) = normal(key) {
                    self.rows().remove(&k);
                }
            }
        }
    }
}

/// The node's memory tables, fed by the bus. Cloning shares them.
#[derive(Clone, Default)]
pub(crate) struct Tables {
    /// Live while a [`MemoryLookup`] holds them.
    tables: Arc<Mutex<Vec<Weak<Table>>>>,
}

impl Tables {
    fn lock(&self) -> MutexGuard<'_, Vec<Weak<Table>>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The table of (`filter`, `key`), created empty if no rule uses it.
    fn open(&self, filter: &str, key: &str) -> Arc<Table> {
        let mut tables = self.lock();
        tables.retain(|t| t.strong_count() > 0);
        if let Some(t) = tables.iter().filter_map(Weak::upgrade).find(|t| t.filter == filter && t.key == key) {
            return t;
        }
        let t = Arc::new(Table { filter: filter.to_string(), key: key.to_string(), rows: Mutex::default() });
        tables.push(Arc::downgrade(&t));
        t
    }

    /// Applies a row published on `topic` to the tables it feeds.
    pub(crate) fn apply(&self, topic_name: &str, row: &Map, change: &Change) {
        let targets: Vec<Arc<Table>> =
            self.lock().iter().filter_map(Weak::upgrade).filter(|t| topic::matches(&t.filter, topic_name)).collect();
        for t in targets {
            t.apply(row, change);
        }
    }

    /// Tables some rule uses.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.lock().iter().filter(|t| t.strong_count() > 0).count()
    }
}

/// A rule's handle on a memory table; the last one dropped drops the rows.
pub(crate) struct MemoryLookup {
    table: Arc<Table>,
}

impl MemoryLookup {
    /// `DATASOURCE` is the topic (one filter), `KEY` the key column.
    ///
    /// # Errors
    /// No or an invalid topic, no `KEY`.
    pub(crate) fn new(def: &StreamDef, env: &Environment) -> Result<MemoryLookup> {
        let ds = def.options.datasource.as_deref().unwrap_or("").trim();
        let filters = topic::parse_filters(ds).map_err(|m| invalid("DATASOURCE", m))?;
        let [filter] = filters.as_slice() else {
            return Err(invalid("DATASOURCE", format!("a memory lookup table reads one topic, got {ds:?}")));
        };
        let key = def.options.key.as_deref().map(str::trim).unwrap_or("");
        if key.is_empty() {
            return Err(invalid("KEY", "is required for a memory lookup table".into()));
        }
        Ok(MemoryLookup { table: env.memory().tables().open(filter, key) })
    }

    fn find(&self, columns: &[String], keys: &[Vec<Value>]) -> std::result::Result<Vec<Vec<Map>>, LookupError> {
        if let Some(k) = keys.iter().find(|k| k.len() != columns.len()) {
            return Err(LookupError(format!("a key has {} values for {} columns", k.len(), columns.len())));
        }
        let by_key = columns.iter().position(|c| *c == self.table.key);
        let rows = self.table.rows();
        Ok(keys
            .iter()
            .map(|k| {
                let Some(wanted) = normal_key(k) else { return Vec::new() };
                let matches = |row: &&Map| {
                    columns.iter().zip(&wanted).all(|(c, w)| row.get(c).and_then(normal).as_ref() == Some(w))
                };
                match by_key {
                    Some(i) => rows.get(&wanted[i]).filter(matches).cloned().into_iter().collect(),
                    None => rows.values().filter(matches).cloned().collect(),
                }
            })
            .collect())
    }
}

impl Lookup for MemoryLookup {
    fn lookup<'a>(
        &'a mut self,
        columns: &'a [String],
        keys: &'a [Vec<Value>],
    ) -> BoxFuture<'a, std::result::Result<Vec<Vec<Map>>, LookupError>> {
        Box::pin(std::future::ready(self.find(columns, keys)))
    }
}
