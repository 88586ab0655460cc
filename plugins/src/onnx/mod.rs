//! ONNX models as SQL functions, inferred in-process with tract (pure
//! Rust; nothing is downloaded at run time).
//!
//! A model is loaded once ([`OnnxModel::load`]): tract parses it, the
//! leading dynamic dimension of its inputs becomes the batch dimension
//! `N`, and the optimised plan is built and kept. [`OnnxModels`] holds the
//! registered models by name, and [`register_functions`] adds the SQL
//! function
//!
//! ```sql
//! SELECT furnace, infer('gasflow', temperature, pressure, o2) AS pred FROM s
//! ```
//!
//! which infers the rows of a batch together, one tract run per batch.
//!
//! # Arguments and results
//! - One input of per-row shape `S`: the arguments after the name flatten
//!   (numbers and arrays of numbers, in order; booleans as 0/1) to
//!   `product(S)` numbers, so `infer('m', a, b, c)` = `infer('m', [a, b, c])`.
//! - `k > 1` inputs: exactly `k` arguments, one per input in the model's
//!   order, each flattening to that input's per-row size.
//! - Inputs may be f32, f64 or i64 (whole numbers only).
//! - One output: an array of the row's output values, flattened
//!   (`[12.5]` for a regressor), floats as `float`, integers as `bigint`.
//! - Several outputs: a map from output name to such an array, e.g.
//!   `{"label": [2], "probabilities": [0.1, 0.2, 0.7]}` for a scikit-learn
//!   classifier exported with `zipmap=False` (the default ZipMap output, a
//!   sequence of maps, is refused at load).
//! - A model without a batch dimension (fixed `[1, ...]` inputs) runs once
//!   per row.
//!
//! A row with bad arguments fails alone with a message naming what the
//! model expects; the others still run.
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use weir_plugins::onnx::{register_functions, OnnxModels};
//! use weir_runtime::functions::Registry;
//! use weir_runtime::value::Value;
//!
//! let models = Arc::new(OnnxModels::new());
//! let model = models.register("gasflow", "models/gasflow.onnx")?;
//! let rows = vec![vec![Value::Float(900.0), Value::Float(2.5), Value::Float(4.0)]];
//! let pred = model.infer_batch(&rows); // [Ok([Float(..)])]
//! # let _ = pred;
//!
//! let mut registry = Registry::with_builtins();
//! register_functions(&mut registry, models);
//! # Ok::<(), weir_plugins::onnx::OnnxError>(())
//! ```

mod describe;
mod error;
mod function;
mod infer;
mod model;
mod models;

#[cfg(test)]
mod function_tests;
#[cfg(test)]
mod infer_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod test_util;

pub use describe::{ElementType, ModelDescription, TensorInfo};
pub use error::{OnnxError, Result};
pub use function::{register_functions, INFER};
pub use model::OnnxModel;
pub use models::OnnxModels;
