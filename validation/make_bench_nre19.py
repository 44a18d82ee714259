"""Writes the amortised model of benches/posterior_gradient.rs: a 19-parameter neural ratio
estimator the size of seed 000's pMSSM NRE (sbi's residual-network classifier, 200 hidden
features, 20 residual blocks, ReLU), with random weights, and its workspace.

    OUT/pmssm19_nre.onnx   input z float32 [N, 10 + 19] = (x, θ); output logit float32 [N, 1].
                           Linear(29 → 200), 20 blocks h + Linear(ReLU(Linear(ReLU(h)))) (the last
                           layer of each block small, as sbi initialises it), Linear(200 → 1);
                           1.6 M weights, float32 throughout, as a PyTorch export would be.
    OUT/pmssm19.yaml       posterior: 19 uniform priors on (−1, 1), `nre` with convention logit,
                           one inline observation of 10 values.

The weights are random (SEED): the benchmark measures the cost of one network evaluation and of
one central-difference gradient (one batched call of 1 + 2·19 rows), which do not depend on what
the network learnt. The file is 6.4 MB and is made when the benchmark runs, not shipped.

Usage: .venv/bin/python validation/make_bench_nre19.py --out target/bench-data
Prints {"workspace": ..., "model": ..., "parameters": 19, "observables": 10, "weights": ...}.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_toy_models import ONNX_IR_VERSION, ONNX_OPSET, session  # noqa: E402

SEED = 19
N_PARAMETERS, N_OBSERVABLES = 19, 10
HIDDEN, BLOCKS = 200, 20


def residual_net(rng):
    """The ONNX graph of sbi's ResidualNet classifier with random weights."""
    nodes, inits = [], []

    def linear(h, n_in, n_out, scale, tag):
        w = (rng.uniform(-1, 1, size=(n_in, n_out)) * scale).astype(np.float32)
        b = (rng.uniform(-1, 1, size=n_out) * scale).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"{tag}_w"), numpy_helper.from_array(b, f"{tag}_b")])
        nodes.append(helper.make_node("Gemm", [h, f"{tag}_w", f"{tag}_b"], [f"{tag}_out"], name=tag))
        return f"{tag}_out"

    def relu(h, tag):
        nodes.append(helper.make_node("Relu", [h], [f"{tag}_relu"], name=f"{tag}_relu"))
        return f"{tag}_relu"

    n_in = N_OBSERVABLES + N_PARAMETERS
    h = linear("z", n_in, HIDDEN, 1 / np.sqrt(n_in), "input")
    for k in range(BLOCKS):
        t = linear(relu(h, f"b{k}a"), HIDDEN, HIDDEN, 1 / np.sqrt(HIDDEN), f"b{k}l1")
        t = linear(relu(t, f"b{k}b"), HIDDEN, HIDDEN, 1e-3, f"b{k}l2")
        nodes.append(helper.make_node("Add", [h, t], [f"b{k}_sum"], name=f"b{k}_sum"))
        h = f"b{k}_sum"
    out = linear(h, HIDDEN, 1, 1 / np.sqrt(HIDDEN), "output")
    nodes.append(helper.make_node("Identity", [out], ["logit"], name="logit"))
    graph = helper.make_graph(nodes, "pmssm19_nre", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", n_in])],
                              [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])], inits)
    model = helper.make_model(graph, producer_name="nsbi/validation/make_bench_nre19.py",
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = ONNX_IR_VERSION
    model.doc_string = (f"Benchmark model: residual-network NRE classifier, {N_OBSERVABLES} observables + "
                        f"{N_PARAMETERS} parameters, {HIDDEN} features, {BLOCKS} blocks, random weights (seed {SEED}).")
    onnx.checker.check_model(model, full_check=True)
    return model, sum(t.dims[0] * (t.dims[1] if len(t.dims) > 1 else 1) for t in inits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    model, weights = residual_net(rng)
    path = out / "pmssm19_nre.onnx"
    onnx.save(model, str(path))
    x = rng.normal(size=N_OBSERVABLES).astype(np.float32)
    z = np.hstack([np.tile(x, (3, 1)), rng.uniform(-1, 1, size=(3, N_PARAMETERS)).astype(np.float32)])
    logit = session(path).run(["logit"], {"z": z})[0]
    assert np.all(np.isfinite(logit)), logit
    priors = "\n".join(f"    - {{parameter: p{i}, kind: uniform, low: -1, high: 1}}" for i in range(N_PARAMETERS))
    workspace = out / "pmssm19.yaml"
    workspace.write_text(
        "# Written by validation/make_bench_nre19.py for benches/posterior_gradient.rs.\n"
        "name: 19-parameter NRE benchmark\nposterior:\n  priors:\n" + priors + "\n"
        "  estimator:\n    kind: nre\n    convention: logit\n    models: pmssm19_nre.onnx\n"
        "    inputs: {concatenated: z}\n    output: logit\n"
        f"  observed:\n    values: {[round(float(v), 6) for v in x]}\n")
    print(json.dumps({"workspace": str(workspace), "model": str(path), "parameters": N_PARAMETERS,
                      "observables": N_OBSERVABLES, "hidden": HIDDEN, "blocks": BLOCKS, "weights": int(weights)}))


if __name__ == "__main__":
    main()
