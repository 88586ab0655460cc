//! The replicated metadata: what every node agrees on through raft.
//!
//! [`Metadata`] holds the members, the catalog (streams, tables, rules and
//! their plans), the [`Placement`] of every rule shard and the last
//! committed checkpoint of each shard. It changes only by applying committed
//! [`Command`]s (and membership changes carried by raft conf changes), in log
//! order, on every node; applying is deterministic, so equal logs give equal
//! metadata. [`Metadata::to_bytes`]/[`Metadata::from_bytes`] are the raft
//! snapshot format.
//!
//! # Shard epochs (fencing)
//! Every shard's [`ShardPlacement::epoch`] is a fencing token. Epochs are
//! issued from one cluster-wide counter ([`Metadata::last_epoch`]), so they
//! are unique and a shard's epoch only grows, even across a rule's drop and
//! re-creation. A shard gets a new epoch whenever its primary changes
//! (failover, rebalancing), on [`Command::BumpShardEpoch`], or when its
//! sharded rule rolls back (below). The primary
//! stamps its checkpoint commits with the epoch it was given;
//! [`Command::CommitCheckpoint`] with any other epoch is rejected
//! ([`Rejection::Fenced`]), so a deposed primary that has not noticed yet
//! cannot commit.
//!
//! # Sharded rules roll back as a whole
//! The shards of a rule with more than one shard exchange rows (and the
//! barriers between them), so a checkpoint epoch is a cut across all of
//! them: the rule's [global checkpoint](Metadata::global_checkpoint) is the
//! least checkpoint its shards committed, and only that one is restored.
//! Hence the epochs of such a rule's shards change together: whenever one
//! shard gets a fresh epoch (failover, a rebalancing swap,
//! [`Command::BumpShardEpoch`], [`Command::RestartShards`]) every shard of
//! the rule gets one, which fences every primary of the old run, and the
//! checkpoint records of all its shards are reset to the global checkpoint
//! (stamped with the shards' new epochs). The new run then commits from
//! there, and the least record is always a cut that exists on every shard.
//! A shard whose primary and standby stay keeps its synced standby, so a
//! second failure right after a rollback still fails over.
//! [`Command::SetPlacement`] refuses a placement that changes the epochs of
//! only some shards of such a rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod apply;
#[cfg(test)]
mod tests;

pub use apply::Applied;

/// A node id (raft peer id); never 0.
pub type NodeId = u64;

/// Shard placement of every placed rule: rule id -> shard index -> placement.
pub type Placement = BTreeMap<String, Vec<ShardPlacement>>;

/// A member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Raft id.
    pub id: NodeId,
    /// Address other nodes connect to (`host:port`).
    pub addr: String,
    /// Whether its lease is valid: the leader marks a node down when it has
    /// not heard from it for `lease_ticks`, and up again when it has.
    pub live: bool,
    /// Load the node reports ([`Command::ReportLoad`]), in standby-shard
    /// units (a standby weighs 1, a primary 2); placement adds it to the
    /// node's cost.
    pub load: u64,
    /// The node's REST API base URL, as it reported it
    /// ([`Command::ReportAddresses`]); empty until then.
    #[serde(default)]
    pub rest: String,
    /// Where the node accepts replicated rule state, as it reported it;
    /// empty until then.
    #[serde(default)]
    pub replica: String,
    /// Where the node accepts the rows sharded rules exchange between
    /// their shards, as it reported it; empty until then.
    #[serde(default)]
    pub exchange: String,
    /// A raft learner: it receives the log but does not vote, so it does
    /// not count towards the quorum. A joining node is one until it has
    /// caught up with the leader's log and the leader promotes it
    /// ([`MemberChange::Promote`]). It is shown as a member, but placement
    /// gives it no shards until it is a voter.
    #[serde(default)]
    pub learner: bool,
}

/// A rule as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    /// eKuiper rule JSON, stored verbatim (the cluster does not parse it).
    pub json: String,
    /// Number of shards (≥ 1).
    pub shards: u32,
    /// The rule's plan, opaque to the cluster (set by [`Command::SetPlan`]).
    pub plan: Option<String>,
}

/// Where one shard runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlacement {
    /// The node running the shard.
    pub primary: NodeId,
    /// The node holding the warm copy; `None` while fewer than two nodes are live.
    pub standby: Option<NodeId>,
    /// Fencing token of the current primary (see the module docs).
    pub epoch: u64,
    /// The standby holds a full copy of the shard's state: its primary
    /// copied it over and reported so ([`Command::StandbySynced`]). Only a
    /// synced standby is promoted when the primary dies; a placement
    /// change of primary, standby or epoch clears it, except the rollback
    /// of a sharded rule (a fresh epoch with the same primary and standby:
    /// the standby still holds everything the primary wrote).
    pub synced: bool,
}

/// The last checkpoint committed for a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedCheckpoint {
    /// The checkpoint (barrier) epoch.
    pub checkpoint: u64,
    /// The shard epoch of the primary that committed it.
    pub shard_epoch: u64,
}

