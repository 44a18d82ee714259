"""Reference values of binned likelihoods from pyhf 0.7.6 (numpy backend), for tests/binned*.rs.

    pyhf_reference.py make OUTDIR
        writes OUTDIR/<case>.json (pyhf workspaces) and OUTDIR/reference.json: for each case and
        interpolation-code setting, >= 20 random parameter points (by pyhf par_names) with
        pyhf's -model.logpdf(pars, data).
    pyhf_reference.py sample OUTDIR
        writes OUTDIR/sampling.json: moments (mean, variance, fourth central moment) of each
        bin's count and each global observable over SAMPLES draws of pyhf's
        model.make_pdf(pars).sample() for the multichannel case at a fixed point, keyed by
        channel name and parameter name (pyhf's `name[i]` for per-bin parameters).
    pyhf_reference.py logpdf WORKSPACE.json REFERENCE.json CASE
        loads WORKSPACE.json with pyhf.Workspace (e.g. one nsbi exported) and prints, as JSON,
        the largest relative difference of its -logpdf from the reference points of CASE.

The cases cover every modifier type and interpolation code: pyhf's simplemodels, and
hand-built multi-channel workspaces with parameters shared across channels, samples and
modifier types (normsys + histosys), a staterror spanning two channels, bins with zero
uncertainty or zero yield, and measurement settings (inits, bounds, fixed, lumi auxdata/sigmas).
"""
import json
import sys
from pathlib import Path

import numpy as np
import pyhf

pyhf.set_backend("numpy")

CODES = [
    {"normsys": "code4", "histosys": "code4p"},  # pyhf.Model defaults
    {"normsys": "code1", "histosys": "code0"},  # ROOT HistFactory defaults
    {"normsys": "code4", "histosys": "code2"},
]
POINTS = 24


def with_measurement(channels, observations, parameters=(), poi="mu", name="meas"):
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": name, "config": {"poi": poi, "parameters": list(parameters)}}],
        "version": "1.0.0",
    }


def simplemodel_cases():
    uncorrelated = pyhf.simplemodels.uncorrelated_background([5.0, 10.0, 0.5], [50.0, 60.0, 3.0], [5.0, 12.0, 0.0])
    correlated = pyhf.simplemodels.correlated_background([12.0, 11.0], [50.0, 52.0], [45.0, 57.0], [55.0, 47.0])
    return {
        "simple_uncorrelated": with_measurement(
            uncorrelated.spec["channels"], [{"name": "singlechannel", "data": [53.0, 71.0, 2.0]}]
        ),
        "simple_correlated": with_measurement(
            correlated.spec["channels"], [{"name": "single_channel", "data": [60.0, 58.0]}]
        ),
    }


