//! Node-to-node frames: a u32 big-endian length, then a bincode-encoded
//! [`Frame`]. Raft messages travel inside as their protobuf bytes.
//!
//! A connection opened by node A to node B starts with [`Frame::Hello`]
//! (A's id and address) and then carries A's raft messages to B, one way.
//! Requests ([`Frame::Request`], e.g. a join) use a short-lived connection
//! of their own and get one [`Frame::Response`] back.
//!
//! Frames longer than the configured limit, or that do not decode, close
//! the connection: they are never trusted and never panic the node.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Error, Result};
use crate::metadata::NodeId;

pub(crate) mod tcp;

/// Everything that travels between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Frame {
    /// First frame of a raft connection: who is sending.
    Hello { from: NodeId, addr: String },
    /// A protobuf-encoded raft `Message`.
    Raft(Vec<u8>),
    /// A request to the receiving node.
    Request(Request),
    /// The answer to a request.
    Response(Response),
}

/// Requests a node serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Add node `id` at `addr` as a voter (proposed through the leader).
    Join { id: NodeId, addr: String },
}

/// Answers to [`Request`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Response {
    /// The join is committed; the members and their addresses.
    Joined { members: Vec<(NodeId, String)> },
    /// Not done; `retry` when it may work later (no leader, busy).
    Refused { reason: String, retry: bool },
}

/// Encodes a frame with its length prefix.
///
/// # Errors
/// The body exceeds `max` bytes.
pub(crate) fn encode_frame(frame: &Frame, max: usize) -> Result<Vec<u8>> {
    let body = weir_runtime::state::codec::encode(frame)?;
    if body.len() > max || body.len() > u32::MAX as usize {
        return Err(Error::FrameTooLarge { len: body.len(), max });
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a frame body (without the length prefix).
///
/// # Errors
/// [`Error::Corrupt`] when the bytes are not a frame.
pub(crate) fn decode_frame(body: &[u8]) -> Result<Frame> {
    weir_runtime::state::codec::decode(body, "frame").map_err(|e| Error::corrupt("frame", e))
}

/// Reads one frame; `None` at a clean end of stream (between frames).
///
/// # Errors
/// I/O errors, a length above `max` ([`Error::FrameTooLarge`], checked
/// before allocating), an undecodable body.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(Error::FrameTooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    decode_frame(&body).map(Some)
}

/// Encodes a raft message for [`Frame::Raft`].
pub(crate) fn encode_message(m: &raft::eraftpb::Message) -> Result<Vec<u8>> {
    protobuf::Message::write_to_bytes(m).map_err(|e| Error::corrupt("raft message", e))
}

/// Decodes the payload of [`Frame::Raft`].
pub(crate) fn decode_message(bytes: &[u8]) -> Result<raft::eraftpb::Message> {
    <raft::eraftpb::Message as protobuf::Message>::parse_from_bytes(bytes)
        .map_err(|e| Error::corrupt("raft message", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn frames_round_trip_through_a_stream() {
        let frames = vec![
            Frame::Hello { from: 3, addr: "127.0.0.1:9".into() },
            Frame::Raft(vec![1, 2, 3]),
            Frame::Request(Request::Join { id: 4, addr: "h:1".into() }),
            Frame::Response(Response::Refused { reason: "no leader".into(), retry: true }),
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            bytes.extend(encode_frame(f, 1024).unwrap());
        }
        let got = block_on(async {
            let mut r = bytes.as_slice();
            let mut got = Vec::new();
            while let Some(f) = read_frame(&mut r, 1024).await.unwrap() {
                got.push(f);
            }
            got
        });
        assert_eq!(got, frames);
    }

    #[test]
    fn oversized_truncated_and_garbage_frames_are_errors() {
        let big = Frame::Raft(vec![0; 100]);
        assert!(matches!(encode_frame(&big, 10), Err(Error::FrameTooLarge { .. })));
        block_on(async {
            // A length of 4 GiB is refused before any allocation.
            let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2];
            assert!(matches!(read_frame(&mut r, 1 << 20).await, Err(Error::FrameTooLarge { .. })));
            // A body cut short.
            let mut r: &[u8] = &[0, 0, 0, 9, 1, 2];
            assert!(matches!(read_frame(&mut r, 1 << 20).await, Err(Error::Io(_))));
            // Garbage of the announced length.
            let mut r: &[u8] = &[0, 0, 0, 3, 0xff, 0xff, 0xff];
            assert!(matches!(read_frame(&mut r, 1 << 20).await, Err(Error::Corrupt { .. })));
        });
        assert!(decode_message(&[0xff, 0xff, 0xff]).is_err());
        // Random bytes never panic the decoders.
        for bytes in crate::fuzz::random_bytes(0x1234_5678, 2000, 64) {
            let _ = decode_frame(&bytes);
            let _ = decode_message(&bytes);
        }
    }
}
