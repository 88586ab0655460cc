//! User functions from outside the engine, callable from SQL like built-ins:
//!
//! - [`onnx`]: ONNX models inferred in-process with tract
//!   (`infer('model', a, b, ...)`), a batch of rows at a time;
//! - [`native`]: C/C++ model libraries (e.g. generated from Matlab) behind
//!   the C ABI of `include/weir_model.h`, loaded with libloading;
//! - [`portable`]: eKuiper portable plugins (Python with the PyPI `ekuiper`
//!   SDK), run as child processes and spoken to over NNG;
//! - [`service`]: functions backed by an HTTP model server.
//!
//! Each kind turns what the user registered into
//! [`weir_runtime::functions::FunctionDef`]s; the node adds them to its
//! function registry, which the planner checks calls against.
#![warn(missing_docs)]

pub use extensions::{ExtensionError, Extensions, NativeDef};

mod args;
mod extensions;
pub mod native;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod portable;
pub mod service;
