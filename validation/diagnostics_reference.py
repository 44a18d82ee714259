#!/usr/bin/env python3
"""Independent recomputation of three numbers of `nsbi calibrate` and `nsbi closure` on the
example workspace with exact-ratio models (workspace_exact.yaml), with numpy/scipy and
onnxruntime only (no engine code):

  calibration  ECE, chi2, ndf and p-value of the reliability curve of r_S (mc_S vs mc_ref),
               20 equal bins of s = r/(1+r) over the range of the predictions, classes
               balanced, error per bin sqrt(sum_1 w^2 (1-s)^2 + sum_0 w^2 s^2) / W, bins with
               fewer than 20 effective entries left out;
  closure_S    chi2 and p-value of mc_ref reweighted by r_S (scaled to the S yield) against
               mc_S in cos_theta1, in the bin edges the engine reports;
  closure_mu   chi2 and p-value of the SBI sample (the mu=1 mixture) reweighted by
               sum_c f_c(mu) nu_c r_c(x) / (nu_SBI r_SBI(x)) against the mixture at mu = 1.7
               with weights f_c(mu) w, in m4l, in the engine's bin edges; per bin the error is
               sqrt(sum (t - u)^2) over the pooled events.

Usage: diagnostics_reference.py --example DIR --closure closure.json
Prints one JSON object with the recomputed numbers.
"""
import argparse
import json
import pathlib

import h5py
import numpy as np
import onnxruntime as ort
from scipy.stats import chi2 as chi2_dist

FEATURES = ["m4l", "cos_theta1", "cos_theta2"]
MIN_EFFECTIVE_ENTRIES = 20.0


def events(path):
    with h5py.File(path, "r") as f:
        g = f["events"]
        x = np.stack([g[c][:].astype(np.float32) for c in FEATURES], axis=1)
        return x, g["weight"][:].astype(np.float64)


def exact_ratio(example, name, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(str(example / "models" / name / "exact.onnx"), so,
                                   providers=["CPUExecutionProvider"])
    return session.run(["ratio"], {"x": x})[0][:, 0].astype(np.float64)


def reliability(s1, w1, s0, w0, bins=20):
    w1 = w1 / w1.sum()
    w0 = w0 / w0.sum()
    lo = min(s1.min(), s0.min())
    hi = max(s1.max(), s0.max())

    def bin_of(s):
        return np.clip(np.floor((s - lo) / (hi - lo) * bins), 0, bins - 1).astype(int)

    b1, b0 = bin_of(s1), bin_of(s0)
    W1 = np.bincount(b1, w1, bins)
    W0 = np.bincount(b0, w0, bins)
    W = W1 + W0
    ws = np.bincount(b1, w1 * s1, bins) + np.bincount(b0, w0 * s0, bins)
    w2 = np.bincount(b1, w1**2, bins) + np.bincount(b0, w0**2, bins)
    res2 = np.bincount(b1, (w1 * (1 - s1)) ** 2, bins) + np.bincount(b0, (w0 * s0) ** 2, bins)
    filled = W > 0
    predicted = np.where(filled, ws / np.where(filled, W, 1), np.nan)
    observed = np.where(filled, W1 / np.where(filled, W, 1), np.nan)
    error = np.sqrt(res2) / np.where(filled, W, 1)
    n_eff = np.where(w2 > 0, W**2 / np.where(w2 > 0, w2, 1), 0)
    used = filled & (error > 0) & (n_eff >= MIN_EFFECTIVE_ENTRIES)
    pulls = (observed[used] - predicted[used]) / error[used]
    ece = np.sum(W[filled] * np.abs(observed[filled] - predicted[filled])) / W[filled].sum()
    chi2 = float(np.sum(pulls**2))
    ndf = int(used.sum())
    return {"ece": float(ece), "chi2": chi2, "ndf": ndf, "p_value": float(chi2_dist.sf(chi2, ndf)),
            "low": float(lo), "high": float(hi)}


def compare(edges, x, t, u):
    edges = np.asarray(edges)
    n = len(edges) - 1
    inside = (x >= edges[0]) & (x <= edges[-1])
    b = np.clip(np.searchsorted(edges, x[inside], side="right") - 1, 0, n - 1)
    t, u = t[inside], u[inside]
    diff = np.bincount(b, t, n) - np.bincount(b, u, n)
    var = np.bincount(b, (t - u) ** 2, n)
    used = var > 0
    chi2 = float(np.sum(diff[used] ** 2 / var[used]))
    ndf = int(used.sum())
    return {"chi2": chi2, "ndf": ndf, "p_value": float(chi2_dist.sf(chi2, ndf))}


def feature_of(report, test, feature):
    t = next(t for t in report["tests"] if t["name"] == test)
    return next(f for f in t["features"] if f["feature"] == feature)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", required=True)
    ap.add_argument("--closure", required=True, help="closure.json of the engine (for bin edges)")
    args = ap.parse_args()
    example = pathlib.Path(args.example)
    report = json.loads(pathlib.Path(args.closure).read_text())
    data = {name: events(example / "data" / f"mc_{name}.h5") for name in ["S", "SBI", "B", "ref"]}

    xS, wS = data["S"]
    xR, wR = data["ref"]
    r_S_on_S = exact_ratio(example, "S", xS)
    r_S_on_ref = exact_ratio(example, "S", xR)
    calibration = reliability(1 / (1 + 1 / r_S_on_S), wS, 1 / (1 + 1 / r_S_on_ref), wR)

    j = FEATURES.index("cos_theta1")
    x = np.concatenate([xS[:, j], xR[:, j]]).astype(np.float64)
    t = np.concatenate([wS, np.zeros_like(wR)])
    u = np.concatenate([np.zeros_like(wS), wR * (wS.sum() / wR.sum()) * r_S_on_ref])
    closure_s = compare(feature_of(report, "SR/S", "cos_theta1")["edges"], x, t, u)

    mu = 1.7
    f = {"S": mu - np.sqrt(mu), "SBI": np.sqrt(mu), "B": 1 - np.sqrt(mu)}
    nu = {c: data[c][1].sum() for c in f}
    xs, ts, us = [], [], []
    for c in ["S", "SBI", "B"]:
        xc, wc = data[c]
        r = {k: exact_ratio(example, k, xc) for k in f}
        mixture = sum(f[k] * nu[k] * r[k] for k in f)
        xs.append(xc[:, FEATURES.index("m4l")].astype(np.float64))
        ts.append(wc * f[c])
        us.append(wc * mixture / (nu["SBI"] * r["SBI"]) if c == "SBI" else np.zeros_like(wc))
    closure_mu = compare(feature_of(report, "SR/mu=1.7", "m4l")["edges"],
                         np.concatenate(xs), np.concatenate(ts), np.concatenate(us))

    print(json.dumps({"calibration_S": calibration, "closure_S_cos_theta1": closure_s,
                      "closure_mu_1.7_m4l": closure_mu}, indent=1))


if __name__ == "__main__":
    main()
