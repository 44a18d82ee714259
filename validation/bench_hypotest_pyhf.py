"""Toy-based hypothesis tests, nsbi against pyhf, in one run, one core each (issue 15,
`make bench-hypotest`).

    bench_hypotest_pyhf.py [--nsbi target/release/nsbi] [--toys 200] [--large-toys 2]
                           [--nsbi-large-toys 200] [--optimizer scipy|minuit] [--pyhf-only]
                           [--cases small realistic]
                           [--out target/hypotest-bench/summary.json]

Two binned models, each as a pyhf JSON workspace that both programs read:
  - small: tests/fixtures/binned/simple_uncorrelated.json (3 bins, normfactor + shapesys), POI
    `mu` tested at 1.5, `--toys` toys per hypothesis for both programs;
  - realistic: the workspace `validation/make_pyhf_workspace.py` writes (10 channels of 20 bins,
    143 parameters; target/hypotest-bench/workspace.json), POI `mu` at 1.0. A pyhf fit of it
    takes tens of seconds, so pyhf runs `--large-toys` toys per hypothesis there and nsbi
    `--nsbi-large-toys`; each rate is per toy.
pyhf 0.7.6: `pyhf.infer.hypotest(value, data, model, calctype="toybased", ntoys=N,
test_stat="qtilde")` with the numpy backend and `--optimizer` (default scipy: pyhf's default
SLSQP at its default tolerance; minuit: tolerance 0.1, strategy 1), seeded with
`np.random.seed(1)`. Each toy is two fits (μ fixed, μ free); the calculator draws N toys under
s+b and N under b, so one hypotest runs 2N toys (plus three fits to the data). nsbi:
`nsbi hypotest WS.json --poi mu --value V --calculator toys --toys N --seed 1 --json OUT`.
The rate is toys per second = 2N / (wall time of the whole hypotest), each program on one core
(also per CPU second, the fairer figure on a shared machine):
OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=RAYON_NUM_THREADS=1, OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset. Written: target/hypotest-bench/summary.json (both rates, the ratio
nsbi/pyhf, and each program's CLs with its toy-statistics error).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# numpy reads these at import: drop the machine's settings and keep BLAS on one core.
_CLEAN = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
_CLEAN.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", RAYON_NUM_THREADS="1")
if any(os.environ.get(k) != _CLEAN.get(k) for k in set(os.environ) | set(_CLEAN)) and not os.environ.get("BENCH_HYPOTEST_CHILD"):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**_CLEAN, "BENCH_HYPOTEST_CHILD": "1"})

import logging  # noqa: E402

import numpy as np  # noqa: E402
import pyhf  # noqa: E402

logging.getLogger("pyhf").setLevel(logging.ERROR)


def _percentile(self, tensor_in, q, axis=None, interpolation="linear"):
    """pyhf 0.7.6's numpy_backend.percentile passes `interpolation=`, which numpy 2 removed
    (renamed `method=`, same meaning): the toy calculator's expected set needs it."""
    return np.percentile(tensor_in, q, axis=axis, method=interpolation)


pyhf.tensor.numpy_backend.percentile = _percentile  # (the class pyhf.set_backend("numpy") instantiates)
ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests/fixtures/binned/simple_uncorrelated.json"
SEED = 1


def binomial_cls_error(clsb, clb, ntoys):
    """CLs's toy-statistics error from the binomial errors of CLs+b and CLb (independent sets)."""
    if clsb <= 0 or clb <= 0:
        return float("nan")
    var_sb, var_b = clsb * (1 - clsb) / ntoys, clb * (1 - clb) / ntoys
    return float(clsb / clb * np.sqrt(var_sb / clsb**2 + var_b / clb**2))


def pyhf_hypotest(path, poi, value, ntoys, optimizer):
    """pyhf's toy-based hypotest on the workspace at `path`: its numbers and the wall time."""
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer() if optimizer == "minuit" else pyhf.optimize.scipy_optimizer())
    workspace = pyhf.Workspace(json.loads(Path(path).read_text()))
    model = workspace.model()
    if model.config.poi_name != poi:
        sys.exit(f"{path}: the measurement's POI is {model.config.poi_name!r}, not {poi!r}")
    data = workspace.data(model)
    np.random.seed(SEED)
    start, cpu_start = time.perf_counter(), time.process_time()
    cls, (clsb, clb), expected = pyhf.infer.hypotest(
        value, data, model, calctype="toybased", ntoys=ntoys, test_stat="qtilde", track_progress=False,
        return_tail_probs=True, return_expected_set=True)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    clsb, clb = float(clsb), float(clb)
    return {
        "toys_per_hypothesis": ntoys, "seconds": seconds, "toys_per_second": 2 * ntoys / seconds,
        "cpu_seconds": cpu_seconds, "toys_per_cpu_second": 2 * ntoys / cpu_seconds,
        "cls": {"observed": float(cls), "expected": [float(v) for v in expected],
                "error": binomial_cls_error(clsb, clb, ntoys)},
        "clsb": clsb, "clb": clb, "parameters": model.config.npars, "bins": model.config.nmaindata,
    }


def nsbi_missing(nsbi):
    """Why `nsbi hypotest` cannot run (None when it can)."""
    if not Path(nsbi).exists():
        return f"{nsbi} does not exist: build it (`cargo build --release`) or pass --nsbi PATH"
    out = subprocess.run([nsbi, "hypotest", "--help"], capture_output=True, text=True)
    if out.returncode != 0:
        return (f"{nsbi} has no `hypotest` command (issue 15; `{nsbi} hypotest --help` said: "
                f"{(out.stderr or out.stdout).strip().splitlines()[0] if (out.stderr or out.stdout).strip() else out.returncode}): "
                "build a version that has it, or pass --pyhf-only")
    return None


