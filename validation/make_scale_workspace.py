#!/usr/bin/env python3
"""Generate a synthetic workspace of real-analysis shape for the scale benchmark (issue 13).

The physics is the example's (`offshell_truth.py`): processes S, SBI, B with coefficients
mu - sqrt(mu), sqrt(mu), 1 - sqrt(mu) and their exact closed-form ratios r_c = p_c/p_ref, as
float64 ONNX graphs (no training). On top of that, configurable:

    --events N          MC events per process and channel (default 10^5; 10^7 works in chunks)
    --processes P       1: S (mu); 2: S (mu) + B (1); 3: the example's S, SBI, B; P > 3 adds
                        backgrounds B3, B4, ... (coefficient 1) with density p_B(x)(1 + b_k cos θ1),
                        exactly normalised because p_B is even in cos θ1
    --yield-nps Y       yield-only nuisances alpha_y<i>: factors up 1+u, down 1-d (u, d in
                        [0.005, 0.05]) on every process
    --shape-nps K       shape nuisances alpha_s<j> on every process: one up and one down ONNX
                        model per (process, systematic, channel),
                            r_{c,j,±}(x) = (1 ± a_{c,j} tanh((x_f - x0_j)/w_j)) / k̄_{c,j,±}
                        with k̄ the generator-weighted mean of the numerator over the process's
                        MC, so each shape ratio averages to exactly 1 there; the matching yield
                        factors are k̄_{c,j,±} (the varied yield over the nominal one)
    --channels C        independent copies of the channel (own MC, own observed data)
    --negative-fraction F   fraction of MC events (exactly round(F·N) per file, at random
                        positions) whose generator weight is negative; |w| is scaled so that the
                        weights still sum to the process's yield
    --observed N_obs    expected observed events at mu = 1 over all channels (default 4100); the
                        yields are the example's scaled by one factor, the data ~ Poisson

Writes into --out: workspace.yaml, data/<channel>/{mc_<process>,observed}.h5, models/*.onnx and
generator.json (the parameters and this script's SHA-256: the benchmark's fingerprint). The
output is a pure function of the parameters: the same seed gives byte-identical files (each
chunk of 500 000 events has its own random stream, so the events do not depend on memory).
Memory stays O(chunk) for the features plus O(N) for one file's weights.

`--verify DIR` re-reads a generated folder and prints JSON: per MC file the negative-weight
fraction and, per shape model, its generator-weighted mean over the process's MC, evaluated
with onnxruntime (the test checks |mean - 1| < 1e-6).

Usage: make_scale_workspace.py --out target/scale/ws [--events 100000] [--yield-nps 2]
       [--shape-nps 0] [--processes 3] [--channels 1] [--negative-fraction 0] [--seed 13]
       [--no-validate]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import offshell_truth as T  # noqa: E402
from make_offshell_toy import exact_ratio_model  # noqa: E402
from onnx_toy_models import ONNX_IR_VERSION, ONNX_OPSET, GraphBuilder  # noqa: E402

DEFAULT_SEED = 13
CHUNK = 500_000  # events per random stream: generation memory does not grow with --events
FEATURE_SCALE = {"m4l": ((300.0, 600.0), (80.0, 250.0)), "cos": ((-0.5, 0.5), (0.3, 1.0))}
ROOT = Path(__file__).resolve().parents[1]


def rng_for(seed, *key):
    """Independent numpy stream for one purpose, keyed by integers (SeedSequence spawn key)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key)))


# ----------------------------------------------------------------------------------------------
# The model: processes, yields, systematics (all drawn from the seed, independent of --events)
# ----------------------------------------------------------------------------------------------


