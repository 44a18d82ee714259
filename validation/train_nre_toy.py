"""Trains the nre_toy's neural ratio estimators: ensembles of sklearn MLP classifiers of (x, θ)
for the linear-Gaussian simulator of make_nre_toy.py (θ ∈ R⁴, x ∈ R⁵) and for its seed-004
mixture, as seed 001 trains its
SNRE: label 1 for pairs (x, θ) drawn jointly (θ from the prior, x from the simulator at θ),
label 0 for the same x with the θ of another simulation (drawn from the marginals). With
balanced classes the Bayes-optimal classifier's logit is ln r(x, θ) = ln p(x|θ)/p(x).

Writes into workspaces/nre_toy:
    models/trained_nre/member_{0..4}.onnx  input z float32 [N, 9] = (x₁..x₅, θ₁..θ₄), the
                                           standardisation inside the graph (sklearn Pipeline
                                           StandardScaler → MLPClassifier, skl2onnx as in
                                           make_offshell_toy.py), outputs `probabilities`
                                           [N, 2] and `logit` float32 [N, 1] (the output
                                           layer's input to the sigmoid: ln r without the
                                           float32 rounding of 1 − s near s = 1)
    models/trained_nre/training.json       configuration, losses, per-member agreement with
                                           the exact ln r, and the ensemble's posterior moments
                                           by importance sampling (an independent check of
                                           what `nsbi posterior` finds on
                                           linear_gaussian_trained.yaml)
    models/trained_mixture_nre/member_{0..4}.onnx, training.json
                                           the same for the seed-004 mixture (input z [N, 2] =
                                           (x, θ)), E[θ²] and E[|θ|] of the ensemble's
                                           posterior by quadrature (mixture_trained.yaml)

Deterministic: one simulation bank per model from SEED, each member its own negative pairing,
bootstrap and MLP initialisation from SeedSequence(SEED, spawn_key=(key,)), BLAS on one thread:
the same bytes on a rerun. About 30 CPU seconds per linear-Gaussian member.

Usage: .venv/bin/python validation/train_nre_toy.py [--out workspaces/nre_toy]
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
from onnx import helper
from scipy import stats
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_toy_models import ONNX_IR_VERSION, ONNX_OPSET, session  # noqa: E402

SEED = 20261203
N_SIMULATIONS = 200_000  # joint pairs per member; as many shuffled pairs
N_MEMBERS = 5
# Smooth activations: the sampler differentiates the network (central differences), and a ReLU
# network's ln r is piecewise linear in θ, its gradient a step function. Fixed epoch count (no
# early stopping on validation accuracy, a poor proxy for the quality of ln r).
MLP_CONFIG = dict(hidden_layer_sizes=(64, 64), activation="tanh", solver="adam", learning_rate_init=1e-3,
                  batch_size=512, max_iter=30, tol=0.0, n_iter_no_change=1_000_000, early_stopping=False,
                  alpha=1e-5)
IMPORTANCE_DRAWS = 400_000
# The seed-004 mixture: one x, one θ, so a smaller network; its posterior multiplies 12 ratios.
MIXTURE_SIMULATIONS = 200_000
MIXTURE_MLP = dict(MLP_CONFIG, hidden_layer_sizes=(32, 32), max_iter=20)


def simulate(lg, rng, n):
    """n joint draws (θ from the prior, x from the simulator), float64."""
    mean, sigma = np.array(lg["prior_mean"]), np.array(lg["prior_sigma"])
    A, b, noise = np.array(lg["A"]), np.array(lg["b"]), np.array(lg["noise_cov"])
    theta = mean + sigma * rng.normal(size=(n, len(mean)))
    x = theta @ A.T + b + rng.normal(size=(n, len(b))) * np.sqrt(np.diag(noise))
    return x, theta


def exact_log_ratio(lg, x, theta):
    """ln p(x|θ) − ln p(x) of the simulator, rows of x and θ."""
    A, b, noise = np.array(lg["A"]), np.array(lg["b"]), np.array(lg["noise_cov"])
    prior_cov = np.diag(np.array(lg["prior_sigma"]) ** 2)
    resid = x - (theta @ A.T + b)
    log_l = stats.multivariate_normal(np.zeros(len(b)), noise).logpdf(resid)
    evidence = stats.multivariate_normal(A @ np.array(lg["prior_mean"]) + b, A @ prior_cov @ A.T + noise)
    return log_l - evidence.logpdf(x)


def train_member(x, theta, key, config, name, doc):
    """One classifier on a bootstrap of the bank (label 1) and the same x with permuted θ
    (label 0), its random streams from SeedSequence(SEED, spawn_key=(key,)); returns the ONNX
    model with its `logit` output and the final training loss."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(key,)))
    n = len(x)
    rows = rng.integers(0, n, n)
    other = rows[rng.permutation(n)]
    z = np.concatenate([np.hstack([x[rows], theta[rows]]), np.hstack([x[rows], theta[other]])]).astype(np.float32)
    y = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    seed = int(np.random.SeedSequence(SEED, spawn_key=(key,)).generate_state(1, dtype=np.uint32)[0])
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(random_state=seed, **config))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the epoch count is fixed on purpose
        pipeline.fit(z, y)
    onx = convert_sklearn(pipeline, name=name,
                          initial_types=[("z", FloatTensorType([None, z.shape[1]]))],
                          options={MLPClassifier: {"zipmap": False}},
                          target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3})
    expose_logit(onx)
    onx.ir_version = ONNX_IR_VERSION
    onx.doc_string = doc
    onnx.checker.check_model(onx, full_check=True)
    return onx, float(pipeline[-1].loss_)


