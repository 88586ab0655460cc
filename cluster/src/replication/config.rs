//! [`ReplicationConfig`]: timeouts and size limits of both sides.

use std::time::Duration;

use super::error::ReplicationError;

/// The hard upper bound of [`ReplicationConfig::max_frame`]; also the limit
/// the decoder enforces on any length claimed inside a frame, so a lying
/// length prefix can never make it allocate more.
pub const MAX_FRAME_LIMIT: usize = 256 << 20;

/// Settings of [`ReplicatedBackend`](super::ReplicatedBackend) (the
/// primary's side) and [`ReplicaServer`](super::ReplicaServer) (the
/// standby's side). Use the same values on every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// How long one replicated `write` may wait for its standby in total:
    /// connecting, sending and the ack. Also the bound of each chunk
    /// exchange of a catch-up. Default 5 s.
    pub timeout: Duration,
    /// How long connecting to a standby may take (capped by `timeout`).
    /// Default 1 s.
    pub connect_timeout: Duration,
    /// Largest frame sent or accepted, in bytes (at most
    /// [`MAX_FRAME_LIMIT`]). Batches bigger than half of it are sent in
    /// chunks that the standby stages and applies as one batch; a single
    /// write must fit into one frame. Default 16 MiB.
    pub max_frame: usize,
    /// Largest chunked batch a standby stages in memory before applying it,
    /// in bytes of keys and values (a catch-up sends a rule's whole state as
    /// one batch). Default 1 GiB.
    pub max_staged: usize,
    /// Mutual TLS with the other nodes (the same settings as the raft
    /// transport's); default none (plain TCP).
    pub tls: Option<crate::tls::ClusterTls>,
}

impl Default for ReplicationConfig {
    fn default() -> ReplicationConfig {
        ReplicationConfig {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            max_frame: 16 << 20,
            max_staged: 1 << 30,
            tls: None,
        }
    }
}

impl ReplicationConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`ReplicationError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ReplicationError> {
        let bad = |field, reason| Err(ReplicationError::InvalidConfig { field, reason });
        if self.timeout.is_zero() {
            return bad("timeout", "must be positive");
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout", "must be positive");
        }
        if self.max_frame < 1024 || self.max_frame > MAX_FRAME_LIMIT {
            return bad("max_frame", "must be between 1 KiB and 256 MiB");
        }
        if self.max_staged < self.max_frame {
            return bad("max_staged", "must be at least max_frame");
        }
        Ok(())
    }

    /// Bytes of keys and values per chunk: half a frame leaves room for the
    /// encoding's overhead.
    pub(crate) fn chunk_budget(&self) -> usize {
        self.max_frame / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        assert!(ReplicationConfig::default().validate().is_ok());
        let c = ReplicationConfig { max_frame: 10, ..ReplicationConfig::default() };
        assert!(matches!(c.validate(), Err(ReplicationError::InvalidConfig { field: "max_frame", .. })));
        let c = ReplicationConfig { timeout: Duration::ZERO, ..ReplicationConfig::default() };
        assert!(matches!(c.validate(), Err(ReplicationError::InvalidConfig { field: "timeout", .. })));
    }
}
