//! Which MQTT deliveries an ingest log holds, by packet id: how a
//! redelivery is recognised however long ago its first copy was logged.
//!
//! A broker sends a QoS 1/2 message again, flagged DUP, when it got no
//! acknowledgement for it (the connection or the process died after the
//! log append, before the PUBACK reached the broker). The first copy may
//! be anywhere behind the log's end, and may be truncated away already.
//! A broker reuses a packet id only after it received the acknowledgement
//! for the message that had it, so "the last message logged under packet
//! id m" is exactly what a DUP with id m can repeat: the log keeps, per
//! packet id, a digest of that message's topic and bytes, written in the
//! same durable batch as the entry itself. At most 65,535 small keys per
//! source, never truncated (dropped with the rule).

use super::Write;
use crate::row::{Payload, PayloadData};
use crate::value::Value;

/// First byte of an index key's suffix (after the log's prefix): entry
/// keys end with an 8-byte sequence number, the position key is `n`.
const ID_KEY: u8 = b'm';

/// Whether `suffix` (a key after the log's prefix) is an index key.
pub(crate) fn is_index_key(suffix: &[u8]) -> bool {
    suffix.len() == 3 && suffix[0] == ID_KEY
}

/// The index key and digest of a delivery with a packet id and bytes.
fn entry(prefix: &[u8], p: &Payload) -> Option<(Vec<u8>, Vec<u8>)> {
    let meta = p.meta.as_ref()?;
    let id = match meta.get("messageId") {
        Some(Value::Int(id)) if (1..=0xffff).contains(id) => *id as u16,
        _ => return None,
    };
    let PayloadData::Bytes(data) = &p.data else { return None };
    let topic = match meta.get("topic") {
        Some(Value::String(t)) => t.as_bytes(),
        _ => &[],
    };
    // Two CRC-32s with different seeds: 64 bits, and fast enough to run
    // on every message.
    let mut a = crc32fast::Hasher::new();
    a.update(topic);
    a.update(&[0]);
    a.update(data);
    let mut b = crc32fast::Hasher::new_with_initial(0x9e37_79b9);
    b.update(data);
    b.update(topic);
    let mut digest = a.finalize().to_be_bytes().to_vec();
    digest.extend_from_slice(&b.finalize().to_be_bytes());
    let mut key = prefix.to_vec();
    key.push(ID_KEY);
    key.extend_from_slice(&id.to_be_bytes());
    Some((key, digest))
}

/// The index writes for appended `payloads` (the last one per id wins).
pub(crate) fn writes<'a>(prefix: &'a [u8], payloads: &'a [Payload]) -> impl Iterator<Item = Write> + 'a {
    payloads.iter().filter_map(move |p| entry(prefix, p)).map(|(k, v)| Write::Put(super::Space::IngestLog, k, v))
}

/// Whether the log holds `p` already: the last delivery logged under its
/// packet id has its topic and bytes.
pub(crate) fn holds(backend: &dyn super::StateBackend, prefix: &[u8], p: &Payload) -> super::StateResult<bool> {
    let Some((key, digest)) = entry(prefix, p) else { return Ok(false) };
    Ok(backend.get(super::Space::IngestLog, &key)?.as_deref() == Some(digest.as_slice()))
}
