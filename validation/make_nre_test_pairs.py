"""Writes the held-out (θ*, x) pairs of `nsbi coverage-bayes` for workspaces/nre_toy, and two
deliberately wrong versions of its exact linear-Gaussian NRE model that the coverage test must
reject.

Test files (θ* drawn from the workspace's prior, x simulated at θ*; x rounded to float32 as the
networks see it):
  data/test_pairs.h5          linear-Gaussian: theta [200, 4], x [200, 5]
  data/mixture_test_pairs.h5  seed-004 mixture: theta [100, 1], x [100, 12, 1] (12 events a pair)
each with the attribute `parameters` (the priors' names, JSON) and `generator`.

Wrong models (the exact ln r of models/linear_gaussian_nre.onnx, altered in the graph):
  models/linear_gaussian_nre_overconfident.onnx   10 · ln r: the posterior ∝ p(θ) r¹⁰ is √10 too narrow
  models/linear_gaussian_nre_biased.onnx          ln r(x, θ − δ), δ = (0.5, 0, 0, 0): shifted
with the workspaces linear_gaussian_overconfident.yaml and linear_gaussian_biased.yaml.

The simulator's constants come from truth.json (validation/make_nre_toy.py). Every file is
byte-reproducible (fixed seed, no HDF5 timestamps).

Usage: .venv/bin/python validation/make_nre_test_pairs.py [--out workspaces/nre_toy]
"""

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper
from scipy import stats

from onnx_toy_models import session

SEED = 20261218
PAIRS, MIXTURE_PAIRS = 200, 100
OVERCONFIDENCE = 10.0
BIAS = [0.5, 0.0, 0.0, 0.0]

WORKSPACE = """# {what} (validation/make_nre_test_pairs.py): `nsbi coverage-bayes` must reject it.
name: nre_toy linear-Gaussian, {name}
posterior:
  priors:
{priors}
  estimator:
    kind: nre
    convention: log_ratio
    models: models/{model}
    inputs: {{concatenated: z}}
    output: log_ratio
  observed:
    file: data/observed.h5
    dataset: x
"""


def write_pairs(path, theta, x, names):
    with h5py.File(path, "w") as f:
        f.attrs["parameters"] = json.dumps(names)
        f.attrs["generator"] = "validation/make_nre_test_pairs.py"
        f.create_dataset("theta", data=theta, track_times=False)
        f.create_dataset("x", data=x, track_times=False)


def linear_gaussian_pairs(rng, lg):
    A, b, noise = (np.array(lg[k]) for k in ("A", "b", "noise_cov"))
    mean, sigma = np.array(lg["prior_mean"]), np.array(lg["prior_sigma"])
    theta = mean + sigma * rng.normal(size=(PAIRS, len(mean)))
    eps = rng.multivariate_normal(np.zeros(len(b)), noise, size=PAIRS)
    x = (theta @ A.T + b + eps).astype(np.float32).astype(np.float64)
    return theta, x


def mixture_pairs(rng, m):
    theta = rng.normal(0.0, m["prior_sigma"], size=(MIXTURE_PAIRS, 1))
    t2 = theta ** 2
    signal = rng.uniform(size=(MIXTURE_PAIRS, m["events"])) < t2 / (1 + t2)
    x = np.where(signal,
                 rng.normal(m["alpha"], m["signal_sigma"], size=signal.shape),
                 rng.normal(0.0, m["background_sigma"], size=signal.shape))
    return theta, x.astype(np.float32).astype(np.float64)[:, :, None]


