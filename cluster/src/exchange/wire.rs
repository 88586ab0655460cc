//! The exchange's handshake on the wire, and message frames.
//!
//! Frames use the replication's helpers (`replication::wire`): a u32 BE
//! length checked against a limit before reading, then a bincode 2 body.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use crate::replication::wire::{decode_body, encode_frame, read_body, EncodeError};

/// Largest Hello or Answer frame: a few ids and one epoch per shard.
pub(crate) const HELLO_MAX: usize = 1 << 20;

/// The first frame of a connection: which shard of which run of a rule
/// sends to which shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The rule id.
    pub rule: String,
    /// The receiving shard's index.
    pub to: u32,
    /// The sending shard's index; the server tags every message with it.
    pub from: u32,
    /// The shard epochs of all shards of the rule as the sender's run knows
    /// them: the run's generation. Only a registration with the same
    /// epochs accepts the connection.
    pub epochs: Vec<u64>,
}

/// The server's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The shard is here, of the same run: message frames may follow.
    Accept,
    /// Not accepted; the link retries (the shard may start later).
    Refuse(Refusal),
}

/// Why a server refused a [`Hello`]. Travels in the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No shard `to` of the rule is registered on this node (not started
    /// yet, or placed elsewhere).
    #[error("no shard {shard} of rule {rule:?} here")]
    NoShard {
        /// The rule.
        rule: String,
        /// The shard asked for.
        shard: u32,
    },
    /// The shard runs here, but in another generation (other epochs).
    #[error("shard runs generation {here:?}, not {theirs:?}")]
    Generation {
        /// The registered shard's epochs.
        here: Vec<u64>,
        /// The Hello's epochs.
        theirs: Vec<u64>,
    },
    /// The sending shard already has a connection to this registration;
    /// a second one could interleave its messages.
    #[error("shard {from} is already connected")]
    Duplicate {
        /// The sending shard.
        from: u32,
    },
}

/// Why a frame could not be written or read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The encoded body exceeds the limit.
    TooLarge { len: usize, max: usize },
    /// The body does not decode.
    Corrupt(String),
    /// The socket failed, or the announced length exceeds the limit.
    Io(std::io::Error),
}

/// Encodes `v` as a length-prefixed frame of at most `max` body bytes.
pub(crate) fn encode<T: Serialize>(v: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    encode_frame(v, max).map_err(|e| match e {
        EncodeError::TooLarge { len, max } => FrameError::TooLarge { len, max },
        EncodeError::Codec(m) => FrameError::Corrupt(m),
    })
}

/// Reads and decodes one frame; `None` at a clean end of stream.
pub(crate) async fn read<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<T>, FrameError> {
    match read_body(r, max).await.map_err(FrameError::Io)? {
        None => Ok(None),
        Some(body) => decode_body(&body).map(Some).map_err(FrameError::Corrupt),
    }
}
