//! weir's connectors: the sources and sinks rules read from and write to,
//! and the payload formats.
//!
//! The runtime defines the traits ([`weir_runtime::rule::Source`],
//! [`weir_runtime::connector::Sink`]); this crate implements them per
//! connector type and builds them from stream definitions and rule actions:
//! [`source`] for a `CREATE STREAM|TABLE ... WITH (TYPE=...)`, [`sink`] for
//! one `{"<type>": {props}}` entry of a rule's `actions`.
#![warn(missing_docs)]

mod env;
mod error;
mod log;
mod nop;

use weir_planner::StreamDef;
use weir_runtime::connector::Sink;
use weir_runtime::rule::Source;

pub use env::Environment;
pub use error::{Error, Result};

/// Where a sink runs: the rule and the action's position.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// Rule id.
    pub rule_id: String,
    /// Index of the action in the rule's `actions`.
    pub index: usize,
}

/// Builds the source of a stream or table.
///
/// # Errors
/// An unknown `TYPE`, or connector properties that are invalid.
pub fn source(def: &StreamDef, env: &Environment) -> Result<Box<dyn Source>> {
    let kind = def.source_type().to_ascii_lowercase();
    let _ = env;
    Err(Error::UnknownType { kind, what: "source" })
}

/// Builds the sink of one rule action `{"<kind>": props}`.
///
/// # Errors
/// An unknown sink type, or properties that are invalid (named in the
/// message).
pub fn sink(kind: &str, props: &serde_json::Value, ctx: &SinkContext, env: &Environment) -> Result<Box<dyn Sink>> {
    let _ = env;
    match kind.to_ascii_lowercase().as_str() {
        "log" => Ok(Box::new(log::LogSink::new(ctx))),
        "nop" => Ok(Box::new(nop::NopSink::new(props)?)),
        other => Err(Error::UnknownType { kind: other.to_string(), what: "sink" }),
    }
}
