//! The replication protocol on the wire, and the key arithmetic both sides
//! share.
//!
//! A frame is a u32 big-endian length and a bincode 2 (serde) body. The
//! primary sends [`Batch`]es on one long-lived connection per standby; the
//! standby answers each with an [`Ack`] carrying the same `seq`, in order.
//! A batch too big for one frame travels as chunks `part = 0, 1, ...` with
//! `more = true` on all but the last; the standby stages them and applies
//! the whole batch atomically when the last arrives, so a refused or lost
//! chunk never leaves half a batch applied.
//!
//! Only [`WireSpace`]'s three rule spaces travel: a remote can never touch
//! the raft space.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use weir_runtime::state::{Space, Write};

use super::config::MAX_FRAME_LIMIT;
use super::error::Refusal;

/// One replicated batch (or chunk of one) of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Batch {
    /// Sequence number on the connection; echoed by the ack.
    pub(crate) seq: u64,
    /// The rule whose keys every write addresses.
    pub(crate) rule: String,
    /// The sender's shard epoch (fencing token).
    pub(crate) epoch: u64,
    /// Index of this chunk within its batch (0 for an unchunked batch).
    pub(crate) part: u32,
    /// More chunks follow; stage instead of applying.
    pub(crate) more: bool,
    /// Apply durably (fsync) — the primary's `sync` flag.
    pub(crate) sync: bool,
    /// The writes, in order.
    pub(crate) writes: Vec<WireWrite>,
}

/// The standby's answer to one [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ack {
    /// The batch's `seq`.
    pub(crate) seq: u64,
    /// Applied (or staged), or why not; a refused batch changed nothing.
    pub(crate) result: Result<(), Refusal>,
}

/// The spaces that hold rule state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireSpace {
    Checkpoints,
    Commits,
    IngestLog,
}

/// The rule spaces, in the order a catch-up copies them.
pub(crate) const RULE_SPACES: [Space; 3] = [Space::Checkpoints, Space::Commits, Space::IngestLog];

impl WireSpace {
    fn from_space(s: Space) -> Option<WireSpace> {
        match s {
            Space::Checkpoints => Some(WireSpace::Checkpoints),
            Space::Commits => Some(WireSpace::Commits),
            Space::IngestLog => Some(WireSpace::IngestLog),
            Space::Raft => None,
        }
    }

    fn space(self) -> Space {
        match self {
            WireSpace::Checkpoints => Space::Checkpoints,
            WireSpace::Commits => Space::Commits,
            WireSpace::IngestLog => Space::IngestLog,
        }
    }
}

/// [`Write`] in a rule space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireWrite {
    Put(WireSpace, Vec<u8>, Vec<u8>),
    Delete(WireSpace, Vec<u8>),
    DeleteRange(WireSpace, Vec<u8>, Vec<u8>),
}

impl WireWrite {
    /// The wire form of `w`; `None` for the raft space.
    pub(crate) fn from_write(w: &Write) -> Option<WireWrite> {
        Some(match w {
            Write::Put(s, k, v) => WireWrite::Put(WireSpace::from_space(*s)?, k.clone(), v.clone()),
            Write::Delete(s, k) => WireWrite::Delete(WireSpace::from_space(*s)?, k.clone()),
            Write::DeleteRange(s, a, b) => WireWrite::DeleteRange(WireSpace::from_space(*s)?, a.clone(), b.clone()),
        })
    }

    pub(crate) fn into_write(self) -> Write {
        match self {
            WireWrite::Put(s, k, v) => Write::Put(s.space(), k, v),
            WireWrite::Delete(s, k) => Write::Delete(s.space(), k),
            WireWrite::DeleteRange(s, a, b) => Write::DeleteRange(s.space(), a, b),
        }
    }

    /// Bytes of keys and values, plus a little for the framing.
    pub(crate) fn size(&self) -> usize {
        16 + match self {
            WireWrite::Put(_, k, v) => k.len() + v.len(),
            WireWrite::Delete(_, k) => k.len(),
            WireWrite::DeleteRange(_, a, b) => a.len() + b.len(),
        }
    }

    /// Whether the write stays within `[prefix, end)`, the keys of one rule
    /// (`end` = [`prefix_end`]). A range must also be ordered: stores
    /// differ on (or panic at) reversed ranges.
    pub(crate) fn within(&self, prefix: &[u8], end: Option<&[u8]>) -> bool {
        match self {
            WireWrite::Put(_, k, _) | WireWrite::Delete(_, k) => k.starts_with(prefix),
            WireWrite::DeleteRange(_, from, to) => range_within(from, to, prefix, end),
        }
    }
}

/// Whether `[from, to)` is ordered and lies within `[prefix, end)`.
pub(crate) fn range_within(from: &[u8], to: &[u8], prefix: &[u8], end: Option<&[u8]>) -> bool {
    from.starts_with(prefix)
        && from <= to
        && match end {
            Some(end) => to <= end,
            None => to.starts_with(prefix),
        }
}

/// The first key after every key starting with `prefix`; `None` when no
/// such key exists (a prefix of only 0xff bytes).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The rule a key of a rule space belongs to: keys start with
/// `rule_prefix(rule)` (u32 BE length, then the id), which a key matches
/// for at most one rule. `None` when the key cannot be a rule's.
pub(crate) fn rule_of(key: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(key.get(4..4usize.checked_add(len)?)?).ok()
}

