"""Baseline of the toy-fit benchmark (benches/toys.rs): the same toys fitted the way an analyst
does it today, with iminuit MIGRAD on a vectorised numpy NLL with its analytic gradient.

The model is the example offshell_toy workspace (workspace_exact.yaml): one unbinned channel,
processes S, SBI, B with coefficients mu - sqrt(mu), sqrt(mu), 1 - sqrt(mu), and

    NLL(theta) = sum_c nu_c(theta)
                 - sum_i ln( sum_c nu_c(theta) / N_c(theta) r_c(x_i) g_c(x_i | theta) )
                 + sum_k constrained (alpha_k - a_k)^2 / 2

(DESIGN.md section 2; README "Normalisation of the shape systematics"),
nu_c = nu0_c f_c(mu) prod G_ck(alpha_k), where the yield factors G_ck and the per-event shape
factor g_B(x | alpha_shape) of B interpolate their +-1 sigma variations with HistFactory's
code 4 (exponential outside |alpha| >= 1, a 6th-order polynomial matching value, first and
second derivatives at +-1 inside; its coefficients are solved once per toy for every event, as
a 6x6 linear system like ROOT and pyhf do). N_B(alpha_shape) = sum_j b_j g_B(x_j | alpha_shape)
averages B's shape factor over B's own MC (b_j its generator weights normalised to sum 1), so
that B's density stays normalised; N_S = N_SBI = 1 (no shape systematics). Inside |alpha| < 1
it is the code-4 polynomial of the b-averaged coefficients (computed once), outside the
exponential branch averaged over the MC at each evaluation. Everything per event comes from the
file the bench writes: per toy the ratios r_c, the shape ratios delta+- = r+-/r of B and the
global observables a_k; at the top the generation point, the nominal yields nu0_c, the code-4
yield factors (process, parameter, delta+, delta-), the parameter bounds, which parameters are
constrained, and B's delta+- on its own MC with its normalised MC weights. Nothing is
re-derived from closed forms.

MIGRAD's calls are mostly for the value alone (line searches, the numerical second derivatives
of its seed and final error matrix), so the value has its own path (about six vectorised numpy
operations over the ~2000 events) and the gradient is computed with the value in one pass
(one matrix product for the shape polynomial and its derivative, one for the density, one for
the three weighted sums), cached per point. Yield factors are evaluated in plain floats.

Each toy is fitted twice, both fits starting at the generation point theta_gen: conditional
(mu fixed at mu_true) and free, with Minuit(errordef=0.5, strategy 1 (the default), default
tolerance, grad=the analytic gradient), every parameter limited to its workspace bounds less
the engine's 1e-10 margin (sqrt(mu) has an infinite derivative at mu = 0). As in the engine
(nsbi::infer::toys::fit_toy), a free fit that ends above the conditional one counts as not
converged and the conditional point stands for the best fit. t = 2 (NLL_cond - NLL_free).

Only the fits are timed (the per-toy code-4 coefficients and array set-up are made before the
clock starts), on one core, as the fastest of --repeat passes over all toys.

Prints JSON: {"toys_per_s", "toys_per_s_passes", "t": [...], "mu_hat": [...],
"nll_conditional": [...], "nll_free": [...], "converged": [...], "converged_conditional",
"converged_free", "calls": {"fcn", "grad"} (mean per toy), "tol", "versions", "n_toys"}.

Usage: bench_toys_iminuit.py --data target/bench-toys.h5 [--repeat 3] [--tol 0.1]
       [--free-start gen|conditional]
"""
import argparse
import json
import math
import time

import h5py
import iminuit
import numpy as np
from iminuit import Minuit

ALPHA0 = 1.0
NAMES = ("mu", "alpha_eff", "alpha_shape")
# Starting step sizes: the uncertainties of the fit to the observed data (mu 0.071, alpha_eff
# 0.50, alpha_shape 0.93), as an analyst would set them; faster than MINUIT's defaults here.
STEPS = (0.07, 0.5, 0.9)


