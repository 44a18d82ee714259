"""Writes workspaces/nre_toy: amortised-inference examples whose posteriors are known.

1. A linear-Gaussian simulator, x = A θ + b + ε with ε ~ N(0, Σx), θ ∈ R⁴, x ∈ R⁵, and
   independent normal priors θᵢ ~ N(μᵢ, σᵢ). The posterior is normal with
       Σ = (Σ₀⁻¹ + Aᵀ Σx⁻¹ A)⁻¹,  m = Σ (Σ₀⁻¹ μ₀ + Aᵀ Σx⁻¹ (x − b)).
   Two exact ONNX models of it:
     models/linear_gaussian_nre.onnx   input z float32 [N, 9] = (x, θ); output log_ratio
                                        ln r = ln N(x; Aθ + b, Σx) − ln N(x; Aμ₀ + b, AΣ₀Aᵀ + Σx)
     models/linear_gaussian_nle.onnx   inputs x float32 [N, 5], theta float32 [N, 4];
                                        output log_likelihood ln N(x; Aθ + b, Σx)
2. The seed-004 1-D mixture p(x|θ) = (N(x; 0, 1.22) + θ² N(x; α, 0.71)) / (1 + θ²) with α = 1
   (1.22 and 0.71 standard deviations), a N(0, 3) prior and 12 observed events drawn at θ = 0.7:
   a bimodal posterior (θ → −θ symmetry).
     models/mixture_nle.onnx           input z float32 [N, 2] = (x, θ); output log_likelihood
3. A 5-parameter linear-Gaussian simulator (θ ∈ R⁵, x ∈ R⁶, priors PRIOR_5D) for the ESS/s
   benchmark validation/bench_posterior.py, from its own random stream:
     models/linear_gaussian_5d_nre.onnx, models/linear_gaussian_5d_nle.onnx (as in 1.),
     data/observed_5d.h5 (dataset x), truth.json's `linear_gaussian_5d`.

The models cast their float32 input to float64 and compute in float64. The observed x are
rounded to float32 before they are written (the networks see float32), and truth.json's
posterior moments are computed from those rounded values. Every model is checked here against
scipy on random points before it is written.

Usage: .venv/bin/python validation/make_nre_toy.py [--out workspaces/nre_toy]
"""

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from scipy import stats

SEED = 20261202
ONNX_OPSET = 17
ONNX_IR_VERSION = 8
DIM_X = 5
PRIOR_5D = {"mean": [0.0, 1.0, -0.5, 0.5, 2.0], "sigma": [1.0, 1.5, 0.7, 2.0, 1.2]}
DIM_X_5D = 6
MIXTURE = {"alpha": 1.0, "background_sigma": 1.22, "signal_sigma": 0.71, "events": 12,
           "theta_true": 0.7, "prior_sigma": 3.0}
# The observed events are redrawn until the posterior's valley at θ = 0 is 10-50 % of its peaks:
# two clear modes that a sampler can still cross (a deeper valley is a separate test of R̂).
VALLEY = (0.1, 0.5)


