"""Reference hypothesis tests from pyhf 0.7.6 (numpy backend), for the Rust tests of issue 15.

    pyhf_hypotest_reference.py asymptotic [--out tests/fixtures/hypotest/pyhf_asymptotic.json]
        For each model of MODELS, at a few POI values: `pyhf.infer.hypotest` with the asymptotic
        calculator (calc_base_dist="normal") for test_stat "qtilde" and "q": CLs, CLs+b, CLb
        observed, the expected CLs set (pyhf's order: -2σ … +2σ, smallest CLs first), and the
        calculator's internals sqrt(q_obs), sqrt(q_A); "q0": p0 observed, the expected p0 set
        (Asimov at μ = 1, as pyhf does) and Z = Φ⁻¹(1 − p0); upper limits (observed and the five
        expected) from `pyhf.infer.intervals.upper_limits.toms748_scan` at CLs level 0.05 (and
        0.10 for one model) with tight tolerances.
    pyhf_hypotest_reference.py toys [--out tests/fixtures/hypotest/pyhf_toys.json]
                                    [--ntoys 2000] [--seeds 1 2]
        pyhf's ToyCalculator (qtilde) on the small model simple_uncorrelated at two POI values,
        one run per seed (`np.random.seed(seed)` before each hypotest): CLs, CLs+b, CLb observed,
        the expected CLs set, and the binomial toy-statistics errors.
    pyhf_hypotest_reference.py workspaces
        writes tests/fixtures/hypotest/multichannel_mu0.json: tests/fixtures/binned/
        multichannel.json with the POI's bounds [0, 10] (q̃ needs a POI bounded below at 0); the
        other models are the binned fixtures as `validation/pyhf_reference.py` made them.

Precision. The Rust side is compared at 1e-6 relative on CLs, tighter than pyhf's stock fits
reach (SLSQP at tolerance 1e-14 and Minuit at tolerance 1e-9, strategy 2, differ by up to
~1e-6 on these models). Every fit here is therefore a pyhf optimizer followed by a Newton
polish (`PolishedScipy`, `PolishedMinuit`: pyhf optimizer classes, so pyhf's own hypotest,
test statistics, Asimov generation and toms748 scan run unchanged on top). The polish takes
finite-difference derivatives of pyhf's own objective (4-point gradient, central Hessian,
evaluated through pyhf's batched model: the same numbers, ~10× faster), keeps parameters at a
bound fixed when the gradient pushes outward, and iterates Newton steps until the step is below
3e-10 (relative, just above the finite-difference noise). The asymptotic fixture is computed
twice, once from each starting optimizer; the largest relative differences between the two
are recorded as `reference_precision` (the run fails when the p-values of the hypotests, the
limits or the expected q0 numbers differ by more than 1e-8; near q = 0, sqrt(q), z and the
observed p0 = 1/2 carry the fits' ~1e-12 noise on q, amplified by the square root). The toys use pyhf's default
optimizer (scipy SLSQP, default tolerance): a toy's q moves by far less than the toy-statistics
errors.
"""
import argparse
import concurrent.futures
import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pyhf
import scipy
from scipy.stats import norm

logging.getLogger("pyhf").setLevel(logging.ERROR)  # qmu's "POI bounded at zero" advice


def _percentile(self, tensor_in, q, axis=None, interpolation="linear"):
    """pyhf 0.7.6's numpy_backend.percentile passes `interpolation=`, which numpy 2 removed
    (renamed `method=`, same meaning): the toy calculator's expected set needs it."""
    return np.percentile(tensor_in, q, axis=axis, method=interpolation)


pyhf.tensor.numpy_backend.percentile = _percentile  # (the class pyhf.set_backend("numpy") instantiates)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests/fixtures/hypotest"

