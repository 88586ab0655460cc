use super::test_util::{load, model_path};
use super::{ElementType, OnnxError, OnnxModel, TensorInfo};

#[test]
fn gasflow_loads_with_a_batch_dimension() {
    let m = load("gasflow");
    assert_eq!(m.name(), "gasflow");
    assert!(m.is_batched());
    let inputs: Vec<&TensorInfo> = m.inputs().collect();
    assert_eq!(
        inputs,
        [&TensorInfo { name: "input".into(), element_type: ElementType::F32, row_shape: Some(vec![3]) }]
    );
    assert_eq!(
        m.outputs(),
        [TensorInfo { name: "variable".into(), element_type: ElementType::F32, row_shape: Some(vec![1]) }]
    );
    assert_eq!(inputs[0].to_string(), "input f32[3]");
}

#[test]
fn classifier_describes_label_and_probabilities() {
    let d = load("quality").with_name("quality_v2").describe();
    assert_eq!(d.name, "quality_v2");
    assert!(d.batched);
    let outs: Vec<(&str, ElementType, Option<Vec<usize>>)> =
        d.outputs.iter().map(|o| (o.name.as_str(), o.element_type, o.row_shape.clone())).collect();
    assert_eq!(outs, [("label", ElementType::I64, Some(vec![])), ("probabilities", ElementType::F32, Some(vec![3]))]);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["inputs"][0], serde_json::json!({"name": "input", "element_type": "f32", "row_shape": [4]}));
    assert_eq!(json["outputs"][0]["element_type"], "i64");
}

#[test]
fn fixed_shape_model_is_not_batched() {
    let m = load("fixed_batch");
    assert!(!m.is_batched());
    assert_eq!(m.inputs().next().unwrap().row_shape, Some(vec![1, 3]));
}

#[test]
fn two_inputs_keep_their_types_and_order() {
    let m = load("two_inputs");
    assert!(m.is_batched());
    let ins: Vec<String> = m.inputs().map(|i| i.to_string()).collect();
    assert_eq!(ins, ["a f32[2]", "b i64[1]"]);
    assert_eq!(m.outputs()[0].to_string(), "y f64[3]");
}

#[test]
fn missing_file_is_named() {
    let e = OnnxModel::load(model_path("nosuch.onnx")).unwrap_err();
    assert!(matches!(e, OnnxError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().ends_with("nosuch.onnx not found"), "{e}");
}

#[test]
fn files_that_are_not_onnx_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 4] = [
        ("text.onnx", b"hello, this is not a model\n"),
        ("json.onnx", br#"{"model": "gasflow"}"#),
        ("empty.onnx", b""),
        ("bytes.onnx", &[0xff, 0x00, 0x13, 0x37, 0x08, 0x01, 0xfe]),
    ];
    for (file, bytes) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).unwrap();
        let e = OnnxModel::load(&path).unwrap_err();
        assert!(matches!(e, OnnxError::NotOnnx { .. }), "{file}: {e:?}");
        assert!(e.to_string().contains("is not an ONNX model"), "{file}: {e}");
    }
    // A directory is not a model either.
    let e = OnnxModel::load(dir.path()).unwrap_err();
    assert!(matches!(e, OnnxError::Io { .. }), "{e:?}");
}

#[test]
fn zipmap_output_is_refused_with_a_hint() {
    let e = OnnxModel::load(model_path("quality_zipmap.onnx")).unwrap_err();
    assert!(matches!(&e, OnnxError::NonTensorOutput { output, .. } if output == "output_probability"), "{e:?}");
    assert!(e.to_string().contains("'zipmap': False"), "{e}");
}

#[test]
fn string_input_is_refused_naming_the_type() {
    let e = OnnxModel::load(model_path("string_input.onnx")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "model string_input: input s has element type string; weir feeds only f32, f64 or i64 inputs"
    );
}

#[test]
fn truncated_model_is_refused() {
    let bytes = std::fs::read(model_path("gasflow.onnx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.onnx");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = OnnxModel::load(&path).unwrap_err();
    assert!(matches!(e, OnnxError::NotOnnx { .. } | OnnxError::Plan { .. }), "{e:?}");
}
