"""Small ONNX models that the Rust tests use to provoke errors.

    width4.onnx     takes [N, 4] features (the example channels have 3): an input-width mismatch.
    nonfinite.onnx  ratio = sqrt(m4l - 500): NaN for every event with m4l < 500 GeV, so the
                    engine must stop and name the model, the file and the event index.

Deterministic: the same bytes every run. Usage: make_test_fixtures.py [--out tests/fixtures]
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


def width4(path):
    """ratio = 1 + 0 * sum(x): valid, positive, but takes four features."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("ratio", TensorProto.FLOAT, [None, 1])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1),
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["z", "one"], ["ratio"]),
    ]
    _save(helper.make_graph(nodes, "width4", [x], [y], [zero, one, axes]), path)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/fixtures")
    out = pathlib.Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    width4(out / "width4.onnx")
    nonfinite(out / "nonfinite.onnx")
    print(f"wrote {out}/width4.onnx, {out}/nonfinite.onnx")


if __name__ == "__main__":
    main()
