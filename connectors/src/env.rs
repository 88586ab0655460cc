//! What connectors share on a node.

use std::path::PathBuf;

/// Node-wide connector state: the data directory (file sources and sinks,
/// uploads) and shared connections.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Data directory.
    pub data_dir: PathBuf,
}

impl Environment {
    /// An environment rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Environment {
        Environment { data_dir: data_dir.into() }
    }
}
