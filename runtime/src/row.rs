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
}

impl Row {
    /// A row of `width` nulls.
    pub fn new(width: usize, ts: i64, source: u16) -> Row {
        Row { slots: vec![Value::Null; width], ts, source }
    }
}

/// The bounds of a window emission, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowRange {
    /// Start (inclusive).
    pub start: i64,
    /// End.
    pub end: i64,
    /// When the window fired.
    pub trigger: i64,
}

/// Rows moving between operators.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The rows.
    pub rows: Vec<Row>,
    /// `Some` when the rows are one window emission; `None` when every row
    /// is an independent event (each becomes its own emission at the sink).
    pub window: Option<WindowRange>,
}

impl Batch {
    /// Independent events.
    pub fn events(rows: Vec<Row>) -> Batch {
        Batch { rows, window: None }
    }

    /// One window emission.
    pub fn emission(rows: Vec<Row>, window: WindowRange) -> Batch {
        Batch { rows, window: Some(window) }
    }
}

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

/// The content of a [`Payload`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum PayloadData {
    /// Encoded bytes, decoded by the stream's FORMAT.
    Bytes(Vec<u8>),
    /// An object decoded already (file tables, plugin sources).
    Object(crate::value::Map),
}

/// What travels along an edge, in order: data, time and control share one
/// channel so that they can never overtake each other.
#[derive(Debug, Clone, PartialEq)]
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
