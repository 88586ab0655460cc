//! Where a `sql` source keeps its index value between runs:
//! `<data_dir>/sql/<stream>.offset.json`, holding the value with its type
//! and a fingerprint of the query it belongs to.

use std::path::PathBuf;

use weir_runtime::Value;

/// Where a stream's index value is kept between runs.
pub(crate) struct IndexStore {
    path: PathBuf,
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
    pub(crate) fn new(dir: PathBuf, stream: &str, fingerprint: String) -> IndexStore {
        let name: String =
            stream.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
        IndexStore { path: dir.join(format!("{name}.offset.json")), fingerprint }
    }

    pub(crate) fn load(&self) -> Option<Value> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let stored: Stored = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("sql source: ignoring {}: {e}", self.path.display());
                return None;
            }
        };
        if stored.fingerprint != self.fingerprint {
            tracing::info!("sql source: query changed, not resuming from {}", self.path.display());
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
