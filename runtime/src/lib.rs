//! weir's engine: values, expressions, the function registry, operators,
//! actor graphs, the clock and the replay runner.
//!
//! A rule flows as: [`weir_planner::plan`] gives a physical plan;
//! [`graph::RuleGraph::start`] turns it into actors running the
//! [`operator`]s; sources push [`row::Payload`]s in, sinks
//! ([`connector::Sink`]) receive emissions; [`replay`] drives the same graph
//! on a virtual clock.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod clock;
pub mod connector;
pub mod decode;
pub mod expr;
mod feed;
pub mod functions;
pub mod graph;
pub mod metrics;
pub mod operator;
pub mod replay;
pub mod row;
pub mod rule;
pub mod shard;
pub mod state;
pub mod value;

pub use functions::{FuncContext, FuncError, FuncResult, Registry};
pub use value::{Map, Value};