def processes(n):
    """[(name, coefficient, base yield, extra-background tilt b or None)] for n processes."""
    Y = T.yields()
    if n < 1:
        raise SystemExit(f"--processes must be >= 1, got {n}")
    if n == 1:
        return [("S", "mu", Y["nu_S"], None)]
    if n == 2:
        return [("S", "mu", Y["nu_S"], None), ("B", "1", Y["nu_B"], None)]
    base = [("S", "mu - sqrt(mu)", Y["nu_S"], None), ("SBI", "sqrt(mu)", Y["nu_SBI"], None),
            ("B", "1 - sqrt(mu)", Y["nu_B"], None)]
    for k in range(3, n):  # extra backgrounds: B tilted in cos θ1, a quarter of B's yield each
        base.append((f"B{k}", "1", 0.25 * Y["nu_B"], 0.6 * math.sin(1.0 + k)))
    return base


def coefficient_at_mu1(coefficient):
    """Value of the coefficient at mu = 1 (all are >= 0 there: the data are a mixture)."""
    return {"mu - sqrt(mu)": 0.0, "sqrt(mu)": 1.0, "1 - sqrt(mu)": 0.0, "mu": 1.0, "1": 1.0}[coefficient]


def draw_systematics(seed, procs, n_yield, n_shape):
    """Yield factors per (yield NP, process) and shape specs per shape NP (feature, x0, w,
    amplitude per process). Yield and shape systematics have streams of their own, so they do
    not depend on --events, and shape NP j is the same whatever the number of yield NPs (rows
    of the benchmark that differ in yield NPs only compare the same shapes)."""
    rng = rng_for(seed, 100)
    yields = [[(1.0 + float(rng.uniform(0.005, 0.05)), 1.0 - float(rng.uniform(0.005, 0.05))) for _ in procs]
              for _ in range(n_yield)]
    rng = rng_for(seed, 101)
    shapes = []
    for j in range(n_shape):
        column = j % 3
        (c_lo, c_hi), (w_lo, w_hi) = FEATURE_SCALE["m4l" if column == 0 else "cos"]
        shapes.append({"column": column, "feature": T.FEATURES[column], "x0": float(rng.uniform(c_lo, c_hi)),
                       "width": float(rng.uniform(w_lo, w_hi)),
                       "amplitude": [float(rng.uniform(0.03, 0.15) * rng.choice([-1.0, 1.0])) for _ in procs]})
    return yields, shapes


# ----------------------------------------------------------------------------------------------
# Events
# ----------------------------------------------------------------------------------------------


def sample_process(name, tilt, n, rng):
    """n events of process `name`: the example's exact samplers; extra backgrounds by accepting
    B events with probability (1 + b cos θ1)/(1 + |b|)."""
    if tilt is None:
        return T.sample(name, n, rng)
    out, have = [], 0
    while have < n:
        x = T.sample("B", int((n - have) * (1.0 + abs(tilt)) * 1.1) + 100, rng)
        x = x[rng.random(len(x)) < (1.0 + tilt * x[:, 1]) / (1.0 + abs(tilt))]
        out.append(x)
        have += len(x)
    return np.concatenate(out)[:n]


def tanh_term(x32, spec):
    """tanh((x_f - x0)/w) in float64 from the float32 feature, the ONNX graph's operation order."""
    return np.tanh((x32[:, spec["column"]].astype(np.float64) - spec["x0"]) / spec["width"])


def generator_weights(nu, n, negative_fraction, rng):
    """Generator weights summing to nu: exactly round(F n) of them negative, at random positions."""
    n_neg = int(round(negative_fraction * n))
    if n - 2 * n_neg <= 0:
        raise SystemExit(f"--negative-fraction {negative_fraction} leaves no positive net weight")
    w = np.full(n, nu / (n - 2 * n_neg), dtype=np.float64)
    w[rng.choice(n, n_neg, replace=False)] *= -1.0
    return w


