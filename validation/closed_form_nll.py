"""Independent closed-form likelihood of the offshell_toy example, for the engine's closure test.

Computes, from the exact densities in offshell_truth.py (no ONNX, no engine code),

    NLL(mu, a_eff, a_shape) = sum_c nu_c - sum_i ln( sum_c nu_c r_c(x_i) g_c(x_i) / N_c ) + (a_eff^2 + a_shape^2)/2

on the observed events, with coefficients (mu - sqrt mu, sqrt mu, 1 - sqrt mu), yield factors
and per-event shape factors interpolated with HistFactory's code 4 (polynomial coefficients
obtained here by solving the 6x6 linear system numerically, as ROOT and pyhf do), and B's
shape normalisation N_B(a_shape) = sum_j b_j g_B(x_j) / sum_j b_j over B's MC sample (weights
b_j) by brute force (N = 1 for S and SBI, which have no shape systematic). Then
minimises it with iminuit (MIGRAD + HESSE, errordef 0.5) and prints JSON:

    {"points": [{"theta": [mu, a_eff, a_shape], "nll": f}, ...],
     "fit": {"values": [...], "errors": [...], "fd_errors": [...], "nll": f, "valid": bool}}

Usage: closed_form_nll.py --events observed.h5 --mc-b mc_B.h5 --points "1,0,0;0.5,0.3,-0.2" [--group events]

With --control-regions workspace_cr.yaml (the example with binned control regions), it adds the
free background normalisation mu_B (coefficients mu - sqrt(mu mu_B), sqrt(mu mu_B),
mu_B - sqrt(mu mu_B)) and that workspace's binned channels, written here from pyhf's
definitions: Poisson terms with ln Gamma(n + 1), `normfactor`, `normsys` (code 4 solved as
above), `staterror` (Gaussian around 1 of width uncertainty/yield, with ln sigma + ln 2pi / 2).
alpha_eff, which drives a normsys there, keeps its Gaussian's constant (pyhf's); alpha_shape's
constraint stays (a^2)/2. Points are then (mu, a_eff, a_shape, mu_B, gammas...) in the
workspace's order; no fit is made.
"""
import argparse
import json
import pathlib
import sys

import h5py
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import offshell_truth as T  # noqa: E402


class Code4:
    """Multiplicative code-4 interpolation of factors (up, down) (arrays), its alpha-independent
    per-event inputs prepared once: evaluating it at many alphas (a fit) costs one product."""

    def __init__(self, up, down, alpha0=1.0):
        self.up, self.down = np.broadcast_arrays(np.asarray(up, float), np.asarray(down, float))
        self.alpha0 = a0 = alpha0
        # Rows: value, first and second derivative of sum_n a_n alpha^n at +a0 and -a0.
        self.A = np.array([
            [a0 ** n for n in range(1, 7)],
            [(-a0) ** n for n in range(1, 7)],
            [n * a0 ** (n - 1) for n in range(1, 7)],
            [n * (-a0) ** (n - 1) for n in range(1, 7)],
            [n * (n - 1) * a0 ** (n - 2) if n > 1 else 0.0 for n in range(1, 7)],
            [n * (n - 1) * (-a0) ** (n - 2) if n > 1 else 0.0 for n in range(1, 7)],
        ])
        up, down = self.up, self.down
        lu, ld = np.log(up), np.log(down)
        self.b = np.stack([up ** a0 - 1, down ** a0 - 1, lu * up ** a0, -ld * down ** a0,
                           lu ** 2 * up ** a0, ld ** 2 * down ** a0]).reshape(6, -1)

    def __call__(self, alpha):
        if alpha >= self.alpha0:
            return self.up ** alpha
        if alpha <= -self.alpha0:
            return self.down ** (-alpha)
        # sum_n a_n alpha^n = p . A^-1 b = (A^-T p) . b, p = (alpha^n): one 6x6 solve serves
        # every event (solving for each event's coefficients gives the same to rounding).
        powers = np.array([alpha ** n for n in range(1, 7)])
        weights = np.linalg.solve(self.A.T, powers)
        return (1.0 + weights @ self.b).reshape(self.up.shape)