# name: (workspace path relative to the repository, POI test values, test statistics).
# Together they exercise every modifier type: normfactor + shapesys (simple_uncorrelated),
# histosys (simple_correlated), and normfactor, normsys, histosys, shapesys, staterror (one
# spanning two channels), shapefactor, lumi over four channels (multichannel*). The POI values
# take the observed CLs (q̃) from about 0.5 down to about 0.001.
MODELS = {
    "simple_uncorrelated": ("tests/fixtures/binned/simple_uncorrelated.json", [0.5, 1.5, 3.0, 4.5], ["qtilde", "q"]),
    "simple_correlated": ("tests/fixtures/binned/simple_correlated.json", [0.3, 0.7, 1.2, 1.8], ["qtilde", "q"]),
    "multichannel_mu0": ("tests/fixtures/hypotest/multichannel_mu0.json", [0.3, 1.0, 2.0, 3.0], ["qtilde", "q"]),
    # The POI bounded at -2: q only (pyhf warns that q̃ wants a lower bound 0).
    "multichannel": ("tests/fixtures/binned/multichannel.json", [0.3, 1.0, 2.0, 3.0], ["q"]),
    # The models above have excesses (μ̂ > 0, q_obs < q_A: q and q̃ coincide). A deficit (μ̂ < 0)
    # takes q̃'s other branch, (q − q_A) / (2 sqrt(q_A)), and q0 = 0; with the POI allowed
    # below 0, q differs from q̃.
    "simple_deficit": ("tests/fixtures/hypotest/simple_deficit.json", [0.2, 0.5, 1.0, 1.5], ["qtilde", "q"]),
    "simple_deficit_negative": ("tests/fixtures/hypotest/simple_deficit_negative.json", [0.2, 0.5, 1.0, 1.5], ["q"]),
}
LIMIT_LEVELS = {"simple_uncorrelated": [0.05, 0.10]}  # others: [0.05]
TOMS748 = {"atol": 1e-12, "rtol": 1e-10}
NSIGMA = [-2, -1, 0, 1, 2]  # the order of pyhf's expected sets (and of nsbi's JSON)


# ---------------------------------------------------------------------------------------------
# Newton polish of pyhf's fits


def _step_sizes(x, bounds, free, base):
    """Finite-difference steps base·max(1, |x|), shrunk so that x ± 2h stays inside the bounds."""
    h = np.zeros(len(x))
    for i in free:
        lo, hi = bounds[i]
        room = min(x[i] - lo, hi - x[i]) / 2.5
        h[i] = min(base * max(1.0, abs(x[i])), room)
    return h


def _finite(value):
    return value if np.isfinite(value) else np.inf


def _unit(n, i, size):
    e = np.zeros(n)
    e[i] = size
    return e


def _gradient(fb, x, free, h):
    """4-point central differences: error O(h⁴) + roundoff ε|f|/h."""
    n = len(x)
    points = [x + k * _unit(n, i, h[i]) for i in free for k in (2, 1, -1, -2)]
    values = fb(np.array(points)).reshape(len(free), 4)
    return (-values[:, 0] + 8 * values[:, 1] - 8 * values[:, 2] + values[:, 3]) / (12 * h[free])


def _hessian(fb, x, free, h):
    n, m = len(x), len(free)
    pairs = [(a, b) for a in range(m) for b in range(a)]
    points = [x]
    points += [x + k * _unit(n, i, h[i]) for i in free for k in (1, -1)]
    for a, b in pairs:
        ei, ej = _unit(n, free[a], h[free[a]]), _unit(n, free[b], h[free[b]])
        points += [x + ei + ej, x + ei - ej, x - ei + ej, x - ei - ej]
    values = fb(np.array(points))
    f0, singles, doubles = values[0], values[1 : 1 + 2 * m].reshape(m, 2), values[1 + 2 * m :].reshape(-1, 4)
    H = np.diag((singles[:, 0] - 2 * f0 + singles[:, 1]) / h[free] ** 2)
    for (a, b), (pp, pm, mp, mm) in zip(pairs, doubles):
        H[a, b] = H[b, a] = (pp - pm - mp + mm) / (4 * h[free[a]] * h[free[b]])
    return H


