#!/usr/bin/env python3
"""Where the linear (O(1/Λ²)) truncation of the SMEFT toy (workspace_linear.yaml) is not a
density, from the closed form alone (smeft_truth.py; no engine code): on the 13 x 13 grid of
[-3, 3]² (step 0.5), whether the intensity Σ_b w_b(c) ν_b p_b(x) is ≤ 0 at some observed event,
and the first event of the pooled MC (the samples of SM, L1, L2, Q1, Q2 in turn, as the
workspace lists its processes) where it is < 0. The luminosity nuisance scales every yield by
the same positive factor, so neither depends on it.

Usage: smeft_positivity.py [--workspace workspaces/smeft_toy]
Prints one JSON object: {"points": [[c1, c2], ...], "observed_negative": [bool, ...],
"pool_first_negative": [index or null, ...]}.
"""
import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smeft_truth as T  # noqa: E402

LINEAR_PROCESSES = ["SM", "L1", "L2", "Q1", "Q2"]


def events(path):
    with h5py.File(path, "r") as f:
        g = f["events"]
        return np.column_stack([g[name][...] for name in T.FEATURES]).astype(np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default=str(Path(__file__).resolve().parent.parent / "workspaces/smeft_toy"))
    args = ap.parse_args()
    data = Path(args.workspace) / "data"
    observed = events(data / "observed.h5")
    pool = np.concatenate([events(data / f"mc_{b}.h5") for b in LINEAR_PROCESSES])
    grid = np.linspace(-3.0, 3.0, 13).tolist()
    points, observed_negative, first = [], [], []
    for c1 in grid:
        for c2 in grid:
            points.append([c1, c2])
            observed_negative.append(bool(np.any(T.intensity(c1, c2, observed, linear=True) <= 0.0)))
            negative = np.flatnonzero(T.intensity(c1, c2, pool, linear=True) < 0.0)
            first.append(int(negative[0]) if len(negative) else None)
    print(json.dumps({"points": points, "observed_negative": observed_negative,
                      "pool_first_negative": first}))


if __name__ == "__main__":
    main()
