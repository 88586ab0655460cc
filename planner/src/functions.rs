//! Function signatures as the planner sees them.
//!
//! The planner does not implement functions: it asks a [`FunctionLookup`]
//! (implemented by the runtime's registry, which plugins extend) for the kind
//! and arity of each call, so that unknown functions and wrong argument
//! counts are plan-time errors.

use serde::{Deserialize, Serialize};

/// How a function is evaluated, which decides where the planner puts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FunctionKind {
    /// Row in, value out, no state.
    Scalar,
    /// Folds the rows of a group (`count`, `avg`, ...).
    Aggregate,
    /// Keeps state across events of the rule (`lag`, `acc_sum`, ...);
    /// evaluated before WHERE and the window.
    Analytic,
    /// Returns several rows or columns (`unnest`, `changed_cols`).
    SetReturning,
    /// Reads the evaluation context (`window_start`, `row_number`, `meta`):
    /// the planner binds each of these by name.
    Context,
}

/// The signature of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSignature {
    /// Lower-case registered name.
    pub name: String,
    /// Where the function is evaluated.
    pub kind: FunctionKind,
    /// Fewest arguments accepted.
    pub min_args: usize,
    /// Most arguments accepted; `None` for variadic functions.
    pub max_args: Option<usize>,
}

/// What the planner knows about one argument when it validates a call.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgHint {
    /// The argument is a literal with this JSON value.
    Literal(serde_json::Value),
    /// `*` (as in `count(*)`).
    Wildcard,
    /// Any other expression; its value is known only at run time.
    Expr,
}

/// Resolves function names for the planner.
pub trait FunctionLookup {
    /// The signature of `name` (case-insensitive for built-ins), if known.
    fn signature(&self, name: &str) -> Option<FunctionSignature>;

    /// Checks the arguments of a call beyond their count (literal types,
    /// allowed constant values). Returns the error text on failure.
    fn validate(&self, name: &str, args: &[ArgHint]) -> Result<(), String> {
        let _ = (name, args);
        Ok(())
    }
}
