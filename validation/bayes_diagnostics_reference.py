"""Reference values of nsbi's MCMC diagnostics from arviz (issue 18).

    bayes_diagnostics_reference.py [--out tests/fixtures/bayes/diagnostics_reference.json]

Draws a few fixed arrays of shape (chains, draws) with numpy (seeded), computes arviz's
rank-normalised split-R̂ (`az.rhat(method="rank")`) and bulk/tail ESS (`az.ess(method="bulk" |
"tail")`) on them, and writes draws and values to a JSON fixture that `tests/bayes.rs`
(`diagnostics_match_arviz`) compares with `nsbi::bayes::diagnostics` to 1e-6 relative.
The draws are rounded to 7 significant digits before arviz sees them, so the fixture holds
exactly the numbers both programs use. Needs arviz (pip install arviz; 0.23 used).
"""
import argparse
import json

import arviz as az
import numpy as np


def ar1(rng, chains, draws, phi, offsets=None, scales=None):
    """AR(1) chains x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t, each shifted and scaled."""
    x = np.empty((chains, draws))
    x[:, 0] = rng.standard_normal(chains)
    noise = rng.standard_normal((chains, draws)) * np.sqrt(1 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    offsets = np.zeros(chains) if offsets is None else np.asarray(offsets, float)
    scales = np.ones(chains) if scales is None else np.asarray(scales, float)
    return x * scales[:, None] + offsets[:, None]


def cases(rng):
    yield "independent", "4 chains of 400 independent N(0, 1) draws", ar1(rng, 4, 400, 0.0)
    yield "autocorrelated", "4 chains of 500, AR(1) with phi = 0.9", ar1(rng, 4, 500, 0.9)
    yield "antithetic", "4 chains of 300, AR(1) with phi = -0.6 (ESS above the draw count)", ar1(rng, 4, 300, -0.6)
    yield ("badly_mixed", "4 chains of 400, AR(1) phi = 0.7, one chain shifted by 2 sigma",
           ar1(rng, 4, 400, 0.7, offsets=[0, 0, 0, 2]))
    yield ("scale_mismatch", "4 chains of 400, independent, one chain 3x wider (only the folded R-hat sees it)",
           ar1(rng, 4, 400, 0.0, scales=[1, 1, 1, 3]))
    yield ("trend_odd_length", "3 chains of 301 with a drift within each chain (split R-hat), odd length",
           ar1(rng, 3, 301, 0.5) + np.linspace(0, 1.5, 301)[None, :])
    yield ("ties", "2 chains of 250 rounded to 0.5 (many tied ranks)",
           np.round(2 * ar1(rng, 2, 250, 0.3)) / 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/fixtures/bayes/diagnostics_reference.json")
    args = parser.parse_args()
    rng = np.random.default_rng(20261202)
    out = {"arviz_version": az.__version__, "cases": []}
    for name, description, draws in cases(rng):
        draws = np.array([[float(f"{v:.7g}") for v in chain] for chain in draws])
        out["cases"].append({
            "name": name,
            "description": description,
            "draws": draws.tolist(),
            "rhat": float(az.rhat(draws, method="rank")),
            "ess_bulk": float(az.ess(draws, method="bulk")),
            "ess_tail": float(az.ess(draws, method="tail")),
        })
        c = out["cases"][-1]
        print(f"{name:18s} rhat {c['rhat']:.6f}  ess_bulk {c['ess_bulk']:9.2f}  ess_tail {c['ess_tail']:9.2f}")
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
