//! [`ExchangeError`]: why a link or the server failed, naming the link.

use std::fmt;
use std::sync::Arc;

use super::wire::{FrameError, Refusal};

/// One link of a rule's exchange: the peer's address and the shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The receiving node's exchange address.
    pub addr: String,
    /// The rule id.
    pub rule: String,
    /// The sending shard.
    pub from: u32,
    /// The receiving shard.
    pub to: u32,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {:?} shard {} -> {} at {}", self.rule, self.from, self.to, self.addr)
    }
}

/// Why the exchange failed. Cheap to clone (a link's state holds it).
///
/// Before a link is accepted, [`Connect`](Self::Connect),
/// [`Timeout`](Self::Timeout) and [`Refused`](Self::Refused) only make it
/// retry ([`LinkState::Connecting`](super::LinkState::Connecting)). After,
/// every error ends the link: messages may have been lost, so the rule must
/// roll back.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The server's address could not be bound.
    #[error("exchange server cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The socket error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Connecting (TCP or TLS) or the handshake's I/O failed.
    #[error("exchange {route}: cannot connect: {source}")]
    Connect {
        /// The link.
        route: Route,
        /// The socket or TLS error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Connecting or the Hello's answer took too long.
    #[error("exchange {route}: {what} timed out")]
    Timeout {
        /// The link.
        route: Route,
        /// "connect" or "hello".
        what: &'static str,
    },
    /// The server refused the Hello.
    #[error("exchange {route}: refused: {refusal}")]
    Refused {
        /// The link.
        route: Route,
        /// The server's reason.
        refusal: Refusal,
    },
    /// An accepted connection failed: writing or reading the socket.
    #[error("exchange {route}: connection lost: {source}")]
    Lost {
        /// The link.
        route: Route,
        /// The socket error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The server closed an accepted connection (its shard stopped, or it
    /// refused a frame).
    #[error("exchange {route}: the receiving side closed the connection")]
    Closed {
        /// The link.
        route: Route,
    },
    /// A message encodes to more than the frame limit.
    #[error("exchange {route}: frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The link.
        route: Route,
        /// The encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame could not be encoded or decoded.
    #[error("exchange {route}: corrupt frame: {reason}")]
    Corrupt {
        /// The link.
        route: Route,
        /// The codec's message.
        reason: String,
    },
    /// The link's queue carried a message of another sending shard than
    /// its Hello names (a bug in the caller): the receiver would tag it
    /// wrongly.
    #[error("exchange {route}: queued message from shard {got}")]
    WrongSender {
        /// The link.
        route: Route,
        /// The shard index found in the queue.
        got: u32,
    },
    /// A setting is out of range.
    #[error("exchange: invalid configuration: {0}")]
    InvalidConfig(String),
}

impl ExchangeError {
    /// The error for a frame failure on `route`; `accepted` tells whether
    /// the connection was already carrying messages.
    pub(crate) fn frame(route: &Route, e: FrameError, accepted: bool) -> ExchangeError {
        let route = route.clone();
        match e {
            FrameError::TooLarge { len, max } => ExchangeError::FrameTooLarge { route, len, max },
            FrameError::Corrupt(reason) => ExchangeError::Corrupt { route, reason },
            FrameError::Io(e) if accepted => ExchangeError::Lost { route, source: Arc::new(e) },
            FrameError::Io(e) => ExchangeError::Connect { route, source: Arc::new(e) },
        }
    }
}
