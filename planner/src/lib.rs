//! The eKuiper SQL dialect for weir: parsing, catalog, binding and plans.
//!
//! The front door is [`plan`]: rule SQL plus the catalog of streams and
//! tables plus the rule options give a serializable [`PhysicalPlan`]. DDL
//! goes through [`parse_statement`].
#![warn(missing_docs)]

pub mod ast;
mod catalog;
mod error;
mod functions;
mod parse;
mod plan;
mod types;

pub use ast::{Statement, StreamKind};
pub use catalog::{Catalog, StreamDef, StreamOptions};
pub use error::{Error, Pos, Result};
pub use functions::{ArgHint, FunctionKind, FunctionLookup, FunctionSignature};
pub use parse::{parse_expr, parse_statement};
pub use plan::{
    parse_duration_ms, plan, AggregateCall, AggregatePlan, AnalyticCall, ColumnSlot, ContextValue, HitKind, JoinPlan,
    OperatorInfo, PExpr, PhysicalPlan, ProjectField, RuleOptions, SortKey, SourcePlan, TimeUnit, WindowPlan,
    WindowSpec,
};
pub use types::{DataType, FieldDef};
