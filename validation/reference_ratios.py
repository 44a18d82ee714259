"""Independent reference for the engine's ratio evaluation: onnxruntime's Python API and numpy,
following the documented definitions (DESIGN.md §3), or the closed-form toy truth.

Network mode:
    reference_ratios.py --models M1.onnx [M2.onnx ...] --output NAME --column C
        --convention {score,logit,log_ratio,ratio} --aggregation {mean_ratio,mean_logit,median_score}
        [--standardisation FILE.json] --events FILE.h5 [--group events]
        --features m4l,cos_theta1,cos_theta2 [--first N] --out OUT.json
Closed-form mode (offshell_toy only):
    reference_ratios.py --exact {S,SBI,B,B_shape_up,B_shape_down} --events ... --out OUT.json

Definitions: features are float32 columns in the given order; standardised inputs are
float32((float64(x) - mean) / std); per member, y (as float64) becomes r by score: y/(1-y),
logit and log_ratio: exp(y), ratio: y; members combine by mean_ratio: mean r, mean_logit:
exp(mean ln r), median_score: s = median(r/(1+r)), r = s/(1-s). The spread is the sample standard
deviation (ddof=1) of the members' r. Writes {"ratio": [...], "spread": [...], "n_members": k}.
"""
import argparse
import json
import pathlib
import sys

import h5py
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def read_features(path, group, features, first):
    with h5py.File(path, "r") as f:
        cols = [np.asarray(f[group][c][:first] if first else f[group][c][:], dtype=np.float32) for c in features]
    return np.stack(cols, axis=1)


def member_ratio(model, x, output, column, convention):
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    y = session.run([output], {session.get_inputs()[0].name: x})[0]
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2:
        y = y[:, column]
    if convention == "score":
        return y / (1.0 - y)
    if convention in ("logit", "log_ratio"):
        return np.exp(y)
    return y


def aggregate(ratios, how):
    if how == "mean_ratio":
        return ratios.mean(axis=0)
    if how == "mean_logit":
        return np.exp(np.log(ratios).mean(axis=0))
    scores = np.median(ratios / (1.0 + ratios), axis=0)
    return scores / (1.0 - scores)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+")
    p.add_argument("--output")
    p.add_argument("--column", type=int, default=0)
    p.add_argument("--convention", choices=["score", "logit", "log_ratio", "ratio"])
    p.add_argument("--aggregation", choices=["mean_ratio", "mean_logit", "median_score"], default="mean_ratio")
    p.add_argument("--standardisation")
    p.add_argument("--exact", choices=["S", "SBI", "B", "B_shape_up", "B_shape_down"])
    p.add_argument("--events", required=True)
    p.add_argument("--group", default="events")
    p.add_argument("--features", default="m4l,cos_theta1,cos_theta2")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    x = read_features(a.events, a.group, a.features.split(","), a.first)
    if a.exact:
        import offshell_truth

        ratio = offshell_truth.ratio(a.exact, x.astype(np.float64))
        spread, n = np.zeros_like(ratio), 1
    else:
        if not (a.models and a.output and a.convention):
            p.error("network mode needs --models, --output and --convention")
        if a.standardisation:
            s = json.load(open(a.standardisation))
            x = ((x.astype(np.float64) - np.array(s["mean"])) / np.array(s["std"])).astype(np.float32)
        members = np.array([member_ratio(m, x, a.output, a.column, a.convention) for m in a.models])
        ratio = aggregate(members, a.aggregation)
        spread = members.std(axis=0, ddof=1) if len(members) > 1 else np.zeros_like(ratio)
        n = len(members)
    with open(a.out, "w") as f:
        json.dump({"ratio": [float(v) for v in ratio], "spread": [float(v) for v in spread], "n_members": n}, f)


if __name__ == "__main__":
    main()
