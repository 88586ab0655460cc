//! The exchange between the shards of a sharded rule (issue 8): rows
//! travel from one shard's rule instance to another's, across nodes, as
//! [`Message`](weir_runtime::row::Message)s tagged with the sending shard.
//!
//! - [`ExchangeServer`] listens on a node. Each shard running there
//!   [`register`](ExchangeServer::register)s its inbox; accepted connections
//!   deliver into it, awaiting a full inbox (backpressure reaches the sender
//!   through TCP).
//! - [`ExchangeLink`] is one sending end: a task that connects to the
//!   shard's node, retrying while the shard is not there yet, then writes
//!   every message of its queue, in order.
//!
//! # Protocol
//! One TCP (optionally mutual-TLS) connection per link, one way. The link
//! sends a [`Hello`] naming the rule, both shards and the run's generation
//! (the shard epochs of all shards); the server answers [`Answer::Accept`]
//! or [`Answer::Refuse`]. Then the link sends frames: a u32 big-endian
//! length and a bincode 2 (serde, standard config) `Message`, and the
//! server sends nothing more.
//!
//! # No silent loss
//! Barriers travel in-band, so a link must deliver its messages exactly once
//! and in order or not at all. Before the Hello is accepted nothing has been
//! sent, so the link retries freely. Once accepted, any break (the peer
//! closed, the socket failed, a frame too large) may have lost messages:
//! the link does **not** reconnect; it stops and reports the error through
//! [`ExchangeLink::failed`], and the node rolls the rule back. A link whose
//! queue closes flushes, closes the connection cleanly and reports no
//! failure. A server accepts one connection per sending shard and
//! registration, so two connections can never interleave one sender's
//! messages.

use std::time::Duration;

use crate::replication::MAX_FRAME_LIMIT;
use crate::tls::ClusterTls;

mod error;
mod link;
mod server;
#[cfg(test)]
mod tests;
mod wire;

pub use error::{ExchangeError, Route};
pub use link::{ExchangeLink, LinkState};
pub use server::{ExchangeServer, Registration};
pub use wire::{Answer, Hello, Refusal};

/// Settings of both ends of the exchange. Use the same values on every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeConfig {
    /// Mutual TLS with the other nodes (the cluster's settings); default
    /// none (plain TCP).
    pub tls: Option<ClusterTls>,
    /// Largest message frame sent or accepted, in bytes (at most
    /// [`MAX_FRAME_LIMIT`]). A bigger one is a connection error on either
    /// side. Default 64 MiB.
    pub max_frame: usize,
    /// How long connecting may take (per attempt). Default 1 s.
    pub connect_timeout: Duration,
    /// How long the Hello and its answer may take (after the TLS handshake,
    /// which has its own timeout), so a silent peer cannot hold a task.
    /// Default 5 s.
    pub hello_timeout: Duration,
}

impl Default for ExchangeConfig {
    fn default() -> ExchangeConfig {
        ExchangeConfig {
            tls: None,
            max_frame: 64 << 20,
            connect_timeout: Duration::from_secs(1),
            hello_timeout: Duration::from_secs(5),
        }
    }
}

impl ExchangeConfig {
    /// Checks the limits.
    ///
    /// # Errors
    /// [`ExchangeError::InvalidConfig`] naming the setting.
    pub fn validate(&self) -> Result<(), ExchangeError> {
        if self.max_frame == 0 || self.max_frame > MAX_FRAME_LIMIT {
            return Err(ExchangeError::InvalidConfig(format!(
                "max_frame {} is not within 1..={MAX_FRAME_LIMIT}",
                self.max_frame
            )));
        }
        if self.connect_timeout.is_zero() || self.hello_timeout.is_zero() {
            return Err(ExchangeError::InvalidConfig("timeouts must be positive".into()));
        }
        Ok(())
    }
}