def write_mc(path, n, draw_chunk, weights, shapes):
    """Stream the events into a contiguous HDF5 file chunk by chunk, accumulating the weighted
    sums Σ b tanh(...) that normalise each shape ratio. Returns them (one per shape NP)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sums = np.zeros(len(shapes))
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        cols = [g.create_dataset(name, shape=(n,), dtype=np.float32, track_times=False) for name in T.FEATURES]
        g.create_dataset("weight", data=weights, track_times=False)
        for k, start in enumerate(range(0, n, CHUNK)):
            x32 = draw_chunk(k, min(CHUNK, n - start)).astype(np.float32)
            for j, col in enumerate(cols):
                col[start:start + len(x32)] = x32[:, j]
            b = weights[start:start + len(x32)]
            for j, spec in enumerate(shapes):
                sums[j] += float(np.dot(b, tanh_term(x32, spec)))
    return sums


def write_observed(path, x, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    with h5py.File(path, "w") as f:
        f.attrs["seed"] = np.int64(seed)
        g = f.create_group("events")
        for j, name in enumerate(T.FEATURES):
            g.create_dataset(name, data=np.ascontiguousarray(x32[:, j]), track_times=False)


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def finish_model(g, ratio, graph_name, doc):
    """Add log_ratio/score outputs, wrap as a checked float64 ONNX model."""
    g.op("Log", ratio, out="log_ratio")
    g.op("Div", ratio, g.op("Add", 1.0, ratio), out="score")
    outputs = [helper.make_tensor_value_info(n, TensorProto.DOUBLE, ["N", 1]) for n in ("ratio", "log_ratio", "score")]
    used = {i for node in g.nodes for i in node.input}
    g.inits = [t for t in g.inits if t.name in used]  # the tilted model drops the base's outputs
    graph = helper.make_graph(g.nodes, graph_name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              outputs, g.inits)
    model = helper.make_model(graph, producer_name="nsbi/validation/make_scale_workspace.py",
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = ONNX_IR_VERSION
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model


def tilted_background_model(tilt):
    """r_B(x) (1 + b cos θ1), as one graph: the example's B ratio times the tilt."""
    base = exact_ratio_model("B")
    g = GraphBuilder()
    nodes = list(base.graph.node)
    last = next(i for i, n in enumerate(nodes) if n.output[0] == "ratio")
    g.nodes = nodes[:last + 1]  # up to the ratio; its output is renamed to feed the tilt
    g.nodes[-1].output[:] = ["ratio_B"]
    g.inits = list(base.graph.initializer)
    g.n = len(nodes) + 1000
    X = g.op("Cast", "x", to=TensorProto.DOUBLE)
    c1 = g.column(X, 1)
    r = g.op("Mul", "ratio_B", g.op("Add", 1.0, g.op("Mul", tilt, c1)), out="ratio")
    return finish_model(g, r, "scale_tilted_B", f"r_B(x) (1 + {tilt!r} cos_theta1): extra background vs p_ref")


def shape_model(spec, amplitude, sign, inv_mean):
    """r(x) = (1 + sign·a·tanh((x_f - x0)/w)) · inv_mean, float64."""
    g = GraphBuilder()
    X = g.op("Cast", "x", to=TensorProto.DOUBLE)
    f = g.column(X, spec["column"])
    th = g.op("Tanh", g.op("Div", g.op("Sub", f, spec["x0"]), spec["width"]))
    k = g.op("Add", 1.0, g.op("Mul", sign * amplitude, th))
    r = g.op("Mul", k, inv_mean, out="ratio")
    return finish_model(g, r, "scale_shape", f"shape ratio (1 {'+' if sign > 0 else '-'} a tanh(({spec['feature']}"
                        f" - x0)/w)) / mean over the process MC; a={amplitude!r} x0={spec['x0']!r} w={spec['width']!r}")


