//! Rows, batches and the messages that flow along the edges of a rule.

use crate::value::Value;

/// One event (or joined or aggregated tuple): values in plan-assigned
/// slots, the event's timestamp and the source it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Values by slot.
    pub slots: Vec<Value>,
    /// Timestamp in ms: arrival time, or event time with `isEventTime`.
    pub ts: i64,
    /// Index of the source in the plan.
    pub source: u16,
    /// Keys the message had with an explicit JSON `null`, which eKuiper
    /// keeps (a picked column prints `"b": null`). `None` in the common
    /// case; expressions never look at it: a present null is a null.
    pub nulls: Option<Box<PresentNulls>>,
}

/// The explicit nulls of a decoded message (see [`Row::nulls`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PresentNulls {
    /// Slots of columns whose key was present with a null value.
    pub slots: Vec<u32>,
    /// Keys with a null value that have no slot: undeclared keys of a
    /// schema'd stream, which eKuiper still keeps in the message (`*`).
    pub keys: Vec<String>,
}

impl Row {
    /// A row of `width` nulls.
    pub fn new(width: usize, ts: i64, source: u16) -> Row {
        Row { slots: vec![Value::Null; width], ts, source, nulls: None }
    }

    /// Whether slot `slot` holds a null that was present in the message.
    pub fn is_present_null(&self, slot: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.slots.iter().any(|&s| s as usize == slot))
            && self.slots.get(slot).is_some_and(Value::is_null)
    }

    /// Marks slot `slot` as a present null.
    pub fn set_present_null(&mut self, slot: usize) {
        let n = self.nulls.get_or_insert_with(Default::default);
        if !n.slots.iter().any(|&s| s as usize == slot) {
            n.slots.push(slot as u32);
        }
    }

    /// Copies the present-null marks of `slots` from `other` (joins).
    pub fn copy_present_nulls(&mut self, other: &Row, slots: &[usize]) {
        for &s in slots {
            if other.is_present_null(s) {
                self.set_present_null(s);
            }
        }
    }
}

/// The bounds of a window emission, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct WindowRange {
    /// Start (inclusive).
    pub start: i64,
    /// End.
    pub end: i64,
    /// When the window fired.
    pub trigger: i64,
}

/// Rows moving between operators.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Batch {
    /// The rows.
    pub rows: Vec<Row>,
    /// `Some` when the rows are one window emission; `None` when every row
    /// is an independent event (each becomes its own emission at the sink).
    pub window: Option<WindowRange>,
    /// The rows are the whole current content of a scan table (one full
    /// pull of its source, see [`SNAPSHOT`]): the table replaces its rows
    /// with them instead of adding them. May be empty.
    pub snapshot: bool,
}

impl Batch {
    /// Independent events.
    pub fn events(rows: Vec<Row>) -> Batch {
        Batch { rows, window: None, snapshot: false }
    }

    /// One window emission.
    pub fn emission(rows: Vec<Row>, window: WindowRange) -> Batch {
        Batch { rows, window: Some(window), snapshot: false }
    }

    /// A scan table's whole content (see [`Batch::snapshot`]).
    pub fn snapshot(rows: Vec<Row>) -> Batch {
        Batch { rows, window: None, snapshot: true }
    }
}

/// Meta key of a snapshot marker: a payload without data (an empty
/// object) whose meta has `snapshot: true` says that the payloads sent
/// with it, in the same `send`, are the whole current content of the
/// source's scan table, which they replace. A source that pulls its whole
/// table every interval (the `sql` source without an index field) sends
/// one; without it a table adds rows to its RETAIN_SIZE latest. The
/// marker is not a row: decoders skip it and it is not counted. It travels
/// as a payload so that the ingest log keeps it with its batch.
pub const SNAPSHOT: &str = "snapshot";

/// Meta key a source sets on a message its broker sends again (MQTT
/// DUP): with `qos` 1/2 the ingest log drops it when it already holds it,
/// so a crash between the log append and the broker ack does not feed the
/// message twice.
pub const REDELIVERED: &str = "redelivered";

/// A raw message from a source, before decoding.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Payload {
    /// The bytes (JSON, ...) or an already decoded object.
    pub data: PayloadData,
    /// Arrival time, ms.
    pub ts: i64,
    /// Source metadata (`topic`, `qos`, ...), read by `meta()`.
    pub meta: Option<crate::value::Map>,
}

impl Payload {
    /// The marker that makes the payloads sent with it a scan table's
    /// whole content (see [`SNAPSHOT`]).
    pub fn snapshot_marker(ts: i64) -> Payload {
        let mut meta = crate::value::Map::new();
        meta.insert(SNAPSHOT.into(), crate::value::Value::Bool(true));
        Payload { data: PayloadData::Object(crate::value::Map::new()), ts, meta: Some(meta) }
    }

    /// Whether this is a [`Payload::snapshot_marker`] rather than data.
    pub fn is_snapshot_marker(&self) -> bool {
        matches!(&self.data, PayloadData::Object(m) if m.is_empty())
            && self.meta.as_ref().is_some_and(|m| m.get(SNAPSHOT) == Some(&crate::value::Value::Bool(true)))
    }
}

/// The content of a [`Payload`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum PayloadData {
    /// Encoded bytes, decoded by the stream's FORMAT.
    Bytes(Vec<u8>),
    /// An object decoded already (file tables, plugin sources).
    Object(crate::value::Map),
}

/// What travels along an edge, in order: data, time and control share one
/// channel so that they can never overtake each other. Serializable: rows
/// of a sharded rule cross nodes (see `exchange`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Message {
    /// Raw payloads for a source's decoder.
    Payloads(Vec<Payload>),
    /// Rows.
    Data(Batch),
    /// Processing time has reached this instant (ms): fire due timers.
    Tick(i64),
    /// Event time has reached this instant (ms).
    Watermark(i64),
    /// Barrier `n`: everything before it has been processed. Used for
    /// checkpoints and, in replay, to know when an event is fully handled.
    Barrier(u64),
    /// A row failed upstream and the rule has `sendError`: the sinks
    /// receive `{"error": message}`.
    Error(String),
    /// The input has ended.
    End,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::codec;

    #[test]
    fn a_snapshot_marker_survives_the_ingest_log_encoding() {
        let sent =
            vec![Payload::snapshot_marker(5), Payload { data: PayloadData::Bytes(b"{}".to_vec()), ts: 5, meta: None }];
        let back: Vec<Payload> = codec::decode(&codec::encode(&sent).unwrap(), "test").unwrap();
        assert_eq!(back, sent);
        assert!(back[0].is_snapshot_marker());
        assert!(!back[1].is_snapshot_marker());
        // Data with a `snapshot` meta key is still data.
        let mut meta = crate::value::Map::new();
        meta.insert(SNAPSHOT.into(), crate::value::Value::Bool(true));
        let mut row = crate::value::Map::new();
        row.insert("a".into(), crate::value::Value::Int(1));
        assert!(!Payload { data: PayloadData::Object(row), ts: 0, meta: Some(meta) }.is_snapshot_marker());
    }
}
