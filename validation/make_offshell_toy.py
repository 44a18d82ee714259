#!/usr/bin/env python3
"""Generate the data and models of the `offshell_toy` example workspace.

Everything is drawn from, or built out of, the closed-form model in `offshell_truth.py`, so the
engine can be checked against exact answers:

    data/mc_{S,SBI,B,ref}.h5            100 000 events each, weights nu_c^0/N (ref: 1.0)
    data/mc_B_shape_{up,down}.h5        50 000 events each, weights nu_B±/N
    data/observed.h5                    N ~ Poisson(nu(mu=1)) events from p(x|mu=1), weight 1.0
    models/<R>/member_{0..4}.onnx       sklearn MLP ensembles (score convention, standardised input)
    models/<R>/standardisation.json     per-feature mean / std the members were trained with
    models/<R>/exact.onnx               closed-form ratio, float64 (ratio, log_ratio, logit, score)
    truth.json                          yields, integrals, systematics, provenance

R is S, SBI, B (process vs reference) or B_shape_up, B_shape_down (B±1σ vs nominal B).

The shipped MC samples are statistically independent of the (unshipped) training samples, so
they can serve as held-out samples for calibration and closure checks. The output is a pure
function of the seed: running twice gives byte-identical HDF5 and ONNX files (BLAS is pinned to
one thread so floating-point reductions happen in a fixed order; parallelism is across ensemble
members, each trained in its own single-threaded process).

Usage: make_offshell_toy.py [--seed 20261123] [--out workspaces/offshell_toy]
"""

from __future__ import annotations

import os

# Single-threaded BLAS before numpy is imported: reproducible floating-point sums (see above).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import concurrent.futures
import json
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import onnx
from onnx import TensorProto

sys.path.insert(0, str(Path(__file__).resolve().parent))
import offshell_truth as T  # noqa: E402
from onnx_toy_models import (ONNX_IR_VERSION, ONNX_OPSET, GraphBuilder, exact_ratio_outputs,  # noqa: E402
                             session, standardise)

DEFAULT_SEED = 20261123
N_MC = 100_000  # events per shipped S / SBI / B / ref file
N_SHAPE = 50_000  # events per shipped B shape-variation file
N_TRAIN = {"process": 150_000, "shape": 250_000}  # training events per class (not shipped)
N_MEMBERS = 5
ENSEMBLES = ("S", "SBI", "B", "B_shape_up", "B_shape_down")

# MLP configurations. Fixed number of epochs instead of sklearn's early stopping: its criterion
# is validation *accuracy*, a poor proxy for the quality of s/(1-s) as a density ratio, and very
# noisy for the weak shape-systematic classifiers. The shape ratios are small effects
# (E|r-1| ~ 0.04), so those networks get more data, large batches and stronger L2 to keep them
# from fitting noise; the process ratios are steep functions and get wider networks.
MLP_CONFIG = {
    "process": dict(hidden_layer_sizes=(64, 64), activation="relu", solver="adam", learning_rate_init=3e-3,
                    batch_size=2048, max_iter=30, tol=0.0, n_iter_no_change=1_000_000, early_stopping=False,
                    alpha=1e-4),
    "shape": dict(hidden_layer_sizes=(32, 32), activation="relu", solver="adam", learning_rate_init=3e-3,
                  batch_size=4096, max_iter=15, tol=0.0, n_iter_no_change=1_000_000, early_stopping=False,
                  alpha=1e-2),
}


def kind(ensemble):
    """'shape' for the background shape-variation ensembles, 'process' for S, SBI, B."""
    return "shape" if ensemble.startswith("B_shape") else "process"


# Independent random streams, one per purpose; SeedSequence(seed, spawn_key=(index,)) gives each
# an independent stream. Append new names at the end so the existing streams do not change.
STREAMS = (
    "mc_S", "mc_SBI", "mc_B", "mc_ref", "mc_B_shape_up", "mc_B_shape_down", "observed",
    "train_S", "train_SBI", "train_B", "train_ref",
    "train_shape_nominal", "train_B_shape_up", "train_B_shape_down",
)