class Graph:
    """A float64 ONNX graph written as a sequence of operations."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, value):
        value = np.asarray(value, dtype=np.float64)
        name = f"c{len(self.inits)}"
        self.inits.append(helper.make_tensor(name, TensorProto.DOUBLE, list(value.shape), value.ravel().tolist()))
        return name

    def i64(self, values):
        name = f"i{len(self.inits)}"
        self.inits.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
        return name

    def op(self, op_type, *inputs, out=None, **attrs):
        self.n += 1
        out = out or f"t{self.n}"
        ins = [i if isinstance(i, str) else self.const(i) for i in inputs]
        self.nodes.append(helper.make_node(op_type, ins, [out], name=f"n{self.n}_{op_type}", **attrs))
        return out

    def columns(self, x, start, end):
        return self.op("Slice", x, self.i64([start]), self.i64([end]), self.i64([1]))

    def gaussian_log_density(self, x, mean, precision, log_norm):
        """ln N(x; mean, Σ) per row, [N, 1]: −½ (x − mean)ᵀ P (x − mean) + log_norm."""
        r = self.op("Sub", x, mean)
        quad = self.op("ReduceSum", self.op("Mul", self.op("MatMul", r, precision), r), self.i64([1]), keepdims=1)
        return self.op("Add", self.op("Mul", quad, -0.5), log_norm)

    def model(self, name, inputs, output, doc):
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", w]) for n, w in inputs],
            [helper.make_tensor_value_info(output, TensorProto.DOUBLE, ["N", 1])], self.inits)
        model = helper.make_model(graph, producer_name="nsbi/validation/make_nre_toy.py",
                                  opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
        model.ir_version = ONNX_IR_VERSION
        model.doc_string = doc
        onnx.checker.check_model(model, full_check=True)
        return model


def subscript(n):
    return "".join("₀₁₂₃₄₅₆₇₈₉"[int(d)] for d in str(n))


def log_norm(cov):
    """ln of the normal density's constant, −½ ln det(2π Σ)."""
    return -0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]


def linear_gaussian_problem(rng, prior_mean, prior_sigma, dim_x):
    dim_theta = len(prior_mean)
    A = rng.normal(size=(dim_x, dim_theta))
    b = rng.normal(size=dim_x)
    noise = np.diag(rng.uniform(0.3, 1.0, size=dim_x) ** 2)
    prior_mean, prior_sigma = np.asarray(prior_mean, dtype=float), np.asarray(prior_sigma, dtype=float)
    theta_true = prior_mean + prior_sigma * rng.normal(size=dim_theta)
    x = A @ theta_true + b + rng.multivariate_normal(np.zeros(dim_x), noise)
    x = x.astype(np.float32).astype(np.float64)
    prior_cov = np.diag(prior_sigma ** 2)
    precision = np.linalg.inv(prior_cov) + A.T @ np.linalg.inv(noise) @ A
    cov = np.linalg.inv(precision)
    mean = cov @ (np.linalg.inv(prior_cov) @ prior_mean + A.T @ np.linalg.inv(noise) @ (x - b))
    return dict(A=A, b=b, noise=noise, prior_mean=prior_mean, prior_sigma=prior_sigma,
                theta_true=theta_true, x=x, posterior_mean=mean, posterior_cov=cov)


def linear_gaussian_models(p, name="linear_gaussian"):
    A, b, noise = p["A"], p["b"], p["noise"]
    dim_x, dim_theta = A.shape
    evidence_cov = A @ np.diag(p["prior_sigma"] ** 2) @ A.T + noise
    evidence_mean = A @ p["prior_mean"] + b

    g = Graph()
    z = g.op("Cast", "z", to=TensorProto.DOUBLE)
    x, theta = g.columns(z, 0, dim_x), g.columns(z, dim_x, dim_x + dim_theta)
    mean = g.op("Add", g.op("MatMul", theta, A.T), b)
    log_l = g.gaussian_log_density(x, mean, np.linalg.inv(noise), log_norm(noise))
    log_evidence = g.gaussian_log_density(x, evidence_mean, np.linalg.inv(evidence_cov), log_norm(evidence_cov))
    g.op("Sub", log_l, log_evidence, out="log_ratio")
    nre = g.model(f"{name}_nre", [("z", dim_x + dim_theta)], "log_ratio",
                  "Exact ln r(x, θ) = ln p(x|θ) − ln p(x) of the nre_toy linear-Gaussian simulator. "
                  f"Input z float32 [N, {dim_x + dim_theta}] = (x₁..x{subscript(dim_x)}, θ₁..θ{subscript(dim_theta)}); "
                  "output log_ratio float64 [N, 1].")

    g = Graph()
    x = g.op("Cast", "x", to=TensorProto.DOUBLE)
    theta = g.op("Cast", "theta", to=TensorProto.DOUBLE)
    mean = g.op("Add", g.op("MatMul", theta, A.T), b)
    g.gaussian_log_density(x, mean, np.linalg.inv(noise), log_norm(noise))
    g.nodes[-1].output[0] = "log_likelihood"
    nle = g.model(f"{name}_nle", [("x", dim_x), ("theta", dim_theta)], "log_likelihood",
                  f"Exact ln p(x|θ) of the nre_toy linear-Gaussian simulator. Inputs x float32 [N, {dim_x}], "
                  f"theta float32 [N, {dim_theta}]; output log_likelihood float64 [N, 1].")

    def reference_log_ratio(xs, thetas):
        ll = np.array([stats.multivariate_normal(A @ t + b, noise).logpdf(xi) for xi, t in zip(xs, thetas)])
        le = stats.multivariate_normal(evidence_mean, evidence_cov).logpdf(xs)
        return ll, ll - le

    return nre, nle, reference_log_ratio