def multichannel_case():
    sr = {
        "name": "SR",
        "samples": [
            {
                "name": "signal",
                "data": [2.0, 6.0, 9.0, 0.0],
                "modifiers": [
                    {"name": "mu", "type": "normfactor", "data": None},
                    {"name": "lumi", "type": "lumi", "data": None},
                    {"name": "jes", "type": "normsys", "data": {"hi": 1.07, "lo": 0.91}},
                    {"name": "stat_SR", "type": "staterror", "data": [0.4, 0.9, 1.1, 0.0]},
                ],
            },
            {
                "name": "bkg",
                "data": [40.0, 25.0, 11.0, 3.0],
                "modifiers": [
                    {"name": "mu_B", "type": "normfactor", "data": None},
                    {"name": "lumi", "type": "lumi", "data": None},
                    {"name": "jes", "type": "histosys", "data": {"hi_data": [43.0, 26.5, 11.2, 3.9], "lo_data": [38.0, 24.0, 10.1, 2.4]}},
                    {"name": "jes", "type": "normsys", "data": {"hi": 1.04, "lo": 0.97}},
                    {"name": "xsec_bkg", "type": "normsys", "data": {"hi": 1.12, "lo": 0.85}},
                    {"name": "stat_SR", "type": "staterror", "data": [2.0, 1.5, 1.2, 0.0]},
                ],
            },
            {
                "name": "fakes",
                "data": [5.0, 4.0, 0.0, 1.0],
                "modifiers": [
                    {"name": "fakes_shape", "type": "shapesys", "data": [1.5, 2.0, 0.0, 0.6]},
                    {"name": "fake_var", "type": "histosys", "data": {"hi_data": [6.0, 4.1, 0.5, 1.4], "lo_data": [4.5, 3.2, 0.0, 0.9]}},
                ],
            },
        ],
    }
    cr = {
        "name": "CR",
        "samples": [
            {
                "name": "bkg",
                "data": [120.0, 80.0],
                "modifiers": [
                    {"name": "mu_B", "type": "normfactor", "data": None},
                    {"name": "lumi", "type": "lumi", "data": None},
                    {"name": "jes", "type": "normsys", "data": {"hi": 1.02, "lo": 0.99}},
                    {"name": "cr_shape", "type": "shapefactor", "data": None},
                    {"name": "stat_CR", "type": "staterror", "data": [4.0, 3.0]},
                ],
            },
            {
                "name": "other",
                "data": [15.0, 9.0],
                "modifiers": [
                    {"name": "lumi", "type": "lumi", "data": None},
                    {"name": "xsec_other", "type": "normsys", "data": {"hi": 1.3, "lo": 0.8}},
                    {"name": "stat_CR", "type": "staterror", "data": [1.0, 0.8]},
                ],
            },
        ],
    }
    # A staterror spanning two channels (pyhf combines it over both, channels by name).
    vr_a = {
        "name": "VR_b",
        "samples": [
            {"name": "bkg", "data": [30.0, 20.0], "modifiers": [
                {"name": "stat_VR", "type": "staterror", "data": [1.5, 1.0]},
                {"name": "mu_B", "type": "normfactor", "data": None}]},
        ],
    }
    vr_b = {
        "name": "VR_a",
        "samples": [
            {"name": "bkg", "data": [10.0, 14.0, 6.0], "modifiers": [
                {"name": "stat_VR", "type": "staterror", "data": [0.9, 1.1, 0.7]},
                {"name": "jes", "type": "histosys", "data": {"hi_data": [11.0, 14.5, 6.6], "lo_data": [9.2, 13.1, 5.7]}}]},
        ],
    }
    observations = [
        {"name": "SR", "data": [49.0, 37.0, 22.0, 4.0]},
        {"name": "CR", "data": [131.0, 92.0]},
        {"name": "VR_b", "data": [33.0, 18.0]},
        {"name": "VR_a", "data": [12.0, 13.0, 7.0]},
    ]
    parameters = [
        {"name": "lumi", "auxdata": [1.0], "sigmas": [0.017], "bounds": [[0.5, 1.5]], "inits": [1.0]},
        {"name": "mu_B", "bounds": [[0.0, 5.0]], "inits": [1.1]},
        {"name": "xsec_other", "fixed": True},
        {"name": "mu", "bounds": [[-2.0, 10.0]]},
    ]
    return with_measurement([sr, cr, vr_a, vr_b], observations, parameters)


def random_point(model, rng, alpha_max):
    """Values spread over each parameter's range, α within ±alpha_max (2.5: both sides of ±1,
    every branch of the interpolation codes)."""
    pars = []
    for name in model.config.par_order:
        paramset = model.config.param_set(name)
        for low, high in paramset.suggested_bounds:
            if getattr(paramset, "pdf_type", None) == "normal" and low < 0:  # normsys / histosys α
                pars.append(rng.uniform(-alpha_max, alpha_max))
            else:
                pars.append(rng.uniform(max(low, 0.3), min(high, 2.5)))
    return pars


def cases():
    out = simplemodel_cases()
    out["multichannel"] = multichannel_case()
    return out


