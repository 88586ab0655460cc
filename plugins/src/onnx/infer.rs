//! Inference over a batch of rows: SQL values in, one tensor per input,
//! one run of the plan, one SQL value per row out.
//!
//! Conventions (the same for the `infer` SQL function):
//! - a model with one input of per-row shape `S` takes any number of
//!   arguments that flatten (numbers and arrays of numbers, in order) to
//!   `product(S)` numbers: `infer('m', t, p, o2)` = `infer('m', [t, p, o2])`;
//! - a model with `k > 1` inputs takes exactly `k` arguments, one per input
//!   in the model's order, each flattening to that input's per-row size;
//! - booleans count as 0/1; an i64 input takes only whole numbers;
//! - a model with one output gives an array of the row's output values
//!   (flattened, row-major), floats as `float`, integers as `bigint`;
//!   several outputs give a map from output name to such an array.

use std::panic::{catch_unwind, AssertUnwindSafe};

use tract_onnx::prelude::tract_data::internal::{anyhow, bail};
use tract_onnx::prelude::*;
use weir_runtime::functions::{FuncError, FuncResult};
use weir_runtime::value::{Map, Value};

use super::error::OnnxError;
use super::model::OnnxModel;
use crate::args::push_numbers;

impl OnnxModel {
    /// Infers many rows; `rows[i]` holds row `i`'s arguments after the
    /// model name. Returns exactly one result per row, in order.
    ///
    /// Rows with bad arguments (wrong count, non-numbers, a fraction for an
    /// integer input) get their own error and the others still run. The
    /// valid rows of a batched model are stacked into one tensor per input
    /// and run once; a model without a batch dimension runs row by row. If
    /// a batched run fails, its rows are retried one at a time so that only
    /// the rows the model rejects carry the error.
    ///
    /// Argument positions in messages count the model name as argument 1,
    /// as in the SQL call `infer('model', ...)`.
    pub fn infer_batch<R: AsRef<[Value]>>(&self, rows: &[R]) -> Vec<FuncResult> {
        let mut results: Vec<Option<FuncResult>> = vec![None; rows.len()];
        let mut good: Vec<(usize, Vec<f64>)> = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            match self.features(row.as_ref()) {
                Ok(f) => good.push((i, f)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let chunk = if self.batched { good.len().max(1) } else { 1 };
        for part in good.chunks(chunk) {
            let feats: Vec<&[f64]> = part.iter().map(|(_, f)| f.as_slice()).collect();
            match self.run(&feats) {
                Ok(values) => {
                    for ((i, _), v) in part.iter().zip(values) {
                        results[*i] = Some(Ok(v));
                    }
                }
                Err(e) if part.len() == 1 => results[part[0].0] = Some(Err(e.into())),
                Err(_) => {
                    for (i, f) in part {
                        let one = self
                            .run(&[f.as_slice()])
                            .and_then(|mut v| v.pop().ok_or_else(|| self.failed("no result for the row".into())));
                        results[*i] = Some(one.map_err(FuncError::from));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(self.failed("row was not inferred".into()).into())))
            .collect()
    }

    /// One row's arguments as the concatenated features of all inputs.
    fn features(&self, args: &[Value]) -> Result<Vec<f64>, FuncError> {
        let what = format!("infer('{}')", self.name);
        let mut out = Vec::with_capacity(self.inputs.iter().map(|s| s.row_size).sum());
        if let [only] = self.inputs.as_slice() {
            for (i, a) in args.iter().enumerate() {
                push_numbers(a, &what, i + 2, &mut out)?;
            }
            if out.len() != only.row_size {
                return Err(self.count(format!("{} numbers for input {}", only.row_size, only.info), out.len()).into());
            }
        } else {
            if args.len() != self.inputs.len() {
                let names: Vec<String> = self.inputs.iter().map(|s| s.info.to_string()).collect();
                return Err(OnnxError::ArgumentCount {
                    model: self.name.clone(),
                    expected: format!("{} arguments, one per input ({})", self.inputs.len(), names.join(", ")),
                    got: format!("{} arguments", args.len()),
                }
                .into());
            }
            for (i, (a, slot)) in args.iter().zip(&self.inputs).enumerate() {
                let start = out.len();
                push_numbers(a, &what, i + 2, &mut out)?;
                let got = out.len() - start;
                if got != slot.row_size {
                    let expected = format!("{} numbers for input {} (argument {})", slot.row_size, slot.info, i + 2);
                    return Err(self.count(expected, got).into());
                }
            }
        }
        // Whole numbers only for integer inputs: truncating 1.5 silently
        // would feed the model something the user did not send.
        let mut offset = 0;
        for slot in &self.inputs {
            if slot.info.element_type.is_integer() {
                let bad = out[offset..offset + slot.row_size].iter().find(|v| !is_whole(**v));
                if let Some(value) = bad {
                    return Err(OnnxError::NotInteger {
                        model: self.name.clone(),
                        input: slot.info.name.clone(),
                        value: *value,
                    }
                    .into());
                }
            }
            offset += slot.row_size;
        }
        Ok(out)
    }

    /// Runs the plan on `rows` (each the features of all inputs, as
    /// [`OnnxModel::features`] gives them) stacked into one tensor per
    /// input; one value per row. Rows must number 1 for a model that is not
    /// batched.
    pub(super) fn run(&self, rows: &[&[f64]]) -> Result<Vec<Value>, OnnxError> {
        let n = rows.len();
        let width: usize = self.inputs.iter().map(|s| s.row_size).sum();
        if let Some(bad) = rows.iter().find(|r| r.len() != width) {
            return Err(self.count(format!("{width} numbers in all"), bad.len()));
        }
        let mut inputs: TVec<TValue> = TVec::with_capacity(self.inputs.len());
        let mut offset = 0;
        for slot in &self.inputs {
            let mut shape = Vec::with_capacity(slot.row_shape.len() + 1);
            if slot.leading {
                shape.push(n);
            }
            shape.extend_from_slice(&slot.row_shape);
            let column = rows.iter().flat_map(|r| r[offset..offset + slot.row_size].iter().copied());
            let tensor = match slot.info.element_type.is_integer() {
                true => Tensor::from_shape(&shape, &column.map(|v| v as i64).collect::<Vec<i64>>()),
                false if slot.info.element_type == super::ElementType::F64 => {
                    Tensor::from_shape(&shape, &column.collect::<Vec<f64>>())
                }
                false => Tensor::from_shape(&shape, &column.map(|v| v as f32).collect::<Vec<f32>>()),
            };
            inputs.push(tensor.map_err(|e| self.failed(format!("{e:#}")))?.into_tvalue());
            offset += slot.row_size;
        }
        // As at load: a tract panic on odd data fails these rows, not the node.
        let outputs = catch_unwind(AssertUnwindSafe(|| self.plan.run(inputs)))
            .unwrap_or_else(|_| Err(anyhow!("tract panicked")))
            .map_err(|e| self.failed(format!("{e:#}")))?;
        let mut per_row: Vec<Vec<Value>> = Vec::with_capacity(outputs.len());
        let mut columns = Vec::with_capacity(outputs.len());
        for (out, info) in outputs.iter().zip(&self.outputs) {
            let values = to_values(out).map_err(|e| self.failed(format!("output {}: {e:#}", info.name)))?;
            if n > 1 && out.shape().first() != Some(&n) {
                return Err(self.failed(format!(
                    "output {} has shape {:?}, which has no row dimension for the {n} rows",
                    info.name,
                    out.shape()
                )));
            }
            columns.push(values);
        }
        for r in 0..n {
            let mut row = Vec::with_capacity(columns.len());
            for values in &columns {
                let per = values.len() / n;
                row.push(Value::array(values[r * per..(r + 1) * per].to_vec()));
            }
            per_row.push(row);
        }
        Ok(per_row
            .into_iter()
            .map(|mut row| match row.len() {
                1 => row.pop().unwrap_or_default(),
                _ => Value::map(self.outputs.iter().map(|o| o.name.clone()).zip(row).collect::<Map>()),
            })
            .collect())
    }

    fn count(&self, expected: String, got: usize) -> OnnxError {
        OnnxError::ArgumentCount { model: self.name.clone(), expected, got: format!("{got} numbers") }
    }

    fn failed(&self, reason: String) -> OnnxError {
        OnnxError::Inference { model: self.name.clone(), reason }
    }
}

/// Whether `v` converts to an i64 exactly (finite, no fraction, in range).
fn is_whole(v: f64) -> bool {
    v.fract() == 0.0 && v.abs() < 9.2e18
}

/// A tensor's values in row-major order as SQL values.
fn to_values(t: &Tensor) -> TractResult<Vec<Value>> {
    Ok(match t.datum_type() {
        DatumType::F16 | DatumType::F32 | DatumType::F64 => {
            t.cast_to::<f64>()?.to_plain_array_view::<f64>()?.iter().map(|v| Value::Float(*v)).collect()
        }
        DatumType::Bool => t.to_plain_array_view::<bool>()?.iter().map(|v| Value::Bool(*v)).collect(),
        DatumType::String => t.to_plain_array_view::<String>()?.iter().map(Value::str).collect(),
        dt if dt.is_integer() => {
            t.cast_to::<i64>()?.to_plain_array_view::<i64>()?.iter().map(|v| Value::Int(*v)).collect()
        }
        dt => bail!("element type {dt:?} has no SQL value"),
    })
}
