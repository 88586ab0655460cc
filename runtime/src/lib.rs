//! weir's engine: values, expressions, the function registry, operators,
//! actor graphs, the clock and the replay runner.
#![warn(missing_docs)]

pub mod functions;
pub mod value;

pub use functions::{FuncContext, FuncError, FuncResult, Registry};
pub use value::{Map, Value};
