"""Baseline for benches/nll.rs: the same unbinned NLL and gradient, vectorised with numpy (the
way a JAX/numpy analysis script writes it), on the same events, timed in the same run.

Model (must match benches/nll.rs): processes c = 0, 1, 2 with yields nu_c = f_c(mu) nu0_c,
f = (mu, 1, 1); two shape systematics k = 0, 1 acting on every process through per-event
code-4 interpolation of (r_ck+, r_ck-); Gaussian constraints on both nuisances.

    NLL = sum_c nu_c - sum_i w_i ln( sum_c nu_c r_ci prod_k I(a_k; r_cki+, r_cki-) ) + (a_0^2 + a_1^2)/2

Code-4 polynomial coefficients are solved once per event (as the engine does), outside the timing.
Reads the events from the HDF5 file the Rust bench writes; prints JSON with the NLL and gradient
at the benchmark point (for a correctness cross-check) and evaluations per second (one core),
plus the time of a full fit with scipy's L-BFGS-B on the same function.
"""
import argparse
import json
import time

import h5py
import numpy as np
from scipy.optimize import minimize


def stored(ratio):
    """delta and ln(delta) as the engine stores them: delta - 1 and ln(delta) rounded to float32
    (its precision policy, src/model/interpolation.rs), so both evaluate the same likelihood."""
    deviation = (ratio - 1.0).astype(np.float32).astype(np.float64)
    return 1.0 + deviation, np.log(ratio).astype(np.float32).astype(np.float64)


def code4_coefficients(up, down):
    """a_1..a_6 per event (alpha0 = 1), solving the 6x6 system for all events at once."""
    n = np.arange(1, 7)
    A = np.array([np.ones(6), (-1.0) ** n, n, n * (-1.0) ** (n - 1), n * (n - 1), n * (n - 1) * (-1.0) ** (n - 2)])
    (up, lu), (down, ld) = stored(up), stored(down)
    b = np.stack([up - 1, down - 1, lu * up, -ld * down, lu ** 2 * up, ld ** 2 * down])
    return np.linalg.solve(A, b), lu, ld


def interpolate(alpha, coeffs, lu, ld):
    """Value and d/dalpha of code 4 at scalar alpha for every event."""
    if alpha >= 1.0:
        v = np.exp(alpha * lu)
        return v, lu * v
    if alpha <= -1.0:
        v = np.exp(-alpha * ld)
        return v, -ld * v
    powers = alpha ** np.arange(0, 7)
    value = 1.0 + powers[1:] @ coeffs
    deriv = (np.arange(1, 7) * powers[:6]) @ coeffs
    return value, deriv


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    with h5py.File(a.data, "r") as f:
        w = f["weight"][:]
        nu0 = f["nu0"][:]
        r = [f[f"r{c}"][:] for c in range(3)]
        shapes = [[code4_coefficients(f[f"r{c}_{k}_up"][:], f[f"r{c}_{k}_down"][:]) for k in range(2)] for c in range(3)]
        point = f["point"][:]

    def nll_grad(theta):
        mu, a = theta[0], theta[1:]
        f = np.array([mu, 1.0, 1.0])
        df = np.array([1.0, 0.0, 0.0])
        nu = f * nu0
        s = np.zeros_like(w)
        t = []
        dt = []
        for c in range(3):
            (v0, d0), (v1, d1) = (interpolate(a[k], *shapes[c][k]) for k in range(2))
            tc = r[c] * v0 * v1
            t.append(tc)
            dt.append((r[c] * d0 * v1, r[c] * v0 * d1))
            s += nu[c] * tc
        if np.any(s <= 0):
            return np.inf, np.full(3, np.nan)
        ws = w / s
        value = nu.sum() - np.sum(w * np.log(s)) + 0.5 * np.sum(a ** 2)
        grad = np.zeros(3)
        grad[0] = np.sum(df * nu0) - sum(df[c] * nu0[c] * np.dot(ws, t[c]) for c in range(3))
        for k in range(2):
            grad[1 + k] = a[k] - sum(nu[c] * np.dot(ws, dt[c][k]) for c in range(3))
        return value, grad

    value, grad = nll_grad(point)
    nll_grad(point)  # warm-up
    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        nll_grad(point)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    fit = minimize(nll_grad, np.array([1.0, 0.0, 0.0]), jac=True, method="L-BFGS-B",
                   bounds=[(0.0, 20.0), (-5.0, 5.0), (-5.0, 5.0)], options={"ftol": 1e-12, "gtol": 1e-8})
    fit_seconds = time.perf_counter() - t0
    print(json.dumps({"nll": value, "gradient": list(grad), "evals_per_s": 1.0 / min(times),
                      "fit_seconds": fit_seconds, "fit_nfev": int(fit.nfev), "fit_x": list(fit.x),
                      "n_events": int(len(w))}))


if __name__ == "__main__":
    main()