def code4(alpha, up, down, alpha0=1.0):
    """Multiplicative code-4 interpolation of factors (up, down) (arrays) at scalar alpha."""
    return Code4(up, down, alpha0)(alpha)


def read_features(path, group):
    """The features as the engine reads them (float32), widened to float64."""
    with h5py.File(path, "r") as f:
        return np.stack([f[group][c][:] for c in T.FEATURES], axis=1).astype(np.float32).astype(np.float64)


def process_yields(mu, a_eff, a_shape):
    """nu_c(theta) of S, SBI and B: coefficient x nominal yield x code-4 yield factors."""
    y = T.yields()
    eff = code4(a_eff, T.ALPHA_EFF_UP, T.ALPHA_EFF_DOWN)
    coef = {"S": mu - np.sqrt(mu), "SBI": np.sqrt(mu), "B": 1.0 - np.sqrt(mu)}
    nu = {c: coef[c] * y["nu_" + c] * eff for c in coef}
    nu["B"] = nu["B"] * code4(a_shape, y["B_shape_up_factor"], y["B_shape_down_factor"])
    return nu


def make_density(x, x_b, b):
    """density(mu, a_eff, a_shape) -> (nu_c dict, per-event sum_c nu_c r_c(x_i) g_c(x_i) / N_c)
    on events x, with B's shape normalisation N_B summed over (x_b, weights b)."""
    r = {c: T.ratio(c, x) for c in ("S", "SBI", "B")}
    shape = Code4(T.ratio("B_shape_up", x), T.ratio("B_shape_down", x))
    mc_shape = Code4(T.ratio("B_shape_up", x_b), T.ratio("B_shape_down", x_b))

    def density(mu, a_eff, a_shape):
        nu = process_yields(mu, a_eff, a_shape)
        g_b = shape(a_shape)
        n_b = np.sum(b * mc_shape(a_shape)) / np.sum(b)
        return nu, nu["S"] * r["S"] + nu["SBI"] * r["SBI"] + nu["B"] / n_b * r["B"] * g_b

    return density


def make_nll(x, x_b, b, weights=None, glob=(0.0, 0.0)):
    """NLL(mu, a_eff, a_shape) on events x, each with weight 1 (data) or `weights` (an Asimov
    set), Gaussian constraints 1/2 (alpha - a)^2 around the global observables `glob`."""
    density = make_density(x, x_b, b)
    w = None if weights is None else np.asarray(weights, float)

    def nll(mu, a_eff, a_shape):
        if mu < 0:
            return np.inf
        nu, dens = density(mu, a_eff, a_shape)
        if np.any(dens <= 0):
            return np.inf
        log_sum = np.sum(np.log(dens)) if w is None else np.sum(w * np.log(dens))
        constraint = 0.5 * ((a_eff - glob[0]) ** 2 + (a_shape - glob[1]) ** 2)
        return float(sum(nu.values()) - log_sum + constraint)

    return nll


