//! The traits connectors implement. Sources ([`crate::rule::Source`]) push
//! payloads into a rule; sinks receive its emissions.

use std::future::Future;
use std::pin::Pin;

use crate::value::Value;

/// A boxed future, as the connector traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A pending delivery confirmation ([`Sink::flush`]).
pub type Confirmation = BoxFuture<'static, Result<(), SinkError>>;

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

    /// Marks everything emitted so far; the returned confirmation resolves
    /// once all of it is delivered as far as the sink can tell (MQTT at
    /// QoS >= 1: acknowledged by the broker), or fails. The sink goes on
    /// taking emissions meanwhile. With `qos: 2` an epoch's outputs stay
    /// stored, to be sent again after a crash, until a confirmation covers
    /// them. The default counts an emission delivered once `emit` returned.
    fn flush(&mut self) -> BoxFuture<'_, Confirmation> {
        Box::pin(std::future::ready(Box::pin(std::future::ready(Ok(()))) as Confirmation))
    }

    /// The rule stopped; flush what is buffered.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Why a lookup failed (the table's store is down, a query failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LookupError(pub String);

/// eKuiper's lookup cache options (`lookup: {cache, cacheTtl,
/// cacheMissingKey}` in the source configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CachePolicy {
    /// Cache answers at all.
    pub enabled: bool,
    /// How long an answer stays valid, ms; 0 = forever.
    pub ttl_ms: i64,
    /// Also cache keys that found no row.
    pub cache_missing: bool,
}

/// A lookup table (`CREATE TABLE ... WITH (KIND="lookup")`): queried by
/// key as events arrive instead of being scanned into memory.
pub trait Lookup: Send {
    /// How the rule may cache this table's answers (default: not at all).
    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::default()
    }

    /// For each key (values of `columns`, in order), the table's rows whose
    /// columns equal it. Queries must bind the values as parameters.
    fn lookup<'a>(
        &'a mut self,
        columns: &'a [String],
        keys: &'a [Vec<Value>],
    ) -> BoxFuture<'a, Result<Vec<Vec<crate::value::Map>>, LookupError>>;
}

/// A lookup table held in memory: tests, replay, and tables fed by memory
/// topics. Rows are matched by equality of the queried columns.
#[derive(Debug, Clone, Default)]
pub struct MemoryLookup {
    rows: std::sync::Arc<std::sync::Mutex<Vec<crate::value::Map>>>,
}

impl MemoryLookup {
    /// Adds a row (with `key`, replacing the row that has the same value in
    /// that column).
    pub fn insert(&self, row: crate::value::Map, key: Option<&str>) {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = key {
            rows.retain(|r| r.get(k) != row.get(k));
        }
        rows.push(row);
    }
}

impl Lookup for MemoryLookup {
    fn lookup<'a>(
        &'a mut self,
        columns: &'a [String],
        keys: &'a [Vec<Value>],
    ) -> BoxFuture<'a, Result<Vec<Vec<crate::value::Map>>, LookupError>> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let found = keys
            .iter()
            .map(|k| {
                rows.iter()
                    .filter(|r| columns.iter().zip(k).all(|(c, v)| r.get(c).is_some_and(|x| x.sql_eq(v))))
                    .cloned()
                    .collect()
            })
            .collect();
        Box::pin(std::future::ready(Ok(found)))
    }
}
