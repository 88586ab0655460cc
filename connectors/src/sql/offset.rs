//! Where a `sql` source keeps its index value between runs:
//! `<data_dir>/sql/rules/<rule>/<stream>.offset.json`, holding the value
//! with its type and a fingerprint of the query it belongs to.
//!
//! The index is the rule's: two rules reading one stream each have their
//! own source and pull at their own pace, so one rule's progress must not
//! make the other skip rows after a restart. Names are escaped (`%XX` for
//! bytes outside `[A-Za-z0-9_-]`), so distinct ids never share a file.
//!
//! Earlier versions kept one index per stream, `<data_dir>/sql/<stream>.offset.json`.
//! A rule without an index of its own starts from that file (if the query
//! is the same), then writes its own; the old file is left for the other
//! rules of the stream. A source built outside a rule uses that path.

use std::path::{Path, PathBuf};

use weir_runtime::Value;

/// Where a stream's index value is kept between runs.
pub(crate) struct IndexStore {
    path: PathBuf,
    /// The stream-wide file of earlier versions, read when `path` does not
    /// exist yet.
    legacy: Option<PathBuf>,
    fingerprint: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    fingerprint: String,
    value: StoredValue,
}

/// An index value with its type (JSON alone would turn datetimes into
/// strings and big ints into floats).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
enum StoredValue {
    Int(i64),
    Float(f64),
    String(String),
    Datetime(String),
    Bool(bool),
}

impl IndexStore {
    /// The store of `stream` as read by rule `rule_id` (empty: outside a
    /// rule) under `dir`.
    pub(crate) fn new(dir: PathBuf, rule_id: &str, stream: &str, fingerprint: String) -> IndexStore {
        let legacy: String =
            stream.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
        let legacy = dir.join(format!("{legacy}.offset.json"));
        if rule_id.is_empty() {
            return IndexStore { path: legacy, legacy: None, fingerprint };
        }
        let path = dir.join("rules").join(escape(rule_id)).join(format!("{}.offset.json", escape(stream)));
        IndexStore { path, legacy: Some(legacy), fingerprint }
    }

    /// The recorded value, if there is one for this query.
    pub(crate) fn load(&self) -> Option<Value> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => self.parse(&self.path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let legacy = self.legacy.as_deref()?;
                let text = std::fs::read_to_string(legacy).ok()?;
                let v = self.parse(legacy, &text)?;
                tracing::info!("sql source: starting from the stream's index in {}", legacy.display());
                Some(v)
            }
            Err(e) => {
                tracing::warn!("sql source: cannot read {}: {e}", self.path.display());
                None
            }
        }
    }

    fn parse(&self, path: &Path, text: &str) -> Option<Value> {
        let stored: Stored = match serde_json::from_str(text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("sql source: ignoring {}: {e}", path.display());
                return None;
            }
        };
        if stored.fingerprint != self.fingerprint {
            tracing::info!("sql source: query changed, not resuming from {}", path.display());
            return None;
        }
        Some(match stored.value {
            StoredValue::Int(i) => Value::Int(i),
            StoredValue::Float(f) => Value::Float(f),
            StoredValue::String(s) => Value::str(s),
            StoredValue::Datetime(s) => Value::Datetime(chrono::DateTime::parse_from_rfc3339(&s).ok()?),
            StoredValue::Bool(b) => Value::Bool(b),
        })
    }

    /// Writes the value (to a temporary file renamed over the old one, so
    /// a crash leaves the old or the new value, never half of one).
    pub(crate) async fn save(&self, v: &Value) -> std::io::Result<()> {
        let value = match v {
            Value::Int(i) => StoredValue::Int(*i),
            Value::Float(f) => StoredValue::Float(*f),
            Value::Bool(b) => StoredValue::Bool(*b),
            Value::Datetime(t) => StoredValue::Datetime(t.to_rfc3339()),
            other => StoredValue::String(other.to_text()),
        };
        let text = serde_json::to_string(&Stored { fingerprint: self.fingerprint.clone(), value })
            .map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = self.path.with_extension("json.tmp");
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, &self.path).await
    }
}

/// Deletes the indexes of rule `rule_id` under `dir` (the rule was
/// dropped: a new rule with its id starts from `indexValue`).
pub(crate) fn forget(dir: &Path, rule_id: &str) {
    let path = dir.join("rules").join(escape(rule_id));
    match std::fs::remove_dir_all(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("sql source: cannot delete {}: {e}", path.display());
        }
        _ => {}
    }
}

/// A file name for any id: `[A-Za-z0-9_-]` kept, other bytes as `%XX`.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn escaped_names_stay_distinct() {
        assert_eq!(escape("rule_1-a"), "rule_1-a");
        assert_eq!(escape("a.b"), "a%2Eb");
        assert_ne!(escape("a.b"), escape("a_b"));
        assert_eq!(escape("../x"), "%2E%2E%2Fx");
    }
}