def make_joint_nll(x, x_b, b, path):
    """The SR with mu_B and the binned control regions of `path` (see the module docstring)."""
    import yaml
    from scipy.special import gammaln

    with open(path) as f:
        ws = yaml.safe_load(f)
    channels = [c for c in ws["channels"] if c.get("type") == "binned"]
    gamma_sets = []  # (name, n, relative sigmas)
    for c in channels:
        for s in c["samples"]:
            for m in s["modifiers"]:
                if m["type"] == "staterror":
                    rel = np.asarray(m["uncertainties"], float) / np.asarray(s["yields"], float)
                    gamma_sets.append((m["name"], len(rel), rel))
                elif m["type"] not in ("normfactor", "normsys"):
                    raise SystemExit(f"modifier {m['type']} not written here")
    y = T.yields()
    r = {c: T.ratio(c, x) for c in ("S", "SBI", "B")}
    shape_up, shape_down = y["B_shape_up_factor"], y["B_shape_down_factor"]
    r_up, r_down = T.ratio("B_shape_up", x), T.ratio("B_shape_down", x)
    mc_up, mc_down = T.ratio("B_shape_up", x_b), T.ratio("B_shape_down", x_b)
    half_ln_2pi = 0.5 * np.log(2 * np.pi)

    def nll(mu, a_eff, a_shape, mu_b, *gammas):
        eff = code4(a_eff, T.ALPHA_EFF_UP, T.ALPHA_EFF_DOWN)
        root = np.sqrt(mu * mu_b)
        coef = {"S": mu - root, "SBI": root, "B": mu_b - root}
        nu = {c: coef[c] * y["nu_" + c] * eff for c in coef}
        nu["B"] = nu["B"] * code4(a_shape, shape_up, shape_down)
        g_b = code4(a_shape, r_up, r_down)
        n_b = np.sum(b * code4(a_shape, mc_up, mc_down)) / np.sum(b)
        dens = nu["S"] * r["S"] + nu["SBI"] * r["SBI"] + nu["B"] / n_b * r["B"] * g_b
        total = float(sum(nu.values()) - np.sum(np.log(dens)))
        total += 0.5 * a_eff ** 2 + half_ln_2pi + 0.5 * a_shape ** 2
        gamma_of, k = {}, 0
        for name, n, rel in gamma_sets:
            g = np.asarray(gammas[k:k + n])
            gamma_of[name] = g
            k += n
            total += float(np.sum(0.5 * ((g - 1.0) / rel) ** 2 + np.log(rel) + half_ln_2pi))
        for c in channels:
            lam = 0.0
            for s in c["samples"]:
                yields = np.asarray(s["yields"], float)
                for m in s["modifiers"]:
                    if m["type"] == "normfactor":
                        yields = yields * {"mu_B": mu_b, "mu": mu}[m["name"]]
                    elif m["type"] == "normsys":
                        yields = yields * code4(a_eff, m["hi"], m["lo"])
                    elif m["type"] == "staterror":
                        yields = yields * gamma_of[m["name"]]
                lam = lam + yields
            n_obs = np.asarray(c["data"], float)
            total += float(np.sum(lam - n_obs * np.log(lam) + gammaln(n_obs + 1)))
        return total

    return nll


def finite_difference_errors(nll, p, h=3e-4):
    """sqrt(diag(H^-1)) with H from central second differences of the closed-form NLL.
    HESSE's adaptive numerical steps agree with this only to ~1e-3 here; this fixed small step
    is accurate to ~1e-6 (checked against h = 1e-3)."""
    n = len(p)
    e = np.eye(n) * h
    H = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            H[i, j] = (nll(*(p + e[i] + e[j])) - nll(*(p + e[i] - e[j]))
                       - nll(*(p - e[i] + e[j])) + nll(*(p - e[i] - e[j]))) / (4 * h * h)
    return [float(v) for v in np.sqrt(np.diag(np.linalg.inv(H)))]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", required=True)
    p.add_argument("--mc-b", required=True, help="B's MC sample (features and `weight`)")
    p.add_argument("--group", default="events")
    p.add_argument("--points", default="")
    p.add_argument("--control-regions", help="workspace with binned control regions (see above)")
    a = p.parse_args()
    x = read_features(a.events, a.group)
    x_b = read_features(a.mc_b, a.group)
    with h5py.File(a.mc_b, "r") as f:
        b = f[a.group]["weight"][:].astype(np.float64)
    points = [[float(v) for v in s.split(",")] for s in a.points.split(";") if s.strip()]
    if a.control_regions:
        nll = make_joint_nll(x, x_b, b, a.control_regions)
        print(json.dumps({"points": [{"theta": t, "nll": nll(*t)} for t in points]}))
        return
    nll = make_nll(x, x_b, b)
    out = {"points": [{"theta": t, "nll": nll(*t)} for t in points]}

    from iminuit import Minuit

    m = Minuit(nll, mu=1.0, a_eff=0.0, a_shape=0.0)
    m.errordef = Minuit.LIKELIHOOD
    m.limits["mu"] = (0.0, 20.0)
    m.strategy = 2
    m.tol = 1e-6
    m.migrad()
    m.hesse()
    out["fit"] = {"values": list(m.values), "errors": list(m.errors), "nll": m.fval, "valid": m.valid,
                  "fd_errors": finite_difference_errors(nll, np.array(m.values))}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