def code4_matrix_inverse(a0=ALPHA0):
    """Inverse of the 6x6 system whose solution are code 4's coefficients a_1..a_6: rows are
    the value, first and second derivative of sum_n a_n alpha^n at +a0 and -a0."""
    n = np.arange(1, 7, dtype=float)
    rows = [a0 ** n, (-a0) ** n, n * a0 ** (n - 1), n * (-a0) ** (n - 1),
            n * (n - 1) * a0 ** np.maximum(n - 2, 0), n * (n - 1) * (-a0) ** np.maximum(n - 2, 0)]
    return np.linalg.inv(np.array(rows))


A_INV = code4_matrix_inverse()


class Code4:
    """Code-4 interpolation of per-event factors (up, down) (arrays): values and derivatives at
    scalar alpha."""

    def __init__(self, up, down):
        up, down = np.asarray(up, float), np.asarray(down, float)
        self.ln_up, self.ln_down = np.log(up), np.log(down)
        lu, ld = self.ln_up, self.ln_down
        b = np.stack([up - 1.0, down - 1.0, lu * up, -ld * down, lu * lu * up, ld * ld * down])
        self.coeffs = A_INV @ b  # 6 x N

    def value(self, alpha):
        if alpha >= ALPHA0:
            return np.exp(alpha * self.ln_up)
        if alpha <= -ALPHA0:
            return np.exp(-alpha * self.ln_down)
        return 1.0 + (alpha ** np.arange(1, 7)) @ self.coeffs

    def eval(self, alpha):
        if alpha >= ALPHA0:
            value = np.exp(alpha * self.ln_up)
            return value, self.ln_up * value
        if alpha <= -ALPHA0:
            value = np.exp(-alpha * self.ln_down)
            return value, -self.ln_down * value
        p = alpha ** np.arange(6)  # 1, alpha, ..., alpha^5
        powers = np.array([p * alpha, np.arange(1, 7) * p])  # alpha^n and n alpha^(n-1)
        value, d1 = powers @ self.coeffs
        return 1.0 + value, d1


class Code4Normalisation:
    """N(alpha) = sum_j b_j g(x_j | alpha) over a process's own MC (b normalised to sum 1) and
    dN/dalpha, for one code-4 shape systematic. Inside |alpha| < 1 each event's g is
    1 + sum_n a_nj alpha^n, so N is the polynomial of the b-averaged coefficients (7 moments:
    sum b and the 6 averaged a_n, made once); outside, the exponential branch is averaged over
    the MC directly (one vectorised pass, 50 times a toy's events: kept for the last alpha,
    which most of MIGRAD's calls share, as its numerical derivatives in mu and alpha_eff
    and the gradient of a point whose value it has just had do)."""

    def __init__(self, up, down, weights):
        shape = Code4(up, down)
        self.b = np.asarray(weights, float)
        self.b_sum = self.b.sum()  # 1 to rounding; kept, as the engine's moments keep it
        self.mean_coeffs = shape.coeffs @ self.b  # <a_n>, n = 1..6
        self.ln_up, self.ln_down = shape.ln_up, shape.ln_down
        self.b_ln_up, self.b_ln_down = self.b * self.ln_up, self.b * self.ln_down
        self._last = (None, None)

    def value(self, alpha):
        return self.eval(alpha)[0]

    def eval(self, alpha):
        if alpha != self._last[0]:
            self._last = (alpha, self._eval(alpha))
        return self._last[1]

    def _eval(self, alpha):
        if alpha >= ALPHA0:
            g = np.exp(alpha * self.ln_up)
            return float(self.b @ g), float(self.b_ln_up @ g)
        if alpha <= -ALPHA0:
            g = np.exp(-alpha * self.ln_down)
            return float(self.b @ g), float(-(self.b_ln_down @ g))
        value, d1, power = self.b_sum, 0.0, 1.0  # power = alpha^(n-1)
        for n, a in enumerate(self.mean_coeffs, start=1):
            d1 += n * a * power
            power *= alpha
            value += a * power
        return float(value), float(d1)


