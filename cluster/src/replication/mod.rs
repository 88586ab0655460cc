//! Synchronous replication of rule state from a shard's primary to its
//! standby (ARCHITECTURE.md "Cluster": "the primary replicates its ingest
//! log and checkpoint deltas to the standby before acknowledging the
//! broker").
//!
//! Every durable write of a rule — operator snapshots, commit records, the
//! ingest log — goes through one [`StateBackend::write`] call with keys
//! under `rule_prefix(rule)`. So replication is a wrapper:
//!
//! - [`ReplicatedBackend`] (primary) implements [`StateBackend`] over the
//!   node's local store and sends each rule's writes to the rule's standby
//!   before the call returns.
//! - [`ReplicaServer`] (standby) applies them to its own local store, one
//!   atomic batch each, refusing stale shard epochs ([`ReplicaServer::fence`])
//!   and keys outside the rule.
//!
//! On failover the promoted standby starts the rule on its local store and
//! the ordinary restore (newest commit, ingest-log replay) does the rest.
//!
//! # Protocol
//! One TCP connection per standby, frames of a u32 BE length and a bincode
//! body. The primary sends `Batch { seq, rule, epoch, part, more, sync,
//! writes }`, the standby answers `Ack { seq, result }` in order. Large
//! batches travel in chunks that the standby stages and applies at once.
//! Frames over [`ReplicationConfig::max_frame`] or that do not decode close
//! the connection.
//!
//! # Consistency: a promoted standby holds every write the primary acked
//! Say a `write` is *acked* when it returned `Ok` — only then does the
//! ingest log answer its appends (and the source ack the broker) or a
//! checkpoint count as committed.
//!
//! 1. *Exact start.* A standby receives writes only in
//!    [`SyncStatus::InSync`], reached by [`ReplicatedBackend::sync_standby`]:
//!    under the rule's lock it scans the local store and sends one batch
//!    that deletes the rule's key range and puts every key, applied
//!    atomically and synced. The copy equals the primary's state at that
//!    moment.
//! 2. *Same order.* A `write` holds the lock of each rule it touches from
//!    before sending until the last ack, and sends on one connection that
//!    the standby serves in order. So the standby applies a rule's writes
//!    in exactly the primary's order, with nothing between the copy and
//!    the first live write.
//! 3. *Acked means on both.* `write` returns `Ok` only when the local write
//!    and the standby's ack both succeeded; the standby acks after its
//!    store accepted the batch with the same `sync` flag (a later synced
//!    write also makes the earlier unsynced ones durable, in RocksDB as in
//!    the local store).
//! 4. *Failure means resync.* Any failure (timeout, lost connection, a
//!    refusal, the local store) may leave the batch on one side only, so
//!    the rule drops to [`SyncStatus::NeedsSync`] and every later write
//!    fails until a new full copy. A failed call is "in doubt", exactly
//!    like a local write interrupted by a crash, which callers already
//!    handle: nothing is acked, the broker redelivers.
//! 5. *Fencing.* The leader bumps the shard epoch when it promotes the
//!    standby. The promoted node calls [`ReplicaServer::fence`] with the
//!    new epoch **before** it restores the rule. Fence and apply take the
//!    same per-rule lock on the standby, so each batch of the old primary
//!    was either applied before the fence — and is in what the restore
//!    reads — or is refused afterwards, and then the old primary's `write`
//!    failed and it acked nothing. The gate is stored durably with the
//!    writes that raise it, so a restart does not reopen it.
//!
//! Hence the restore on the promoted node sees every acked write, plus
//! perhaps some in-doubt ones (never acked: harmless duplicates that the
//! broker would redeliver anyway).
//!
//! Two conditions are the node's and the leader's to keep: promote a
//! standby only if it reached [`SyncStatus::InSync`] (the primary knows;
//! the metadata should record it), and degrade a rule to local-only writes
//! (`set_standby(rule, None, epoch)`) only after the leader removed that
//! standby from the placement.
//!
//! # Using it on a node
//! ```no_run
//! # async fn demo(local: std::sync::Arc<dyn weir_runtime::state::StateBackend>) -> Result<(), weir_cluster::replication::ReplicationError> {
//! use std::sync::Arc;
//! use weir_cluster::replication::{ReplicaServer, ReplicatedBackend, ReplicationConfig};
//! let config = ReplicationConfig::default();
//! // Standby side: serve the node's local store.
//! let server = ReplicaServer::bind("0.0.0.0:7411".parse().unwrap(), local.clone(), config.clone()).await?;
//! // Primary side: rules get this backend instead of the local store.
//! let backend = Arc::new(ReplicatedBackend::new(local, config)?);
//! // From the placement: this node is primary of r1 at epoch 7, node B is standby.
//! server.fence("r1", 7)?;
//! backend.set_standby("r1", Some("node-b:7411"), 7);
//! tokio::task::block_in_place(|| backend.sync_standby("r1"))?;
//! // ... start the rule on `backend`.
//! # Ok(()) }
//! ```
//!
//! [`StateBackend`]: weir_runtime::state::StateBackend
//! [`StateBackend::write`]: weir_runtime::state::StateBackend::write

mod backend;
mod config;
mod error;
mod fence;
mod link;
mod server;
#[cfg(test)]
mod tests;
// The frame helpers are shared with the exchange of sharded rules.
pub(crate) mod wire;

pub use backend::{ReplicatedBackend, StandbyInfo, SyncStatus};
pub use config::{ReplicationConfig, MAX_FRAME_LIMIT};
pub use error::{Refusal, ReplicationError};
pub use server::ReplicaServer;
