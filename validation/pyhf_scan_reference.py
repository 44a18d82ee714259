"""pyhf's profile-likelihood scan of the POI, for tests/binned_channels.rs.

    pyhf_scan_reference.py FIXTURES_DIR OUT.json

For each pyhf workspace FIXTURES_DIR/<case>.json of the binned tests (default interpolation
codes, first measurement), the test statistic t(mu) = -2 ln lambda(mu) =
2 (NLL(mu, profiled) - NLL(best fit)) at 7 POI values evenly over mu_hat +- 2.5 sigma (within
the POI's bounds), from pyhf 0.7.6's numpy backend with its minuit optimizer at a tight
tolerance (strategy 2) for the profiled fits and the best fit. pyhf's own fits are the
reference here; scipy's SLSQP is run beside it and the smaller NLL of the two kept at each
point, so that a stopping tolerance does not decide the reference to 1e-6 in t.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pyhf

CASES = ["simple_uncorrelated", "simple_correlated", "multichannel"]


def fit(model, data, fixed_poi=None):
    """Smallest -2 ln L found by minuit and SLSQP (fixed POI when given), with the parameters."""
    best = None
    for optimizer in (
        pyhf.optimize.minuit_optimizer(tolerance=1e-9, strategy=2),
        pyhf.optimize.scipy_optimizer(tolerance=1e-14),
    ):
        pyhf.set_backend("numpy", optimizer)
        try:
            if fixed_poi is None:
                pars, twice = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
            else:
                pars, twice = pyhf.infer.mle.fixed_poi_fit(fixed_poi, data, model, return_fitted_val=True)
        except Exception:  # an optimizer that fails here is not the reference
            continue
        twice = float(twice)
        if best is None or twice < best[0]:
            best = (twice, [float(v) for v in pars])
    return best


def main(fixtures, out):
    result = {"pyhf_version": pyhf.__version__, "cases": []}
    for case in CASES:
        spec = json.loads((Path(fixtures) / f"{case}.json").read_text())
        ws = pyhf.Workspace(spec)
        model = ws.model()
        data = ws.data(model)
        twice_hat, pars_hat = fit(model, data)
        poi = model.config.poi_index
        pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=1e-9, strategy=2))
        _, errors = pyhf.infer.mle.fit(data, model, return_uncertainties=True).T
        sigma = float(errors[poi])
        lo, hi = model.config.suggested_bounds()[poi]
        mus = np.linspace(max(lo, pars_hat[poi] - 2.5 * sigma), min(hi, pars_hat[poi] + 2.5 * sigma), 7)
        points = []
        for mu in mus:
            twice, _ = fit(model, data, fixed_poi=float(mu))
            points.append({"mu": float(mu), "t": twice - twice_hat})
        result["cases"].append({
            "case": case,
            "poi": model.config.poi_name,
            "mu_hat": pars_hat[poi],
            "twice_nll_hat": twice_hat,
            "points": points,
        })
    Path(out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:3])