_BATCHED = {}  # id(model) → (model, the same model with batch_size=BATCH)
BATCH = 64


def batched_objective(func):
    """pyhf's objective twice_nll(θ) = −2 log L(θ) (a closure over the model and data, from
    pyhf.optimize.opt_numpy.wrap_objective) evaluated at many points at once, through a copy of
    the model with batch_size (pyhf's vectorised evaluation: identical numbers, ~10× faster).
    Falls back to one point at a time when the closure is not the expected one."""
    cells = dict(zip(func.__code__.co_freevars, (c.cell_contents for c in func.__closure__ or ())))
    pdf, data, stitch = cells.get("pdf"), cells.get("data"), cells.get("stitch_pars")
    single = lambda points: np.array([_finite(float(func(p))) for p in points])  # noqa: E731
    if pdf is None or data is None or stitch is None or stitch(np.zeros(1)).shape != (1,):
        return single  # a stitched objective (fixed parameters left out): one at a time
    if id(pdf) not in _BATCHED:
        _BATCHED[id(pdf)] = (pdf, pyhf.Model(pdf.spec, batch_size=BATCH, poi_name=pdf.config.poi_name))
    model = _BATCHED[id(pdf)][1]
    tiled = np.tile(np.asarray(data, dtype=float), (BATCH, 1))

    def evaluate(points):
        if len(points) < 4:  # a padded batch of 64 costs about as much as four single points
            return single(points)
        out = []
        for start in range(0, len(points), BATCH):
            chunk = points[start : start + BATCH]
            padded = np.vstack([chunk, np.repeat(chunk[-1:], BATCH - len(chunk), axis=0)])
            out.append(-2.0 * np.asarray(model.logpdf(padded, tiled))[: len(chunk)])
        values = np.concatenate(out)
        return np.where(np.isfinite(values), values, np.inf)

    return evaluate


STEP_TOLERANCE = 3e-10  # above the finite-difference noise of the steps (~1e-10)
_HESSIANS = {}  # (number of parameters, free indices) → the last Hessian computed for them


def polish(func, x0, bounds, fixed_idx, max_iterations=40):
    """Newton iterations from x0 on the free parameters; returns (x, f(x), last step size).

    A parameter within 1e-9 of a bound whose gradient points out of the range stays at the
    bound; a parameter the objective does not depend on (zero curvature, e.g. a masked γ) stays
    where it is. The Hessian is reused from the last fit with the same free parameters (a fit
    at a nearby POI value or dataset) and recomputed when the steps stop shrinking fast."""
    fb = batched_objective(func)
    f = lambda x: _finite(float(func(x)))  # noqa: E731
    x = np.array(x0, dtype=float)
    bounds = [tuple(map(float, b)) for b in bounds]
    candidates = [i for i in range(len(x)) if i not in fixed_idx]
    fresh = False  # whether the Hessian in use was computed in this polish
    previous_step = np.inf
    last_step = np.inf
    for iteration in range(max_iterations):
        free = []
        for i in candidates:
            lo, hi = bounds[i]
            x[i] = min(max(x[i], lo), hi)
            at_lo, at_hi = x[i] - lo < 1e-9 * max(1.0, abs(lo)), hi - x[i] < 1e-9 * max(1.0, abs(hi))
            if at_lo or at_hi:
                x[i] = lo if at_lo else hi
                e = np.zeros(len(x))
                e[i] = 1e-7 * max(1.0, abs(x[i])) * (1 if at_lo else -1)
                inward = (f(x + e) - f(x)) < 0  # the objective decreases into the range
                if not inward:
                    continue
                x[i] += 10 * e[i]  # off the bound, so that central differences fit
            free.append(i)
        if not free:
            return x, f(x), 0.0
        key = (len(x), tuple(free))
        if key not in _HESSIANS or (not fresh and last_step > STEP_TOLERANCE and last_step > 0.1 * previous_step):
            H = _hessian(fb, x, free, _step_sizes(x, bounds, free, 1e-4))
            flat = np.diag(H) <= 1e-10 * max(1.0, np.max(np.abs(np.diag(H))))
            if np.any(flat):  # parameters that do not act: leave them out of the system
                candidates = [i for i, k in zip(free, flat) if not k] + [i for i in candidates if i not in free]
                continue
            _HESSIANS[key] = H
            fresh = True
        g = _gradient(fb, x, free, _step_sizes(x, bounds, free, 1e-3))
        step = -np.linalg.solve(_HESSIANS[key], g)
        f0 = f(x)
        for _ in range(40):
            trial = x.copy()
            trial[free] += step
            for i in free:
                trial[i] = min(max(trial[i], bounds[i][0]), bounds[i][1])
            if f(trial) <= f0 + 1e-13 * max(1.0, abs(f0)):
                break
            step /= 2
        else:
            trial = x
        previous_step = last_step
        last_step = float(np.max(np.abs(trial[free] - x[free]) / np.maximum(1.0, np.abs(x[free]))))
        x = trial
        if last_step < STEP_TOLERANCE and iteration > 0:
            break
    return x, f(x), last_step


