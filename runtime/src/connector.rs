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

    /// The rule stopped; flush what is buffered.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
