#!/usr/bin/env python3
"""Independent closed-form likelihood of the `offshell_2d` example, for the engine's checks
(`tests/offshell_2d.rs`; fixture `tests/fixtures/offshell_2d/closed_form.json`).

From the exact densities in `offshell2d_truth.py` (no ONNX, no engine code), on the observed
events, with w_b the (S, SBI, B) coefficients of each production:

    NLL(mu_g, mu_V, a) = k ν(mu) - Σ_i ln( k Σ_b w_b(mu) ν_b r_b(x_i) ) + a²/2,   k = 1 + 0.05 a

(the engine drops Σ_i ln p_ref(x_i), a constant; so does this). The luminosity nuisance a is
profiled in closed form (a quadratic, as in smeft_closed_form.py). Writes

    points    the NLL at 24 seeded random (mu_ggF, mu_EW, alpha_lumi), mu uniform in [0, 3]
    fit       the global minimum of the profiled NLL over the quadrant mu >= 0: a 121 x 121 grid
              search on [0, 3]², then bounded Nelder-Mead and L-BFGS-B polishing
    contours  for t = 2.30 and 5.99 (χ²₂ at 68.27 % and 95 %), 90 points of the level set
              t(mu) = threshold of the profile likelihood ratio, found by Brent's method along
              rays from the minimum (the regions are star-shaped about it and inside the quadrant)

Usage: offshell2d_closed_form.py [--workspace workspaces/offshell_2d] [--out tests/fixtures/offshell_2d/closed_form.json]
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
import offshell2d_truth as T  # noqa: E402

LUMI_SIZE = 0.05
SEED = 216


class ClosedForm:
    """The NLL of the observed events, the ratios r_b(x_i) computed once."""

    def __init__(self, events_path):
        with h5py.File(events_path, "r") as f:
            g = f["events"]
            x = np.column_stack([g[name][...] for name in T.FEATURES]).astype(np.float64)
        self.n = len(x)
        nu = T.yields()
        self.nu = np.array([nu[b] for b in T.PROCESSES])
        self.ratios = np.array([T.ratio(b, x) for b in T.PROCESSES])  # [6, N]

    def parts(self, mu_g, mu_v):
        """ν(mu) and Σ_i ln D_i(mu), D_i = Σ_b w_b ν_b r_b(x_i)."""
        w = T.weights(mu_g, mu_v) * self.nu
        d = w @ self.ratios
        assert np.all(d > 0.0), "the density is positive on the quadrant"
        return float(np.sum(w)), float(np.sum(np.log(d)))

    def nll(self, mu_g, mu_v, a):
        nu, log_sum = self.parts(mu_g, mu_v)
        k = 1.0 + LUMI_SIZE * a
        return k * nu - (self.n * np.log(k) + log_sum) + 0.5 * a * a

    def profiled(self, mu_g, mu_v):
        """(NLL, a-hat) with the luminosity nuisance profiled (root of ε a² + (1 + ε² ν) a + ε ν - ε N)."""
        nu, _ = self.parts(mu_g, mu_v)
        e = LUMI_SIZE
        qa, qb, qc = e, 1.0 + e * e * nu, e * nu - e * self.n
        a = (-qb + np.sqrt(qb * qb - 4.0 * qa * qc)) / (2.0 * qa)
        return self.nll(mu_g, mu_v, a), a


def random_points(cf, rng, count):
    out = []
    for _ in range(count):
        theta = [rng.uniform(0.0, 3.0), rng.uniform(0.0, 3.0), rng.uniform(-2.0, 2.0)]
        out.append({"theta": theta, "nll": cf.nll(*theta)})
    return out


def global_fit(cf):
    grid = np.linspace(0.0, 3.0, 121)
    values = np.array([[cf.profiled(a, b)[0] for b in grid] for a in grid])
    i, j = np.unravel_index(np.argmin(values), values.shape)
    f = lambda m: cf.profiled(max(m[0], 0.0), max(m[1], 0.0))[0]  # noqa: E731
    bounds = [(0.0, 20.0), (0.0, 20.0)]
    res = optimize.minimize(f, [grid[i], grid[j]], method="Nelder-Mead", bounds=bounds,
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    res = optimize.minimize(f, res.x, method="L-BFGS-B", bounds=bounds, options={"gtol": 1e-10, "ftol": 1e-15})
    nll, a = cf.profiled(*res.x)
    return {"mu_ggF": float(res.x[0]), "mu_EW": float(res.x[1]), "alpha_lumi": float(a), "nll": float(nll)}


def contour(cf, best, threshold, n_rays=90):
    """Points mu with t(mu) = threshold, t = 2 (NLL_profiled(mu) - NLL_min), on rays from the best fit."""
    c0 = np.array([best["mu_ggF"], best["mu_EW"]])
    t = lambda c: 2.0 * (cf.profiled(c[0], c[1])[0] - best["nll"]) - threshold  # noqa: E731
    out = []
    for phi in np.linspace(0.0, 2.0 * np.pi, n_rays, endpoint=False):
        u = np.array([np.cos(phi), np.sin(phi)])
        hi = 0.02
        while t(c0 + hi * u) < 0.0:
            hi *= 1.5
            assert np.all(c0 + hi * u >= 0.0), "the region reaches mu = 0: rays would leave the quadrant"
        r = optimize.brentq(lambda s: t(c0 + s * u), 0.0, hi, xtol=1e-12)
        out.append((c0 + r * u).tolist())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("workspaces/offshell_2d"))
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures/offshell_2d/closed_form.json"))
    args = ap.parse_args(argv)
    cf = ClosedForm(args.workspace / "data" / "observed.h5")
    rng = np.random.default_rng(SEED)
    best = global_fit(cf)
    levels = {"68.27": float(stats.chi2.ppf(0.6827, 2)), "95": float(stats.chi2.ppf(0.95, 2))}
    result = {
        "description": "validation/offshell2d_closed_form.py: closed-form NLL, fit and profile-likelihood "
                       "contours of workspaces/offshell_2d (parameters mu_ggF, mu_EW, alpha_lumi)",
        "n_events": cf.n,
        "points": random_points(cf, rng, 24),
        "fit": best,
        "contours": [{"cl": cl, "threshold": level, "points": contour(cf, best, level)}
                     for cl, level in levels.items()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    extent = {cl["cl"]: np.ptp(np.array(cl["points"]), axis=0).round(4).tolist() for cl in result["contours"]}
    print(f"best fit mu_ggF = {best['mu_ggF']:.6f}, mu_EW = {best['mu_EW']:.6f}, alpha_lumi = {best['alpha_lumi']:.6f}, "
          f"NLL = {best['nll']:.9f}; contour widths {extent}; wrote {args.out}")


if __name__ == "__main__":
    main()
