//! Why replication failed: [`ReplicationError`] (this side) and
//! [`Refusal`] (the standby's answer).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_runtime::state::StateError;

/// Why a standby refused a batch. Travels in the ack, so it is plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The batch carries an older shard epoch than the standby has seen or
    /// been told ([`ReplicaServer::fence`](super::ReplicaServer::fence)):
    /// the sender is a deposed primary and must stop writing.
    #[error("stale shard epoch {epoch} (the standby is at {current})")]
    StaleEpoch {
        /// The batch's epoch.
        epoch: u64,
        /// The highest epoch the standby knows for the rule.
        current: u64,
    },
    /// A write addresses a key outside the rule's prefix.
    #[error("write outside the key range of rule {rule:?}")]
    OutsideRule {
        /// The batch's rule.
        rule: String,
    },
    /// The batch does not follow the protocol (chunk out of order, staged
    /// batch over the limit).
    #[error("protocol violation: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// The standby's store failed to apply the batch (nothing was applied).
    #[error("standby store: {message}")]
    Store {
        /// The store's message.
        message: String,
    },
}

/// Why a replication call failed.
///
/// - External, retry ([`ReplicationError::is_retryable`]): [`Io`](Self::Io),
///   [`Timeout`](Self::Timeout), [`NotInSync`](Self::NotInSync) (run
///   [`sync_standby`](super::ReplicatedBackend::sync_standby)), a
///   [`Refused`](Self::Refused) store error.
/// - The node must act: [`Fenced`](Self::Fenced) (this node is no longer the
///   rule's primary: stop the rule), [`NoStandby`](Self::NoStandby),
///   [`InvalidConfig`](Self::InvalidConfig).
/// - Internal: [`Protocol`](Self::Protocol), [`FrameTooLarge`](Self::FrameTooLarge),
///   [`SpansRules`](Self::SpansRules), [`Local`](Self::Local).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// The local store failed. When it comes from a replicated `write`, the
    /// standby may hold the batch anyway: the rule then needs a new
    /// [`sync_standby`](super::ReplicatedBackend::sync_standby).
    #[error(transparent)]
    Local(#[from] StateError),
    /// Connecting to, writing to or reading from the standby failed.
    #[error("replication to {addr} failed: {source}")]
    Io {
        /// The standby's address.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The standby did not answer within the configured timeout.
    #[error("replication to {addr} failed: no ack within {after:?}")]
    Timeout {
        /// The standby's address.
        addr: String,
        /// The timeout.
        after: Duration,
    },
    /// The standby answered with a refusal.
    #[error("replication to {addr} failed: {refusal}")]
    Refused {
        /// The standby's address.
        addr: String,
        /// Its reason.
        refusal: Refusal,
    },
    /// The standby sent something that is not the expected ack.
    #[error("replication to {addr} failed: protocol error: {message}")]
    Protocol {
        /// The standby's address.
        addr: String,
        /// What was wrong.
        message: String,
    },
    /// A single write does not fit into a frame.
    #[error("replication frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The rule's standby has not received a full copy since it was set or
    /// since a replication failure; writes wait for
    /// [`sync_standby`](super::ReplicatedBackend::sync_standby).
    #[error("replication to {addr} failed: standby of rule {rule:?} is not in sync")]
    NotInSync {
        /// The rule.
        rule: String,
        /// The standby's address.
        addr: String,
    },
    /// The standby knows a newer shard epoch for the rule: this node has
    /// been deposed and must not write the rule's state any more.
    #[error("replication to {addr} failed: rule {rule:?} is fenced at epoch {current} (ours is {epoch})")]
    Fenced {
        /// The rule.
        rule: String,
        /// The standby's address.
        addr: String,
        /// This node's epoch for the rule.
        epoch: u64,
        /// The epoch the standby knows.
        current: u64,
    },
    /// `sync_standby` on a rule without a standby.
    #[error("rule {rule:?} has no standby")]
    NoStandby {
        /// The rule.
        rule: String,
    },
    /// A `DeleteRange` in a rule's space that does not stay within one
    /// rule's keys cannot be attributed to a standby.
    #[error("a delete range in {space} spans several rules and cannot be replicated")]
    SpansRules {
        /// The space's name.
        space: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid replication config {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

impl ReplicationError {
    /// Whether retrying later (after a
    /// [`sync_standby`](super::ReplicatedBackend::sync_standby) for a rule
    /// out of sync) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReplicationError::Io { .. } | ReplicationError::Timeout { .. } | ReplicationError::NotInSync { .. } => true,
            ReplicationError::Refused { refusal, .. } => matches!(refusal, Refusal::Store { .. }),
            _ => false,
        }
    }
}

/// The trait's error: local store errors pass through unchanged; everything
/// else becomes [`StateError::Store`] starting with
/// `"replication to <addr> failed: "`, so the caller (the ingest log's
/// writer, a checkpoint) fails the write and the broker is not acknowledged.
impl From<ReplicationError> for StateError {
    fn from(e: ReplicationError) -> StateError {
        match e {
            ReplicationError::Local(e) => e,
            e @ (ReplicationError::Fenced { .. }
            | ReplicationError::Refused { refusal: Refusal::StaleEpoch { .. }, .. }) => {
                StateError::Fenced(e.to_string())
            }
            other => StateError::Store(other.to_string()),
        }
    }
}