def train_ensemble(x, theta, model_dir, first_key, config, describe):
    """N_MEMBERS members, member k from stream first_key + k, written as member_k.onnx; their
    paths, final losses and the CPU seconds taken."""
    model_dir.mkdir(parents=True, exist_ok=True)
    t0, losses, paths = time.process_time(), [], []
    with threadpool_limits(1):
        for k in range(N_MEMBERS):
            name, doc = describe(k)
            model, loss = train_member(x, theta, first_key + k, config, name, doc)
            path = model_dir / f"member_{k}.onnx"
            onnx.save(model, str(path))
            paths.append(path)
            losses.append(loss)
            print(f"{model_dir.name} member {k}: loss {loss:.4f}, {time.process_time() - t0:.0f} CPU s", flush=True)
    return paths, losses, time.process_time() - t0


def expose_logit(onx):
    """Adds output `logit` = the input of the output layer's Sigmoid, and drops the `label`
    branch (argmax) that the posterior never reads."""
    sigmoid = [node for node in onx.graph.node if node.op_type == "Sigmoid"]
    assert len(sigmoid) == 1, "expected one Sigmoid (binary MLPClassifier)"
    onx.graph.node.append(helper.make_node("Identity", [sigmoid[0].input[0]], ["logit"], name="logit"))
    kept = [o for o in onx.graph.output if o.name != "label"]
    del onx.graph.output[:]
    onx.graph.output.extend(kept + [helper.make_tensor_value_info("logit", onnx.TensorProto.FLOAT, [None, 1])])
    pruned = onnx.utils.Extractor(onx).extract_model(["z"], [o.name for o in onx.graph.output])
    del onx.graph.node[:]
    onx.graph.node.extend(pruned.graph.node)
    del onx.graph.initializer[:]
    onx.graph.initializer.extend(pruned.graph.initializer)


def ensemble_log_ratio(paths, z32):
    """Mean of the members' logits (seed 001's aggregation), and each member's."""
    members = np.array([session(p).run(["logit"], {"z": z32})[0][:, 0].astype(np.float64) for p in paths])
    return members.mean(axis=0), members


def importance_moments(lg, paths, rng):
    """Posterior mean, sd and correlation of prior × ensemble ratio at the observed x, by
    self-normalised importance sampling from the analytic posterior widened by 1.5."""
    mean, cov = np.array(lg["posterior_mean"]), np.array(lg["posterior_cov"])
    proposal = stats.multivariate_normal(mean, 2.25 * cov)
    theta = proposal.rvs(size=IMPORTANCE_DRAWS, random_state=rng)
    x = np.broadcast_to(np.array(lg["x"]), (IMPORTANCE_DRAWS, len(lg["x"])))
    log_r, _ = ensemble_log_ratio(paths, np.hstack([x, theta]).astype(np.float32))
    prior = stats.norm(np.array(lg["prior_mean"]), np.array(lg["prior_sigma"])).logpdf(theta).sum(axis=1)
    log_w = prior + log_r - proposal.logpdf(theta)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    m = w @ theta
    c = (theta - m).T @ ((theta - m) * w[:, None])
    sd = np.sqrt(np.diag(c))
    return {"mean": m.tolist(), "sd": sd.tolist(), "corr": (c / np.outer(sd, sd)).tolist(),
            "effective_draws": float(1.0 / (w @ w))}


