//! [`NodeConfig`]: timing and log-size settings of a [`RaftNode`](super::RaftNode).

use crate::error::{Error, Result};
use crate::metadata::NodeId;

/// Settings of one raft peer. All times are in ticks: the shell decides how
/// long a tick is ([`ClusterConfig::tick`](crate::ClusterConfig::tick),
/// 100 ms by default; the simulation uses a virtual clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// This node's raft id (≥ 1, unique in the cluster, never reused).
    pub id: NodeId,
    /// A follower that hears no leader for a random time in
    /// `[election_ticks, 2 × election_ticks)` campaigns. Default 10.
    pub election_ticks: usize,
    /// The leader sends heartbeats every this many ticks. Default 2; must be
    /// below `election_ticks`.
    pub heartbeat_ticks: usize,
    /// The leader marks a node down (and fails its shards over) when it has
    /// not heard from it for this many ticks. Default 30; must exceed
    /// `election_ticks` so that a leader change alone fails nothing over.
    pub lease_ticks: u64,
    /// A snapshot of the metadata is taken every this many applied entries,
    /// and the log is compacted behind it. Default 128.
    pub snapshot_interval: u64,
    /// Entries kept behind a snapshot, so that a slightly lagging follower
    /// catches up from the log rather than by snapshot. Default 32.
    pub compact_keep: u64,
    /// Ticks the leader waits for one of its own placement or liveness
    /// proposals before it proposes again. Default 20.
    pub duty_retry_ticks: u64,
    /// The leader promotes a learner (a joining node) to voter once its log
    /// is within this many entries of the leader's and it answered the
    /// leader within the last `election_ticks`. Default 8.
    pub promote_lag: u64,
    /// Seed of the election-timeout randomness (the simulation sets it to
    /// be reproducible; the production shell draws it at random).
    pub seed: u64,
}

impl NodeConfig {
    /// The defaults for node `id`.
    pub fn new(id: NodeId) -> NodeConfig {
        NodeConfig {
            id,
            election_ticks: 10,
            heartbeat_ticks: 2,
            lease_ticks: 30,
            snapshot_interval: 128,
            compact_keep: 32,
            duty_retry_ticks: 20,
            promote_lag: 8,
            seed: id,
        }
    }

    /// Checks the ranges documented on the fields.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason| Err(Error::InvalidConfig { field, reason });
        if self.id == 0 {
            return bad("id", "must be at least 1");
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return bad("heartbeat_ticks", "must be in 1..election_ticks");
        }
        if self.lease_ticks <= self.election_ticks as u64 {
            return bad("lease_ticks", "must exceed election_ticks");
        }
        if self.snapshot_interval == 0 {
            return bad("snapshot_interval", "must be at least 1");
        }
        if self.duty_retry_ticks == 0 {
            return bad("duty_retry_ticks", "must be at least 1");
        }
        Ok(())
    }

    pub(crate) fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            min_election_tick: self.election_ticks,
            max_election_tick: 2 * self.election_ticks,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A leader cut off from the majority steps down, and a node
            // rejoining after a partition cannot disrupt with a higher term.
            check_quorum: true,
            pre_vote: true,
            ..raft::Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_fields_are_named() {
        NodeConfig::new(1).validate().unwrap();
        let e = NodeConfig::new(0).validate().unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { field: "id", .. }), "{e}");
        let c = NodeConfig { lease_ticks: 5, ..NodeConfig::new(1) };
        assert!(matches!(c.validate(), Err(Error::InvalidConfig { field: "lease_ticks", .. })));
        let c = NodeConfig { heartbeat_ticks: 10, ..NodeConfig::new(1) };
        assert!(matches!(c.validate(), Err(Error::InvalidConfig { field: "heartbeat_ticks", .. })));
        assert!(c.raft_config(0).validate().is_err());
        NodeConfig::new(3).raft_config(7).validate().unwrap();
    }
}
