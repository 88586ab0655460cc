//! The eKuiper SQL dialect for weir: parsing, catalog, binding and plans.
#![warn(missing_docs)]

mod functions;

pub use functions::{ArgHint, FunctionKind, FunctionLookup, FunctionSignature};
