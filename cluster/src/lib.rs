//! weir's cluster layer: metadata replicated through raft (TiKV's raft-rs),
//! placement of rule shards with standbys, and failover by shard epochs
//! (ARCHITECTURE.md "Cluster", issue 8).
//!
//! - [`Metadata`] is the replicated state machine: members, streams, tables,
//!   rules and plans, the [`Placement`] of rule shards, shard epochs and
//!   committed checkpoints. It changes only by [`Command`]s applied in log
//!   order.
//! - [`placement::place`] is the pure placement function the leader runs.
//! - [`RaftNode`] drives one raft-rs `RawNode` without sockets or wall-clock
//!   time; [`RaftStorage`] persists its log in a `StateBackend` (RocksDB in
//!   production, memory in tests).
//! - [`exchange`] carries the rows between the shards of a sharded rule,
//!   node to node, in order, failing loudly rather than losing any.
//! - [`Cluster`] is the production shell: a driver thread, a tick clock and
//!   TCP transport with length-prefixed frames.
//!
//! ```no_run
//! # async fn demo() -> weir_cluster::Result<()> {
//! use weir_cluster::{Cluster, ClusterConfig, Command};
//! let a = Cluster::start(ClusterConfig::new(1, "127.0.0.1:7401".parse().unwrap(), "/tmp/a".into())).await?;
//! a.init().await?;
//! let b = Cluster::start(ClusterConfig::new(2, "127.0.0.1:7402".parse().unwrap(), "/tmp/b".into())).await?;
//! b.join("127.0.0.1:7401").await?;
//! b.propose(Command::PutRule { id: "r1".into(), json: "{}".into(), shards: 2 }).await?;
//! let status = b.status().await?;
//! assert_eq!(status.members.len(), 2);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod clock;
mod error;
pub mod exchange;
#[cfg(test)]
mod fuzz;
mod logger;
pub mod metadata;
mod node;
pub mod placement;
pub mod replication;
mod shell;
mod storage;
pub mod tls;
mod transport;

pub use error::{Error, Result};
pub use metadata::{Applied, Command, MemberChange, Metadata, NodeId, NodeInfo, Placement, Rejection, ShardPlacement};
pub use node::{AppliedProposal, ClusterStatus, NodeConfig, PeerProgress, ProposalId, RaftNode, ReadyOutput};
pub use shell::{Cluster, ClusterConfig};
pub use storage::{RaftStorage, RaftWrite};
pub use tls::ClusterTls;
