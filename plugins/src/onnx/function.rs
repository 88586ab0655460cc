//! The SQL function `infer(model_name, args...)`.

use std::sync::Arc;

use weir_planner::ArgHint;
use weir_runtime::functions::{BatchFn, FuncContext, FuncError, FuncResult, Registry, ValidateFn};
use weir_runtime::value::Value;

use super::error::OnnxError;
use super::models::OnnxModels;

/// The SQL name of the inference function.
pub const INFER: &str = "infer";

/// Registers `infer(model_name, args...)` in `reg`, resolving model names
/// in `models` (at plan time and again for every batch, so models
/// registered, replaced or removed later are seen).
///
/// - Plan time: the first argument must be a string literal naming a
///   registered model. The feature arguments are checked against the
///   model as far as literals allow: with one input, literal numbers (and
///   arrays) must not exceed its size, and must equal it if all arguments
///   are literals; with several inputs, there must be one argument per
///   input and literal ones must have the input's size. A column may hold
///   an array, so its size is only checked at run time. `*` is refused.
/// - Run time: rows of a batch are grouped by model name and each group is
///   inferred with one [`super::OnnxModel::infer_batch`] call; see
///   [`super`] for the argument and result conventions. A model that is no
///   longer registered fails its rows with "model X is not registered".
pub fn register_functions(reg: &mut Registry, models: Arc<OnnxModels>) {
    let at_plan = models.clone();
    let validate: ValidateFn = Arc::new(move |args: &[ArgHint]| validate(&at_plan, args));
    let batch: BatchFn = Arc::new(move |_cx: &FuncContext<'_>, rows: &[Vec<Value>]| infer_rows(&models, rows));
    reg.batch_scalar(INFER, 2, None, batch, Some(validate));
}

/// Runs the rows of a batch, one `infer_batch` call per model named.
fn infer_rows(models: &OnnxModels, rows: &[Vec<Value>]) -> Vec<FuncResult> {
    let mut results: Vec<Option<FuncResult>> = vec![None; rows.len()];
    // Nearly always one model per call site, so a linear scan beats a map.
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match row.first() {
            Some(Value::String(name)) => match groups.iter_mut().find(|(n, _)| *n == &**name) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((name, vec![i])),
            },
            other => {
                let got = other.map_or("nothing", Value::type_name);
                results[i] = Some(Err(FuncError::new(format!(
                    "{INFER}: argument 1 must be the name of a registered model, got {got}"
                ))));
            }
        }
    }
    for (name, idx) in groups {
        match models.try_get(name) {
            Ok(model) => {
                let args: Vec<&[Value]> = idx.iter().map(|&i| rows[i].get(1..).unwrap_or_default()).collect();
                for (i, r) in idx.iter().zip(model.infer_batch(&args)) {
                    results[*i] = Some(r);
                }
            }
            Err(e) => {
                let e = FuncError::from(e);
                for i in idx {
                    results[i] = Some(Err(e.clone()));
                }
            }
        }
    }
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(FuncError::new("infer: row was not inferred")))).collect()
}

/// The plan-time check (see [`register_functions`]); the planner prefixes
/// the message with `function infer: `.
fn validate(models: &OnnxModels, args: &[ArgHint]) -> Result<(), String> {
    let name = match args.first() {
        Some(ArgHint::Literal(serde_json::Value::String(s))) => s,
        _ => {
            return Err("the first argument must be a string literal naming a registered model, \
                        e.g. infer('gasflow', temperature, pressure, o2)"
                .into())
        }
    };
    let model = models.try_get(name).map_err(|e| e.to_string())?;
    let features = args.get(1..).unwrap_or_default();
    // Per argument: Some(size) for a literal, None for an expression.
    let mut sizes = Vec::with_capacity(features.len());
    for (i, a) in features.iter().enumerate() {
        sizes.push(match a {
            ArgHint::Wildcard => return Err(format!("argument {}: * is not a model input; list the columns", i + 2)),
            ArgHint::Literal(v) => Some(
                literal_size(v)
                    .ok_or_else(|| format!("argument {} must be a number or an array of numbers, got {v}", i + 2))?,
            ),
            ArgHint::Expr => None,
        });
    }
    let inputs: Vec<_> = model.inputs().collect();
    if let [only] = inputs.as_slice() {
        let want = only.row_size().unwrap_or_default();
        let known: usize = sizes.iter().flatten().sum();
        let all_literal = sizes.iter().all(Option::is_some);
        if (all_literal && known != want) || known > want {
            return Err(OnnxError::ArgumentCount {
                model: name.clone(),
                expected: format!("{want} numbers for input {only}"),
                got: format!("{known} numbers in literals"),
            }
            .to_string());
        }
        return Ok(());
    }
    if features.len() != inputs.len() {
        let names: Vec<String> = inputs.iter().map(|i| i.to_string()).collect();
        return Err(OnnxError::ArgumentCount {
            model: name.clone(),
            expected: format!("{} arguments, one per input ({})", inputs.len(), names.join(", ")),
            got: format!("{} arguments", features.len()),
        }
        .to_string());
    }
    for (i, (size, input)) in sizes.iter().zip(&inputs).enumerate() {
        let want = input.row_size().unwrap_or_default();
        if let Some(got) = size.filter(|g| *g != want) {
            return Err(OnnxError::ArgumentCount {
                model: name.clone(),
                expected: format!("{want} numbers for input {input} (argument {})", i + 2),
                got: format!("{got} numbers"),
            }
            .to_string());
        }
    }
    Ok(())
}

/// How many numbers a literal flattens to; `None` if it holds a
/// non-number (booleans count as numbers, as at run time).
fn literal_size(v: &serde_json::Value) -> Option<usize> {
    match v {
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Some(1),
        serde_json::Value::Array(items) => items.iter().map(literal_size).sum(),
        _ => None,
    }
}
