//! The traits connectors implement. Sources push payloads into a rule
//! through [`crate::graph::RuleGraph::push`]; sinks receive emissions.

use crate::value::Value;

/// Why a sink could not take an emission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Receives a rule's results. One call per emission: the rows of a window,
/// or the single row of an event (`sendSingle` is the sink's business).
pub trait Sink: Send {
    /// Takes one emission; rows are `Value::Map`s.
    ///
    /// # Errors
    /// The sink could not deliver; the error is counted on the sink.
    fn emit(&mut self, rows: &[Value]) -> Result<(), SinkError>;

    /// The rule stopped; flush what is buffered.
    fn close(&mut self) {}
}
