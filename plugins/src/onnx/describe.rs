//! What a model takes and gives, per row: the description listed by the
//! registry and shown by the REST API.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use tract_onnx::prelude::DatumType;

/// The element type of a model input or output tensor.
///
/// Inputs are only [`ElementType::F32`], [`ElementType::F64`] or
/// [`ElementType::I64`]; outputs may be any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ElementType {
    /// 16-bit float (returned as SQL `float`).
    F16,
    /// 32-bit float (SQL `float`).
    F32,
    /// 64-bit float (SQL `float`).
    F64,
    /// 8-bit signed integer (SQL `bigint`).
    I8,
    /// 16-bit signed integer (SQL `bigint`).
    I16,
    /// 32-bit signed integer (SQL `bigint`).
    I32,
    /// 64-bit signed integer (SQL `bigint`).
    I64,
    /// 8-bit unsigned integer (SQL `bigint`).
    U8,
    /// 16-bit unsigned integer (SQL `bigint`).
    U16,
    /// 32-bit unsigned integer (SQL `bigint`).
    U32,
    /// 64-bit unsigned integer (SQL `bigint`; values past `i64::MAX` wrap).
    U64,
    /// Boolean (SQL `boolean`).
    Bool,
    /// String (SQL `string`), e.g. class labels.
    String,
}

impl ElementType {
    /// The element type of a tract datum type, if weir can return it.
    pub(super) fn from_datum(dt: DatumType) -> Option<ElementType> {
        Some(match dt {
            DatumType::F16 => ElementType::F16,
            DatumType::F32 => ElementType::F32,
            DatumType::F64 => ElementType::F64,
            DatumType::I8 => ElementType::I8,
            DatumType::I16 => ElementType::I16,
            DatumType::I32 => ElementType::I32,
            DatumType::I64 => ElementType::I64,
            DatumType::U8 => ElementType::U8,
            DatumType::U16 => ElementType::U16,
            DatumType::U32 => ElementType::U32,
            DatumType::U64 => ElementType::U64,
            DatumType::Bool => ElementType::Bool,
            DatumType::String => ElementType::String,
            _ => return None,
        })
    }

    /// Whether values of this type come back as SQL floats.
    pub fn is_float(self) -> bool {
        matches!(self, ElementType::F16 | ElementType::F32 | ElementType::F64)
    }

    /// Whether values of this type come back as SQL integers.
    pub fn is_integer(self) -> bool {
        !self.is_float() && !matches!(self, ElementType::Bool | ElementType::String)
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ElementType::F16 => "f16",
            ElementType::F32 => "f32",
            ElementType::F64 => "f64",
            ElementType::I8 => "i8",
            ElementType::I16 => "i16",
            ElementType::I32 => "i32",
            ElementType::I64 => "i64",
            ElementType::U8 => "u8",
            ElementType::U16 => "u16",
            ElementType::U32 => "u32",
            ElementType::U64 => "u64",
            ElementType::Bool => "bool",
            ElementType::String => "string",
        };
        f.write_str(s)
    }
}

/// One input or output of a model, per row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    /// The name in the ONNX graph.
    pub name: String,
    /// The element type.
    pub element_type: ElementType,
    /// The shape of one row's slice, without the batch dimension: `[3]` for
    /// an input `[N, 3]`, `[]` for an output `[N]`. Always known for
    /// inputs; `None` for an output whose size tract only learns when it
    /// runs.
    pub row_shape: Option<Vec<usize>>,
}

impl TensorInfo {
    /// Number of values per row (the product of the row shape), if known.
    pub fn row_size(&self) -> Option<usize> {
        self.row_shape.as_ref().map(|s| s.iter().product())
    }
}

impl fmt::Display for TensorInfo {
    /// `name f32[3]`, or `name f32[?]` when the shape is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.row_shape {
            Some(s) => {
                let dims: Vec<String> = s.iter().map(usize::to_string).collect();
                write!(f, "{} {}[{}]", self.name, self.element_type, dims.join(", "))
            }
            None => write!(f, "{} {}[?]", self.name, self.element_type),
        }
    }
}

/// A registered model as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelDescription {
    /// The name `infer` calls it by.
    pub name: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Whether rows are inferred together (the model has a batch
    /// dimension) or one at a time.
    pub batched: bool,
    /// The inputs, in the order `infer` takes them when there are several.
    pub inputs: Vec<TensorInfo>,
    /// The outputs: one gives an array per row, several a map of arrays.
    pub outputs: Vec<TensorInfo>,
}
