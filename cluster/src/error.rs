//! The crate's error type, classified by who must act.

use crate::metadata::Rejection;

/// Why a cluster operation failed.
///
/// - The caller must act on [`Error::Rejected`] (the command was applied and
///   refused, e.g. a stale shard epoch), [`Error::InvalidConfig`] and
///   [`Error::AlreadyInitialized`]/[`Error::NotInitialized`].
/// - Retry with backoff on [`Error::NoLeader`], [`Error::Timeout`],
///   [`Error::Io`] and [`Error::Busy`]: the cluster is electing or a peer is
///   unreachable.
/// - The rest are internal or on-disk problems ([`Error::Storage`],
///   [`Error::Corrupt`], [`Error::Raft`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// raft-rs refused a call (proposal dropped, bad conf change, storage).
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The node's key-value store failed.
    #[error("raft storage: {0}")]
    Storage(#[from] weir_runtime::state::StateError),
    /// Stored or received bytes do not decode.
    #[error("corrupt {what}: {message}")]
    Corrupt {
        /// What was being decoded (`"entry"`, `"hard state"`, `"frame"` ...).
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// A socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame announced more bytes than the transport accepts.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No leader is known right now (an election is running); retry.
    #[error("no leader known")]
    NoLeader,
    /// The operation did not complete in time; it may still be applied later.
    #[error("timed out waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
    },
    /// The command was committed and applied, and the state machine refused it.
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    /// A message or request named a node this one does not know.
    #[error("unknown node {node}")]
    UnknownNode {
        /// The node id.
        node: u64,
    },
    /// A raft message addressed to another node arrived here.
    #[error("message for node {to} arrived at node {me}")]
    Misrouted {
        /// The addressee.
        to: u64,
        /// This node.
        me: u64,
    },
    /// `init` on a node whose storage already holds a cluster.
    #[error("node already belongs to a cluster")]
    AlreadyInitialized,
    /// The operation needs a node that belongs to a cluster.
    #[error("node does not belong to a cluster (run init or join first)")]
    NotInitialized,
    /// The peer refused the request (e.g. a join with a duplicate node id).
    #[error("peer refused: {reason}")]
    Refused {
        /// The peer's reason.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid config {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A bounded queue is full; retry later.
    #[error("queue full")]
    Busy,
    /// The node has been shut down.
    #[error("cluster node stopped")]
    Stopped,
}

/// Result of cluster operations.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether retrying later may succeed (elections, timeouts, sockets).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::NoLeader | Error::Timeout { .. } | Error::Io(_) | Error::Busy)
            || matches!(self, Error::Raft(raft::Error::ProposalDropped))
    }

    pub(crate) fn corrupt(what: &'static str, e: impl std::fmt::Display) -> Error {
        Error::Corrupt { what, message: e.to_string() }
    }
}
