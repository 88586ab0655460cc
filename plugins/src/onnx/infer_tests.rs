use weir_runtime::functions::FuncResult;
use weir_runtime::value::Value;

use super::test_util::{array, array_f64, close, expected, floats, load};

fn rows_of(json: &serde_json::Value) -> Vec<Vec<f64>> {
    json.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
        .collect()
}

#[test]
fn batch_matches_onnxruntime() {
    let m = load("gasflow");
    let exp = expected("gasflow_expected.json");
    let rows: Vec<Vec<Value>> = rows_of(&exp["rows"]).iter().map(|r| floats(r)).collect();
    let want = rows_of(&exp["predictions"]);
    let got = m.infer_batch(&rows);
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let g = array_f64(g);
        assert_eq!(g.len(), 1, "row {i}");
        assert!(close(g[0], w[0]), "row {i}: tract {} onnxruntime {}", g[0], w[0]);
    }
}

#[test]
fn batch_of_100_equals_100_single_rows() {
    let m = load("gasflow");
    let rows: Vec<Vec<Value>> = (0..100)
        .map(|i| {
            let i = f64::from(i);
            vec![Value::Float(700.0 + 5.0 * i), Value::Float(1.0 + 0.04 * i), Value::Int(1 + (i as i64) % 20)]
        })
        .collect();
    let batch = m.infer_batch(&rows);
    assert_eq!(batch.len(), 100);
    for (i, row) in rows.iter().enumerate() {
        let single = m.infer_batch(std::slice::from_ref(row));
        let (b, s) = (array_f64(&batch[i]), array_f64(&single[0]));
        assert!(close(b[0], s[0]), "row {i}: batch {} single {}", b[0], s[0]);
    }
}

#[test]
fn scalars_and_arrays_give_the_same_features() {
    let m = load("gasflow");
    let a = vec![Value::Float(900.0), Value::Float(2.5), Value::Float(4.0)];
    let b = vec![Value::array(a.clone())];
    let c = vec![Value::Int(900), Value::array(vec![Value::Float(2.5), Value::Int(4)])];
    let got: Vec<Vec<f64>> = m.infer_batch(&[a, b, c]).iter().map(array_f64).collect();
    assert_eq!(got[0], got[1]);
    assert_eq!(got[0], got[2]);
}

#[test]
fn bad_rows_fail_alone() {
    let m = load("gasflow");
    let good = floats(&[900.0, 2.5, 4.0]);
    let rows = vec![
        good.clone(),
        floats(&[900.0, 2.5]),
        vec![Value::Float(900.0), Value::str("high"), Value::Float(4.0)],
        good.clone(),
        vec![Value::Float(900.0), Value::Null, Value::Float(4.0)],
        floats(&[1.0, 2.0, 3.0, 4.0]),
        vec![],
    ];
    let got = m.infer_batch(&rows);
    assert_eq!(got.len(), rows.len());
    let err = |r: &FuncResult| r.clone().unwrap_err().0;
    assert_eq!(array(&got[0]), array(&got[3]));
    assert_eq!(err(&got[1]), "infer('gasflow'): expected 3 numbers for input input f32[3], got 2 numbers");
    assert_eq!(err(&got[2]), "infer('gasflow'): argument 3 must be a number or an array of numbers, got string");
    assert_eq!(err(&got[4]), "infer('gasflow'): argument 3 must be a number or an array of numbers, got null");
    assert_eq!(err(&got[5]), "infer('gasflow'): expected 3 numbers for input input f32[3], got 4 numbers");
    assert_eq!(err(&got[6]), "infer('gasflow'): expected 3 numbers for input input f32[3], got 0 numbers");
}

#[test]
fn an_empty_batch_gives_no_results() {
    let none: &[Vec<Value>] = &[];
    assert!(load("gasflow").infer_batch(none).is_empty());
}