def save_model(model, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    path.write_bytes(data)


# ----------------------------------------------------------------------------------------------
# Workspace YAML
# ----------------------------------------------------------------------------------------------


def workspace_yaml(args, procs, channels):
    lines = [f"# Synthetic scale-benchmark workspace: validation/make_scale_workspace.py (see generator.json).",
             f"name: scale_{args.events}ev_{args.yield_nps}y_{args.shape_nps}s",
             "parameters:", "  - {name: mu, poi: true, init: 1.0, bounds: [0.0, 20.0]}"]
    for i in range(args.yield_nps):
        lines.append(f"  - {{name: alpha_y{i}, init: 0.0, bounds: [-5.0, 5.0]}}")
    for j in range(args.shape_nps):
        lines.append(f"  - {{name: alpha_s{j}, init: 0.0, bounds: [-5.0, 5.0]}}")
    lines.append("channels:")
    for ch in channels:
        lines += [f"  - name: {ch['name']}", "    type: unbinned", f"    features: [{', '.join(T.FEATURES)}]",
                  f"    data: {{file: data/{ch['name']}/observed.h5, group: events}}", "    processes:"]
        for p, (name, coefficient, _, _) in enumerate(procs):
            lines += [f"      - name: {name}", f"        coefficient: {coefficient}",
                      f"        samples: {{file: data/{ch['name']}/mc_{name}.h5, group: events, weight: weight}}",
                      f"        ratio: {{models: models/{name}.onnx, output: ratio, convention: ratio}}"]
            systs = []
            for i, factors in enumerate(ch["yield_factors"]):
                up, down = factors[p]
                systs.append(f"          - {{name: alpha_y{i}, yield: {{up: {up!r}, down: {down!r}}}}}")
            for j, (up, down) in enumerate(ch["shape_means"][p]):
                model = f"models/{ch['name']}/{name}_s{j}"
                systs += [f"          - name: alpha_s{j}",
                          f"            yield: {{up: {up!r}, down: {down!r}}}",
                          f"            shape:",
                          f"              up: {{models: {model}_up.onnx, output: ratio, convention: ratio}}",
                          f"              down: {{models: {model}_down.onnx, output: ratio, convention: ratio}}"]
            if systs:
                lines += ["        systematics:"] + systs
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def parameters(args):
    """What the output is a function of (with the script's own hash): the benchmark's fingerprint."""
    return {"seed": args.seed, "events": args.events, "processes": args.processes, "yield_nps": args.yield_nps,
            "shape_nps": args.shape_nps, "channels": args.channels, "negative_fraction": args.negative_fraction,
            "observed": args.observed,
            "script_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()}


def generate(args):
    out = args.out
    procs = processes(args.processes)
    yield_factors, shapes = draw_systematics(args.seed, procs, args.yield_nps, args.shape_nps)
    nu_mu1 = sum(coefficient_at_mu1(c) * nu for _, c, nu, _ in procs)
    scale = args.observed / (args.channels * nu_mu1)
    for name, _, _, tilt in procs:
        save_model(exact_ratio_model(name) if tilt is None else tilted_background_model(tilt), out / "models" / f"{name}.onnx")
    channels = []
    for c in range(args.channels):
        ch = {"name": f"SR{c}", "yield_factors": yield_factors, "shape_means": []}
        for p, (name, coefficient, nu, tilt) in enumerate(procs):
            weights = generator_weights(scale * nu, args.events, args.negative_fraction, rng_for(args.seed, 2, c, p))
            sums = write_mc(out / "data" / ch["name"] / f"mc_{name}.h5", args.events,
                            lambda k, n: sample_process(name, tilt, n, rng_for(args.seed, 1, c, p, k)),
                            weights, shapes)
            total = float(np.sum(weights))
            means = []
            for j, spec in enumerate(shapes):
                a = spec["amplitude"][p]
                up, down = 1.0 + a * float(sums[j]) / total, 1.0 - a * float(sums[j]) / total
                for sign, mean in ((+1.0, up), (-1.0, down)):
                    save_model(shape_model(spec, a, sign, 1.0 / mean),
                               out / "models" / ch["name"] / f"{name}_s{j}_{'up' if sign > 0 else 'down'}.onnx")
                means.append((up, down))
            ch["shape_means"].append(means)
        # Observed data at mu = 1, alpha = 0: a Poisson number of events from the mixture.
        rng = rng_for(args.seed, 3, c)
        nus = np.array([scale * coefficient_at_mu1(co) * nu for _, co, nu, _ in procs])
        counts = rng.multinomial(int(rng.poisson(nus.sum())), nus / nus.sum())
        x = np.concatenate([sample_process(n, tilt, k, rng) for (n, _, _, tilt), k in zip(procs, counts) if k > 0])
        write_observed(out / "data" / ch["name"] / "observed.h5", x[rng.permutation(len(x))], args.seed)
        channels.append(ch)
    (out / "workspace.yaml").write_text(workspace_yaml(args, procs, channels))
    info = {"parameters": parameters(args), "scale": scale, "nu_mu1_per_channel": scale * nu_mu1,
            "shapes": shapes, "processes": [p[0] for p in procs]}
    (out / "generator.json").write_text(json.dumps(info, indent=2) + "\n")


def validate(out):
    """`nsbi validate` on the written workspace; exits with its message if it refuses."""
    exe = os.environ.get("NSBI", str(ROOT / "target" / "release" / "nsbi"))
    run = subprocess.run([exe, "validate", str(out / "workspace.yaml")], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"nsbi validate refused {out / 'workspace.yaml'}:\n{run.stdout}{run.stderr}")
    return run.stdout.strip()


def verify(out):
    """Negative-weight fraction per MC file and each shape model's weighted mean over its
    process's MC (onnxruntime), as a dict."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    info = json.loads((out / "generator.json").read_text())
    result = {"negative_fraction": {}, "shape_mean": {}}
    for mc in sorted((out / "data").glob("*/mc_*.h5")):
        with h5py.File(mc, "r") as f:
            g = f["events"]
            w = g["weight"][...]
            x = np.column_stack([g[n][...] for n in T.FEATURES]).astype(np.float32)
        result["negative_fraction"][str(mc.relative_to(out))] = float(np.mean(w < 0))
        proc = mc.stem[len("mc_"):]
        for model in sorted((out / "models" / mc.parent.name).glob(f"{proc}_s*.onnx")):
            sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
            r = sess.run(["ratio"], {"x": x})[0][:, 0]
            result["shape_mean"][str(model.relative_to(out))] = float(np.dot(w, r) / np.sum(w))
    result["processes"] = info["processes"]
    return result


def parse_args(argv=None):
    """The command line as a namespace; `argv` is kept (the benchmark re-runs it as a child)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--events", type=int, default=100_000, help="MC events per process and channel")
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--yield-nps", type=int, default=2)
    ap.add_argument("--shape-nps", type=int, default=0)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--negative-fraction", type=float, default=0.0)
    ap.add_argument("--observed", type=float, default=4100.0, help="expected observed events at mu = 1, all channels")
    ap.add_argument("--no-validate", action="store_true", help="skip `nsbi validate`")
    ap.add_argument("--verify", type=Path, metavar="DIR", help="check a generated folder, print JSON, and exit")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.verify:
        return args
    if args.out is None:
        ap.error("--out is required")
    if not 0.0 <= args.negative_fraction < 0.5:
        ap.error(f"--negative-fraction must be in [0, 0.5), got {args.negative_fraction}")
    if args.events < 1 or args.channels < 1 or args.yield_nps < 0 or args.shape_nps < 0:
        ap.error("--events and --channels must be >= 1, --yield-nps and --shape-nps >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.verify:
        print(json.dumps(verify(args.verify), indent=2))
        return
    generate(args)
    if not args.no_validate:
        print(validate(args.out))
    print(f"scale workspace -> {args.out / 'workspace.yaml'}")


if __name__ == "__main__":
    main()