/// Splits writes into chunks of about `budget` bytes, keeping order; a
/// write bigger than the budget gets a chunk of its own. Always at least
/// one chunk (possibly empty).
pub(crate) fn chunks(writes: Vec<WireWrite>, budget: usize) -> Vec<Vec<WireWrite>> {
    let mut out = vec![Vec::new()];
    let mut size = 0;
    for w in writes {
        let s = w.size();
        let last = out.len() - 1;
        if size + s > budget && !out[last].is_empty() {
            out.push(Vec::new());
            size = 0;
        }
        size += s;
        let last = out.len() - 1;
        out[last].push(w);
    }
    out
}

/// The codec: bincode's standard encoding with a limit, so that no length
/// inside a frame can claim more than [`MAX_FRAME_LIMIT`] bytes.
fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LIMIT>()
}

/// Why a frame could not be encoded.
#[derive(Debug)]
pub(crate) enum EncodeError {
    /// The body exceeds `max`.
    TooLarge { len: usize, max: usize },
    /// serde refused the value (a bug: all frame types encode).
    Codec(String),
}

/// Encodes `v` as a frame: length prefix and body.
pub(crate) fn encode_frame<T: Serialize>(v: &T, max: usize) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![0u8; 4];
    bincode::serde::encode_into_std_write(v, &mut out, codec()).map_err(|e| EncodeError::Codec(e.to_string()))?;
    let len = out.len() - 4;
    if len > max || len > u32::MAX as usize {
        return Err(EncodeError::TooLarge { len, max });
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Decodes a frame body; trailing bytes are an error.
pub(crate) fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let (v, used) = bincode::serde::decode_from_slice(body, codec()).map_err(|e| e.to_string())?;
    if used != body.len() {
        return Err(format!("{} trailing bytes", body.len() - used));
    }
    Ok(v)
}

/// Checks a frame's announced length against `max` (before allocating).
pub(crate) fn check_len(len: [u8; 4], max: usize) -> std::io::Result<usize> {
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    Ok(len)
}

/// Reads one frame body; `None` at a clean end of stream. The length is
/// checked before reading, and the body grows only as bytes arrive, so a
/// lying prefix costs no memory.
pub(crate) async fn read_body<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = check_len(len, max)?;
    let mut body = Vec::with_capacity(len.min(64 << 10));
    r.take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use weir_runtime::state::rule_prefix;

    use super::*;

    fn batch(writes: Vec<WireWrite>) -> Batch {
        Batch { seq: 7, rule: "r".into(), epoch: 3, part: 0, more: false, sync: true, writes }
    }

    #[test]
    fn frames_round_trip_and_garbage_never_panics() {
        let b = batch(vec![
            WireWrite::Put(WireSpace::IngestLog, vec![1, 2], vec![3; 100]),
            WireWrite::DeleteRange(WireSpace::Checkpoints, vec![1], vec![2]),
        ]);
        let frame = encode_frame(&b, 1 << 20).unwrap();
        assert_eq!(check_len(frame[..4].try_into().unwrap(), 1 << 20).unwrap(), frame.len() - 4);
        assert_eq!(decode_body::<Batch>(&frame[4..]).unwrap(), b);
        assert!(matches!(encode_frame(&b, 10), Err(EncodeError::TooLarge { .. })));
        assert!(check_len([0xff; 4], 1 << 20).is_err());
        let mut trailing = frame[4..].to_vec();
        trailing.push(0);
        assert!(decode_body::<Batch>(&trailing).is_err());
        // A rule id claiming 2^62 bytes is refused, not allocated.
        let mut lying = vec![7u8, 253];
        lying.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(decode_body::<Batch>(&lying).is_err());
        for bytes in crate::fuzz::random_bytes(0x9e37_79b9, 3000, 96) {
            let _ = decode_body::<Batch>(&bytes);
            let _ = decode_body::<Ack>(&bytes);
        }
    }

    #[test]
    fn keys_belong_to_exactly_one_rule() {
        let p = rule_prefix("ab");
        let mut k = p.clone();
        k.extend_from_slice(b"xyz");
        assert_eq!(rule_of(&k), Some("ab"));
        assert_eq!(rule_of(&p), Some("ab"));
        assert_eq!(rule_of(b"ab"), None);
        assert_eq!(rule_of(&[0, 0, 0, 9, b'a']), None);
        // The prefix of "a" is not a prefix of "ab"'s keys: lengths differ.
        assert!(!k.starts_with(&rule_prefix("a")));
        let end = prefix_end(&p).unwrap();
        let w = |a: &[u8], b: &[u8]| WireWrite::DeleteRange(WireSpace::IngestLog, a.to_vec(), b.to_vec());
        assert!(w(&p, &end).within(&p, Some(&end)));
        assert!(w(&k, &k).within(&p, Some(&end)));
        assert!(!w(&k, &p).within(&p, Some(&end)), "reversed range");
        assert!(!w(&p, &prefix_end(&end).unwrap()).within(&p, Some(&end)));
        assert!(!WireWrite::Put(WireSpace::Commits, rule_prefix("b"), vec![]).within(&p, Some(&end)));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    #[test]
    fn chunks_keep_order_and_budget() {
        let w = |i: u8, n: usize| WireWrite::Put(WireSpace::Checkpoints, vec![i], vec![0; n]);
        let c = chunks(vec![w(1, 30), w(2, 30), w(3, 500), w(4, 10)], 100);
        let ids: Vec<Vec<u8>> = c
            .iter()
            .map(|c| c.iter().map(|w| if let WireWrite::Put(_, k, _) = w { k[0] } else { 0 }).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 2], vec![3], vec![4]]);
        assert_eq!(chunks(Vec::new(), 100), vec![Vec::<WireWrite>::new()]);
    }
}
