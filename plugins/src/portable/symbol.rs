//! One running source or sink symbol of a plugin: the argument of its
//! `start` and `stop` control commands and the paths of its data
//! channels (EKUIPER_COMPAT.md §9.2).
//!
//! eKuiper names the channels after the instance's rule, operator and
//! instance ids: `<ruleId>_<opId>_<instanceId>.ipc` for data and
//! `..._ack.ipc` for a sink's acknowledgements. weir makes the operator id
//! unique per process and instance (`<symbol>_<pid>x<n>`), because the
//! paths live in the host-wide `/tmp` and one rule may read the same
//! stream twice.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

/// A source or a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SymbolKind {
    /// Plugin pushes messages to weir.
    Source,
    /// weir pushes payloads to the plugin.
    Sink,
}

impl SymbolKind {
    /// eKuiper's `pluginType`.
    fn plugin_type(self) -> &'static str {
        match self {
            SymbolKind::Source => "source",
            SymbolKind::Sink => "sink",
        }
    }
}

/// The control argument of one symbol instance.
#[derive(Debug, Clone)]
pub(crate) struct SymbolArg {
    /// The symbol's name in the plugin.
    pub(crate) symbol: String,
    /// `<ruleId>_<opId>_<instanceId>`: the channel file stem and the key
    /// the plugin registers the instance under.
    pub(crate) key: String,
    /// The JSON string sent as the command's `arg`.
    json: String,
}

/// Instances made by this process, for unique operator ids.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Keeps what is safe in a file name, and at most `max` characters (a
/// Unix socket path has at most 107 bytes).
fn file_safe(s: &str, max: usize) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(max).collect();
    if out.is_empty() {
        "weir".into()
    } else {
        out
    }
}

impl SymbolArg {
    /// The argument of instance of `symbol` for rule (or stream) `rule`:
    /// `datasource` is the stream's DATASOURCE (sources), `config` its
    /// configuration or the sink action's properties.
    pub(crate) fn new(
        kind: SymbolKind,
        symbol: &str,
        rule: &str,
        datasource: &str,
        config: serde_json::Value,
    ) -> SymbolArg {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let rule_id = file_safe(rule, 32);
        let op_id = format!("{}_{}x{n}", file_safe(symbol, 24), std::process::id());
        let instance_id = 0;
        let key = format!("{rule_id}_{op_id}_{instance_id}");
        // The Go runtime reads `dataSource`, the Python SDK `datasource`.
        let json = json!({
            "symbolName": symbol,
            "meta": {"ruleId": rule_id, "opId": op_id, "instanceId": instance_id},
            "pluginType": kind.plugin_type(),
            "dataSource": datasource,
            "datasource": datasource,
            "config": config,
        })
        .to_string();
        SymbolArg { symbol: symbol.to_string(), key, json }
    }

    /// The control command `cmd` (`start` or `stop`) for this instance.
    pub(crate) fn command(&self, cmd: &str) -> String {
        json!({"cmd": cmd, "arg": self.json}).to_string()
    }

    /// The data channel, in `ipc_dir`.
    pub(crate) fn data_path(&self, ipc_dir: &Path) -> PathBuf {
        ipc_dir.join(format!("{}.ipc", self.key))
    }

    /// A sink's acknowledgement channel, in `ipc_dir`.
    pub(crate) fn ack_path(&self, ipc_dir: &Path) -> PathBuf {
        ipc_dir.join(format!("{}_ack.ipc", self.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_carry_both_datasource_spellings_and_unique_safe_ids() {
        let a = SymbolArg::new(SymbolKind::Source, "pyfurnace", "rule/1 x", "ds", json!({"n": 3}));
        let b = SymbolArg::new(SymbolKind::Source, "pyfurnace", "rule/1 x", "ds", json!({}));
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with("rule_1_x_pyfurnace_"), "{}", a.key);
        let cmd: serde_json::Value = serde_json::from_str(&a.command("start")).unwrap();
        assert_eq!(cmd["cmd"], "start");
        let arg: serde_json::Value = serde_json::from_str(cmd["arg"].as_str().unwrap()).unwrap();
        assert_eq!(arg["pluginType"], "source");
        assert_eq!((arg["dataSource"].as_str(), arg["datasource"].as_str()), (Some("ds"), Some("ds")));
        assert_eq!(arg["config"]["n"], 3);
        let key =
            format!("{}_{}_{}", arg["meta"]["ruleId"].as_str().unwrap(), arg["meta"]["opId"].as_str().unwrap(), 0);
        assert_eq!(key, a.key);
        let long = SymbolArg::new(SymbolKind::Sink, &"s".repeat(64), &"r".repeat(200), "", json!({}));
        assert!(long.ack_path(Path::new("/tmp")).as_os_str().len() < 108);
    }
}
