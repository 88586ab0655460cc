//! Paths and loaders for the models of `plugins/tests/models/` (made by
//! `plugins/scripts/make_models.py`).

use std::path::PathBuf;

use weir_runtime::functions::FuncResult;
use weir_runtime::value::Value;

use super::OnnxModel;

pub(super) fn model_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/models").join(file)
}

pub(super) fn load(name: &str) -> OnnxModel {
    OnnxModel::load(model_path(&format!("{name}.onnx"))).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

pub(super) fn expected(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(model_path(file)).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub(super) fn floats(xs: &[f64]) -> Vec<Value> {
    xs.iter().map(|x| Value::Float(*x)).collect()
}

/// The values of an array result.
pub(super) fn array(r: &FuncResult) -> Vec<Value> {
    match r {
        Ok(Value::Array(a)) => a.to_vec(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// The floats of an array result.
pub(super) fn array_f64(r: &FuncResult) -> Vec<f64> {
    array(r).iter().map(|v| v.as_f64().unwrap()).collect()
}

pub(super) fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-4 * want.abs().max(1.0)
}
