//! Persistence of a node's definitions in its data directory.
//!
//! One JSON file per definition, so a change rewrites only that file:
//! `streams/<name>.json` and `tables/<name>.json` hold `{"sql": "CREATE ..."}`,
//! `rules/<id>.json` holds the rule JSON as stored (with `triggered`).
//! Names are restricted to `^[a-zA-Z0-9_\-]+$` before they get here, so they
//! are safe file names. Every write goes to a temporary file that is synced
//! and then renamed over the old one: a crash leaves the old or the new
//! version, never half of one.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use weir_planner::StreamKind;

use crate::error::{Error, Result};

/// The definitions found in a data directory.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// `CREATE STREAM` statements, by name.
    pub(crate) streams: Vec<(String, String)>,
    /// `CREATE TABLE` statements, by name.
    pub(crate) tables: Vec<(String, String)>,
    /// Rule JSON, by id.
    pub(crate) rules: Vec<(String, serde_json::Value)>,
}

/// A node's data directory.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating it if needed) the data directory `dir`.
    ///
    /// # Errors
    /// The directories cannot be created.
    pub(crate) fn open(dir: &Path) -> Result<Store> {
        for sub in ["streams", "tables", "rules"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| io_err(format!("cannot create {}", p.display()), e))?;
        }
        Ok(Store { dir: dir.to_path_buf() })
    }

    /// The data directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads every definition. Unreadable files are skipped with a warning,
    /// so one bad file does not keep the node from starting.
    pub(crate) fn load(&self) -> Result<Loaded> {
        let mut loaded = Loaded::default();
        for (name, v) in self.read_dir("streams")? {
            match v.get("sql").and_then(|s| s.as_str()) {
                Some(sql) => loaded.streams.push((name, sql.to_string())),
                None => tracing::warn!(stream = %name, "stored stream has no \"sql\"; skipped"),
            }
        }
        for (name, v) in self.read_dir("tables")? {
            match v.get("sql").and_then(|s| s.as_str()) {
                Some(sql) => loaded.tables.push((name, sql.to_string())),
                None => tracing::warn!(table = %name, "stored table has no \"sql\"; skipped"),
            }
        }
        loaded.rules = self.read_dir("rules")?;
        Ok(loaded)
    }

    /// Stores the statement that created stream or table `name`.
    pub(crate) fn put_stream(&self, kind: StreamKind, name: &str, sql: &str) -> Result<()> {
        self.write(&self.path(folder(kind), name), &serde_json::json!({ "sql": sql }))
    }

    /// Forgets stream or table `name`.
    pub(crate) fn remove_stream(&self, kind: StreamKind, name: &str) -> Result<()> {
        remove(&self.path(folder(kind), name))
    }

    /// Stores rule `id`.
    pub(crate) fn put_rule(&self, id: &str, rule: &serde_json::Value) -> Result<()> {
        self.write(&self.path("rules", id), rule)
    }

    /// Forgets rule `id`.
    pub(crate) fn remove_rule(&self, id: &str) -> Result<()> {
        remove(&self.path("rules", id))
    }

    fn path(&self, folder: &str, name: &str) -> PathBuf {
        self.dir.join(folder).join(format!("{name}.json"))
    }

    /// Writes `value` to `path` through a synced temporary file and a rename.
    fn write(&self, path: &Path, value: &serde_json::Value) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(value).expect("a JSON value serializes");
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            // The rename itself is durable only once the directory is synced.
            if let Some(parent) = path.parent() {
                fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(format!("cannot write {}", path.display()), e)
        })
    }

    /// `(name, json)` of every `*.json` in `folder`, sorted by name.
    fn read_dir(&self, folder: &str) -> Result<Vec<(String, serde_json::Value)>> {
        let dir = self.dir.join(folder);
        let entries = fs::read_dir(&dir).map_err(|e| io_err(format!("cannot read {}", dir.display()), e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(v) => out.push((name.to_string(), v)),
                Err(e) => tracing::warn!(path = %path.display(), "cannot load stored definition: {e}"),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

fn folder(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Stream => "streams",
        StreamKind::Table => "tables",
    }
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("cannot remove {}", path.display()), e)),
    }
}

fn io_err(context: String, source: std::io::Error) -> Error {
    Error::Io { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_stream(StreamKind::Stream, "s1", "CREATE STREAM s1 () WITH (TYPE=\"memory\")").unwrap();
        store.put_stream(StreamKind::Table, "t1", "CREATE TABLE t1 () WITH (TYPE=\"file\")").unwrap();
        store.put_rule("r1", &serde_json::json!({"id": "r1", "sql": "SELECT * FROM s1"})).unwrap();
        store.put_rule("r0", &serde_json::json!({"id": "r0"})).unwrap();
        std::fs::write(dir.path().join("rules/bad.json"), "{").unwrap();
        let loaded = Store::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(loaded.streams.len(), 1);
        assert_eq!(loaded.tables[0].0, "t1");
        let ids: Vec<_> = loaded.rules.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(ids, ["r0", "r1"]);
        store.remove_rule("r1").unwrap();
        store.remove_rule("r1").unwrap();
        assert_eq!(store.load().unwrap().rules.len(), 1);
    }
}
