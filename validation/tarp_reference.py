"""Independent numbers for `nsbi coverage-bayes` from the draws file it writes (--samples-out):

- the TARP expected coverage from the PyPI `tarp` package (Lemos et al. 2023), on the same
  draws, θ* and reference points (`get_tarp_coverage(..., norm=True, bootstrap=False)`; the
  file's reference points are already in the normalised coordinates the package compares);
- the Kolmogorov–Smirnov p-value of nsbi's coverage fractions f against Uniform(0, 1)
  (scipy `kstest(method="asymp")`);
- the SBC χ² p-value of each parameter's rank histogram (scipy `chisquare`).

Prints JSON: {"alpha": [...], "ecp": [...], "f": [...], "ks_p": p, "low": [...], "high": [...],
"sbc_p": [...]}, or {"missing": "tarp"} when the package is not installed.

Usage: .venv/bin/python validation/tarp_reference.py DRAWS.h5 --sbc-draws L --sbc-bins B
"""

import argparse
import json
import sys

import h5py
import numpy as np
from scipy import stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("draws")
    parser.add_argument("--sbc-draws", type=int, required=True)
    parser.add_argument("--sbc-bins", type=int, required=True)
    args = parser.parse_args()
    try:
        from tarp import get_tarp_coverage
    except ImportError as e:
        print(json.dumps({"missing": f"tarp ({e})"}))
        return
    with h5py.File(args.draws, "r") as f:
        samples = f["samples"][...]  # [pairs, chains, draws, dim]
        theta = f["theta_star"][...]
        references = f["references"][...]
        nsbi_f = f["tarp_f"][...]
        ranks = f["ranks"][...]
    pairs, chains, draws, dim = samples.shape
    # The package's layout: (draws per pair, pairs, dim).
    pooled = samples.reshape(pairs, chains * draws, dim).transpose(1, 0, 2).copy()
    ecp, alpha = get_tarp_coverage(pooled, theta.copy(), references=references, metric="euclidean",
                                   norm=True, bootstrap=False)
    # The package's f, from its own normalisation (for a direct comparison of the fractions).
    low, high = theta.min(axis=0), theta.max(axis=0)
    scale = high - low + 1e-10
    s, t = (pooled - low) / scale, (theta - low) / scale
    d_samples = np.sqrt(np.sum((references[np.newaxis] - s) ** 2, axis=-1))
    d_theta = np.sqrt(np.sum((references - t) ** 2, axis=-1))
    f_ref = np.sum(d_samples < d_theta, axis=0) / pooled.shape[0]
    edges = np.arange(args.sbc_bins + 1) * (args.sbc_draws + 1) // args.sbc_bins
    sbc_p = [float(stats.chisquare(np.histogram(ranks[:, k], bins=edges)[0]).pvalue) for k in range(dim)]
    json.dump({
        "alpha": alpha.tolist(), "ecp": ecp.tolist(), "f": f_ref.tolist(),
        "ks_p": float(stats.kstest(nsbi_f, "uniform", method="asymp").pvalue),
        "low": low.tolist(), "high": high.tolist(), "sbc_p": sbc_p,
    }, sys.stdout)


if __name__ == "__main__":
    main()
