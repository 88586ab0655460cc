//! Loading an ONNX model: parse it, check what weir can feed it, fix the
//! batch dimension and build tract's optimised plan once.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::{type_proto, GraphProto, ModelProto, ValueInfoProto};
use tract_onnx::prelude::tract_data::internal::{anyhow, bail, DimLike};
use tract_onnx::prelude::*;

use super::describe::{ElementType, ModelDescription, TensorInfo};
use super::error::{OnnxError, Result};

/// The name of the symbolic batch dimension given to every batched input.
const BATCH: &str = "N";

/// An ONNX model ready to infer: its optimised tract plan, built once at
/// load, and what its inputs and outputs look like per row.
///
/// A model is immutable and shared (`Arc<OnnxModel>`): concurrent
/// [`OnnxModel::infer_batch`] calls each run their own state on the same
/// plan.
pub struct OnnxModel {
    /// Registered name, used in error messages.
    pub(super) name: String,
    /// Where it was loaded from.
    path: PathBuf,
    /// The plan; its inputs and outputs are in the order of `inputs`/`outputs`.
    pub(super) plan: Arc<TypedSimplePlan>,
    /// One per model input, in the plan's order.
    pub(super) inputs: Vec<InputSlot>,
    /// One per model output, in the plan's order.
    pub(super) outputs: Vec<TensorInfo>,
    /// Whether every input has a dynamic leading (batch) dimension, so many
    /// rows run as one tensor; otherwise rows run one at a time.
    pub(super) batched: bool,
}

/// How one input is fed.
#[derive(Debug, Clone)]
pub(super) struct InputSlot {
    /// Name, element type and per-row shape.
    pub(super) info: TensorInfo,
    /// The per-row shape (`info.row_shape`, always known for inputs).
    pub(super) row_shape: Vec<usize>,
    /// Number of features per row: the product of `row_shape`.
    pub(super) row_size: usize,
    /// Whether the tensor has a leading batch axis in front of `row_shape`
    /// (of size N when batched, 1 when rows run one at a time).
    pub(super) leading: bool,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("batched", &self.batched)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish()
    }
}

/// What the ONNX graph declares for one input, before tract sees it.
struct DeclaredInput {
    name: String,
    datum: DatumType,
    elem: ElementType,
    /// `None` for a dynamic dimension.
    dims: Vec<Option<usize>>,
}

