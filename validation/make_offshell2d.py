#!/usr/bin/env python3
"""Generate the `offshell_2d` example workspace: off-shell ZZ with two signal strengths
(mu_ggF, mu_EW), from the closed-form model in `offshell2d_truth.py`.

    data/mc_{S_g,SBI_g,B_g,S_V,SBI_V,B_V}.h5   10 000 events each, weights nu_b/N
    data/mc_ref.h5                             10 000 events of the reference (1/6) Σ_b p_b, weight 1
    data/observed.h5                           N ~ Poisson(nu(mu_true)) events from p(x|mu_true), weight 1
    models/<b>/exact.onnx                      closed-form ratio p_b/p_ref, float64 (ratio, log_ratio, logit, score)
    truth.json                                 yields, integrals, provenance
    workspace.yaml                             written by hand (not by this script)

Only exact-ratio models: this example checks the engine's several-POI inference against the
closed form (tests/offshell_2d.rs); the learned-ratio machinery is exercised by the 1-POI
`offshell_toy`. The output is a pure function of the seed (byte-identical files).

Usage: make_offshell2d.py [--seed 20261216] [--out workspaces/offshell_2d]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

sys.path.insert(0, str(Path(__file__).resolve().parent))
import offshell2d_truth as T  # noqa: E402
import offshell_truth as G  # noqa: E402
from make_offshell_toy import ggf_densities  # noqa: E402
import onnx_toy_models  # noqa: E402
from onnx_toy_models import GraphBuilder, exact_ratio_outputs, session  # noqa: E402

DEFAULT_SEED = 20261216
MU_TRUE = (1.0, 1.0)  # (mu_ggF, mu_EW) of the observed data
N_MC = 10_000
STREAMS = ("observed", "mc_ref") + tuple(f"mc_{b}" for b in T.PROCESSES)


def stream(seed, name):
    """numpy Generator for the named purpose (independent streams by spawn key)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAMS.index(name),)))


def write_events(path, x, weight, attrs):
    """The example's event file (`onnx_toy_models.write_events` with its features)."""
    return onnx_toy_models.write_events(path, x, weight, attrs, T.FEATURES)


def ew_densities(g, m, c1, c2):
    """Graph nodes of the unnormalised EW densities {S_V, SBI_V, B_V}, in the operation order of
    `offshell2d_truth.densities`."""
    vB = g.op("Mul", g.op("Mul", T.EW_SCALE, g.op("Pow", g.op("Div", m, G.M_REF), T.VB_POWER)),
              g.op("Add", 1.0, g.op("Mul", T.UVB_X, g.op("Mul", c1, c2))))
    q = g.op("Add", g.op("Mul", c1, c1), g.op("Mul", c2, c2))
    uVS = g.op("Add", g.op("Add", 1.0, g.op("Mul", T.UVS_Q, q)), g.op("Mul", T.UVS_X, g.op("Mul", c1, c2)))
    aVS = g.op("Mul", T.EW_SCALE, g.op("Mul", -T.G_EW, g.op("Pow", g.op("Div", G.M_REF, m), T.VS_POWER)))
    vS = g.op("Mul", aVS, uVS)
    SV, BV = g.op("Mul", vS, vS), g.op("Mul", vB, vB)
    IV = g.op("Mul", 2.0 * np.cos(T.PHASE_EW), g.op("Mul", vS, vB))
    return {"S_V": SV, "SBI_V": g.op("Add", g.op("Add", SV, BV), IV), "B_V": BV}