class ScalarCode4:
    """The same for one yield factor, in plain floats (numpy's per-call overhead would dominate)."""

    def __init__(self, up, down):
        self.ln_up, self.ln_down = math.log(up), math.log(down)
        lu, ld = self.ln_up, self.ln_down
        b = np.array([up - 1.0, down - 1.0, lu * up, -ld * down, lu * lu * up, ld * ld * down])
        self.coeffs = [float(v) for v in A_INV @ b]

    def eval(self, alpha):
        if alpha >= ALPHA0:
            value = math.exp(alpha * self.ln_up)
            return value, self.ln_up * value
        if alpha <= -ALPHA0:
            value = math.exp(-alpha * self.ln_down)
            return value, -self.ln_down * value
        value, d1, power = 1.0, 0.0, 1.0  # power = alpha^(n-1)
        for n, a in enumerate(self.coeffs, start=1):
            d1 += n * a * power
            power *= alpha
            value += a * power
        return value, d1


class ToyNLL:
    """NLL of one toy: the value alone (most of MIGRAD's calls: line searches, numerical second
    derivatives), or value and gradient together, cached per point since MIGRAD asks for the
    gradient of a point whose value it has just had."""

    def __init__(self, common, toy):
        self.nu0 = common["nominal_yields"]
        self.a = toy["global_observables"]
        self.constrained = common["constrained"]
        self.yield_factors = common["yield_factors"]  # [(process, parameter, ScalarCode4)]
        self.r = np.stack([toy["r0"], toy["r1"], toy["r2"]])  # 3 x N
        self.shape = Code4(toy["r2_shape0_up"], toy["r2_shape0_down"])  # B's, on alpha_shape
        self.norm = common["normalisation"]  # N_B(alpha_shape), over B's MC
        self.rg = self.r.copy()  # r_c g_c, row 2 rewritten per evaluation
        self._x = None

    def yields(self, x, gradient):
        """nu_c and (with gradient) d nu_c / d theta_k (3 x n)."""
        sq = math.sqrt(x[0])
        g_yield = [1.0, 1.0, 1.0]
        dlog_g = np.zeros((3, len(x))) if gradient else None  # d ln G_c / d theta_k
        for c, k, variation in self.yield_factors:
            value, d1 = variation.eval(x[k])
            g_yield[c] *= value
            if gradient:
                dlog_g[c, k] += d1 / value
        nominal = self.nu0 * g_yield
        nu = nominal * np.array([x[0] - sq, sq, 1.0 - sq])
        if not gradient:
            return nu, None
        dnu = nu[:, None] * dlog_g
        dnu[:, 0] += nominal * np.array([1.0 - 0.5 / sq, 0.5 / sq, -0.5 / sq])
        return nu, dnu

    def constraint(self, x):
        pull = (np.asarray(x) - self.a) * self.constrained
        return 0.5 * (pull @ pull), pull

    def value(self, x):
        x = [float(v) for v in x]
        nu, _ = self.yields(x, False)
        nu_tilde = nu.copy()
        nu_tilde[2] /= self.norm.value(x[2])
        np.multiply(self.r[2], self.shape.value(x[2]), out=self.rg[2])
        log_sum = np.log(nu_tilde @ self.rg).sum()  # nan or -inf where the density is not positive
        if not math.isfinite(log_sum):
            return math.inf
        return float(nu.sum() - log_sum + self.constraint(x)[0])

    def value_and_gradient(self, x):
        x = [float(v) for v in x]
        nu, dnu = self.yields(x, True)
        g, dg = self.shape.eval(x[2])
        n_b, dn_b = self.norm.eval(x[2])
        # nu~_B = nu_B / N_B in the event sum: d nu~_B = d nu_B / N_B - nu~_B dN_B/N_B.
        nu_tilde, dnu_tilde = nu.copy(), dnu.copy()
        nu_tilde[2] /= n_b
        dnu_tilde[2] /= n_b
        dnu_tilde[2, 2] -= nu_tilde[2] * dn_b / n_b
        np.multiply(self.r[2], g, out=self.rg[2])
        density = nu_tilde @ self.rg
        log_sum = np.log(density).sum()
        if not math.isfinite(log_sum):
            return math.inf, np.zeros(len(x))
        inv = 1.0 / density
        penalty, pull = self.constraint(x)
        s = self.rg @ inv  # sum_i r_c g_c / D
        grad = dnu.sum(axis=0) - dnu_tilde.T @ s + pull
        grad[2] -= nu_tilde[2] * ((self.r[2] * dg) @ inv)
        return float(nu.sum() - log_sum + penalty), grad

    def fcn(self, x):
        if self._x is not None and np.array_equal(x, self._x):
            return self._value
        return self.value(x)

    def grad(self, x):
        if self._x is None or not np.array_equal(x, self._x):
            self._x = np.array(x, float)
            self._value, self._grad = self.value_and_gradient(x)
        return self._grad


