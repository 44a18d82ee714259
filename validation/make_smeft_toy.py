#!/usr/bin/env python3
"""Generate the data and models of the `smeft_toy` example workspace (two Wilson coefficients).

Everything is drawn from, or built out of, the closed-form model in `smeft_truth.py`:

    data/mc_{SM,L1,L2,Q1,Q2,X}.h5       20 000 events each, weights nu_b/N
    data/mc_ref.h5                      20 000 events of the reference (1/6) sum_b p_b, weight 1
    data/observed.h5                    N ~ Poisson(nu(c_true)) events from p(x|c_true), weight 1
    models/<b>/member_{0..2}.onnx       sklearn MLP ensembles (score convention, standardised input)
    models/<b>/standardisation.json     per-feature mean / std the members were trained with
    models/<b>/exact.onnx               closed-form ratio p_b/p_ref, float64 (ratio, log_ratio, logit, score)
    truth.json                          yields, integrals, morphing weights, provenance

The training approach is the off-shell example's (`make_offshell_toy.py`): class-balanced
bootstrap per member, a fixed number of epochs, exported with skl2onnx; training samples are
not shipped, so the shipped MC is held out. The output is a pure function of the seed (BLAS
pinned to one thread; one process per member).

Usage: make_smeft_toy.py [--seed 20261202] [--out workspaces/smeft_toy]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import concurrent.futures
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smeft_truth as T  # noqa: E402
import onnx_toy_models  # noqa: E402
from onnx_toy_models import (ONNX_IR_VERSION, ONNX_OPSET, GraphBuilder, exact_ratio_outputs,  # noqa: E402
                             session, standardise)

DEFAULT_SEED = 20261202
C_TRUE = (0.0, 0.0)  # the observed data are SM-like
N_MC = 20_000
N_TRAIN = 40_000  # training events per class (not shipped)
N_MEMBERS = 3
# tanh rather than the off-shell example's relu: the Q2 and X ratios vanish on lines of the plane
# (A2 ∝ x2 + 0.5), and relu networks extrapolate their logits linearly far below float32's
# sigmoid range (score exactly 0, a ratio the engine refuses); tanh units keep logits bounded.
MLP_CONFIG = dict(hidden_layer_sizes=(32, 32), activation="tanh", solver="adam", learning_rate_init=3e-3,
                  batch_size=1024, max_iter=25, tol=0.0, n_iter_no_change=1_000_000, early_stopping=False,
                  alpha=1e-4)
STREAMS = ("observed", "mc_ref", "train_ref") + tuple(f"mc_{b}" for b in T.PROCESSES) + tuple(
    f"train_{b}" for b in T.PROCESSES)


def stream(seed, name):
    """numpy Generator for the named purpose (independent streams by spawn key)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAMS.index(name),)))


def member_seed(seed, process, member):
    ss = np.random.SeedSequence(seed, spawn_key=(1000 + T.PROCESSES.index(process), member))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def write_events(path, x, weight, attrs):
    """The example's event file (`onnx_toy_models.write_events` with its features)."""
    return onnx_toy_models.write_events(path, x, weight, attrs, T.FEATURES)


