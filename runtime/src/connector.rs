//! The traits connectors implement. Sources ([`crate::rule::Source`]) push
//! payloads into a rule; sinks receive its emissions.

use std::future::Future;
use std::pin::Pin;

use crate::value::Value;

/// A boxed future, as the connector traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a sink could not take an emission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Receives a rule's results. One call per emission: the rows of a window,
/// or the single row of an event (`sendSingle` is the sink's business).
///
/// `emit` is awaited before the next emission is taken: a slow sink slows
/// the rule down (backpressure), it never makes it drop data silently.
pub trait Sink: Send {
    /// Takes one emission; rows are `Value::Map`s.
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, Result<(), SinkError>>;

    /// Takes one emission that carries a deterministic id, derived from
    /// (rule, checkpoint epoch, sequence): with `qos: 2` a restored rule
    /// re-emits the same ids for the same outputs, so a consumer can drop
    /// duplicates. Sinks that can carry the id (an MQTT v5 user property,
    /// an `Idempotency-Key` header, a payload field) override this; the
    /// default sends the rows as they are.
    fn emit_with_id<'a>(&'a mut self, rows: &'a [Value], id: &'a str) -> BoxFuture<'a, Result<(), SinkError>> {
        let _ = id;
        self.emit(rows)
    }

    /// The rule stopped; flush what is buffered.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