def read(path):
    with h5py.File(path, "r") as f:
        rows = f["yield_factors"][:].reshape(-1, 4)
        lower, upper = f["lower_bounds"][:], f["upper_bounds"][:]
        margin = lambda b: 1e-10 * np.maximum(np.abs(b), 1.0)  # noqa: E731 (the engine's)
        common = {
            "theta_gen": f["theta_gen"][:],
            "mu_true": float(f["mu_true"][0]),
            "nominal_yields": f["nominal_yields"][:],
            "constrained": f["constrained"][:],
            "yield_factors": [(int(c), int(k), ScalarCode4(up, down)) for c, k, up, down in rows],
            "limits": list(zip(lower + margin(lower), upper - margin(upper))),
            "normalisation": Code4Normalisation(f["mc2_shape0_up"][:], f["mc2_shape0_down"][:],
                                                f["mc2_weights"][:]),
        }
        toys = [{name: g[name][:] for name in g} for _, g in sorted(f.items())
                if isinstance(g, h5py.Group)]
    return common, toys


def fit(nll, common, start, conditional, tol):
    m = Minuit(nll.fcn, start, grad=nll.grad, name=NAMES)
    m.errordef = Minuit.LIKELIHOOD
    m.limits = common["limits"]
    m.errors = STEPS
    if tol is not None:
        m.tol = tol
    if conditional:
        m.values["mu"] = common["mu_true"]
        m.fixed["mu"] = True
    m.migrad()
    return m


def fit_all(nlls, common, tol, free_start):
    out = {k: [] for k in ("t", "mu_hat", "nll_conditional", "nll_free", "converged",
                           "converged_conditional", "converged_free")}
    calls = {"fcn": 0, "grad": 0}
    for nll in nlls:
        cond = fit(nll, common, common["theta_gen"], True, tol)
        start = np.array(cond.values) if free_start == "conditional" else common["theta_gen"]
        free = fit(nll, common, start, False, tol)
        for m in (cond, free):
            calls["fcn"] += m.nfcn
            calls["grad"] += m.ngrad
        free_ok = free.valid and free.fval <= cond.fval
        nll_free, mu_hat = (free.fval, free.values["mu"]) if free_ok else (cond.fval, cond.values["mu"])
        out["t"].append(2.0 * (cond.fval - nll_free))
        out["mu_hat"].append(mu_hat)
        out["nll_conditional"].append(cond.fval)
        out["nll_free"].append(nll_free)
        out["converged_conditional"].append(bool(cond.valid))
        out["converged_free"].append(bool(free_ok))
        out["converged"].append(bool(cond.valid and free_ok))
    n = len(nlls)
    out["tol"] = cond.tol
    out["calls"] = {k: v / n for k, v in calls.items()}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--tol", type=float, default=None, help="MIGRAD tolerance (default: iminuit's)")
    p.add_argument("--free-start", choices=("gen", "conditional"), default="gen")
    a = p.parse_args()
    np.seterr(invalid="ignore", divide="ignore")  # non-positive densities are caught as NLL = inf
    common, toys = read(a.data)
    nlls = [ToyNLL(common, toy) for toy in toys]
    rates = []
    for _ in range(a.repeat):
        for nll in nlls:
            nll._x = None
        start = time.perf_counter()
        result = fit_all(nlls, common, a.tol, a.free_start)
        rates.append(len(nlls) / (time.perf_counter() - start))
    result.update({
        "toys_per_s": max(rates),
        "toys_per_s_passes": rates,
        "n_toys": len(nlls),
        "tol": result.pop("tol"),
        "free_start": a.free_start,
        "versions": {"iminuit": iminuit.__version__, "numpy": np.__version__},
    })
    print(json.dumps(result))


if __name__ == "__main__":
    main()