impl OnnxModel {
    /// Loads the ONNX model at `path`, named after the file stem (see
    /// [`OnnxModel::with_name`]).
    ///
    /// The model's inputs must be f32, f64 or i64 tensors with fixed
    /// dimensions, except a dynamic leading dimension. When every input has
    /// one, it becomes the batch dimension `N` and
    /// [`OnnxModel::infer_batch`] runs all rows as one tensor; otherwise
    /// the model is run once per row. Outputs must be tensors (numbers,
    /// booleans or strings). tract optimises the model and builds its plan
    /// here, once.
    ///
    /// # Errors
    /// [`OnnxError::NotFound`]/[`OnnxError::Io`] for the file,
    /// [`OnnxError::NotOnnx`] if it does not decode as an ONNX model,
    /// [`OnnxError::UnsupportedInputType`], [`OnnxError::DynamicShape`],
    /// [`OnnxError::NonTensorOutput`], [`OnnxError::UnsupportedOutputType`],
    /// [`OnnxError::Empty`] for models weir cannot feed or read, and
    /// [`OnnxError::Plan`] if tract cannot run it.
    pub fn load(path: impl AsRef<Path>) -> Result<OnnxModel> {
        let path = path.as_ref();
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = std::fs::read(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => OnnxError::NotFound { path: path.to_path_buf() },
            _ => OnnxError::Io { path: path.to_path_buf(), source },
        })?;
        let onnx = tract_onnx::onnx();
        let not_onnx = |reason: String| OnnxError::NotOnnx { path: path.to_path_buf(), reason };
        let proto = onnx.proto_model_for_read(&mut bytes.as_slice()).map_err(|e| not_onnx(format!("{e:#}")))?;
        // Protobuf decodes many byte strings without complaint; a real
        // model always states its IR version and has a graph.
        let graph = match &proto.graph {
            Some(g) if proto.ir_version > 0 => g,
            _ => return Err(not_onnx("no ONNX graph in the file".into())),
        };
        let declared = declared_inputs(&name, graph)?;
        check_outputs(&name, graph)?;
        let dir = path.parent().and_then(|d| d.to_str());
        // tract reports bad models as errors, but it is a large library
        // fed untrusted files: a panic must not take the node down.
        let built = catch_unwind(AssertUnwindSafe(|| build(&onnx, &proto, dir, &declared)))
            .unwrap_or_else(|_| Err(anyhow!("tract panicked while optimising the model")));
        let (plan, batched) = built.map_err(|e| OnnxError::Plan { model: name.clone(), reason: format!("{e:#}") })?;
        let inputs = input_slots(&name, &plan, &declared)?;
        let outputs = output_infos(&name, &plan, graph, batched)?;
        Ok(OnnxModel { name, path: path.to_path_buf(), plan, inputs, outputs, batched })
    }

    /// The same model under another name (the name it is registered as,
    /// which error messages show).
    pub fn with_name(mut self, name: impl Into<String>) -> OnnxModel {
        self.name = name.into();
        self
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether rows are inferred together as one tensor (the model has a
    /// batch dimension) rather than one at a time.
    pub fn is_batched(&self) -> bool {
        self.batched
    }

    /// The inputs, in the order `infer` takes them when the model has
    /// several.
    pub fn inputs(&self) -> impl ExactSizeIterator<Item = &TensorInfo> {
        self.inputs.iter().map(|s| &s.info)
    }

    /// The outputs, in the model's order.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    /// Name, path, inputs and outputs, for listings.
    pub fn describe(&self) -> ModelDescription {
        ModelDescription {
            name: self.name.clone(),
            path: self.path.clone(),
            batched: self.batched,
            inputs: self.inputs().cloned().collect(),
            outputs: self.outputs.clone(),
        }
    }
}

/// The graph inputs that are not initializers, with the types weir feeds.
fn declared_inputs(model: &str, graph: &GraphProto) -> Result<Vec<DeclaredInput>> {
    // Before IR version 4, initializers were listed among the inputs too.
    let init: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut out = Vec::new();
    for vi in graph.input.iter().filter(|vi| !init.contains(vi.name.as_str())) {
        let bad_type =
            |found: String| OnnxError::UnsupportedInputType { model: model.to_string(), input: vi.name.clone(), found };
        let tensor = tensor_type(vi).ok_or_else(|| bad_type("a sequence, map or other non-tensor".into()))?;
        let (datum, elem) = match DataType::try_from(tensor.elem_type) {
            Ok(DataType::Float) => (DatumType::F32, ElementType::F32),
            Ok(DataType::Double) => (DatumType::F64, ElementType::F64),
            Ok(DataType::Int64) => (DatumType::I64, ElementType::I64),
            Ok(other) => return Err(bad_type(other.as_str_name().to_ascii_lowercase())),
            Err(_) => return Err(bad_type(format!("unknown ({})", tensor.elem_type))),
        };
        let dynamic =
            |shape: String| OnnxError::DynamicShape { model: model.to_string(), input: vi.name.clone(), shape };
        let shape = tensor.shape.as_ref().ok_or_else(|| dynamic("of unknown rank".into()))?;
        let dims: Vec<Option<usize>> = shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(Dim::DimValue(v)) => usize::try_from(v).ok(),
                _ => None,
            })
            .collect();
        if dims.iter().skip(1).any(Option::is_none) {
            return Err(dynamic(shape_text(&dims)));
        }
        out.push(DeclaredInput { name: vi.name.clone(), datum, elem, dims });
    }
    if out.is_empty() {
        return Err(OnnxError::Empty { model: model.to_string(), what: "inputs" });
    }
    Ok(out)
}

/// Rejects outputs that are not tensors (tract's protobuf knows only the
/// tensor type, so a sequence or map decodes as a type without a value).
fn check_outputs(model: &str, graph: &GraphProto) -> Result<()> {
    if graph.output.is_empty() {
        return Err(OnnxError::Empty { model: model.to_string(), what: "outputs" });
    }
    for vi in &graph.output {
        if vi.r#type.is_some() && tensor_type(vi).is_none() {
            return Err(OnnxError::NonTensorOutput { model: model.to_string(), output: vi.name.clone() });
        }
    }
    Ok(())
}

fn tensor_type(vi: &ValueInfoProto) -> Option<&type_proto::Tensor> {
    match vi.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => Some(t),
    }
}

