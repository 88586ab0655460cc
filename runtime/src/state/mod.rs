//! Operator state: where it lives and how it is addressed.
//!
//! Every piece of state is keyed by (rule, operator id, shard, key) — see
//! [`StateKey`] — so that a checkpoint can be written, shipped and restored
//! on any node. [`StateBackend`] is the narrow storage trait; [`MemoryBackend`]
//! serves tests and replay, [`RocksBackend`] a node's durable store. Values
//! are encoded with [`codec`] (bincode over serde).

pub mod codec;
mod deliveries;
mod ingest_log;
mod memory;
mod rocks;

pub use ingest_log::{Appended, IngestLog};
pub use memory::MemoryBackend;
pub use rocks::RocksBackend;

/// Why state could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The store failed (I/O, disk full, corruption reported by RocksDB).
    #[error("state store: {0}")]
    Store(String),
    /// Stored bytes do not decode: a corrupt or incompatible checkpoint.
    #[error("corrupt state for {key}: {message}")]
    Corrupt {
        /// The key that failed.
        key: String,
        /// What failed.
        message: String,
    },
    /// The store refuses this writer for good: another node owns the
    /// state now (a cluster fenced this one). Retrying cannot help.
    #[error("state store: {0}")]
    Fenced(String),
}

/// Result of state operations.
pub type StateResult<T> = Result<T, StateError>;

/// The address of one piece of operator state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey {
    /// Rule id.
    pub rule: String,
    /// Stable operator id from the plan.
    pub operator: u32,
    /// Instance (shard) of the operator.
    pub shard: u32,
    /// The key inside the operator (e.g. `epoch/<n>`).
    pub key: String,
}

impl StateKey {
    /// Encodes the key so that a rule's keys share a prefix and sort by
    /// operator, shard and key.
    pub fn encode(&self) -> Vec<u8> {
        let mut k = rule_prefix(&self.rule);
        k.extend_from_slice(&self.operator.to_be_bytes());
        k.extend_from_slice(&self.shard.to_be_bytes());
        k.extend_from_slice(self.key.as_bytes());
        k
    }
}

/// The byte prefix of every key of `rule`.
pub fn rule_prefix(rule: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(rule.len() + 12);
    k.extend_from_slice(&(rule.len() as u32).to_be_bytes());
    k.extend_from_slice(rule.as_bytes());
    k
}

/// Column families (RocksDB) or namespaces (memory) by purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    /// Operator snapshots per checkpoint epoch.
    Checkpoints,
    /// Commit records: the newest complete epoch of each rule.
    Commits,
    /// Durable ingest log of sources that cannot rewind.
    IngestLog,
    /// The cluster's raft log, hard state and snapshots (`weir-cluster`).
    Raft,
}

impl Space {
    /// The column family name.
    pub fn name(self) -> &'static str {
        match self {
            Space::Checkpoints => "checkpoints",
            Space::Commits => "commits",
            Space::IngestLog => "ingest_log",
            Space::Raft => "raft",
        }
    }

    /// All spaces.
    pub const ALL: [Space; 4] = [Space::Checkpoints, Space::Commits, Space::IngestLog, Space::Raft];
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Set a key.
    Put(Space, Vec<u8>, Vec<u8>),
    /// Remove a key.
    Delete(Space, Vec<u8>),
    /// Remove the keys in `[from, to)`.
    DeleteRange(Space, Vec<u8>, Vec<u8>),
}

/// A key-value store for operator state. Writes of one batch are atomic
/// and durable when `write` returns with `sync`.
pub trait StateBackend: Send + Sync + std::fmt::Debug {
    /// Applies the writes atomically; with `sync`, durably (fsync).
    fn write(&self, writes: Vec<Write>, sync: bool) -> StateResult<()>;

    /// Reads a key.
    fn get(&self, space: Space, key: &[u8]) -> StateResult<Option<Vec<u8>>>;

    /// All keys (and values) starting with `prefix`, in key order.
    fn scan(&self, space: Space, prefix: &[u8]) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>>;
}