def train_member(job):
    """One MLP on a class-balanced bootstrap of (x1: label 1, x0: label 0); ONNX bytes."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier

    x1, x0, seed = job["x1"], job["x0"], job["seed"]
    rng = np.random.default_rng(seed)
    i1, i0 = rng.integers(0, len(x1), len(x1)), rng.integers(0, len(x0), len(x0))
    X = np.concatenate([x1[i1], x0[i0]])
    y = np.concatenate([np.ones(len(i1), dtype=np.int64), np.zeros(len(i0), dtype=np.int64)])
    clf = MLPClassifier(random_state=seed, **MLP_CONFIG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    onx = convert_sklearn(clf, name=job["name"], initial_types=[("x", FloatTensorType([None, 2]))],
                          options={MLPClassifier: {"zipmap": False}},
                          target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3})
    onx.ir_version = ONNX_IR_VERSION
    onx.doc_string = job["doc"]
    return onx.SerializeToString(), float(clf.loss_)


def train_ensembles(seed, training, ref, out, workers):
    jobs, losses = [], {}
    for name, x1 in training.items():
        both = np.concatenate([x1, ref]).astype(np.float64)
        mean, std = both.mean(axis=0), both.std(axis=0)
        d = out / "models" / name
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "standardisation.json", "w") as f:
            json.dump({"features": list(T.FEATURES), "mean": mean.tolist(), "std": std.tolist()}, f, indent=2)
            f.write("\n")
        s1, s0 = standardise(x1, mean, std), standardise(ref, mean, std)
        for k in range(N_MEMBERS):
            doc = (f"smeft_toy ratio {name}: basis sample {name} (label 1) vs reference (1/6) sum_b p_b "
                   f"(label 0). Input: float32 standardised (x1, x2). Output 'probabilities' [N,2]; "
                   f"column 1 is the score s, ratio r = s/(1-s). Member {k}.")
            jobs.append(dict(name=f"{name}_member_{k}", x1=s1, x0=s0, seed=member_seed(seed, name, k), doc=doc,
                             path=d / f"member_{k}.onnx"))
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        for job, (blob, loss) in zip(jobs, pool.map(train_member, jobs)):
            job["path"].write_bytes(blob)
            losses.setdefault(job["name"].rsplit("_member_", 1)[0], []).append(loss)
    return losses


def exact_ratio_model(name):
    """ONNX graph of r_b = p_b / p_ref in float64 from raw float32 x [N, 2], with the same
    amplitudes as `smeft_truth.amplitudes`. Outputs ratio, log_ratio, logit (= log_ratio), score."""
    g = GraphBuilder()
    X = g.op("Cast", "x", to=TensorProto.DOUBLE)
    x1, x2 = g.column(X, 0), g.column(X, 1)
    root_x2 = g.op("Mul", (2.0 * np.pi) ** -0.25, g.op("Exp", g.op("Div", g.op("Mul", x2, x2), -4.0)))
    amps = []
    for k in range(3):
        m, s = T.CENTRE[k], T.WIDTH[k]
        d = g.op("Sub", x1, m)
        root_x1 = g.op("Mul", (2.0 * np.pi * s * s) ** -0.25, g.op("Exp", g.op("Div", g.op("Mul", d, d), -4.0 * s * s)))
        a = g.op("Mul", root_x1, root_x2)
        if k == 2:
            a = g.op("Mul", g.op("Mul", T.BETA, g.op("Add", x2, T.GAMMA)), a)
        if T.SCALE[k] != 1.0:
            a = g.op("Mul", T.SCALE[k], a)
        amps.append(a)

    def dens(b):
        v = T.BASIS[b]
        terms = [g.op("Mul", v[k], amps[k]) if v[k] != 1.0 else amps[k] for k in range(3) if v[k] != 0.0]
        total = terms[0]
        for t in terms[1:]:
            total = g.op("Add", total, t)
        return g.op("Div", g.op("Mul", total, total), T.integral(b))

    ref = None
    for b in T.PROCESSES:
        ref = dens(b) if ref is None else g.op("Add", ref, dens(b))
    ref = g.op("Div", ref, float(len(T.PROCESSES)))
    r = g.op("Div", dens(name), ref, out="ratio")
    return exact_ratio_outputs(
        g, r, f"smeft_toy_exact_{name}", 2, "nsbi/validation/make_smeft_toy.py",
        f"smeft_toy exact density ratio p_{name}(x)/p_ref(x). Input 'x' float32 [N,2] raw (x1, x2). "
        "Outputs float64 [N,1]: ratio, log_ratio, logit (= log_ratio), score = r/(1+r).")


def check_exact_models(out, files):
    """Max relative difference between exact.onnx and smeft_truth.ratio on every shipped event."""
    worst = {}
    for name in T.PROCESSES:
        sess = session(out / "models" / name / "exact.onnx")
        w = 0.0
        for x32 in files.values():
            ratio = sess.run(["ratio"], {"x": x32})[0][:, 0]
            truth = T.ratio(name, x32)
            w = max(w, float(np.max(np.abs(ratio - truth) / np.maximum(truth, 1e-3))))
        worst[name] = w
    return worst


def check_ensemble(out, name, x_ref):
    """E_ref |r_ensemble - r_exact| (a relative error over the numerator's events) and E_ref[r]."""
    d = out / "models" / name
    with open(d / "standardisation.json") as f:
        st = json.load(f)
    xs = standardise(x_ref, np.array(st["mean"]), np.array(st["std"]))
    members = []
    for k in range(N_MEMBERS):
        s = session(d / f"member_{k}.onnx").run(["probabilities"], {"x": xs})[0][:, 1].astype(np.float64)
        members.append(s / (1.0 - s))
    r = np.mean(members, axis=0)
    return {"mean_abs_err_ensemble": float(np.mean(np.abs(r - T.ratio(name, x_ref)))),
            "normalisation_closure": float(np.mean(r))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=Path("workspaces/smeft_toy"))
    ap.add_argument("--workers", type=int, default=2, help="processes training ensemble members (output does not depend on it)")
    args = ap.parse_args(argv)
    t0 = time.time()
    seed, out = args.seed, args.out
    nu = T.yields()

    shipped = {}
    for b in T.PROCESSES + ("ref",):
        x = T.sample(b, N_MC, stream(seed, f"mc_{b}"))
        weight = 1.0 if b == "ref" else nu[b] / N_MC
        shipped[f"mc_{b}"] = write_events(out / "data" / f"mc_{b}.h5", x, weight,
                                          {"process": b, "seed": np.int64(seed)})
    rng = stream(seed, "observed")
    n_obs = int(rng.poisson(T.nu_total(*C_TRUE)))
    shipped["observed"] = write_events(out / "data" / "observed.h5", T.sample_at(*C_TRUE, n_obs, rng), 1.0,
                                       {"process": "observed", "seed": np.int64(seed), "c_true": np.array(C_TRUE)})

    ref = T.sample("ref", N_TRAIN, stream(seed, "train_ref")).astype(np.float32)
    training = {b: T.sample(b, N_TRAIN, stream(seed, f"train_{b}")).astype(np.float32) for b in T.PROCESSES}
    losses = train_ensembles(seed, training, ref, out, args.workers)

    for b in T.PROCESSES:
        onnx.save(exact_ratio_model(b), str(out / "models" / b / "exact.onnx"))
    exact_worst = check_exact_models(out, shipped)
    assert max(exact_worst.values()) < 1e-12, exact_worst
    quality = {b: {**check_ensemble(out, b, shipped["mc_ref"]), "train_loss_members": losses[b]} for b in T.PROCESSES}

    truth = {
        "description": T.__doc__.strip(),
        "seed": seed,
        "observed": {"c_true": list(C_TRUE), "n_events": n_obs, "nu_expected": T.nu_total(*C_TRUE)},
        "luminosity": T.LUMINOSITY,
        "amplitudes": {"centre": T.CENTRE, "width": T.WIDTH, "beta": T.BETA, "gamma": T.GAMMA},
        "basis": {b: {"amplitude_combination": T.BASIS[b], "integral": T.integral(b), "yield": nu[b]}
                  for b in T.PROCESSES},
        "weights": {"quadratic": ["1 - c1/4 - c2/4", "c1/4", "c2/4", "c1^2 - 4*c1 - c1*c2", "c2^2 - 4*c2 - c1*c2",
                                  "c1*c2"],
                    "linear": ["1 - c1/4 - c2/4", "c1/4", "c2/4", "-4*c1", "-4*c2", "0"]},
        "files": {f"data/{k}.h5": {"n_events": int(len(v))} for k, v in shipped.items()},
        "models": {"members": N_MEMBERS, "convention": "score", "mlp": {k: (list(v) if isinstance(v, tuple) else v)
                                                                        for k, v in MLP_CONFIG.items()},
                   "n_train_per_class": N_TRAIN},
        "quality": quality,
        "exact_model_max_rel_diff": exact_worst,
    }
    with open(out / "truth.json", "w") as f:
        json.dump(truth, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"smeft_toy, seed {seed} -> {out}: observed {n_obs} events (nu = {T.nu_total(*C_TRUE):.1f})")
    print("  yields: " + ", ".join(f"{b} {nu[b]:.1f}" for b in T.PROCESSES))
    for b, q in quality.items():
        print(f"  ensemble {b:3s}: mean|r-r_exact| {q['mean_abs_err_ensemble']:.4f}, E_ref[r] {q['normalisation_closure']:.4f}")
    print(f"  exact.onnx max rel diff {max(exact_worst.values()):.1e}; runtime {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
