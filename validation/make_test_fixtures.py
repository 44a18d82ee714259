"""Small ONNX models that the Rust tests use to provoke errors.

    width4.onnx     takes [N, 4] features (the example channels have 3): an input-width mismatch.
    fixed_batch.onnx  takes exactly [1000, 3] features (a model exported without a dynamic batch
                    axis): the engine feeds batches of any size, so `validate` must refuse it.
    nonfinite.onnx  ratio = sqrt(m4l - 500): NaN for every event with m4l < 500 GeV, so the
                    engine must stop and name the model, the file and the event index.
    distorted_S.onnx  the example's exact ratio r_S(x) (models/S/exact.onnx) with its output
                    scaled by (1 + 0.3 cos_theta1): a miscalibrated model that the calibration
                    and closure diagnostics must catch, in cos_theta1 and not in m4l (the signal
                    density factorises in m4l and the angles, and is even in cos_theta1).

Deterministic: the same bytes every run. Usage: make_test_fixtures.py [--out tests/fixtures] [--example workspaces/offshell_toy]
"""
import argparse
import pathlib

import onnx
from onnx import TensorProto, helper


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="nsbi-test-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _constant_ratio(name, x_shape, y_shape, path):
    """ratio = 1 + 0 * sum(x) for inputs of `x_shape`: a valid, positive ratio, so that a
    refusal can only come from the model's interface."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("ratio", TensorProto.FLOAT, y_shape)
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1),
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["z", "one"], ["ratio"]),
    ]
    _save(helper.make_graph(nodes, name, [x], [y], [zero, one, axes]), path)


def width4(path):
    """Takes four features."""
    _constant_ratio("width4", [None, 4], [None, 1], path)


def fixed_batch(path):
    """The batch axis fixed at 1000."""
    _constant_ratio("fixed_batch", [1000, 3], [1000, 1], path)


def nonfinite(path):
    """ratio = sqrt(m4l - 500): NaN below 500 GeV."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("ratio", TensorProto.FLOAT, [None, 1])
    inits = [
        helper.make_tensor("start", TensorProto.INT64, [1], [0]),
        helper.make_tensor("end", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("offset", TensorProto.FLOAT, [], [500.0]),
    ]
    nodes = [
        helper.make_node("Slice", ["x", "start", "end", "axis"], ["m4l"]),
        helper.make_node("Sub", ["m4l", "offset"], ["d"]),
        helper.make_node("Sqrt", ["d"], ["ratio"]),
    ]
    _save(helper.make_graph(nodes, "nonfinite", [x], [y], inits), path)


def distorted_s(path, example):
    """Exact r_S(x) times (1 + 0.3 x[:, 1]); keeps only the `ratio` output."""
    model = onnx.load(str(example / "models" / "S" / "exact.onnx"))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["ratio_exact" if o == "ratio" else o for o in node.output]
        node.input[:] = ["ratio_exact" if i == "ratio" else i for i in node.input]
    keep = [o for o in graph.output if o.name == "ratio"]
    del graph.output[:]
    graph.output.extend(keep)
    graph.initializer.extend([
        helper.make_tensor("distortion_start", TensorProto.INT64, [1], [1]),
        helper.make_tensor("distortion_end", TensorProto.INT64, [1], [2]),
        helper.make_tensor("distortion_axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("distortion_slope", TensorProto.DOUBLE, [], [0.3]),
        helper.make_tensor("distortion_one", TensorProto.DOUBLE, [], [1.0]),
    ])
    graph.node.extend([
        helper.make_node("Slice", ["x", "distortion_start", "distortion_end", "distortion_axis"], ["c1_f32"]),
        helper.make_node("Cast", ["c1_f32"], ["c1_f64"], to=TensorProto.DOUBLE),
        helper.make_node("Mul", ["c1_f64", "distortion_slope"], ["tilt"]),
        helper.make_node("Add", ["tilt", "distortion_one"], ["factor"]),
        helper.make_node("Mul", ["ratio_exact", "factor"], ["ratio"]),
    ])
    model.producer_name = "nsbi-test-fixtures"
    model.doc_string = "exact r_S(x) of offshell_toy times (1 + 0.3 cos_theta1): deliberately miscalibrated"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/fixtures")
    parser.add_argument("--example", default="workspaces/offshell_toy")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    width4(out / "width4.onnx")
    fixed_batch(out / "fixed_batch.onnx")
    nonfinite(out / "nonfinite.onnx")
    distorted_s(out / "distorted_S.onnx", pathlib.Path(args.example))
    print(f"wrote {out}/width4.onnx, {out}/fixed_batch.onnx, {out}/nonfinite.onnx, {out}/distorted_S.onnx")


if __name__ == "__main__":
    main()