def best_fit(model, data):
    """pyhf's MLE: the minuit optimizer (tight tolerance, strategy 2), then polished by Newton
    steps on pyhf's own -logpdf (central-difference gradient, h = 1e-6, and Hessian, h = 1e-4)
    until the step is below 1e-10: Minuit stops at its EDM, too loose to compare minima to
    1e-5. Errors are sqrt(diag H⁻¹) at the polished minimum."""
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=1e-7, strategy=2))
    bestfit, _ = pyhf.infer.mle.fit(data, model, return_uncertainties=True, return_fitted_val=True)
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    values = polish(model, data, bestfit[:, 0])
    return {
        "pars": dict(zip(model.config.par_names, [float(v) for v in values])),
        "minuit_errors": dict(zip(model.config.par_names, [float(v) for v in bestfit[:, 1]])),
        "errors": dict(zip(model.config.par_names, hessian_errors(model, data, values))),
        "nll": -float(model.logpdf(np.asarray(values), data)[0]),
    }


def free_parameters(model):
    return [i for i, fixed in enumerate(model.config.suggested_fixed()) if not fixed]


def polish(model, data, start, steps=10, h=1e-6):
    """Newton steps of -logpdf over the free parameters from `start` (gradient by central
    differences, Hessian from `nll_hessian` at each step)."""
    free = free_parameters(model)
    values = np.array(start, dtype=float)

    def nll(x):
        return -float(model.logpdf(np.asarray(x), data)[0])

    for _ in range(steps):
        gradient = np.zeros(len(free))
        for a, i in enumerate(free):
            up, down = values.copy(), values.copy()
            up[i] += h
            down[i] -= h
            gradient[a] = (nll(up) - nll(down)) / (2 * h)
        step = np.linalg.solve(nll_hessian(model, data, values), gradient)
        values[free] -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return values


def nll_hessian(model, data, values, h=1e-4):
    """Central-difference Hessian of -logpdf over the free parameters."""
    free = free_parameters(model)

    def nll(x):
        return -float(model.logpdf(np.asarray(x), data)[0])

    hessian = np.zeros((len(free), len(free)))
    for a, i in enumerate(free):
        for b, j in enumerate(free):
            total = 0.0
            for si, sj, sign in [(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)]:
                x = np.array(values, dtype=float)
                x[i] += si * h
                x[j] += sj * h
                total += sign * nll(x)
            hessian[a, b] = total / (4 * h * h)
    return hessian


def hessian_errors(model, data, values):
    """sqrt(diag H⁻¹) of -logpdf over the free parameters, H by central differences of pyhf's
    logpdf (Minuit's errors of a parameter near a bound go through its internal transform)."""
    free = free_parameters(model)
    covariance = np.linalg.inv(nll_hessian(model, data, values))
    errors = [0.0] * len(values)
    for a, i in enumerate(free):
        errors[i] = float(np.sqrt(covariance[a, a]))
    return errors