#[test]
fn several_outputs_give_a_map_of_arrays() {
    let m = load("quality");
    let exp = expected("quality_expected.json");
    let rows: Vec<Vec<Value>> = rows_of(&exp["rows"]).iter().map(|r| vec![Value::array(floats(r))]).collect();
    let probs = rows_of(&exp["probabilities"]);
    let got = m.infer_batch(&rows);
    for (i, r) in got.iter().enumerate() {
        let Ok(Value::Map(map)) = r else { panic!("row {i}: {r:?}") };
        assert_eq!(map.keys().collect::<Vec<_>>(), ["label", "probabilities"]);
        let label = exp["label"][i].as_i64().unwrap();
        assert_eq!(map["label"].as_array().unwrap(), [Value::Int(label)], "row {i}");
        let p: Vec<f64> = map["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(p.len(), 3);
        for (g, w) in p.iter().zip(&probs[i]) {
            assert!(close(*g, *w), "row {i}: {p:?} vs {:?}", probs[i]);
        }
    }
}

#[test]
fn model_without_batch_dimension_runs_row_by_row() {
    let m = load("fixed_batch");
    let rows = vec![floats(&[1.0, 2.0, 3.0]), floats(&[1.0]), floats(&[-1.5, 0.0, 10.0])];
    let got = m.infer_batch(&rows);
    assert_eq!(array_f64(&got[0]), [2.0, 4.0, 6.0]);
    assert!(got[1].is_err());
    assert_eq!(array_f64(&got[2]), [-3.0, 0.0, 20.0]);
}

#[test]
fn several_inputs_take_one_argument_each() {
    let m = load("two_inputs");
    let rows = vec![
        vec![Value::array(floats(&[0.5, 1.5])), Value::Int(7)],
        vec![Value::array(floats(&[0.5, 1.5])), Value::array(vec![Value::Float(-2.0)])],
        vec![Value::Float(0.5), Value::Float(1.5), Value::Int(7)],
        vec![Value::array(floats(&[0.5, 1.5])), Value::Float(7.25)],
        vec![Value::Float(0.5), Value::Int(7)],
    ];
    let got = m.infer_batch(&rows);
    assert_eq!(array(&got[0]), floats(&[0.5, 1.5, 7.0]));
    assert_eq!(array(&got[1]), floats(&[0.5, 1.5, -2.0]));
    assert_eq!(
        got[2].clone().unwrap_err().0,
        "infer('two_inputs'): expected 2 arguments, one per input (a f32[2], b i64[1]), got 3 arguments"
    );
    assert_eq!(got[3].clone().unwrap_err().0, "infer('two_inputs'): input b takes integers, got 7.25");
    assert_eq!(
        got[4].clone().unwrap_err().0,
        "infer('two_inputs'): expected 2 numbers for input a f32[2] (argument 2), got 1 numbers"
    );
}

#[test]
fn models_are_shared_across_threads() {
    let m = std::sync::Arc::new(load("gasflow"));
    let want = array_f64(&m.infer_batch(&[floats(&[900.0, 2.5, 4.0])])[0]);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || array_f64(&m.infer_batch(&vec![floats(&[900.0, 2.5, 4.0]); 10])[9]))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}

#[test]
fn a_batch_runs_as_one_tensor() {
    // infer_batch retries a failed batch row by row, which would hide a
    // batching bug from the tests above: run the stacked tensor directly.
    let m = load("gasflow");
    let rows: Vec<[f64; 3]> = (0..100).map(|i| [800.0 + f64::from(i), 2.0, 5.0]).collect();
    let feats: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
    let out = m.run(&feats).unwrap();
    assert_eq!(out.len(), 100);
    let quality = load("quality");
    let rows: Vec<[f64; 4]> = (0..7).map(|i| [f64::from(i) - 3.0, 0.5, -0.5, 1.0]).collect();
    let feats: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
    assert_eq!(quality.run(&feats).unwrap().len(), 7);
}