def exact_ratio_model(name):
    """ONNX graph of r_b = p_b/p_ref in float64 from raw float32 x [N, 3]."""
    g = GraphBuilder()
    X = g.op("Cast", "x", to=TensorProto.DOUBLE)
    m, c1, c2 = (g.column(X, j) for j in range(3))
    ggf = ggf_densities(g, m, c1, c2)
    f = {f"{b}_g": v for b, v in ggf.items()}
    f.update(ew_densities(g, m, c1, c2))
    ref = g.op("Mul", f[T.PROCESSES[0]], T.REF_WEIGHT[T.PROCESSES[0]])
    for b in T.PROCESSES[1:]:
        ref = g.op("Add", ref, g.op("Mul", f[b], T.REF_WEIGHT[b]))
    r = g.op("Div", g.op("Mul", f[name], T.INV_INTEGRAL[name]), ref, out="ratio")
    return exact_ratio_outputs(
        g, r, f"offshell_2d_exact_{name}", 3, "nsbi/validation/make_offshell2d.py",
        f"offshell_2d exact density ratio p_{name}(x)/p_ref(x), p_ref = (1/6) Σ_b p_b over "
        f"{', '.join(T.PROCESSES)}. Input 'x' float32 [N,3] raw (m4l [GeV], cos_theta1, cos_theta2). "
        "Outputs float64 [N,1]: ratio, log_ratio, logit (= log_ratio), score = r/(1+r).")


def check_exact_models(out, files):
    """Max relative difference between exact.onnx and offshell2d_truth.ratio on every shipped event
    (the denominator floored at 1e-3, as in make_offshell_toy.check_exact_models)."""
    worst = {}
    for name in T.PROCESSES:
        sess = session(out / "models" / name / "exact.onnx")
        w = 0.0
        for x32 in files.values():
            r = sess.run(["ratio"], {"x": x32})[0][:, 0]
            truth = T.ratio(name, x32)
            w = max(w, float(np.max(np.abs(r - truth) / np.maximum(truth, 1e-3))))
        worst[name] = w
    return worst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=Path("workspaces/offshell_2d"))
    args = ap.parse_args(argv)
    seed, out = args.seed, args.out
    nu = T.yields()
    shipped = {}
    for b in T.PROCESSES + ("ref",):
        x = T.sample(b, N_MC, stream(seed, f"mc_{b}"))
        weight = 1.0 if b == "ref" else nu[b] / N_MC
        shipped[f"mc_{b}"] = write_events(out / "data" / f"mc_{b}.h5", x, weight,
                                          {"process": b, "seed": np.int64(seed)})
    rng = stream(seed, "observed")
    nu_obs = T.nu_total(*MU_TRUE)
    n_obs = int(rng.poisson(nu_obs))
    shipped["observed"] = write_events(out / "data" / "observed.h5", T.sample_at(*MU_TRUE, n_obs, rng), 1.0,
                                       {"process": "observed", "seed": np.int64(seed), "mu_true": np.array(MU_TRUE)})
    for b in T.PROCESSES:
        (out / "models" / b).mkdir(parents=True, exist_ok=True)
        onnx.save(exact_ratio_model(b), str(out / "models" / b / "exact.onnx"))
    exact_worst = check_exact_models(out, shipped)
    assert max(exact_worst.values()) < 1e-12, exact_worst
    truth = {
        "description": T.__doc__.strip(),
        "seed": seed,
        "observed": {"mu_ggF": MU_TRUE[0], "mu_EW": MU_TRUE[1], "n_events": n_obs, "nu_expected": nu_obs},
        "luminosity": T.LUMINOSITY,
        "ew_amplitude_scale": T.EW_SCALE,
        "basis": {b: {"integral": T.integral(b), "yield": nu[b]} for b in T.PROCESSES},
        "interference_yields": {"I_g": nu["I_g"], "I_V": nu["I_V"]},
        "coefficients": {"S_g": "mu_ggF - sqrt(mu_ggF)", "SBI_g": "sqrt(mu_ggF)", "B_g": "1 - sqrt(mu_ggF)",
                         "S_V": "mu_EW - sqrt(mu_EW)", "SBI_V": "sqrt(mu_EW)", "B_V": "1 - sqrt(mu_EW)"},
        "files": {f"data/{k}.h5": {"n_events": int(len(v))} for k, v in shipped.items()},
        "exact_model_max_rel_diff": exact_worst,
    }
    with open(out / "truth.json", "w") as f:
        json.dump(truth, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"offshell_2d, seed {seed} -> {out}: observed {n_obs} events (nu = {nu_obs:.1f})")
    print("  yields: " + ", ".join(f"{b} {nu[b]:.1f}" for b in T.PROCESSES))
    print(f"  exact.onnx max rel diff {max(exact_worst.values()):.1e}")


if __name__ == "__main__":
    main()