class _Polished:
    """Mixed into a pyhf optimizer: its result, then `polish`."""

    def _minimize(self, minimizer, func, x0, do_grad=False, bounds=None, fixed_vals=None, options={}):
        result = super()._minimize(minimizer, func, x0, do_grad=do_grad, bounds=bounds,
                                   fixed_vals=fixed_vals, options=options)
        fixed_vals = fixed_vals or []
        start = np.array(result.x, dtype=float)
        for i, value in fixed_vals:
            start[i] = value
        x, fun, step = polish(func, start, bounds, [i for i, _ in fixed_vals])
        self.worst_step = max(getattr(self, "worst_step", 0.0), step)
        return scipy.optimize.OptimizeResult(x=x, fun=fun, success=bool(result.success), unc=None,
                                             corr=None, nfev=result.nfev, message=result.message)


class PolishedScipy(_Polished, pyhf.optimize.scipy_optimizer):
    """pyhf's scipy_optimizer (SLSQP, fixed parameters as equality constraints), given a
    central-difference gradient from the batched objective instead of SLSQP's own one-sided
    differences (the same minimum, a fraction of the time), then the polish."""

    def _minimize(self, minimizer, func, x0, do_grad=False, bounds=None, fixed_vals=None, options={}):
        fb = batched_objective(func)
        n = len(x0)

        def gradient(x):
            h = np.array([1e-6 * max(1.0, abs(v)) for v in x])
            points = [x + k * _unit(n, i, h[i]) for i in range(n) for k in (1, -1)]
            values = fb(np.array(points)).reshape(n, 2)
            return (values[:, 0] - values[:, 1]) / (2 * h)

        def start(*args, **kwargs):
            return minimizer(*args, **{**kwargs, "jac": gradient})

        return super()._minimize(start, func, x0, do_grad=do_grad, bounds=bounds, fixed_vals=fixed_vals,
                                 options=options)


class PolishedMinuit(_Polished, pyhf.optimize.minuit_optimizer):
    pass


OPTIMIZERS = {
    "scipy": lambda: PolishedScipy(maxiter=100000),
    "minuit": lambda: PolishedMinuit(),
}
OPTIMIZER_SETTINGS = {
    "scipy": "pyhf.optimize.scipy_optimizer(maxiter=100000) (SLSQP, default tolerance) given a "
             "central-difference gradient (h = 1e-6·max(1,|θ|)), then the Newton polish",
    "minuit": "pyhf.optimize.minuit_optimizer() (tolerance 0.1, strategy 1), then the Newton polish",
    "polish": "4-point central-difference gradient (h = 1e-3·max(1,|θ|)), central Hessian "
              "(h = 1e-4·max(1,|θ|)), Newton steps until the largest relative step < 3e-10",
}