def mixture_model():
    m = MIXTURE
    g = Graph()
    z = g.op("Cast", "z", to=TensorProto.DOUBLE)
    x, theta = g.columns(z, 0, 1), g.columns(z, 1, 2)
    t2 = g.op("Mul", theta, theta)

    def normal(x, mu, sigma):
        u = g.op("Div", g.op("Sub", x, mu), sigma)
        return g.op("Mul", g.op("Exp", g.op("Mul", g.op("Mul", u, u), -0.5)), 1.0 / (sigma * np.sqrt(2 * np.pi)))

    num = g.op("Add", normal(x, 0.0, m["background_sigma"]), g.op("Mul", t2, normal(x, m["alpha"], m["signal_sigma"])))
    g.op("Sub", g.op("Log", num), g.op("Log", g.op("Add", t2, 1.0)), out="log_likelihood")
    return g.model("mixture_nle", [("z", 2)], "log_likelihood",
                   "Exact ln p(x|θ) of the seed-004 mixture (N(x; 0, 1.22) + θ² N(x; 1, 0.71)) / (1 + θ²). "
                   "Input z float32 [N, 2] = (x, θ); output log_likelihood float64 [N, 1].")


def mixture_reference(x, theta):
    m = MIXTURE
    a = stats.norm(0, m["background_sigma"]).pdf(x)
    s = stats.norm(m["alpha"], m["signal_sigma"]).pdf(x)
    return np.log(a + theta ** 2 * s) - np.log1p(theta ** 2)


