//! [`ClusterConfig`]: what a production node needs besides its raft timings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::metadata::NodeId;
use crate::node::NodeConfig;

/// Settings of a [`Cluster`](crate::Cluster) node.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Raft id and timings (in ticks).
    pub node: NodeConfig,
    /// Address to listen on for peers; port 0 picks a free port
    /// ([`Cluster::local_addr`](crate::Cluster::local_addr) tells which).
    pub listen: SocketAddr,
    /// Address the other nodes use to reach this one; default: the bound
    /// listen address.
    pub advertise: Option<String>,
    /// RocksDB directory of the raft state (ignored by
    /// [`Cluster::start_with_backend`](crate::Cluster::start_with_backend)).
    pub data_dir: PathBuf,
    /// Length of a raft tick. Default 100 ms (elections after 1–2 s,
    /// leases of 3 s with the default [`NodeConfig`]).
    pub tick: Duration,
    /// How long `propose`, `metadata`, `join` and `leave` wait before
    /// [`Error::Timeout`]. Default 10 s.
    pub request_timeout: Duration,
    /// Largest frame accepted or sent, in bytes. Default 64 MiB (a
    /// metadata snapshot travels in one frame).
    pub max_frame: usize,
    /// Raft messages queued per peer before new ones are dropped. Default 1024.
    pub peer_queue: usize,
    /// Events (messages, requests) queued for the driver. Default 4096.
    pub inbox: usize,
    /// Mutual TLS with the other nodes; default none (plain TCP).
    pub tls: Option<crate::tls::ClusterTls>,
}

impl ClusterConfig {
    /// Defaults for node `id` listening on `listen` with state in `data_dir`.
    pub fn new(id: NodeId, listen: SocketAddr, data_dir: PathBuf) -> ClusterConfig {
        ClusterConfig {
            node: NodeConfig::new(id),
            listen,
            advertise: None,
            data_dir,
            tick: Duration::from_millis(100),
            request_timeout: Duration::from_secs(10),
            max_frame: 64 << 20,
            peer_queue: 1024,
            inbox: 4096,
            tls: None,
        }
    }

    /// Checks the node config and the sizes.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        self.node.validate()?;
        let bad = |field, reason| Err(Error::InvalidConfig { field, reason });
        if self.tick.is_zero() {
            return bad("tick", "must be positive");
        }
        if self.max_frame < 1024 {
            return bad("max_frame", "must be at least 1 KiB");
        }
        if self.peer_queue == 0 || self.inbox == 0 {
            return bad("peer_queue", "queues need room for one message");
        }
        Ok(())
    }
}