def linear_gaussian(out, lg):
    model_dir = out / "models" / "trained_nre"
    bank_rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(1000,)))
    x, theta = simulate(lg, bank_rng, N_SIMULATIONS)

    def describe(k):
        return f"nre_toy_trained_member_{k}", (
            f"nre_toy trained NRE, member {k} of {N_MEMBERS} (validation/train_nre_toy.py, seed "
            f"{SEED}, {N_SIMULATIONS} joint + {N_SIMULATIONS} shuffled pairs, MLP {MLP_CONFIG}). "
            "Input z float32 [N, 9] = (x1..x5, theta1..theta4), raw (standardised inside). "
            "Outputs probabilities [N, 2] (column 1: joint) and logit float32 [N, 1] = ln r(x, theta).")

    paths, losses, train_seconds = train_ensemble(x, theta, model_dir, 0, MLP_CONFIG, describe)

    # Agreement with the exact ln r on fresh joint pairs (the region the classifier sees most).
    xt, tt = simulate(lg, np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(1001,))), 20_000)
    exact = exact_log_ratio(lg, xt, tt)
    ens, members = ensemble_log_ratio(paths, np.hstack([xt, tt]).astype(np.float32))
    rms = lambda d: float(np.sqrt(np.mean(d ** 2)))  # noqa: E731
    moments = importance_moments(lg, paths, np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(1002,))))
    analytic_sd = np.sqrt(np.diag(lg["posterior_cov"]))
    pulls = (np.array(moments["mean"]) - lg["posterior_mean"]) / analytic_sd
    report = {
        "generator": "validation/train_nre_toy.py",
        "seed": SEED,
        "simulations": N_SIMULATIONS,
        "members": N_MEMBERS,
        "mlp": MLP_CONFIG,
        "train_loss": losses,
        "log_ratio_rms_error_on_joint_pairs": {"ensemble": rms(ens - exact), "members": [rms(m - exact) for m in members]},
        "posterior_by_importance_sampling": moments,
        "mean_minus_analytic_in_analytic_sd": pulls.tolist(),
        "sd_over_analytic_sd": (np.array(moments["sd"]) / analytic_sd).tolist(),
    }
    (model_dir / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"trained {N_MEMBERS} members in {train_seconds:.0f} CPU s; ln r rms error on joint pairs: ensemble "
          f"{report['log_ratio_rms_error_on_joint_pairs']['ensemble']:.3f}")
    print("posterior mean − analytic, in analytic sd:", np.round(pulls, 3))
    print("posterior sd / analytic sd:", np.round(report["sd_over_analytic_sd"], 3))



def simulate_mixture(m, rng, n):
    """n joint draws of the seed-004 mixture: θ ~ N(0, prior_sigma), x from
    (N(0, σ_b) + θ² N(α, σ_s)) / (1 + θ²)."""
    theta = rng.normal(0, m["prior_sigma"], size=n)
    signal = rng.uniform(size=n) < theta ** 2 / (1 + theta ** 2)
    x = np.where(signal, rng.normal(m["alpha"], m["signal_sigma"], n), rng.normal(0, m["background_sigma"], n))
    return x[:, None], theta[:, None]


def mixture_quadrature(m, paths):
    """E[θ²] and E[|θ|] of prior × Πⱼ r̂(xⱼ, θ) on a grid (as make_nre_toy.py's truth)."""
    grid = np.linspace(-10, 10, 20_001)
    x = np.array(m["x"])
    z = np.column_stack([np.repeat(x, len(grid)), np.tile(grid, len(x))]).astype(np.float32)
    log_r, _ = ensemble_log_ratio(paths, z)
    logp = stats.norm(0, m["prior_sigma"]).logpdf(grid) + log_r.reshape(len(x), len(grid)).sum(axis=0)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    return {"E_theta2": float(w @ grid ** 2), "E_abs_theta": float(w @ np.abs(grid))}


def mixture(out, m):
    model_dir = out / "models" / "trained_mixture_nre"
    x, theta = simulate_mixture(m, np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(3000,))),
                                MIXTURE_SIMULATIONS)

    def describe(k):
        return f"nre_toy_mixture_trained_member_{k}", (
            f"nre_toy seed-004 mixture trained NRE, member {k} of {N_MEMBERS} (validation/train_nre_toy.py, seed "
            f"{SEED}, {MIXTURE_SIMULATIONS} joint + {MIXTURE_SIMULATIONS} shuffled pairs, MLP {MIXTURE_MLP}). "
            "Input z float32 [N, 2] = (x, theta), raw (standardised inside). "
            "Outputs probabilities [N, 2] (column 1: joint) and logit float32 [N, 1] = ln r(x, theta).")

    paths, losses, train_seconds = train_ensemble(x, theta, model_dir, 2000, MIXTURE_MLP, describe)
    q, exact = mixture_quadrature(m, paths), m["quadrature"]
    report = {
        "generator": "validation/train_nre_toy.py",
        "seed": SEED,
        "simulations": MIXTURE_SIMULATIONS,
        "members": N_MEMBERS,
        "mlp": MIXTURE_MLP,
        "train_loss": losses,
        "posterior_by_quadrature": q,
        # Differences in posterior standard deviations of θ² and |θ|.
        "E_theta2_minus_exact_in_sd": (q["E_theta2"] - exact["E_theta2"]) / np.sqrt(exact["Var_theta2"]),
        "E_abs_theta_minus_exact_in_sd": (q["E_abs_theta"] - exact["E_abs_theta"]) / np.sqrt(exact["Var_abs_theta"]),
    }
    (model_dir / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"mixture: trained {N_MEMBERS} members in {train_seconds:.0f} CPU s; E[θ²] {q['E_theta2']:.4f} "
          f"(exact {exact['E_theta2']:.4f}), E[|θ|] {q['E_abs_theta']:.4f} (exact {exact['E_abs_theta']:.4f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "workspaces" / "nre_toy"))
    out = Path(parser.parse_args().out)
    truth = json.loads((out / "truth.json").read_text())
    linear_gaussian(out, truth["linear_gaussian"])
    mixture(out, truth["mixture"])

if __name__ == "__main__":
    main()