def stream(seed, name):
    """numpy Generator for the named purpose."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAMS.index(name),)))


def member_seed(seed, ensemble, member):
    """Seed of one ensemble member (MLP initialisation, shuffling and bootstrap)."""
    ss = np.random.SeedSequence(seed, spawn_key=(1000 + ENSEMBLES.index(ensemble), member))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


# ----------------------------------------------------------------------------------------------
# Event files
# ----------------------------------------------------------------------------------------------


def write_events(path, x, weight, attrs, weight_variations=None):
    """Write events to HDF5: group `events` with float32 m4l, cos_theta1, cos_theta2 and float64
    weight, plain contiguous datasets, no timestamps (byte-reproducible). `weight_variations`
    maps extra weight-column names to factors on the nominal weight (yield-only systematics are
    stored the way analysis ntuples store them: as varied event weights)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    with h5py.File(path, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        g = f.create_group("events")
        for j, name in enumerate(T.FEATURES):
            g.create_dataset(name, data=np.ascontiguousarray(x32[:, j]), track_times=False)
        g.create_dataset("weight", data=np.full(len(x32), weight, dtype=np.float64), track_times=False)
        for name, factor in (weight_variations or {}).items():
            g.create_dataset(name, data=np.full(len(x32), weight * factor, dtype=np.float64), track_times=False)
    return x32


def read_events(path):
    """Features [N, 3] float32 and weights from an event file written by `write_events`."""
    with h5py.File(path, "r") as f:
        g = f["events"]
        x = np.column_stack([g[name][...] for name in T.FEATURES]).astype(np.float32)
        return x, g["weight"][...]


# ----------------------------------------------------------------------------------------------
# Classifier ensembles
# ----------------------------------------------------------------------------------------------


def train_member(job):
    """Train one MLP on a class-balanced bootstrap of (x1: label 1, x0: label 0), already
    standardised, and return its ONNX bytes. Runs in a worker process."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier

    x1, x0, seed = job["x1"], job["x0"], job["seed"]
    rng = np.random.default_rng(seed)
    # Bootstrap each class separately so the classes stay exactly balanced (s/(1-s) = p1/p0).
    i1 = rng.integers(0, len(x1), len(x1))
    i0 = rng.integers(0, len(x0), len(x0))
    X = np.concatenate([x1[i1], x0[i0]])
    y = np.concatenate([np.ones(len(i1), dtype=np.int64), np.zeros(len(i0), dtype=np.int64)])
    clf = MLPClassifier(random_state=seed, **MLP_CONFIG[job["kind"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the epoch count is fixed on purpose
        clf.fit(X, y)
    onx = convert_sklearn(
        clf,
        name=job["name"],
        initial_types=[("x", FloatTensorType([None, 3]))],
        options={MLPClassifier: {"zipmap": False}},
        target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3},
    )
    onx.ir_version = ONNX_IR_VERSION
    onx.doc_string = job["doc"]
    return onx.SerializeToString(), float(clf.loss_)


def train_ensembles(seed, training, out_dir, workers):
    """Train all ensembles (members in parallel), write member_*.onnx and standardisation.json."""
    jobs, stats = [], {}
    for name, (x1, x0, what) in training.items():
        both = np.concatenate([x1, x0]).astype(np.float64)
        mean, std = both.mean(axis=0), both.std(axis=0)
        d = out_dir / "models" / name
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "standardisation.json", "w") as f:
            json.dump({"features": list(T.FEATURES), "mean": mean.tolist(), "std": std.tolist()}, f, indent=2)
            f.write("\n")
        s1, s0 = standardise(x1, mean, std), standardise(x0, mean, std)
        for k in range(N_MEMBERS):
            doc = (f"offshell_toy ratio {name}: {what}. Input: float32 standardised "
                   f"(m4l, cos_theta1, cos_theta2) (see standardisation.json). Output 'probabilities' "
                   f"[N,2]; column 1 is the score s, ratio r = s/(1-s). Member {k}.")
            jobs.append(dict(name=f"{name}_member_{k}", kind=kind(name), x1=s1, x0=s0, seed=member_seed(seed, name, k),
                             doc=doc, path=d / f"member_{k}.onnx"))
        stats[name] = {"mean": mean, "std": std}
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        for job, (blob, loss) in zip(jobs, pool.map(train_member, jobs)):
            job["path"].write_bytes(blob)
            stats[job["name"].rsplit("_member_", 1)[0]].setdefault("train_loss", []).append(loss)
    return stats


# ----------------------------------------------------------------------------------------------
# Exact-ratio ONNX models
# ----------------------------------------------------------------------------------------------


def ggf_densities(g, m, c1, c2):
    """Graph nodes of the unnormalised gg -> (H*) -> ZZ densities {S, SBI, B} at float64 (m, c1,
    c2), in the operation order of `offshell_truth.ratio` (also used by make_offshell2d.py)."""
    q = g.op("Add", g.op("Mul", c1, c1), g.op("Mul", c2, c2))
    uB = g.op("Add", 1.0, g.op("Mul", T.UB_Q, q))
    uS = g.op("Add", g.op("Add", 1.0, g.op("Mul", T.US_Q, q)), g.op("Mul", T.US_X, g.op("Mul", c1, c2)))
    aB = g.op("Pow", g.op("Div", m, T.M_REF), T.B_POWER)
    turn_on = g.op("Div", 1.0, g.op("Add", 1.0, g.op("Exp", g.op("Div", g.op("Sub", T.TOP_THRESHOLD, m), T.TOP_WIDTH))))
    aS = g.op("Mul", g.op("Mul", -T.G_SIGNAL, g.op("Div", T.M_REF, m)), g.op("Add", 1.0, g.op("Mul", T.TOP_ENHANCEMENT, turn_on)))
    AB, AS = g.op("Mul", aB, uB), g.op("Mul", aS, uS)
    phase = g.op("Add", T.PHASE_0, g.op("Mul", T.PHASE_TOP, turn_on))
    I = g.op("Mul", g.op("Mul", 2.0, g.op("Mul", AS, AB)), g.op("Cos", phase))
    S, B = g.op("Mul", AS, AS), g.op("Mul", AB, AB)
    return {"S": S, "SBI": g.op("Add", g.op("Add", S, B), I), "B": B}


def exact_ratio_model(ratio_name):
    """ONNX graph of the closed-form ratio `ratio_name` (S, SBI, B, B_shape_up, B_shape_down).

    Input `x` float32 [N, 3] raw (not standardised) features; cast to float64 and evaluated with
    the same operation sequence as `offshell_truth.ratio`. Outputs, all float64 [N, 1]: `ratio`,
    `log_ratio`, `logit` (= log_ratio) and `score` = r/(1+r)."""
    g = GraphBuilder()
    X = g.op("Cast", "x", to=TensorProto.DOUBLE)
    m, c1, c2 = (g.column(X, j) for j in range(3))
    if ratio_name in T.SHAPE_VARIATIONS:
        s = 1.0 if ratio_name == "B_shape_up" else -1.0
        th = g.op("Tanh", g.op("Div", g.op("Sub", m, T.SHAPE_CENTRE), T.SHAPE_WIDTH))
        k = g.op("Add", 1.0, g.op("Mul", s * T.SHAPE_SIZE, th))
        r = g.op("Mul", k, T.SHAPE_NORM[ratio_name], out="ratio")
        what = f"exact per-event shape ratio p_B{'+' if s > 0 else '-'}(x)/p_B(x)"
    else:
        f = ggf_densities(g, m, c1, c2)
        ref = g.op("Add", g.op("Add", g.op("Mul", f["S"], T.REF_WEIGHT["S"]), g.op("Mul", f["SBI"], T.REF_WEIGHT["SBI"])),
                   g.op("Mul", f["B"], T.REF_WEIGHT["B"]))
        r = g.op("Div", g.op("Mul", f[ratio_name], T.INV_INTEGRAL[ratio_name]), ref, out="ratio")
        what = f"exact density ratio p_{ratio_name}(x)/p_ref(x), p_ref = (p_S + p_SBI + p_B)/3"
    return exact_ratio_outputs(
        g, r, f"offshell_toy_exact_{ratio_name}", 3, "nsbi/validation/make_offshell_toy.py",
        f"offshell_toy {what}. Input 'x' float32 [N,3] raw (m4l [GeV], cos_theta1, cos_theta2), "
        "NOT standardised. Outputs float64 [N,1]: ratio, log_ratio, logit (= log_ratio), score = r/(1+r).")


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------


def member_ratios(model_dir, x32):
    """Per-member learned ratios [members, N] from the score convention, standardised input."""
    with open(model_dir / "standardisation.json") as f:
        st = json.load(f)
    xs = standardise(x32, np.array(st["mean"]), np.array(st["std"]))
    out = []
    for k in range(N_MEMBERS):
        p = session(model_dir / f"member_{k}.onnx").run(["probabilities"], {"x": xs})[0]
        s = p[:, 1].astype(np.float64)
        out.append(s / (1.0 - s))
    return np.array(out)


def check_exact_models(out_dir, files):
    """Max relative difference between exact.onnx and offshell_truth on every shipped event."""
    worst = {}
    for name in ENSEMBLES:
        sess = session(out_dir / "models" / name / "exact.onnx")
        w = 0.0
        for x32 in files.values():
            ratio, log_ratio, logit, score = sess.run(["ratio", "log_ratio", "logit", "score"], {"x": x32})
            assert ratio.shape == (len(x32), 1) and ratio.dtype == np.float64
            truth = T.ratio(name, x32)
            # Relative difference, with the denominator floored at 1e-3: where SBI = S + B + I
            # nearly cancels (destructive interference), 1-ulp differences of exp/pow/cos grow.
            den = np.maximum(truth, 1e-3)
            w = max(w, float(np.max(np.abs(ratio[:, 0] - truth) / den)),
                    float(np.max(np.abs(score[:, 0] - truth / (1.0 + truth)) / (den / (1.0 + truth)))),
                    float(np.max(np.abs(np.exp(log_ratio[:, 0]) - truth) / den)))
            assert np.array_equal(log_ratio, logit)
        worst[name] = w
    return worst


def check_ensemble(out_dir, name, x_eval, x1, x0):
    """Quality of one ensemble on shipped (held-out) events.

    mean_abs_err: E_eval |r_learned - r_exact| with eval = ref (process ensembles) or nominal B
    (shape ensembles); this equals E_c |r_learned/r_exact - 1| over the numerator's events, a
    relative error that stays finite where r_exact -> 0. accuracy_*: balanced held-out
    classification accuracy (x1 vs x0) of the members, the ensemble and the exact (Bayes) ratio."""
    d = out_dir / "models" / name
    r_members = member_ratios(d, x_eval)
    r_ens = r_members.mean(axis=0)
    r_true = T.ratio(name, x_eval)

    def acc(r1, r0):
        return 0.5 * (np.mean(r1 > 1.0) + np.mean(r0 <= 1.0))

    m1, m0 = member_ratios(d, x1), member_ratios(d, x0)
    return {
        "mean_abs_err_ensemble": float(np.mean(np.abs(r_ens - r_true))),
        "mean_abs_err_members": [float(np.mean(np.abs(r - r_true))) for r in r_members],
        "mean_rel_spread": float(np.mean(r_members.std(axis=0, ddof=1) / r_ens)),
        "normalisation_closure": float(np.mean(r_ens)),  # E_eval[r] should be 1
        "accuracy_members": [float(acc(a, b)) for a, b in zip(m1, m0)],
        "accuracy_ensemble": float(acc(m1.mean(0), m0.mean(0))),
        "accuracy_exact": float(acc(T.ratio(name, x1), T.ratio(name, x0))),
    }


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=Path("workspaces/offshell_toy"))
    ap.add_argument("--workers", type=int, default=2, help="processes training ensemble members (output does not depend on it)")
    args = ap.parse_args(argv)
    t0 = time.time()
    seed, out = args.seed, args.out
    Y = T.yields()

    # --- shipped event files (held-out w.r.t. training) -------------------------------------
    shipped = {}
    weights = {"S": Y["nu_S"] / N_MC, "SBI": Y["nu_SBI"] / N_MC, "B": Y["nu_B"] / N_MC, "ref": 1.0,
               "B_shape_up": Y["nu_B_shape_up"] / N_SHAPE, "B_shape_down": Y["nu_B_shape_down"] / N_SHAPE}
    for proc in ("S", "SBI", "B", "ref", "B_shape_up", "B_shape_down"):
        n = N_SHAPE if proc.startswith("B_shape") else N_MC
        x = T.sample(proc, n, stream(seed, f"mc_{proc}"))
        eff = {"weight_alpha_eff_up": T.ALPHA_EFF_UP, "weight_alpha_eff_down": T.ALPHA_EFF_DOWN}
        shipped[f"mc_{proc}"] = write_events(out / "data" / f"mc_{proc}.h5", x, weights[proc],
                                             {"process": proc, "seed": np.int64(seed)},
                                             eff if proc in T.PROCESSES else None)
    rng_obs = stream(seed, "observed")
    n_obs = int(rng_obs.poisson(T.nu_mu(1.0)))
    shipped["observed"] = write_events(out / "data" / "observed.h5", T.sample("SBI", n_obs, rng_obs), 1.0,
                                       {"process": "observed", "seed": np.int64(seed), "mu_true": 1.0})
    t_data = time.time() - t0

    # --- training samples (not shipped), rounded to float32 like the shipped ones ------------
    def train(proc, key):
        return T.sample(proc, N_TRAIN[kind(proc)], stream(seed, key)).astype(np.float32)

    ref = train("ref", "train_ref")
    nominal = T.sample("B", N_TRAIN["shape"], stream(seed, "train_shape_nominal")).astype(np.float32)
    training = {
        "S": (train("S", "train_S"), ref, "signal S = |A_S|^2 (label 1) vs reference (p_S+p_SBI+p_B)/3 (label 0)"),
        "SBI": (train("SBI", "train_SBI"), ref, "mu=1 SBI = |A_S+A_B|^2 (label 1) vs reference (label 0)"),
        "B": (train("B", "train_B"), ref, "background B = |A_B|^2 (label 1) vs reference (label 0)"),
        "B_shape_up": (train("B_shape_up", "train_B_shape_up"), nominal, "B at alpha_shape=+1 (label 1) vs nominal B (label 0)"),
        "B_shape_down": (train("B_shape_down", "train_B_shape_down"), nominal, "B at alpha_shape=-1 (label 1) vs nominal B (label 0)"),
    }
    stats = train_ensembles(seed, training, out, args.workers)
    t_train = time.time() - t0 - t_data

    # --- exact models and checks -------------------------------------------------------------
    for name in ENSEMBLES:
        onnx.save(exact_ratio_model(name), str(out / "models" / name / "exact.onnx"))
    exact_worst = check_exact_models(out, shipped)
    assert max(exact_worst.values()) < 1e-12, exact_worst

    quality = {}
    for name in ("S", "SBI", "B"):
        quality[name] = check_ensemble(out, name, shipped["mc_ref"], shipped[f"mc_{name}"][:50_000], shipped["mc_ref"][:50_000])
    for name in T.SHAPE_VARIATIONS:
        quality[name] = check_ensemble(out, name, shipped["mc_B"], shipped[f"mc_{name}"], shipped["mc_B"][:N_SHAPE])

    for name in ENSEMBLES:
        quality[name]["train_loss_members"] = stats[name]["train_loss"]

    # --- truth.json ----------------------------------------------------------------------------
    destructive = {k: float(np.mean(T.dens_I(shipped[k]) < 0.0)) for k in ("mc_B", "mc_SBI", "mc_ref")}
    truth = {
        "description": (
            "offshell_toy: closed-form toy of the off-shell Higgs (gg -> H* -> ZZ -> 4l) measurement. "
            f"Features m4l [{T.M_LO:g},{T.M_HI:g}] GeV, cos_theta1, cos_theta2 in [-1,1]. Amplitudes "
            f"A_B = (m/{T.M_REF:g})^{T.B_POWER:g} (1 + {T.UB_Q:g}(c1^2+c2^2)) and "
            f"A_S = -{T.G_SIGNAL:g} ({T.M_REF:g}/m)(1 + {T.TOP_ENHANCEMENT:g}/(1+exp(-(m-{T.TOP_THRESHOLD:g})/{T.TOP_WIDTH:g}))) "
            f"(1 - {-T.US_Q:g}(c1^2+c2^2) + {T.US_X:g} c1 c2) e^(i phi(m)), "
            f"phi(m) = {T.PHASE_0:g} + {T.PHASE_TOP:g}/(1+exp(-(m-{T.TOP_THRESHOLD:g})/{T.TOP_WIDTH:g})). "
            "p(x|mu) ∝ |sqrt(mu) A_S + A_B|^2 = (mu-sqrt(mu)) S + sqrt(mu) SBI + (1-sqrt(mu)) B with "
            "S=|A_S|^2, SBI=|A_S+A_B|^2, B=|A_B|^2; interference I = 2 Re(A_S A_B*) is destructive where "
            "the signal's angular factor is positive. Reference p_ref = (p_S+p_SBI+p_B)/3. Background "
            f"shape systematic alpha_shape: B -> B (1 +- {T.SHAPE_SIZE:g} tanh((m-{T.SHAPE_CENTRE:g})/{T.SHAPE_WIDTH:g})). "
            f"Yield-only systematic alpha_eff on all processes: {T.ALPHA_EFF_UP:g} up / {T.ALPHA_EFF_DOWN:g} down. "
            "Closed form in validation/offshell_truth.py; generated by validation/make_offshell_toy.py."),
        "seed": seed,
        "observed": {"mu_true": 1.0, "alpha_true": {"alpha_shape": 0.0, "alpha_eff": 0.0}, "n_events": n_obs,
                     "nu_expected": T.nu_mu(1.0)},
        "yields": {"nu_S": Y["nu_S"], "nu_SBI": Y["nu_SBI"], "nu_B": Y["nu_B"], "nu_I": Y["nu_I"],
                   "nu_B_shape_up": Y["nu_B_shape_up"], "nu_B_shape_down": Y["nu_B_shape_down"],
                   "nu_of_mu": "(mu - sqrt(mu)) nu_S + sqrt(mu) nu_SBI + (1 - sqrt(mu)) nu_B"},
        "luminosity": T.LUMINOSITY,
        "integrals": {k: T.INTEGRALS[k] for k in ("S", "SBI", "B", "I", "B_shape_up", "B_shape_down")},
        "systematics": {
            "alpha_shape": {"processes": ["B"], "yield_factor_up": Y["B_shape_up_factor"],
                            "yield_factor_down": Y["B_shape_down_factor"],
                            "shape_ratio": "r_B±(x) = k±(m) int(B)/int(B±), k±(m) = 1 ± 0.15 tanh((m-400)/150)"},
            "alpha_eff": {"processes": ["S", "SBI", "B"], "yield_factor_up": T.ALPHA_EFF_UP,
                          "yield_factor_down": T.ALPHA_EFF_DOWN},
        },
        "parameters": {"g": T.G_SIGNAL, "b_power": T.B_POWER, "top_threshold": T.TOP_THRESHOLD,
                       "top_width": T.TOP_WIDTH, "top_enhancement": T.TOP_ENHANCEMENT, "uB_q": T.UB_Q,
                       "uS_q": T.US_Q, "uS_x": T.US_X, "phase_0": T.PHASE_0, "phase_top": T.PHASE_TOP,
                       "m_range": [T.M_LO, T.M_HI]},
        "destructive_interference": {"fraction_of_angular_square": T.destructive_fraction_uniform(),
                                     **{f"fraction_of_{k}_events": v for k, v in destructive.items()}},
        "files": {f"data/{k}.h5": {"n_events": int(len(v)),
                                   "weight": 1.0 if k in ("observed", "mc_ref") else weights[k[3:]]}
                  for k, v in shipped.items()},
        "models": {
            "members": N_MEMBERS, "convention": "score", "output": "probabilities", "column": 1,
            "standardisation": "standardisation.json",
            "mlp": {kd: {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
                    for kd, cfg in MLP_CONFIG.items()},
            "n_train_per_class": N_TRAIN, "bootstrap": "per class, with replacement",
            "exact": "exact.onnx: raw float32 x [N,3]; float64 [N,1] outputs ratio, log_ratio, logit, score",
        },
        "quality": quality,
        "exact_model_max_rel_diff": exact_worst,
    }
    with open(out / "truth.json", "w") as f:
        json.dump(truth, f, indent=2, ensure_ascii=False)
        f.write("\n")

    # --- summary -------------------------------------------------------------------------------
    print(f"offshell_toy, seed {seed} -> {out}")
    print(f"  yields: nu_S={Y['nu_S']:.3f} nu_SBI={Y['nu_SBI']:.3f} nu_B={Y['nu_B']:.3f} "
          f"nu_I={Y['nu_I']:.3f} (S/B={Y['nu_S'] / Y['nu_B']:.3f}, I/B={Y['nu_I'] / Y['nu_B']:.3f})")
    print(f"  shape syst yield factors: up {Y['B_shape_up_factor']:.6f} down {Y['B_shape_down_factor']:.6f}")
    print(f"  observed: {n_obs} events (nu(mu=1) = {T.nu_mu(1.0):.1f})")
    print(f"  destructive interference: {truth['destructive_interference']}")
    print(f"  exact.onnx vs offshell_truth, max rel diff: " + ", ".join(f"{k} {v:.1e}" for k, v in exact_worst.items()))
    for name, q in quality.items():
        print(f"  ensemble {name:12s}: mean|r-r_exact| ens {q['mean_abs_err_ensemble']:.4f} "
              f"(members {min(q['mean_abs_err_members']):.4f}-{max(q['mean_abs_err_members']):.4f}), "
              f"rel spread {q['mean_rel_spread']:.4f}, E[r] {q['normalisation_closure']:.4f}, "
              f"acc ens {q['accuracy_ensemble']:.4f} / exact {q['accuracy_exact']:.4f}")
    print(f"  runtime: data {t_data:.1f}s, training {t_train:.1f}s, total {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
