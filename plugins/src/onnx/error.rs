//! What can go wrong with an ONNX model: loading it, and feeding it a row.

use std::path::PathBuf;

use weir_runtime::functions::FuncError;

/// An ONNX model could not be loaded or a row could not be inferred.
///
/// Load errors (everything up to [`OnnxError::Plan`]) are the user's to
/// fix: a wrong path, a file that is not a model, or a model weir cannot
/// feed; the REST API answers them with 400. Row errors
/// ([`OnnxError::ArgumentCount`] onwards) become the [`FuncError`] of that
/// row only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The model file does not exist.
    #[error("model file {} not found", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The model file exists but cannot be read.
    #[error("cannot read model file {}: {source}", path.display())]
    Io {
        /// The path given.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ONNX model (protobuf `ModelProto` with a graph).
    #[error("{} is not an ONNX model: {reason}", path.display())]
    NotOnnx {
        /// The path given.
        path: PathBuf,
        /// What the decoder found.
        reason: String,
    },
    /// A model name that the registry does not accept.
    #[error("invalid model name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An input has an element type weir cannot produce from SQL values.
    #[error("model {model}: input {input} has element type {found}; weir feeds only f32, f64 or i64 inputs")]
    UnsupportedInputType {
        /// The model.
        model: String,
        /// The input's name.
        input: String,
        /// The ONNX element type found.
        found: String,
    },
    /// An output is a sequence or a map, not a tensor: typically a
    /// scikit-learn classifier exported with its default `ZipMap`.
    #[error(
        "model {model}: output {output} is not a tensor (a sequence or map, as a ZipMap makes); \
         export the model with tensor outputs, e.g. skl2onnx options={{id(clf): {{'zipmap': False}}}}"
    )]
    NonTensorOutput {
        /// The model.
        model: String,
        /// The output's name.
        output: String,
    },
    /// An output has an element type weir has no SQL value for.
    #[error("model {model}: output {output} has element type {found}, which weir cannot return")]
    UnsupportedOutputType {
        /// The model.
        model: String,
        /// The output's name.
        output: String,
        /// The element type found.
        found: String,
    },
    /// An input's size per row is not fixed (unknown rank, or a dynamic
    /// dimension other than the leading batch dimension), so weir cannot
    /// tell which arguments go where.
    #[error("model {model}: input {input} has shape {shape}; weir needs fixed dimensions after the batch dimension")]
    DynamicShape {
        /// The model.
        model: String,
        /// The input's name.
        input: String,
        /// The declared shape, `?` for a dynamic dimension.
        shape: String,
    },
    /// The model has no inputs or no outputs.
    #[error("model {model} has no {what}")]
    Empty {
        /// The model.
        model: String,
        /// `inputs` or `outputs`.
        what: &'static str,
    },
    /// tract could not analyse, optimise or plan the model (an operator it
    /// does not implement, inconsistent shapes, ...).
    #[error("model {model}: tract cannot run it: {reason}")]
    Plan {
        /// The model.
        model: String,
        /// tract's error chain.
        reason: String,
    },
    /// A row has the wrong number of arguments or features.
    #[error("infer('{model}'): expected {expected}, got {got}")]
    ArgumentCount {
        /// The model.
        model: String,
        /// What the model takes, e.g. `3 numbers for input input f32[3]`.
        expected: String,
        /// What the row gave, e.g. `2 numbers`.
        got: String,
    },
    /// An integer input got a number with a fraction.
    #[error("infer('{model}'): input {input} takes integers, got {value}")]
    NotInteger {
        /// The model.
        model: String,
        /// The input's name.
        input: String,
        /// The offending feature.
        value: f64,
    },
    /// tract failed while running the model on a row.
    #[error("infer('{model}'): inference failed: {reason}")]
    Inference {
        /// The model.
        model: String,
        /// tract's error chain.
        reason: String,
    },
    /// `infer` named a model that is not (or no longer) registered.
    #[error("model {name} is not registered")]
    NotRegistered {
        /// The name used.
        name: String,
    },
}

impl From<OnnxError> for FuncError {
    fn from(e: OnnxError) -> FuncError {
        FuncError::new(e.to_string())
    }
}

/// `Result` of this module.
pub type Result<T, E = OnnxError> = std::result::Result<T, E>;