/// A change of the replicated metadata, proposed through raft.
///
/// Membership is not a command: it goes through raft conf changes
/// ([`MemberChange`]) so that raft's voter set and [`Metadata::nodes`]
/// change at the same log index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Command {
    /// Creates or replaces a stream definition.
    PutStream {
        /// Stream name.
        name: String,
        /// Its `CREATE STREAM` statement.
        sql: String,
    },
    /// Removes a stream.
    DropStream {
        /// Stream name.
        name: String,
    },
    /// Creates or replaces a table definition.
    PutTable {
        /// Table name.
        name: String,
        /// Its `CREATE TABLE` statement.
        sql: String,
    },
    /// Removes a table.
    DropTable {
        /// Table name.
        name: String,
    },
    /// Creates or replaces a rule; a new JSON clears the stored plan.
    PutRule {
        /// Rule id.
        id: String,
        /// eKuiper rule JSON.
        json: String,
        /// Number of shards, 1..=[`MAX_SHARDS`].
        shards: u32,
    },
    /// Removes a rule with its placement, plan and checkpoints.
    DropRule {
        /// Rule id.
        id: String,
    },
    /// Stores a rule's plan.
    SetPlan {
        /// Rule id.
        rule: String,
        /// The plan, opaque to the cluster.
        plan: String,
    },
    /// A node reports its load (see [`NodeInfo::load`]).
    ReportLoad {
        /// The node.
        node: NodeId,
        /// Its load.
        load: u64,
    },
    /// A node reports where its services are, for the other nodes.
    ReportAddresses {
        /// The node.
        node: NodeId,
        /// Its REST API base URL.
        rest: String,
        /// Its state-replication address.
        replica: String,
        /// Its shard-exchange address (rows between the shards of a rule).
        #[serde(default)]
        exchange: String,
    },
    /// The leader's lease verdict on a node.
    SetNodeLive {
        /// The node.
        node: NodeId,
        /// Whether its lease is valid.
        live: bool,
    },
    /// Replaces the placement of the named rules (other rules keep theirs).
    /// A shard whose primary changes must carry a fresh epoch above
    /// [`Metadata::last_epoch`]; an unchanged primary keeps its epoch or
    /// gets a fresh one. The shards of a rule with more than one shard keep
    /// their epochs all or none; when they all change, the rule's
    /// checkpoints are reset to its global one (see the module docs).
    SetPlacement {
        /// New placements by rule.
        placement: Placement,
    },
    /// Gives a shard a fresh epoch (fencing its current primary's commits);
    /// for a rule with more than one shard, every shard of the rule gets
    /// one and the checkpoints are reset (see the module docs). Applies as
    /// [`Applied::Epoch`] with the named shard's new epoch.
    BumpShardEpoch {
        /// Rule id.
        rule: String,
        /// Shard index.
        shard: u32,
    },
    /// The primary of a shard reports that its standby holds a full copy of
    /// the shard's state; applied only if the placement still has that
    /// epoch and standby.
    StandbySynced {
        /// Rule id.
        rule: String,
        /// Shard index.
        shard: u32,
        /// The epoch of the reporting primary.
        epoch: u64,
        /// The standby it copied to.
        standby: NodeId,
    },
    /// Records a completed checkpoint of a shard, if `shard_epoch` is current.
    CommitCheckpoint {
        /// Rule id.
        rule: String,
        /// Shard index.
        shard: u32,
        /// The epoch the committing primary was given.
        shard_epoch: u64,
        /// The checkpoint (barrier) epoch; must not go backwards.
        checkpoint: u64,
    },
    /// A running shard asks to roll its rule back (e.g. a link between
    /// shards broke): every shard gets a fresh epoch, primaries and
    /// standbys stay, and the checkpoints are reset to the rule's global
    /// one (see the module docs). Applied only if `epochs` are still the
    /// rule's shard epochs, so that the same request from several shards
    /// rolls back once; otherwise [`Rejection::StalePlacement`].
    RestartShards {
        /// Rule id.
        rule: String,
        /// The epochs of all the rule's shards, by shard index, as the
        /// requester knows them.
        epochs: Vec<u64>,
    },
}

/// The most shards a rule may have.
pub const MAX_SHARDS: u32 = 1024;

/// A membership change, carried by a raft conf change.
///
/// A node joins in two steps (raft thesis §4.2.1): [`Add`](MemberChange::Add)
/// makes it a learner, which receives the log without counting towards the
/// quorum, so a fresh node with an empty log cannot stall commits; once it
/// has caught up, the leader proposes [`Promote`](MemberChange::Promote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Adds a node as a learner (raft `AddLearnerNode`), or updates the
    /// address of a member (a voter stays a voter).
    Add {
        /// Its id.
        id: NodeId,
        /// Its address.
        addr: String,
    },
    /// Makes a learner a voter (raft `AddNode`); proposed by the leader
    /// once the learner's log is within
    /// [`NodeConfig::promote_lag`](crate::NodeConfig::promote_lag) entries
    /// of its own.
    Promote {
        /// Its id.
        id: NodeId,
    },
    /// Removes a voter or learner.
    Remove {
        /// Its id.
        id: NodeId,
    },
}

