#!/usr/bin/env python3
"""Independent recomputation of `nsbi closure --at c1=…,c2=…` on the SMEFT toy with exact
ratios (workspace_exact.yaml), from the closed form (smeft_truth.py; no engine code, no ONNX):
for each parameter-point test `SR/c1=A,c2=B` of the engine's closure.json, the MC mixture at
the reference point c = (0, 0) — the SM sample alone — reweighted event by event by
D_c(x) / D_0(x), D_c = Σ_b w_b(c) ν_b r_b(x), against the mixture at c, whose events carry
w_b(c) times their MC weight (negative where w_b(c) is); per feature the χ², ndf and p-value
in the engine's bin edges, the error per bin sqrt(Σ (t − u)²) over the pooled events.

Usage: smeft_closure_reference.py --closure closure.json [--workspace workspaces/smeft_toy]
Prints one JSON object: {test name: {feature: {"chi2", "ndf", "p_value"}}}.
"""
import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smeft_truth as T  # noqa: E402
from diagnostics_reference import compare  # noqa: E402


def sample(path):
    """Features as the engine reads them (float32) and the MC weights."""
    with h5py.File(path, "r") as f:
        g = f["events"]
        x = np.column_stack([g[name][...] for name in T.FEATURES]).astype(np.float32)
        return x.astype(np.float64), g["weight"][...].astype(np.float64)


def point_of(name):
    """`SR/c1=0.5,c2=-0.3` → (0.5, -0.3)."""
    values = dict(item.split("=") for item in name.split("/", 1)[1].split(","))
    return float(values.get("c1", 0.0)), float(values.get("c2", 0.0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--closure", required=True)
    ap.add_argument("--workspace", default=str(Path(__file__).resolve().parent.parent / "workspaces/smeft_toy"))
    args = ap.parse_args()
    report = json.loads(Path(args.closure).read_text())
    data = Path(args.workspace) / "data"
    samples = [sample(data / f"mc_{b}.h5") for b in T.PROCESSES]
    nu = np.array([w.sum() for _, w in samples])
    x = np.concatenate([s[0] for s in samples])
    weight = np.concatenate([s[1] for s in samples])
    process = np.concatenate([np.full(len(w), k) for k, (_, w) in enumerate(samples)])
    ratios = np.array([T.ratio(b, x) for b in T.PROCESSES])  # [6, N]
    out = {}
    for test in report["tests"]:
        if "c1=" not in test["name"] and "c2=" not in test["name"]:
            continue
        c1, c2 = point_of(test["name"])
        w_c, w_0 = T.weights(c1, c2), T.weights(0.0, 0.0)
        target = weight * w_c[process]
        reference = weight * w_0[process]
        d_c, d_0 = (w_c * nu) @ ratios, (w_0 * nu) @ ratios
        reweighted = np.where(reference != 0.0, reference * d_c / np.where(d_0 > 0, d_0, 1.0), 0.0)
        out[test["name"]] = {
            f["feature"]: compare(f["edges"], x[:, T.FEATURES.index(f["feature"])], target, reweighted)
            for f in test["features"]
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
