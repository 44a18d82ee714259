#!/usr/bin/env python3
"""How well can a cheap surrogate replace the exact shape normalisation N_c(α)? (issue 13)

nsbi normalises each process's density with N_c(α) = Σ_i b_i g_c(x_i|α) / Σ_i b_i over the
process's own MC, g_c = Π_k f_k(x|α_k) (code 4 inside |α| < 1, δ^|α| outside). An exact pass
costs O(N_MC K) per evaluation (O(N_MC K²) with the Hessian), which bounds the toy rate of
workspaces with many shape systematics. A table-based surrogate would be O(1); the natural one
is the anchored ANOVA (cut-HDMR) expansion of ln N around α = 0, exact when at most `order`
α are non-zero:

    ln N(α) ≈ Σ_{|S| ≤ order} Σ_{T ⊆ S} (−1)^{|S|−|T|} ln N(α_T)

This script measures its error at random α on a scale workspace's MC (from
`make_scale_workspace.py`: the same shape ratios, 1 ± a tanh((x_f − x0)/w) over the mean), and
sets it against what the error costs in the NLL (W · |Δ ln N|, W the process's expected events)
and against the MC-statistical precision of N itself (sd_b(g)/√N_eff).

    .venv/bin/python validation/normalisation_surrogate_study.py target/scale/e100000_y20_s10 \
        [--process B] [--events 100000] [--points 20] [--order 3] [--json out.json]
"""
import argparse
import itertools
import json
import pathlib

import h5py
import numpy as np

FEATURES = ["m4l", "cos_theta1", "cos_theta2"]


def code4_factor(alpha, up, down):
    """Code 4 per-event shape factor (the 6th-order polynomial inside |α| < 1, δ^|α| outside)."""
    if alpha >= 1.0:
        return up ** alpha
    if alpha <= -1.0:
        return down ** (-alpha)
    lu, ld = np.log(up), np.log(down)
    # Boundary data at ±1: value − 1, slope, curvature of the exponential extrapolation.
    a = np.array([[1, 1, 1, 1, 1, 1], [-1, 1, -1, 1, -1, 1], [1, 2, 3, 4, 5, 6],
                  [-1, 2, -3, 4, -5, 6], [0, 2, 6, 12, 20, 30], [0, -2, 6, -12, 20, -30]], float)
    rhs = np.array([up - 1, down - 1, up * lu, -down * ld, up * lu * lu, down * ld * ld])
    c = np.linalg.solve(a, rhs)
    return 1.0 + sum(c[j] * alpha ** (j + 1) for j in range(6))


def load(directory, process, n_max):
    gen = json.loads((directory / "generator.json").read_text())
    c = gen["processes"].index(process)
    channel = sorted((directory / "data").iterdir())[0]
    with h5py.File(channel / f"mc_{process}.h5") as f:
        x = np.stack([f["events"][name][:n_max] for name in FEATURES], axis=1)
        b = f["events"]["weight"][:n_max].astype(np.float64)
    ups, downs = [], []
    for spec in gen["shapes"]:
        t = np.tanh((x[:, spec["column"]].astype(np.float64) - spec["x0"]) / spec["width"])
        a = spec["amplitude"][c]
        up, down = 1.0 + a * t, 1.0 - a * t
        ups.append(up / (np.dot(b, up) / b.sum()))
        downs.append(down / (np.dot(b, down) / b.sum()))
    return b / b.sum(), np.array(ups), np.array(downs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workspace_dir", type=pathlib.Path)
    ap.add_argument("--process", default="B")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--order", type=int, default=2, help="highest ANOVA order to test (1..3)")
    ap.add_argument("--expected-events", type=float, default=4000.0,
                    help="W: expected events, to turn Δ ln N into an NLL error")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    b, ups, downs = load(args.workspace_dir, args.process, args.events)
    k = len(ups)
    n_eff = 1.0 / np.sum(b * b)

    def shape_factor(alpha):
        g = np.ones(len(b))
        for j in np.flatnonzero(alpha):
            g = g * code4_factor(alpha[j], ups[j], downs[j])
        return g

    def anova(alpha, order, ln_n):
        cache = {}

        def at(subset):
            if subset not in cache:
                a = np.zeros(k)
                a[list(subset)] = alpha[list(subset)]
                cache[subset] = ln_n(a) if subset else 0.0
            return cache[subset]

        total = 0.0
        for m in range(1, order + 1):
            for s in itertools.combinations(range(k), m):
                total += sum((-1) ** (m - r) * at(t)
                             for r in range(m + 1) for t in itertools.combinations(s, r))
        return total

    rng = np.random.default_rng(args.seed)
    rows = []
    for spread in (0.5, 1.0, 2.0):
        errors = {o: [] for o in range(1, args.order + 1)}
        mc_error = []
        for _ in range(args.points):
            alpha = np.clip(rng.normal(size=k) * spread, -5, 5)
            g = shape_factor(alpha)
            exact = np.log(np.dot(b, g))
            mc_error.append(np.sqrt(np.dot(b, (g - np.dot(b, g)) ** 2) / n_eff) / np.dot(b, g))
            for o in errors:
                errors[o].append(abs(anova(alpha, o, lambda a: np.log(np.dot(b, shape_factor(a)))) - exact))
        row = {"alpha_spread": spread, "mc_relative_error_median": float(np.median(mc_error))}
        for o, e in errors.items():
            row[f"order{o}_median"] = float(np.median(e))
            row[f"order{o}_max"] = float(np.max(e))
            row[f"order{o}_nll_error_median"] = float(np.median(e) * args.expected_events)
        rows.append(row)
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps({"process": args.process, "shape_systematics": k,
                                         "events": len(b), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
