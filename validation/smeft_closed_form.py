#!/usr/bin/env python3
"""Independent closed-form likelihood of the `smeft_toy` example, for the engine's checks
(`tests/smeft.rs`; fixture `tests/fixtures/smeft/closed_form.json`).

From the exact densities in `smeft_truth.py` (no ONNX, no engine code), on the observed events:

    NLL(c1, c2, a) = k ν(c) - Σ_i ln( k Σ_b w_b(c) ν_b r_b(x_i) ) + a²/2,   k = 1 + 0.05 a

(the engine drops Σ_i ln p_ref(x_i), a constant; so does this). The luminosity nuisance a is
profiled in closed form: ∂NLL/∂a = 0.05 ν - 0.05 N / k + a = 0 is a quadratic in a. Writes

    points    the NLL at 24 seeded random (c1, c2, a) of the plane, for the quadratic workspace
              (workspace_exact.yaml) and its linear truncation (workspace_linear.yaml, where
              the density is positive: points drawn until it is)
    fit       the global minimum of the profiled NLL over (c1, c2): a 121 x 121 grid search,
              then Nelder-Mead and BFGS polishing
    linear_excluded  the points of a 13 x 13 grid on [-3, 3]² where the linear truncation's
              density is ≤ 0 at some observed event
    contours  for t = 2.30 and 5.99 (χ²₂ at 68.27 % and 95 %), 90 points of the level set
              t(c) = threshold of the profile likelihood ratio, found by Brent's method along
              rays from the minimum (the regions are star-shaped about it)

Usage: smeft_closed_form.py [--workspace workspaces/smeft_toy] [--out tests/fixtures/smeft/closed_form.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np
from scipy import optimize, stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smeft_truth as T  # noqa: E402

LUMI_SIZE = 0.05
SEED = 16
LINEAR_GRID = np.linspace(-3.0, 3.0, 13).tolist()


class ClosedForm:
    """The NLL of the observed events, the ratios r_b(x_i) computed once."""

    def __init__(self, events_path, linear=False):
        with h5py.File(events_path, "r") as f:
            g = f["events"]
            x = np.column_stack([g[name][...] for name in T.FEATURES]).astype(np.float64)
        self.n = len(x)
        self.linear = linear
        nu = T.yields()
        self.nu = np.array([nu[b] for b in T.PROCESSES])
        self.ratios = np.array([T.ratio(b, x) for b in T.PROCESSES])  # [6, N]

    def parts(self, c1, c2):
        """ν(c) and Σ_i ln D_i(c), D_i = Σ_b w_b ν_b r_b(x_i); None where some D_i ≤ 0."""
        w = T.weights(c1, c2, self.linear) * self.nu
        d = w @ self.ratios
        if np.any(d <= 0.0):
            return None
        return float(np.sum(w)), float(np.sum(np.log(d)))

    def nll(self, c1, c2, a):
        parts = self.parts(c1, c2)
        if parts is None:
            return np.inf
        nu, log_sum = parts
        k = 1.0 + LUMI_SIZE * a
        return k * nu - (self.n * np.log(k) + log_sum) + 0.5 * a * a

    def profiled(self, c1, c2):
        """(NLL, a-hat) with the luminosity nuisance profiled (root of ε a² + (1 + ε² ν) a + ε ν - ε N)."""
        parts = self.parts(c1, c2)
        if parts is None:
            return np.inf, np.nan
        nu, _ = parts
        e = LUMI_SIZE
        qa, qb, qc = e, 1.0 + e * e * nu, e * nu - e * self.n
        a = (-qb + np.sqrt(qb * qb - 4.0 * qa * qc)) / (2.0 * qa)
        return self.nll(c1, c2, a), a


def random_points(cf, rng, count):
    out = []
    while len(out) < count:
        c1, c2, a = rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(-2.0, 2.0)
        value = cf.nll(c1, c2, a)
        if np.isfinite(value):
            out.append({"theta": [c1, c2, a], "nll": value})
    return out


def global_fit(cf):
    grid = np.linspace(-2.0, 2.0, 121)
    values = np.array([[cf.profiled(a, b)[0] for b in grid] for a in grid])
    i, j = np.unravel_index(np.argmin(values), values.shape)
    f = lambda c: cf.profiled(c[0], c[1])[0]  # noqa: E731
    res = optimize.minimize(f, [grid[i], grid[j]], method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    res = optimize.minimize(f, res.x, method="BFGS", options={"gtol": 1e-9})
    nll, a = cf.profiled(*res.x)
    return {"c1": float(res.x[0]), "c2": float(res.x[1]), "alpha_lumi": float(a), "nll": float(nll)}


def contour(cf, best, threshold, n_rays=90):
    """Points c with t(c) = threshold, t = 2 (NLL_profiled(c) - NLL_min), on rays from the best fit."""
    c0 = np.array([best["c1"], best["c2"]])
    t = lambda c: 2.0 * (cf.profiled(c[0], c[1])[0] - best["nll"]) - threshold  # noqa: E731
    out = []
    for phi in np.linspace(0.0, 2.0 * np.pi, n_rays, endpoint=False):
        u = np.array([np.cos(phi), np.sin(phi)])
        hi = 0.05
        while t(c0 + hi * u) < 0.0:
            hi *= 1.5
        r = optimize.brentq(lambda s: t(c0 + s * u), 0.0, hi, xtol=1e-12)
        out.append((c0 + r * u).tolist())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("workspaces/smeft_toy"))
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures/smeft/closed_form.json"))
    args = ap.parse_args(argv)
    events = args.workspace / "data" / "observed.h5"
    quadratic, linear = ClosedForm(events), ClosedForm(events, linear=True)
    rng = np.random.default_rng(SEED)
    best = global_fit(quadratic)
    levels = {"68.27": float(stats.chi2.ppf(0.6827, 2)), "95": float(stats.chi2.ppf(0.95, 2))}
    result = {
        "description": "validation/smeft_closed_form.py: closed-form NLL, fit and profile-likelihood contours "
                       "of workspaces/smeft_toy (parameters c1, c2, alpha_lumi)",
        "n_events": quadratic.n,
        "points": random_points(quadratic, rng, 24),
        "linear_points": random_points(linear, rng, 24),
        "fit": best,
        "contours": [{"cl": cl, "threshold": level, "points": contour(quadratic, best, level)}
                     for cl, level in levels.items()],
        # The points of the 13 x 13 grid on [-3, 3]^2 where the linear truncation's density is
        # <= 0 at some observed event: no likelihood there.
        "linear_excluded": [[c1, c2] for c1 in LINEAR_GRID for c2 in LINEAR_GRID
                            if linear.parts(c1, c2) is None],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"best fit c1 = {best['c1']:.6f}, c2 = {best['c2']:.6f}, alpha_lumi = {best['alpha_lumi']:.6f}, "
          f"NLL = {best['nll']:.9f}; wrote {args.out}")


if __name__ == "__main__":
    main()