def nsbi_hypotest(nsbi, path, poi, value, ntoys, out_dir):
    out = Path(out_dir) / f"nsbi_{Path(path).stem}.json"
    command = [nsbi, "hypotest", str(path), "--poi", poi, "--value", repr(value), "--calculator", "toys",
               "--toys", str(ntoys), "--seed", str(SEED), "--json", str(out)]
    start, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run(command, capture_output=True, text=True, env=_CLEAN)
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    if run.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed (exit {run.returncode}): {run.stderr.strip()}")
    result = json.loads(out.read_text())
    clsb, clb = float(result["clsb"]), float(result["clb"])
    return {
        "command": " ".join(command), "toys_per_hypothesis": ntoys, "seconds": seconds,
        "toys_per_second": 2 * ntoys / seconds, "cpu_seconds": cpu_seconds,
        "toys_per_cpu_second": 2 * ntoys / cpu_seconds,
        "cls": {"observed": float(result["cls"]["observed"]), "expected": result["cls"]["expected"],
                "error": binomial_cls_error(clsb, clb, ntoys)},
        "clsb": clsb, "clb": clb,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nsbi", default=str(ROOT / "target/release/nsbi"))
    parser.add_argument("--toys", type=int, default=200, help="toys per hypothesis on the small model (both)")
    parser.add_argument("--large-toys", type=int, default=2, help="pyhf's toys per hypothesis on the realistic model")
    parser.add_argument("--nsbi-large-toys", type=int, default=200, help="nsbi's toys per hypothesis on the realistic model")
    parser.add_argument("--optimizer", choices=["scipy", "minuit"], default="scipy")
    parser.add_argument("--pyhf-only", action="store_true", help="skip nsbi (e.g. before `nsbi hypotest` exists)")
    parser.add_argument("--cases", nargs="+", choices=["small", "realistic"], default=["small", "realistic"])
    parser.add_argument("--out", default=str(ROOT / "target/hypotest-bench/summary.json"))
    args = parser.parse_args()
    out_dir = Path(args.out).parent
    out_dir.mkdir(parents=True, exist_ok=True)

    missing = None if args.pyhf_only else nsbi_missing(args.nsbi)
    if missing:
        print(f"warning: {missing}; running pyhf's half only", file=sys.stderr, flush=True)
    realistic = out_dir / "workspace.json"
    if "realistic" in args.cases and not realistic.exists():
        subprocess.run([sys.executable, str(ROOT / "validation/make_pyhf_workspace.py"), str(realistic)], check=True)

    cases = {"small": (SMALL, "mu", 1.5, args.toys, args.toys),
             "realistic": (realistic, "mu", 1.0, args.large_toys, args.nsbi_large_toys)}
    summary = {"pyhf_version": pyhf.__version__, "optimizer": args.optimizer, "seed": SEED, "test_stat": "qtilde",
               "rate": "toys per second = 2N / wall time of one hypotest (N toys under s+b and N under b)",
               "one_core": {k: _CLEAN[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")},
               "cases": {}}
    for name, (path, poi, value, pyhf_toys, nsbi_toys) in cases.items():
        if name not in args.cases:
            continue
        case = {"workspace": str(Path(path).relative_to(ROOT)) if Path(path).is_relative_to(ROOT) else str(path),
                "poi": poi, "value": value}
        case["pyhf"] = pyhf_hypotest(path, poi, value, pyhf_toys, args.optimizer)
        print(f"{name}: pyhf {case['pyhf']['toys_per_second']:.3g} toys/s, {case['pyhf']['toys_per_cpu_second']:.3g} "
              f"per CPU second ({2 * pyhf_toys} toys in {case['pyhf']['seconds']:.1f} s), CLs {case['pyhf']['cls']['observed']:.4f} ± {case['pyhf']['cls']['error']:.4f}",
              flush=True)
        if not args.pyhf_only and not missing:
            case["nsbi"] = nsbi_hypotest(args.nsbi, path, poi, value, nsbi_toys, out_dir)
            case["ratio_toys_per_second_nsbi_over_pyhf"] = case["nsbi"]["toys_per_second"] / case["pyhf"]["toys_per_second"]
            case["ratio_toys_per_cpu_second_nsbi_over_pyhf"] = (
                case["nsbi"]["toys_per_cpu_second"] / case["pyhf"]["toys_per_cpu_second"])
            print(f"{name}: nsbi {case['nsbi']['toys_per_second']:.3g} toys/s, {case['nsbi']['toys_per_cpu_second']:.3g} "
                  f"per CPU second ({2 * nsbi_toys} toys in {case['nsbi']['seconds']:.1f} s), CLs {case['nsbi']['cls']['observed']:.4f} ± {case['nsbi']['cls']['error']:.4f}; "
                  f"ratio nsbi/pyhf {case['ratio_toys_per_second_nsbi_over_pyhf']:.3g}", flush=True)
        summary["cases"][name] = case
    if missing:
        summary["nsbi_error"] = missing
    temporary = Path(args.out).with_suffix(".json.tmp")
    temporary.write_text(json.dumps(summary, indent=1) + "\n")
    temporary.replace(args.out)
    print(f"wrote {args.out}")
    if missing:
        print(f"error: nsbi's half did not run: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
