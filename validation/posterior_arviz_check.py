"""arviz's diagnostics and numpy's moments of the draws `nsbi posterior --out` wrote (issue 18).

    posterior_arviz_check.py SAMPLES.h5

Reads `samples` (chains × draws × parameters) and the `parameters` attribute, and prints one
JSON object: per parameter, arviz's rank-normalised R̂ and bulk/tail ESS and numpy's mean, sd
(ddof 1) and 5/50/95 % quantiles, for `tests/posterior.rs` to compare with the command's
`--json` summary of the same draws. arviz is in requirements.txt; "arviz" says which version
computed the diagnostics.
"""
import json
import sys
import warnings

import h5py
import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import arviz as az


def main(path):
    with h5py.File(path, "r") as f:
        draws = f["samples"][...]
        names = json.loads(f.attrs["parameters"])
    out = {"arviz": az.__version__}
    for i, name in enumerate(names):
        x = draws[:, :, i]
        flat = x.ravel()
        out[name] = {
            "rhat": float(az.rhat(x, method="rank")),
            "ess_bulk": float(az.ess(x, method="bulk")),
            "ess_tail": float(az.ess(x, method="tail")),
            "mean": float(flat.mean()),
            "sd": float(flat.std(ddof=1)),
            "q05": float(np.quantile(flat, 0.05)),
            "q50": float(np.quantile(flat, 0.5)),
            "q95": float(np.quantile(flat, 0.95)),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
