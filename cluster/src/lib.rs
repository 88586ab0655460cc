//! weir's cluster layer (issue 8, not started yet): raft-rs metadata shared
//! by the nodes, placement of rule shards with standbys, and failover that
//! restores a shard from its last committed checkpoint (ARCHITECTURE.md
//! "Cluster"). The crate exists so the workspace has its final shape; it has
//! no code yet, and nothing depends on it.
#![warn(missing_docs)]
