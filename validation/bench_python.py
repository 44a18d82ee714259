"""Throughput of the Python package against the engine, in one run (issue 17, Performance):

1. toys: ``Workspace.toys`` against ``nsbi toys`` on the same grid, toys, seed and one thread,
   alternated, best of ``--repeat`` (wall time of the whole call: workspace, ratios from the
   cache, the observed fits and the toys; the CLI's includes its process start);
2. user-side minimisation: iminuit's MIGRAD on ``Likelihood.nll`` (with ``grad``) against the
   engine's own fit (``Workspace.fit(minos=False)``) on the same observed data, one thread:
   time per likelihood evaluation of each, best of ``--repeat``; the per-call cost of ``nll``,
   ``grad`` and ``hessian`` from Python (timeit, best of 5), and of ``nll`` from Rust
   (``examples/nll_call.rs``, built with ``cargo build --release --example nll_call``).

Prints one JSON object (the numbers in the README's Python section).

    .venv/bin/python validation/bench_python.py [--toys 100] [--repeat 3]
"""

import argparse
import json
import re
import subprocess
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

import nsbi

ROOT = Path(__file__).resolve().parents[1]


def best_of(repeat, call):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def toys(args, workspace, cache):
    grid = "0.6:1.4:0.2"
    n_grid = 5
    with tempfile.TemporaryDirectory() as tmp:
        cli_out, py_out = Path(tmp) / "cli.h5", Path(tmp) / "py.h5"
        command = [str(args.nsbi), "toys", str(workspace), "--mu-grid", grid, "--toys",
                   str(args.toys), "--seed", "1", "--threads", "1", "--out", str(cli_out),
                   "--cache-dir", str(cache)]
        ws = nsbi.Workspace.load(workspace, cache_dir=cache, threads=1)
        cli_times, py_times = [], []
        for _ in range(args.repeat):
            cli_times.append(best_of(1, lambda: subprocess.run(command, check=True,
                                                              capture_output=True)))
            py_times.append(best_of(1, lambda: ws.toys(grid, args.toys, py_out, seed=1)))
        _, a = nsbi.read_toys(cli_out)
        _, b = nsbi.read_toys(py_out)
        same = bool(np.array_equal(np.asarray(a["t"]), np.asarray(b["t"])))
    n = n_grid * args.toys
    return {
        "grid": grid, "toys_per_point": args.toys, "threads": 1, "repeat": args.repeat,
        "cli_seconds": min(cli_times), "python_seconds": min(py_times),
        "cli_toys_per_second": n / min(cli_times), "python_toys_per_second": n / min(py_times),
        "python_over_cli": min(cli_times) / min(py_times),
        "identical_t": same,
    }


def minimisation(args, workspace, cache):
    from iminuit import Minuit

    ws = nsbi.Workspace.load(workspace, cache_dir=cache, threads=1)
    like = ws.likelihood()
    fit = ws.fit(minos=False)  # loads the ratios: not timed below
    engine = best_of(args.repeat, lambda: ws.fit(minos=False))
    counts = fit.status["evaluations"]

    def migrad():
        m = Minuit(like.nll, like.init, grad=like.grad, name=like.parameter_names)
        m.errordef = Minuit.LIKELIHOOD
        m.limits = [tuple(b) for b in like.bounds]
        m.migrad()
        return m

    m = migrad()
    minuit = best_of(args.repeat, migrad)
    calls = m.nfcn + m.ngrad
    theta = like.init
    per_call = {}
    for name, number in [("nll", 2000), ("grad", 2000), ("hessian", 200)]:
        f = getattr(like, name)
        per_call[name] = min(timeit.repeat(lambda: f(theta), number=number, repeat=5)) / number
    rust = None
    if args.nll_call.is_file():
        done = subprocess.run([str(args.nll_call), str(workspace)], check=True,
                              capture_output=True, text=True)
        rust = float(re.search(r"([0-9.]+) µs per call", done.stdout).group(1)) * 1e-6
    return {
        "engine_fit_seconds": engine, "engine_evaluations": counts,
        "engine_seconds_per_evaluation": engine / fit.status["n_eval"],
        "iminuit_seconds": minuit, "iminuit_nfcn": m.nfcn, "iminuit_ngrad": m.ngrad,
        "iminuit_seconds_per_call": minuit / calls,
        "python_nll_call_seconds": per_call["nll"], "python_grad_call_seconds": per_call["grad"],
        "python_hessian_call_seconds": per_call["hessian"], "rust_nll_call_seconds": rust,
        "mu": {"iminuit": m.values["mu"], "engine": fit.values["mu"]},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path,
                        default=ROOT / "workspaces/offshell_toy/workspace_exact.yaml")
    parser.add_argument("--nsbi", type=Path, default=ROOT / "target/release/nsbi")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "target/bench-python-cache")
    parser.add_argument("--nll-call", type=Path, default=ROOT / "target/release/examples/nll_call")
    parser.add_argument("--toys", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    # The ratio cache first, so neither side evaluates networks in the timings.
    subprocess.run([str(args.nsbi), "ratios", str(args.workspace), "--quiet", "--cache-dir",
                    str(args.cache_dir)], check=True, capture_output=True)
    result = {
        "toys": toys(args, args.workspace, args.cache_dir),
        "minimisation": minimisation(args, args.workspace, args.cache_dir),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