/// Parses the graph, fixes the input facts and plans it; returns the plan
/// and whether it is batched.
fn build(
    onnx: &tract_onnx::Onnx,
    proto: &ModelProto,
    dir: Option<&str>,
    declared: &[DeclaredInput],
) -> TractResult<(Arc<TypedSimplePlan>, bool)> {
    let parsed = onnx.parse(proto, dir)?;
    if !parsed.unresolved_inputs.is_empty() {
        bail!("unresolved inputs {:?}", parsed.unresolved_inputs);
    }
    let mut model = parsed.model;
    let batched = declared.iter().all(|d| d.dims.first() == Some(&None));
    let n = model.sym(BATCH);
    let outlets = model.input_outlets()?.to_vec();
    for (ix, outlet) in outlets.iter().enumerate() {
        let node_name = &model.node(outlet.node).name;
        let Some(d) = declared.iter().find(|d| &d.name == node_name) else {
            bail!("input {node_name} is not among the graph's declared inputs");
        };
        let shape: TVec<TDim> = d
            .dims
            .iter()
            .map(|dim| match dim {
                Some(v) => v.to_dim(),
                None if batched => n.to_dim(),
                // Only the leading dimension may be dynamic (checked
                // above); without a batch it holds one row.
                None => 1.to_dim(),
            })
            .collect();
        model.set_input_fact(ix, InferenceFact::dt_shape(d.datum, shape))?;
    }
    let plan = model.into_optimized()?.into_runnable()?;
    Ok((plan, batched))
}

/// The plan's inputs, in its order, with how to shape their tensors.
fn input_slots(model_name: &str, plan: &TypedSimplePlan, declared: &[DeclaredInput]) -> Result<Vec<InputSlot>> {
    let model = plan.model();
    let mut slots = Vec::with_capacity(declared.len());
    for outlet in model.input_outlets().into_iter().flatten() {
        let name = &model.node(outlet.node).name;
        // `build` matched every plan input to a declared one by name.
        let Some(d) = declared.iter().find(|d| &d.name == name) else { continue };
        let leading = d.dims.first() == Some(&None);
        let row_shape: Vec<usize> = d.dims.iter().skip(usize::from(leading)).map(|v| v.unwrap_or(1)).collect();
        slots.push(InputSlot {
            info: TensorInfo { name: d.name.clone(), element_type: d.elem, row_shape: Some(row_shape.clone()) },
            row_size: row_shape.iter().product(),
            row_shape,
            leading,
        });
    }
    if slots.len() != declared.len() {
        return Err(OnnxError::Plan {
            model: model_name.to_string(),
            reason: format!("the plan has {} inputs, the graph declares {}", slots.len(), declared.len()),
        });
    }
    Ok(slots)
}

/// The plan's outputs: names from the graph, types and per-row shapes from
/// tract's analysis.
fn output_infos(
    model_name: &str,
    plan: &TypedSimplePlan,
    graph: &GraphProto,
    batched: bool,
) -> Result<Vec<TensorInfo>> {
    let model = plan.model();
    let mut out = Vec::with_capacity(model.outputs.len());
    for (ix, outlet) in model.outputs.iter().enumerate() {
        let name = graph
            .output
            .get(ix)
            .map(|o| o.name.clone())
            .or_else(|| model.outlet_label(*outlet).map(str::to_string))
            .unwrap_or_else(|| format!("output{ix}"));
        let fact = model
            .outlet_fact(*outlet)
            .map_err(|e| OnnxError::Plan { model: model_name.to_string(), reason: format!("{e:#}") })?;
        let element_type =
            ElementType::from_datum(fact.datum_type).ok_or_else(|| OnnxError::UnsupportedOutputType {
                model: model_name.to_string(),
                output: name.clone(),
                found: format!("{:?}", fact.datum_type).to_ascii_lowercase(),
            })?;
        let dims = fact.shape.to_tvec();
        let row_dims = if batched { dims.get(1..).unwrap_or(&[]) } else { &dims[..] };
        let row_shape = row_dims.iter().map(|d| d.to_usize().ok()).collect::<Option<Vec<usize>>>();
        out.push(TensorInfo { name, element_type, row_shape });
    }
    Ok(out)
}

fn shape_text(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.map_or_else(|| "?".to_string(), |v| v.to_string())).collect();
    format!("[{}]", parts.join(", "))
}
