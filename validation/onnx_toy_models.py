"""ONNX pieces shared by the example-workspace generators (make_offshell_toy.py, make_smeft_toy.py,
make_offshell2d.py, make_scale_workspace.py): the opset and IR version every shipped model
uses, a tiny float64 graph builder for the closed-form ("exact") ratio models, the wrapper that
gives an exact ratio the engine's four outputs, the input standardisation the engine applies to
trained networks, a single-threaded onnxruntime session for the generators' self-checks, and
the writer of their event files.

The exact models are byte-reproducible: node and initialiser names come from a counter, so the
same sequence of `op` calls gives the same file.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # readable by every onnxruntime >= 1.10


class GraphBuilder:
    """Tiny helper to write a float64 ONNX graph as a sequence of binary operations."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, value):
        name = f"c{len(self.inits)}"
        self.inits.append(helper.make_tensor(name, TensorProto.DOUBLE, [], [float(value)]))
        return name

    def op(self, op_type, *inputs, out=None, **attrs):
        self.n += 1
        out = out or f"t{self.n}"
        ins = [self.const(i) if isinstance(i, (int, float)) else i for i in inputs]
        self.nodes.append(helper.make_node(op_type, ins, [out], name=f"n{self.n}_{op_type}", **attrs))
        return out

    def column(self, x, j):
        starts, ends, axes = (self._i64(f"s{j}", [j]), self._i64(f"e{j}", [j + 1]), self._i64("axis1", [1]))
        return self.op("Slice", x, starts, ends, axes)

    def _i64(self, name, values):
        if not any(t.name == name for t in self.inits):
            self.inits.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
        return name


def exact_ratio_outputs(g, ratio, graph_name, n_features, producer, doc):
    """Finish an exact-ratio graph whose node `ratio` (named "ratio") holds r(x): add log_ratio,
    logit (= log_ratio) and score = r/(1+r), all float64 [N, 1], from input `x` float32
    [N, n_features]; return the checked model."""
    g.op("Log", ratio, out="log_ratio")
    g.op("Identity", "log_ratio", out="logit")
    g.op("Div", ratio, g.op("Add", 1.0, ratio), out="score")
    outputs = [helper.make_tensor_value_info(n, TensorProto.DOUBLE, ["N", 1]) for n in ("ratio", "log_ratio", "logit", "score")]
    graph = helper.make_graph(g.nodes, graph_name,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_features])], outputs, g.inits)
    model = helper.make_model(graph, producer_name=producer, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = ONNX_IR_VERSION
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model


def standardise(x32, mean, std):
    """What the engine feeds the networks: float32((float64(x) - mean) / std)."""
    return ((x32.astype(np.float64) - mean) / std).astype(np.float32)


def session(path):
    """A single-threaded CPU onnxruntime session (reproducible reductions)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def write_events(path, x, weight, attrs, features):
    """Group `events` with one float32 dataset per name in `features` (the columns of x) and a
    float64 `weight` column, file attributes `attrs`, no timestamps (byte-reproducible)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    with h5py.File(path, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        g = f.create_group("events")
        for j, name in enumerate(features):
            g.create_dataset(name, data=np.ascontiguousarray(x32[:, j]), track_times=False)
        g.create_dataset("weight", data=np.full(len(x32), weight, dtype=np.float64), track_times=False)
    return x32