def altered(exact, scale=1.0, shift=None):
    """The exact model with its output scaled, or its θ columns shifted by `shift` before use."""
    model = onnx.ModelProto()
    model.CopyFrom(exact)
    graph = model.graph
    if shift is not None:
        width = graph.input[0].type.tensor_type.shape.dim[1].dim_value
        offset = np.zeros(width, dtype=np.float32)
        offset[width - len(shift):] = shift
        for node in graph.node:
            node.input[:] = ["z_shifted" if i == "z" else i for i in node.input]
        graph.initializer.append(helper.make_tensor("theta_shift", TensorProto.FLOAT, [width], offset))
        graph.node.insert(0, helper.make_node("Sub", ["z", "theta_shift"], ["z_shifted"], name="shift_theta"))
    if scale != 1.0:
        for node in graph.node:
            node.output[:] = ["log_ratio_exact" if o == "log_ratio" else o for o in node.output]
        graph.initializer.append(helper.make_tensor("overconfidence", TensorProto.DOUBLE, [], [scale]))
        graph.node.append(helper.make_node("Mul", ["log_ratio_exact", "overconfidence"], ["log_ratio"],
                                           name="overconfident"))
    onnx.checker.check_model(model, full_check=True)
    return model


def check_altered(models, lg, rng):
    """Each altered model against its formula from the exact one, on random (x, θ)."""
    z = np.hstack([np.array(lg["x"]) + rng.normal(size=(50, 5)),
                   np.array(lg["prior_mean"]) + rng.normal(size=(50, 4))]).astype(np.float32)
    run = lambda path, z: session(path).run(["log_ratio"], {"z": z})[0][:, 0]
    exact = run(models / "linear_gaussian_nre.onnx", z)
    over = run(models / "linear_gaussian_nre_overconfident.onnx", z)
    assert np.allclose(over, OVERCONFIDENCE * exact, rtol=1e-12, atol=0), "overconfident model"
    shifted = z.copy()
    shifted[:, 5:] -= np.array(BIAS, dtype=np.float32)
    biased = run(models / "linear_gaussian_nre_biased.onnx", z)
    assert np.allclose(biased, run(models / "linear_gaussian_nre.onnx", shifted), rtol=1e-12, atol=0), "biased"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "workspaces" / "nre_toy"))
    out = Path(parser.parse_args().out)
    truth = json.loads((out / "truth.json").read_text())
    lg, mix = truth["linear_gaussian"], truth["mixture"]
    rng = np.random.default_rng(SEED)
    names = [f"theta{i}" for i in range(len(lg["prior_mean"]))]

    theta, x = linear_gaussian_pairs(rng, lg)
    write_pairs(out / "data" / "test_pairs.h5", theta, x, names)
    # θ* is a prior sample: its moments agree with the prior's (a check of the generator).
    z = (theta - lg["prior_mean"]) / lg["prior_sigma"]
    print(f"linear-Gaussian: {PAIRS} pairs, KS p of standardised θ* vs N(0,1): "
          f"{stats.kstest(z.ravel(), 'norm').pvalue:.3f}")
    theta_m, x_m = mixture_pairs(rng, mix)
    write_pairs(out / "data" / "mixture_test_pairs.h5", theta_m, x_m, ["theta"])
    print(f"mixture: {MIXTURE_PAIRS} pairs of {mix['events']} events")

    exact = onnx.load(str(out / "models" / "linear_gaussian_nre.onnx"))
    priors = "\n".join(f"    - {{parameter: {n}, kind: normal, mean: {m}, sigma: {s}}}"
                       for n, m, s in zip(names, lg["prior_mean"], lg["prior_sigma"]))
    for name, model, what in [
        ("overconfident", altered(exact, scale=OVERCONFIDENCE),
         f"The exact linear-Gaussian ln r times {OVERCONFIDENCE}: an over-confident posterior"),
        ("biased", altered(exact, shift=BIAS),
         f"The exact linear-Gaussian ln r at θ − {BIAS}: a posterior shifted in theta0"),
    ]:
        file = f"linear_gaussian_nre_{name}.onnx"
        onnx.save(model, str(out / "models" / file))
        (out / f"linear_gaussian_{name}.yaml").write_text(
            WORKSPACE.format(what=what, name=name, priors=priors, model=file))
    check_altered(out / "models", lg, rng)
    print("wrong models checked against their formulas on 50 points")


if __name__ == "__main__":
    main()
