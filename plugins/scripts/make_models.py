#!/usr/bin/env python3
"""Builds the small ONNX models the weir-plugins tests use.

Run from anywhere: ``python3 plugins/scripts/make_models.py``. It rewrites
``plugins/tests/models/`` (a few KB in all) and needs numpy, scikit-learn,
skl2onnx, onnx and onnxruntime (``pip install``). Everything is seeded, so a
re-run with the same library versions gives the same models.

Models:
  gasflow.onnx          MLPRegressor: temperature (degC), pressure (bar),
                        o2 (%) -> gas-flow set point (m3/h). float32 input
                        ``input`` [N, 3], output ``variable`` [N, 1].
  gasflow_expected.json input rows and onnxruntime's predictions for them.
  quality.onnx          LogisticRegression (zipmap=False): 4 float features
                        -> ``label`` int64 [N] and ``probabilities`` [N, 3].
  quality_expected.json input rows and onnxruntime's label/probabilities.
  quality_zipmap.onnx   the same classifier with the default ZipMap output (a
                        sequence of maps), which weir rejects at load.
  fixed_batch.onnx      hand-built: input ``x`` float32 [1, 3] (no batch
                        dimension), y = 2 * x.
  two_inputs.onnx       hand-built: ``a`` float32 [N, 2] and ``b`` int64
                        [N, 1] -> ``y`` float64 [N, 3] = concat(a, b).
  string_input.onnx     hand-built: a string input, which weir rejects.
"""

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPRegressor

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "models")
OPSET = 15
ML_OPSET = 1


def gas_flow(t, p, o2):
    """The synthetic plant: set point in m3/h from the furnace state."""
    return 0.04 * t + 6.0 * p - 1.5 * o2 + 0.002 * (t - 900.0) * p + 3.0 * np.sin(o2 / 3.0)


def furnace_rows(rng, n):
    t = rng.uniform(700.0, 1200.0, n)
    p = rng.uniform(1.0, 5.0, n)
    o2 = rng.uniform(1.0, 21.0, n)
    return np.column_stack([t, p, o2])


def make_gasflow():
    rng = np.random.default_rng(42)
    x = furnace_rows(rng, 2000)
    y = gas_flow(x[:, 0], x[:, 1], x[:, 2])
    # Train on standardised data, then fold the scaling into the first and
    # last layers so the exported model takes raw units and needs no Scaler
    # operator (which tract does not implement).
    xm, xs = x.mean(axis=0), x.std(axis=0)
    ym, ys = y.mean(), y.std()
    mlp = MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=2000, tol=1e-6, random_state=0)
    mlp.fit((x - xm) / xs, (y - ym) / ys)
    w0, b0 = mlp.coefs_[0], mlp.intercepts_[0]
    mlp.coefs_[0] = w0 / xs[:, None]
    mlp.intercepts_[0] = b0 - (xm / xs) @ w0
    mlp.coefs_[-1] = mlp.coefs_[-1] * ys
    mlp.intercepts_[-1] = mlp.intercepts_[-1] * ys + ym

    onx = to_onnx(
        mlp,
        initial_types=[("input", FloatTensorType([None, 3]))],
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    path = os.path.join(OUT, "gasflow.onnx")
    save(onx, path)

    rows = np.vstack(
        [
            [[900.0, 2.5, 4.0], [700.0, 1.0, 21.0], [1200.0, 5.0, 1.0], [1050.5, 3.25, 8.75]],
            furnace_rows(np.random.default_rng(7), 16),
        ]
    ).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    pred = sess.run(None, {"input": rows})[0]
    truth = gas_flow(rows[:, 0].astype(np.float64), rows[:, 1], rows[:, 2])
    err = np.abs(pred[:, 0] - truth).max()
    print(f"gasflow: max |prediction - formula| on the check rows = {err:.3f} m3/h")
    write_json(
        os.path.join(OUT, "gasflow_expected.json"),
        {
            "model": "gasflow.onnx",
            "input": "input",
            "output": "variable",
            "rows": rows.astype(float).tolist(),
            "predictions": pred.astype(float).tolist(),
        },
    )


def make_quality():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4))
    score = x[:, 0] + 0.5 * x[:, 1] - x[:, 2]
    y = np.digitize(score, [-0.7, 0.7])  # classes 0, 1, 2
    clf = LogisticRegression(max_iter=1000, random_state=0).fit(x, y)
    types = [("input", FloatTensorType([None, 4]))]
    target = {"": OPSET, "ai.onnx.ml": ML_OPSET}
    onx = to_onnx(clf, initial_types=types, target_opset=target, options={id(clf): {"zipmap": False}})
    path = os.path.join(OUT, "quality.onnx")
    save(onx, path)
    save(to_onnx(clf, initial_types=types, target_opset=target), os.path.join(OUT, "quality_zipmap.onnx"))

    rows = rng.normal(size=(8, 4)).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    label, proba = sess.run(["label", "probabilities"], {"input": rows})
    write_json(
        os.path.join(OUT, "quality_expected.json"),
        {
            "model": "quality.onnx",
            "rows": rows.astype(float).tolist(),
            "label": label.astype(int).tolist(),
            "probabilities": proba.astype(float).tolist(),
        },
    )


def make_fixed_batch():
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "fixed_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[two],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), os.path.join(OUT, "fixed_batch.onnx"))


def make_two_inputs():
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["a"], ["a64"], to=TensorProto.DOUBLE),
            helper.make_node("Cast", ["b"], ["b64"], to=TensorProto.DOUBLE),
            helper.make_node("Concat", ["a64", "b64"], ["y"], axis=1),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("b", TensorProto.INT64, ["N", 1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 3])],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), os.path.join(OUT, "two_inputs.onnx"))


def make_string_input():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["out"])],
        "string_input",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["N", 1])],
        [helper.make_tensor_value_info("out", TensorProto.STRING, ["N", 1])],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), os.path.join(OUT, "string_input.onnx"))


def save(model, path):
    # Drop producer details that change with library versions, so a re-run
    # changes the files only when the models change.
    model.producer_version = ""
    model.doc_string = ""
    onnx.checker.check_model(model)
    onnx.save(model, path)
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(path)}")


def main():
    os.makedirs(OUT, exist_ok=True)
    make_gasflow()
    make_quality()
    make_fixed_batch()
    make_two_inputs()
    make_string_input()


if __name__ == "__main__":
    main()