/// What kind of object a [`Rejection`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectKind {
    /// A stream.
    Stream,
    /// A table.
    Table,
    /// A rule.
    Rule,
    /// A rule shard.
    Shard,
    /// A cluster member.
    Node,
}

/// Why the state machine refused a committed command. Rejections are
/// deterministic: every node refuses the same command the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The named object does not exist.
    #[error("{kind:?} {name} not found")]
    NotFound {
        /// Its kind.
        kind: ObjectKind,
        /// Its name (or id).
        name: String,
    },
    /// A rule's shard count is out of range.
    #[error("rule {rule}: {shards} shards is not in 1..={MAX_SHARDS}")]
    InvalidShards {
        /// Rule id.
        rule: String,
        /// The count asked for.
        shards: u32,
    },
    /// A checkpoint was committed with an epoch that is not the shard's.
    #[error("rule {rule} shard {shard}: epoch {epoch} is fenced, current is {current}")]
    Fenced {
        /// Rule id.
        rule: String,
        /// Shard.
        shard: u32,
        /// The epoch given.
        epoch: u64,
        /// The shard's epoch.
        current: u64,
    },
    /// A checkpoint older than the committed one.
    #[error("rule {rule} shard {shard}: checkpoint {checkpoint} is older than committed {committed}")]
    StaleCheckpoint {
        /// Rule id.
        rule: String,
        /// Shard.
        shard: u32,
        /// The checkpoint given.
        checkpoint: u64,
        /// The committed one.
        committed: u64,
    },
    /// A placement computed from an older state (epochs, nodes or shard counts changed since).
    #[error("stale placement for rule {rule}: {reason}")]
    StalePlacement {
        /// Rule id.
        rule: String,
        /// What did not match.
        reason: String,
    },
    /// raft refused a membership change (e.g. removing the last voter).
    #[error("membership change refused: {reason}")]
    MembershipRefused {
        /// raft's reason.
        reason: String,
    },
    /// The entry's bytes do not decode (written by an incompatible version).
    #[error("undecodable entry at index {index}")]
    Malformed {
        /// Log index.
        index: u64,
    },
}

/// The replicated state machine. Fields are public for reading; change it
/// only through [`Metadata::apply`] so that all nodes stay equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Members by id.
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// Stream definitions by name.
    pub streams: BTreeMap<String, String>,
    /// Table definitions by name.
    pub tables: BTreeMap<String, String>,
    /// Rules by id.
    pub rules: BTreeMap<String, RuleInfo>,
    /// Where each rule's shards run.
    pub placement: Placement,
    /// Last committed checkpoint by rule and shard.
    pub checkpoints: BTreeMap<String, BTreeMap<u32, CommittedCheckpoint>>,
    /// The highest shard epoch ever issued.
    pub last_epoch: u64,
}

impl Metadata {
    /// Encodes the state (a raft snapshot's data).
    ///
    /// # Errors
    /// Only if serde refuses a value (a bug).
    pub fn to_bytes(&self) -> crate::Result<Vec<u8>> {
        Ok(weir_runtime::state::codec::encode(self)?)
    }

    /// Decodes a state written by [`Metadata::to_bytes`].
    ///
    /// # Errors
    /// [`Error::Storage`](crate::Error::Storage) (corrupt) when the bytes do not decode.
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<Metadata> {
        Ok(weir_runtime::state::codec::decode(bytes, "cluster metadata snapshot")?)
    }

    /// The ids of voting members whose lease is valid, ascending: the
    /// nodes placement may use (learners get no shards).
    pub fn live_nodes(&self) -> Vec<NodeId> {
        self.nodes.values().filter(|n| n.live && !n.learner).map(|n| n.id).collect()
    }

    /// The rule's global committed checkpoint: the least checkpoint
    /// recorded over its shards `0..shards`, i.e. the last cut that every
    /// shard committed. Outputs are released, logs truncated and state
    /// restored only up to it. 0 (nothing committed) when some shard has no
    /// record or the rule is unknown.
    pub fn global_checkpoint(&self, rule: &str) -> u64 {
        let (Some(info), Some(records)) = (self.rules.get(rule), self.checkpoints.get(rule)) else { return 0 };
        (0..info.shards).map(|s| records.get(&s).map_or(0, |c| c.checkpoint)).min().unwrap_or(0)
    }

    /// The shard counts of all rules, the input of [`crate::placement::place`].
    pub fn shard_counts(&self) -> BTreeMap<String, u32> {
        self.rules.iter().map(|(id, r)| (id.clone(), r.shards)).collect()
    }
}