def make(outdir):
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261201)
    reference = {"pyhf_version": pyhf.__version__, "cases": []}
    for name, spec in cases().items():
        (outdir / f"{name}.json").write_text(json.dumps(spec, indent=1) + "\n")
        workspace = pyhf.Workspace(spec)
        for codes in CODES:
            settings = {"normsys": {"interpcode": codes["normsys"]}, "histosys": {"interpcode": codes["histosys"]}}
            model = workspace.model(modifier_settings=settings)
            data = workspace.data(model)
            points = []
            # pyhf 0.7.6's code2 drops the value at ±1 beyond |α| > 1 (Δ = (b ± 2a)(α ∓ 1)), a
            # jump at α = ±1; nsbi uses ROOT's continuous form, equal inside |α| ≤ 1 only.
            alpha_max = 1.0 if codes["histosys"] == "code2" else 2.5
            for _ in range(POINTS):
                pars = random_point(model, rng, alpha_max)
                nll = -float(model.logpdf(np.asarray(pars), data)[0])
                points.append({"pars": dict(zip(model.config.par_names, pars)), "nll": nll})
            init = model.config.suggested_init()
            mle = best_fit(model, data) if codes == CODES[0] else None
            reference["cases"].append({
                "case": name,
                "codes": codes,
                "par_names": model.config.par_names,
                "suggested_init": init,
                "suggested_bounds": [list(b) for b in model.config.suggested_bounds()],
                "suggested_fixed": model.config.suggested_fixed(),
                "nll_at_init": -float(model.logpdf(np.asarray(init), data)[0]),
                "points": points,
                "mle": mle,
            })
    (outdir / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")


SAMPLES = 40000
# Away from the nominal point, so that a mean or width taken at the wrong parameter shows:
# γ ≠ 1 for every per-bin parameter, α ≠ 0, a scaled POI and background.
SAMPLE_POINT = {"mu": 1.4, "mu_B": 1.2, "lumi": 1.01, "jes": 0.6, "fake_var": -0.7, "xsec_bkg": 0.3}


def moments(x):
    """Mean, variance (ddof 1) and fourth central moment of each column of x."""
    mean = x.mean(axis=0)
    centred = x - mean
    return {
        "mean": [float(v) for v in mean],
        "var": [float(v) for v in x.var(axis=0, ddof=1)],
        "m4": [float(v) for v in (centred**4).mean(axis=0)],
    }


def sample(outdir):
    """pyhf's toy sampler at SAMPLE_POINT (per-bin γ at 1.1, other parameters at their inits)."""
    case = "multichannel"
    workspace = pyhf.Workspace(cases()[case])
    model = workspace.model()
    pars = []
    for name in model.config.par_order:
        paramset = model.config.param_set(name)
        if name in SAMPLE_POINT:
            pars.append(SAMPLE_POINT[name])
        elif paramset.n_parameters > 1 or not paramset.is_scalar:
            pars.extend(1.1 for _ in range(paramset.n_parameters))
        else:
            pars.extend(paramset.suggested_init)
    np.random.seed(20261202)  # scipy's rvs draws from numpy's global generator
    draws = np.asarray(model.make_pdf(np.asarray(pars)).sample((SAMPLES,)), dtype=float)
    main, aux = draws[:, : model.config.nmaindata], draws[:, model.config.nmaindata :]
    counts = {}
    for channel in model.config.channels:
        bins = model.config.channel_slices[channel]
        counts[channel] = moments(main[:, bins])
    aux_names = []
    for name in model.config.auxdata_order:
        paramset = model.config.param_set(name)
        if paramset.is_scalar:
            aux_names.append(name)
        else:
            aux_names.extend(f"{name}[{i}]" for i in range(paramset.n_parameters))
    assert len(aux_names) == aux.shape[1]
    aux_moments = moments(aux)
    auxdata = {
        name: {key: aux_moments[key][k] for key in aux_moments} for k, name in enumerate(aux_names)
    }
    reference = {
        "pyhf_version": pyhf.__version__,
        "case": case,
        "samples": SAMPLES,
        "pars": dict(zip(model.config.par_names, [float(p) for p in pars])),
        "counts": counts,
        "auxdata": auxdata,
    }
    Path(outdir, "sampling.json").write_text(json.dumps(reference, indent=1) + "\n")


def logpdf(workspace_path, reference_path, case):
    workspace = pyhf.Workspace(json.loads(Path(workspace_path).read_text()))
    reference = json.loads(Path(reference_path).read_text())
    worst = 0.0
    n = 0
    for entry in reference["cases"]:
        if entry["case"] != case:
            continue
        codes = entry["codes"]
        settings = {"normsys": {"interpcode": codes["normsys"]}, "histosys": {"interpcode": codes["histosys"]}}
        model = workspace.model(modifier_settings=settings)
        data = workspace.data(model)
        for point in entry["points"]:
            pars = np.asarray([point["pars"][p] for p in model.config.par_names])
            nll = -float(model.logpdf(pars, data)[0])
            worst = max(worst, abs(nll - point["nll"]) / abs(point["nll"]))
            n += 1
    print(json.dumps({"points": n, "max_relative_difference": worst}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    elif sys.argv[1] == "sample":
        sample(sys.argv[2])
    elif sys.argv[1] == "logpdf":
        logpdf(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
