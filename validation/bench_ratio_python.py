"""Baseline for benches/ratio_eval.rs: the same ensemble on the same events with the ONNX
Runtime Python API, the way an analysis script does it (standardise with numpy, run every
member, combine with numpy). Prints JSON {"events_per_s": best over repeats, ...}.

Both ways of calling ORT are timed — the whole array in one call, and 1024-event batches —
and the faster is reported, so the baseline is Python's best, not a strawman.
"""
import argparse
import json
import time

import h5py
import numpy as np
import onnxruntime as ort


def load_events(path, group, features, n):
    with h5py.File(path, "r") as f:
        return np.stack([f[group][c][:n] for c in features], axis=1).astype(np.float32)


def ensemble_ratio(sessions, x, output, column, batch):
    ratios = []
    for s in sessions:
        if batch:
            parts = [s.run([output], {s.get_inputs()[0].name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
            y = np.concatenate(parts)
        else:
            y = s.run([output], {s.get_inputs()[0].name: x})[0]
        y = y[:, column].astype(np.float64) if y.ndim == 2 else y.astype(np.float64)
        ratios.append(y / (1.0 - y))
    ratios = np.array(ratios)
    return ratios.mean(axis=0), ratios.std(axis=0, ddof=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--standardisation")
    p.add_argument("--events", required=True)
    p.add_argument("--group", default="events")
    p.add_argument("--features", default="m4l,cos_theta1,cos_theta2")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--output", default="probabilities")
    p.add_argument("--column", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: ORT default, all cores)")
    p.add_argument("--repeat", type=int, default=10)
    a = p.parse_args()

    raw = load_events(a.events, a.group, a.features.split(","), a.n)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    sessions = [ort.InferenceSession(m, opts, providers=["CPUExecutionProvider"]) for m in a.models]
    std = json.load(open(a.standardisation)) if a.standardisation else None

    def once(batch):
        x = raw
        if std:
            x = ((raw.astype(np.float64) - np.array(std["mean"])) / np.array(std["std"])).astype(np.float32)
        return ensemble_ratio(sessions, x, a.output, a.column, batch)

    best = {}
    for batch in (0, 1024):
        once(batch)  # warm-up
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            once(batch)
            times.append(time.perf_counter() - t0)
        best["whole_array" if batch == 0 else "batch_1024"] = len(raw) / min(times)
    print(json.dumps({"events_per_s": max(best.values()), "by_call_style": best,
                      "n_events": len(raw), "n_members": len(sessions), "threads": a.threads}))


if __name__ == "__main__":
    main()
