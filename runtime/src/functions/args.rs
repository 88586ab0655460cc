//! What every function family shares besides Go semantics (those are in
//! `golike.rs`): registering scalars with an arity guard and eKuiper's
//! `returnNilIfHasAnyNil`, and the plan-time checks of literal arguments
//! (eKuiper's `ast.Is*Arg` and `ProduceErrInfo`).

use weir_planner::ArgHint;

use super::golike::has_nil_or_empty;
use super::{FuncContext, FuncError, FuncResult, Registry};
use crate::value::Value;

/// Registers a scalar whose implementation may index its first `min`
/// arguments: a call with fewer (which the planner rejects anyway) gets an
/// arity error instead of a panic.
pub(crate) fn def(
    r: &mut Registry,
    name: &'static str,
    min: usize,
    max: Option<usize>,
    f: impl Fn(&FuncContext<'_>, &[Value]) -> FuncResult + Send + Sync + 'static,
) {
    r.scalar(name, min, max, move |ctx: &FuncContext<'_>, args: &[Value]| {
        if args.len() < min || max.is_some_and(|m| args.len() > m) {
            return Err(FuncError::new(format!("{name}: wrong number of arguments ({})", args.len())));
        }
        f(ctx, args)
    });
}

/// Registers a scalar (as [`def`]) that returns null when any argument is
/// null or an empty array/map (eKuiper's `returnNilIfHasAnyNil`).
pub(crate) fn nil_checked(
    r: &mut Registry,
    name: &'static str,
    min: usize,
    max: Option<usize>,
    f: impl Fn(&[Value]) -> FuncResult + Send + Sync + 'static,
) {
    def(r, name, min, max, move |_, a| {
        if has_nil_or_empty(a) {
            return Ok(Value::Null);
        }
        f(a)
    });
}

/// A string literal.
pub(crate) fn lit_is_str(h: &ArgHint) -> bool {
    matches!(h, ArgHint::Literal(serde_json::Value::String(_)))
}

/// A numeric literal (integer or float).
pub(crate) fn lit_is_num(h: &ArgHint) -> bool {
    matches!(h, ArgHint::Literal(serde_json::Value::Number(_)))
}

/// A float literal.
pub(crate) fn lit_is_float(h: &ArgHint) -> bool {
    matches!(h, ArgHint::Literal(serde_json::Value::Number(n)) if !n.is_i64() && !n.is_u64())
}

/// A boolean literal.
pub(crate) fn lit_is_bool(h: &ArgHint) -> bool {
    matches!(h, ArgHint::Literal(serde_json::Value::Bool(_)))
}

/// eKuiper's `ProduceErrInfo`.
pub(crate) fn expect_type(i: usize, what: &str) -> String {
    format!("Expect {what} type for parameter {}", i + 1)
}

/// Validator: every argument must not be a number or boolean literal.
pub(crate) fn validate_strs(args: &[ArgHint]) -> Result<(), String> {
    for (i, a) in args.iter().enumerate() {
        if lit_is_num(a) || lit_is_bool(a) {
            return Err(expect_type(i, "string"));
        }
    }
    Ok(())
}

/// Validator: the first argument must not be a number or boolean literal.
pub(crate) fn validate_first_str(args: &[ArgHint]) -> Result<(), String> {
    validate_strs(&args[..args.len().min(1)])
}

/// Validator (`ValidateOneNumberArg` and friends): every argument must not
/// be a string or boolean literal.
pub(crate) fn validate_numbers(args: &[ArgHint]) -> Result<(), String> {
    for (i, a) in args.iter().enumerate() {
        if lit_is_str(a) || lit_is_bool(a) {
            return Err(expect_type(i, "number - float or int"));
        }
    }
    Ok(())
}

/// Validator: the first argument must not be a string or boolean literal.
pub(crate) fn validate_first_number(args: &[ArgHint]) -> Result<(), String> {
    validate_numbers(&args[..args.len().min(1)])
}

/// Validator: every argument must not be a float, string or boolean
/// literal.
pub(crate) fn validate_ints(args: &[ArgHint]) -> Result<(), String> {
    for (i, a) in args.iter().enumerate() {
        if lit_is_float(a) || lit_is_str(a) || lit_is_bool(a) {
            return Err(expect_type(i, "int"));
        }
    }
    Ok(())
}