# ---------------------------------------------------------------------------------------------
# Models


def multichannel_mu0():
    spec = json.loads((ROOT / "tests/fixtures/binned/multichannel.json").read_text())
    for parameter in spec["measurements"][0]["config"]["parameters"]:
        if parameter["name"] == "mu":
            parameter["bounds"] = [[0.0, 10.0]]
    return spec


def simple_deficit(poi_bounds):
    """pyhf's uncorrelated_background example with fewer events observed than the background."""
    model = pyhf.simplemodels.uncorrelated_background(signal=[12.0, 11.0], bkg=[50.0, 52.0], bkg_uncertainty=[3.0, 7.0])
    return {
        "channels": model.spec["channels"],
        "observations": [{"name": "singlechannel", "data": [40.0, 45.0]}],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": [{"name": "mu", "bounds": [poi_bounds]}]}}],
        "version": "1.0.0",
    }


def write_workspaces():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "multichannel_mu0.json").write_text(json.dumps(multichannel_mu0(), indent=1) + "\n")
    (FIXTURES / "simple_deficit.json").write_text(json.dumps(simple_deficit([0.0, 10.0]), indent=1) + "\n")
    # −3: the smallest μ with positive expected counts is −50/12 ≈ −4.2.
    (FIXTURES / "simple_deficit_negative.json").write_text(json.dumps(simple_deficit([-3.0, 10.0]), indent=1) + "\n")


def load(path):
    workspace = pyhf.Workspace(json.loads((ROOT / path).read_text()))
    model = workspace.model()
    return workspace, model, workspace.data(model)


def describe(path, workspace, model):
    poi = model.config.poi_index
    return {
        "path": path,
        "measurement": workspace.get_measurement()["name"],
        "poi": model.config.poi_name,
        "poi_bounds": [float(v) for v in model.config.suggested_bounds()[poi]],
        "poi_init": float(model.config.suggested_init()[poi]),
    }


# ---------------------------------------------------------------------------------------------
# Asymptotic references