def mixture_posterior_grid(x):
    m = MIXTURE
    grid = np.linspace(-15, 15, 300_001)
    logp = stats.norm(0, m["prior_sigma"]).logpdf(grid) + sum(mixture_reference(xi, grid) for xi in x)
    w = np.exp(logp - logp.max())
    return grid, w / w.sum(), np.exp(logp[len(grid) // 2] - logp.max())


def mixture_data(rng):
    m = MIXTURE
    n, t2 = m["events"], m["theta_true"] ** 2
    while True:
        signal = rng.uniform(size=n) < t2 / (1 + t2)
        x = np.where(signal, rng.normal(m["alpha"], m["signal_sigma"], n), rng.normal(0, m["background_sigma"], n))
        x = x.astype(np.float32).astype(np.float64)
        grid, w, valley = mixture_posterior_grid(x)
        if VALLEY[0] <= valley <= VALLEY[1]:
            break
    moments = {"E_theta2": float(w @ grid ** 2), "E_abs_theta": float(w @ np.abs(grid)),
               "Var_theta2": float(w @ grid ** 4 - (w @ grid ** 2) ** 2),
               "Var_abs_theta": float(w @ grid ** 2 - (w @ np.abs(grid)) ** 2),
               "valley_over_peak": float(valley)}
    return x, moments


def check_linear_gaussian(out, name, p, reference, rng):
    """The written NRE and NLE models against scipy on 200 random points."""
    dim_x, dim_theta = p["A"].shape
    xs = (p["x"] + rng.normal(size=(200, dim_x))).astype(np.float32)
    thetas = (p["prior_mean"] + p["prior_sigma"] * rng.normal(size=(200, dim_theta))).astype(np.float32)
    ll, lr = reference(xs.astype(np.float64), thetas.astype(np.float64))
    got_lr = run(out / "models" / f"{name}_nre.onnx", {"z": np.hstack([xs, thetas])}, "log_ratio")
    got_ll = run(out / "models" / f"{name}_nle.onnx", {"x": xs, "theta": thetas}, "log_likelihood")
    worst = max(np.abs(got_lr - lr).max(), np.abs(got_ll - ll).max())
    print(f"{name} models vs scipy on 200 points: max |Δ ln| = {worst:.1e}")
    assert worst < 1e-9, worst


def linear_gaussian_json(p):
    return {
        "A": p["A"].tolist(), "b": p["b"].tolist(), "noise_cov": p["noise"].tolist(),
        "prior_mean": p["prior_mean"].tolist(), "prior_sigma": p["prior_sigma"].tolist(),
        "theta_true": p["theta_true"].tolist(), "x": p["x"].tolist(),
        "posterior_mean": p["posterior_mean"].tolist(), "posterior_cov": p["posterior_cov"].tolist(),
    }


def run(path, feeds, output):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run([output], feeds)[0][:, 0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "workspaces" / "nre_toy"))
    out = Path(parser.parse_args().out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)

    p = linear_gaussian_problem(rng, [0.5, -1.0, 0.0, 2.0], [1.0, 2.0, 0.5, 1.5], DIM_X)
    nre, nle, reference = linear_gaussian_models(p)
    onnx.save(nre, str(out / "models" / "linear_gaussian_nre.onnx"))
    onnx.save(nle, str(out / "models" / "linear_gaussian_nle.onnx"))
    check_linear_gaussian(out, "linear_gaussian", p, reference, rng)

    mix = mixture_model()
    onnx.save(mix, str(out / "models" / "mixture_nle.onnx"))
    mx, moments = mixture_data(rng)
    zt = np.column_stack([rng.normal(size=200) * 2, rng.normal(size=200) * 3]).astype(np.float32)
    got = run(out / "models" / "mixture_nle.onnx", {"z": zt}, "log_likelihood")
    worst = np.abs(got - mixture_reference(zt[:, 0].astype(np.float64), zt[:, 1].astype(np.float64))).max()
    print(f"mixture model vs scipy on 200 points: max |Δ ln| = {worst:.1e}")
    assert worst < 1e-9, worst

    # The 5-parameter problem of the ESS/s benchmark (validation/bench_posterior.py), from its
    # own stream so the models and data above stay as they were.
    rng5 = np.random.default_rng([SEED, 5])
    p5 = linear_gaussian_problem(rng5, PRIOR_5D["mean"], PRIOR_5D["sigma"], DIM_X_5D)
    nre5, nle5, reference5 = linear_gaussian_models(p5, "linear_gaussian_5d")
    onnx.save(nre5, str(out / "models" / "linear_gaussian_5d_nre.onnx"))
    onnx.save(nle5, str(out / "models" / "linear_gaussian_5d_nle.onnx"))
    check_linear_gaussian(out, "linear_gaussian_5d", p5, reference5, rng5)
    with h5py.File(out / "data" / "observed_5d.h5", "w") as f:
        f.create_dataset("x", data=p5["x"][None, :])

    with h5py.File(out / "data" / "observed.h5", "w") as f:
        f.create_dataset("x", data=p["x"][None, :])
        f.create_dataset("mixture_x", data=mx[:, None])
    truth = {
        "generator": "validation/make_nre_toy.py",
        "seed": SEED,
        "linear_gaussian": linear_gaussian_json(p),
        "mixture": {**MIXTURE, "x": mx.tolist(), "quadrature": moments},
        "linear_gaussian_5d": linear_gaussian_json(p5),
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    print("posterior mean", np.round(p["posterior_mean"], 4), "sd", np.round(np.sqrt(np.diag(p["posterior_cov"])), 4))
    print("mixture quadrature", moments)
    print("5-D posterior mean", np.round(p5["posterior_mean"], 4), "sd", np.round(np.sqrt(np.diag(p5["posterior_cov"])), 4))


if __name__ == "__main__":
    main()