def write_json(path, value):
    """Indented JSON with lists of numbers on one line (a few kB), written atomically."""
    text = json.dumps(value, indent=1)
    text = re.sub(r"\[\s*([-+0-9.eE,\s]+?)\s*\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(str(path) + ".tmp")
    temporary.write_text(text + "\n")
    temporary.replace(path)


def floats(values):
    return [float(v) for v in values]


def sqrt_q_from_teststat(teststat, sqrt_q_asimov, test_stat):
    """Invert pyhf's AsymptoticCalculator.teststatistic: sqrt(q) on the data from the returned
    statistic (q, q0: sqrt(q) − sqrt(q_A); q̃: the same up to sqrt(q_A), then
    (q − q_A) / (2 sqrt(q_A)))."""
    if test_stat in ("q", "q0") or teststat <= 0:
        return max(0.0, teststat + sqrt_q_asimov)  # q = 0 comes back as ±1e-14
    return float(np.sqrt(2.0 * sqrt_q_asimov * teststat + sqrt_q_asimov**2))


def hypotest_entry(model, data, mu, test_stat):
    cls, (clsb, clb), cls_expected, calc = pyhf.infer.hypotest(
        mu, data, model, test_stat=test_stat, calc_base_dist="normal",
        return_tail_probs=True, return_expected_set=True, return_calculator=True)
    teststat = float(calc.teststatistic(mu))
    sqrt_q_asimov = float(calc.sqrtqmuA_v)
    return {
        "value": mu,
        "cls": {"observed": float(cls), "expected": floats(cls_expected)},
        "clsb": float(clsb),
        "clb": float(clb),
        "sqrt_q_obs": sqrt_q_from_teststat(teststat, sqrt_q_asimov, test_stat),
        "sqrt_q_asimov": sqrt_q_asimov,
        "muhat": float(calc.fitted_pars.free_fit_to_data[model.config.poi_index]),
    }


def significance_entry(model, data):
    p0, (_,), p0_expected, calc = pyhf.infer.hypotest(
        0.0, data, model, test_stat="q0", calc_base_dist="normal",
        return_tail_probs=True, return_expected_set=True, return_calculator=True)
    sqrt_q0_asimov = float(calc.sqrtqmuA_v)
    sqrt_q0 = sqrt_q_from_teststat(float(calc.teststatistic(0.0)), sqrt_q0_asimov, "q0")
    return {
        "asimov_mu": 1.0,
        "observed": {"q0": sqrt_q0**2, "p0": float(p0), "z": float(norm.isf(float(p0)))},
        # pyhf's median expected p0 is Φ(−sqrt(q0,A)): the middle of its expected set.
        "expected": {"q0": sqrt_q0_asimov**2, "p0": float(p0_expected[2]), "z": float(norm.isf(float(p0_expected[2])))},
        "expected_p0_set": floats(p0_expected),
        "sqrt_q0_obs": sqrt_q0,
        "sqrt_q0_asimov": sqrt_q0_asimov,
        "muhat": float(calc.fitted_pars.free_fit_to_data[model.config.poi_index]),
    }


def limit_entry(model, data, level):
    low, high = 0.5, 5.0  # toms748_scan widens a bracket that does not bracket every curve
    observed, expected = pyhf.infer.intervals.upper_limits.toms748_scan(
        data, model, low, high, level=level, test_stat="qtilde", **TOMS748)
    return {"level": level, "cl": 1.0 - level, "test_stat": "qtilde", "bracket": [low, high],
            "observed": float(observed), "expected": floats(expected)}


def asymptotic_references(optimizer, only=None):
    pyhf.set_backend("numpy", OPTIMIZERS[optimizer]())
    models = {}
    for name, (path, values, test_stats) in MODELS.items():
        if only and name not in only:
            continue
        workspace, model, data = load(path)
        entry = describe(path, workspace, model)
        entry["hypotest"] = {stat: [hypotest_entry(model, data, mu, stat) for mu in values] for stat in test_stats}
        entry["significance"] = significance_entry(model, data)
        if "qtilde" in test_stats:
            entry["limits"] = [limit_entry(model, data, level) for level in LIMIT_LEVELS.get(name, [0.05])]
        models[name] = entry
        print(f"{optimizer}: {name} done", file=sys.stderr, flush=True)
    return models, float(pyhf.get_backend()[1].worst_step)


# Raw statistics and fitted values that are 0 in exact arithmetic (q = 0 where μ̂ ≥ μ or μ̂ at
# its bound, z = 0 where p0 = 1/2, μ̂ = 0 at the bound) carry the fits' noise, ~1e-12 on q, so
# ~1e-6 on sqrt(q) and z: compared in absolute terms below this floor.
RAW_KEYS = {"sqrt_q_obs", "sqrt_q_asimov", "sqrt_q0_obs", "sqrt_q0_asimov", "q0", "z", "muhat"}
RAW_FLOOR = 1e-5


def largest_relative_difference(a, b, path="", key=None):
    """(difference, where) over all numbers of two nested structures of the same shape."""
    if isinstance(a, dict):
        return max((largest_relative_difference(a[k], b[k], f"{path}/{k}", k) for k in a), default=(0.0, path))
    if isinstance(a, list):
        return max((largest_relative_difference(x, y, f"{path}[{i}]", key) for i, (x, y) in enumerate(zip(a, b))),
                   default=(0.0, path))
    if isinstance(a, float):
        scale = max(abs(a), abs(b), RAW_FLOOR if key in RAW_KEYS else 0.0)
        return (abs(a - b) / scale if scale > 0 else 0.0, path)
    return (0.0, path)


def pvalues(entry):
    """CLs observed and expected, CLs+b, CLb of every hypotest of a model entry."""
    return [[h["cls"]["observed"], *h["cls"]["expected"], h["clsb"], h["clb"]]
            for points in entry["hypotest"].values() for h in points]


def asymptotic(out, only=None):
    """The fixture; with `only` (model names), those models are recomputed and merged into the
    existing fixture at `out` (its precision figures kept where larger)."""
    with concurrent.futures.ProcessPoolExecutor(2) as pool:  # the two chains side by side
        (primary, primary_step), (other, other_step) = pool.map(asymptotic_references, ["scipy", "minuit"], [only, only])
    # Checked: the p-values of the hypotests, the limits, the expected q0 numbers (all well
    # conditioned). Reported only: every number, where the raw statistics, z and μ̂ are compared
    # in absolute terms below RAW_FLOOR, and the observed p0 where q0 = 0 (μ̂ at its bound: q0
    # is a difference of two fits at the same point, ~1e-13, so p0 = 1/2 − O(1e-7)).
    def checked_part(entry):
        significance = entry["significance"]
        return [pvalues(entry), entry.get("limits", []), significance["expected"]["p0"], significance["expected_p0_set"]]

    checked = max(largest_relative_difference(checked_part(primary[m]), checked_part(other[m]), m) for m in primary)
    spread = max(
        largest_relative_difference(
            {k: v for k, v in primary[m].items() if k in ("hypotest", "limits", "significance")},
            {k: v for k, v in other[m].items() if k in ("hypotest", "limits", "significance")}, m)
        for m in primary)
    cls_spread = max(
        largest_relative_difference(pvalues(primary[m]), pvalues(other[m]), m) for m in primary)
    print(f"largest relative difference scipy vs minuit start: checked {checked[0]:.2e} at {checked[1]}; "
          f"on CLs/CLs+b/CLb: {cls_spread[0]:.2e} at {cls_spread[1]}; every number: {spread[0]:.2e} at {spread[1]}",
          file=sys.stderr)
    reference = {
        "pyhf_version": pyhf.__version__,
        "backend": "numpy",
        "calculator": "asymptotics",
        "calc_base_dist": "normal",
        "optimizer": OPTIMIZER_SETTINGS,
        "toms748": TOMS748,
        "expected_order_nsigma": NSIGMA,
        "reference_precision": {
            "note": "largest relative difference between the fixture (SLSQP start) and the same "
                    "computation from a Minuit start, both polished: on CLs, CLs+b, CLb; on those, "
                    "the limits and the expected q0 numbers ('checked', must be <= 1e-8); on every "
                    "number ('all_numbers': raw statistics, z and muhat absolute below 1e-5; the "
                    "observed p0 where q0 = 0 is 1/2 - O(1e-7)); and the largest relative Newton "
                    "step left at the end of any fit (a parameter within ~1e-6 of a bound can end "
                    "a fit still moving)",
            "cls_clsb_clb": cls_spread[0],
            "checked": checked[0],
            "checked_worst_at": checked[1],
            "all_numbers": spread[0],
            "all_numbers_worst_at": spread[1],
            "last_newton_step": max(primary_step, other_step),
        },
        "generated_by": "validation/pyhf_hypotest_reference.py asymptotic",
        "models": primary,
    }
    if only:
        previous = json.loads(Path(out).read_text())
        reference["models"] = {**previous["models"], **primary}
        reference["models"] = {name: reference["models"][name] for name in MODELS if name in reference["models"]}
        old = previous["reference_precision"]
        if "checked" not in old:  # the first layout: one figure over p-values, limits and raw numbers
            old = {**old, "checked": old["all_pvalues_and_limits"], "checked_worst_at": old["worst_at"],
                   "all_numbers": old["all_pvalues_and_limits"], "all_numbers_worst_at": old["worst_at"]}
        new = reference["reference_precision"]
        for key in ("cls_clsb_clb", "last_newton_step"):
            new[key] = max(new[key], old[key])
        for key in ("checked", "all_numbers"):
            if old[key] > new[key]:
                new[key], new[f"{key}_worst_at"] = old[key], old[f"{key}_worst_at"]
    write_json(out, reference)
    if checked[0] > 1e-8:
        sys.exit(f"the two optimizer chains disagree by {checked[0]:.2e} at {checked[1]}: {out} is no reference")


# ---------------------------------------------------------------------------------------------
# Toy references


TOY_MODEL = "simple_uncorrelated"
TOY_VALUES = [1.0, 3.0]


def binomial_error(p, n):
    return float(np.sqrt(p * (1.0 - p) / n))


def toy_entry(model, data, mu, ntoys, seed):
    np.random.seed(seed)  # pyhf's sampler draws through scipy from numpy's global generator
    calc = pyhf.infer.calculators.ToyCalculator(data, model, test_stat="qtilde", ntoys=ntoys, track_progress=False)
    q_obs = calc.teststatistic(mu)
    sb, b = calc.distributions(mu)
    clsb, clb, cls = (float(v) for v in calc.pvalues(q_obs, sb, b))
    _, _, cls_expected = calc.expected_pvalues(sb, b)
    clsb_error, clb_error = binomial_error(clsb, ntoys), binomial_error(clb, ntoys)
    cls_error = cls * np.sqrt((clsb_error / clsb) ** 2 + (clb_error / clb) ** 2) if clsb > 0 else float("nan")
    return {
        "value": mu,
        "seed": seed,
        "q_obs": float(q_obs),
        "cls": {"observed": cls, "expected": floats(cls_expected)},
        "clsb": clsb,
        "clb": clb,
        "errors": {"clsb": clsb_error, "clb": clb_error, "cls": float(cls_error)},
    }


def toys(out, ntoys, seeds):
    pyhf.set_backend("numpy")  # pyhf's defaults: scipy SLSQP at its default tolerance
    path = MODELS[TOY_MODEL][0]
    workspace, model, data = load(path)
    runs = []
    for seed in seeds:  # the fixture is rewritten after each seed's run
        runs.append({"seed": seed, "points": [toy_entry(model, data, mu, ntoys, seed) for mu in TOY_VALUES]})
        print(f"toys: seed {seed} done", file=sys.stderr, flush=True)
        reference = {
            "pyhf_version": pyhf.__version__,
            "backend": "numpy",
            "optimizer": "pyhf default (scipy_optimizer: SLSQP, default tolerance)",
            "calculator": "toybased",
            "test_stat": "qtilde",
            "ntoys": ntoys,
            "seeding": "np.random.seed(seed) before each POI value's ToyCalculator (which draws "
                       "the s+b toys, then the b-only toys, through scipy from numpy's global generator)",
            "errors": "binomial sqrt(p(1-p)/ntoys) for CLs+b and CLb (independent toy sets); "
                      "CLs by error propagation",
            "expected_order_nsigma": NSIGMA,
            "generated_by": "validation/pyhf_hypotest_reference.py toys",
            "model": describe(path, workspace, model),
            "runs": runs,
        }
        write_json(out, reference)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("asymptotic")
    a.add_argument("--out", default=str(FIXTURES / "pyhf_asymptotic.json"))
    a.add_argument("--only", nargs="+", choices=list(MODELS), help="recompute these models, merged into --out")
    t = sub.add_parser("toys")
    t.add_argument("--out", default=str(FIXTURES / "pyhf_toys.json"))
    t.add_argument("--ntoys", type=int, default=2000)
    t.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    sub.add_parser("workspaces")
    args = parser.parse_args()
    if args.command == "asymptotic":
        asymptotic(args.out, args.only)
    elif args.command == "toys":
        toys(args.out, args.ntoys, args.seeds)
    else:
        write_workspaces()


if __name__ == "__main__":
    main()
