"""Binned benchmark of issue 14: nsbi's binned engine against pyhf on the same workspace, in one
run, each on one core (`make bench-pyhf`).

    bench_pyhf.py [--workspace target/pyhf-bench/workspace.json]
                  [--nsbi target/release/examples/binned_bench] [--toys 2] [--nsbi-toys 200]
                  [--out target/pyhf-bench/summary.json] [--backend numpy|jax]

The workspace is written by `validation/make_pyhf_workspace.py` when missing. pyhf 0.7.6 with
the numpy backend (or jax: `--backend jax`, `make bench-pyhf-jax`) and the minuit optimizer
(iminuit), at its defaults (tolerance 0.1, strategy
1 without a gradient, Hesse after Migrad: what `pyhf.infer.mle.fit` does); numpy without
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE and with one BLAS thread. Measured:
  - one NLL evaluation (`model.logpdf`); pyhf's numpy backend has no gradient, so Minuit
    differentiates numerically: its evaluations per fit are reported (with jax, Minuit gets
    jax's gradient, and the times are after a first, compiling, fit: the time that first fit
    took is reported apart);
  - the full MLE fit of the observed data with uncertainties;
  - toys: `model.make_pdf(init).sample()` then the fit, per toy (sample + fit).
nsbi's side runs `examples/binned_bench.rs`: the binned engine alone (NLL value, + gradient,
+ Hessian, the Newton fit with Hessian errors, toys from `BinnedModel::sample_into` at the same
point), and the same through the path `nsbi fit` / `nsbi toys` take (the general likelihood
over every channel kind, `fit_with_intervals` without MINOS, toys from `ToySource` each fitted
with the fit's options): the ratios are the general path's. The two best fits
are compared: |Δθ|/σ per parameter with σ pyhf's, against pyhf's default fit and against a
polished Minuit fit started at it (tolerance 1e-8, i.e. EDM < 2e-11).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# numpy reads these at import: drop them (the machine's settings) and keep BLAS on one core.
_CLEAN = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
_CLEAN.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
if any(os.environ.get(k) != _CLEAN.get(k) for k in set(os.environ) | set(_CLEAN)) and not os.environ.get("BENCH_PYHF_CHILD"):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**_CLEAN, "BENCH_PYHF_CHILD": "1"})

import iminuit  # noqa: E402
import numpy as np  # noqa: E402
import pyhf  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def seconds_per_call(f, budget=1.0):
    """Median over batches of f's time per call."""
    start = time.perf_counter()
    f()
    once = max(time.perf_counter() - start, 1e-7)
    per_batch = max(1, int(budget / 5 / once))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(per_batch):
            f()
        times.append((time.perf_counter() - start) / per_batch)
    return float(np.median(times))


def pyhf_fit(model, data, init=None):
    start = time.perf_counter()
    bestfit, result = pyhf.infer.mle.fit(
        data, model, init_pars=init, return_uncertainties=True, return_result_obj=True
    )
    return time.perf_counter() - start, bestfit, result


def polish(model, logpdf, data, start):
    """Minuit from `start` with a tight tolerance (no Hesse): the minimum to compare with."""
    def twice_nll(x):
        return -2.0 * float(logpdf(pyhf.tensorlib.astensor(x), data)[0])

    minuit = iminuit.Minuit(twice_nll, np.asarray(start, dtype=float), name=model.config.par_names)
    minuit.errordef = 1.0
    minuit.limits = model.config.suggested_bounds()
    minuit.fixed = model.config.suggested_fixed()
    minuit.strategy = 1
    minuit.tol = 1e-8
    minuit.migrad(ncall=200_000)
    return np.asarray(minuit.values), minuit.valid, float(minuit.fmin.edm), int(minuit.nfcn)


def largest_pull(model, reference, errors, nsbi_values):
    """max over free parameters of |θ_nsbi − θ_ref| / σ, and the parameter."""
    worst = (0.0, None)
    for i, name in enumerate(model.config.par_names):
        if model.config.suggested_fixed()[i] or errors[i] <= 0:
            continue
        pull = abs(nsbi_values[name] - reference[i]) / errors[i]
        if pull > worst[0]:
            worst = (float(pull), name)
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", default=str(ROOT / "target/pyhf-bench/workspace.json"))
    parser.add_argument("--nsbi", default=str(ROOT / "target/release/examples/binned_bench"))
    parser.add_argument("--toys", type=int, default=2, help="pyhf toys (each a full fit)")
    parser.add_argument("--nsbi-toys", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "target/pyhf-bench/summary.json"))
    parser.add_argument("--backend", choices=["numpy", "jax"], default="numpy")
    args = parser.parse_args()
    pyhf.set_backend(args.backend, pyhf.optimize.minuit_optimizer())

    if not Path(args.workspace).exists():
        subprocess.run([sys.executable, str(ROOT / "validation/make_pyhf_workspace.py"), args.workspace], check=True)
    workspace = pyhf.Workspace(json.loads(Path(args.workspace).read_text()))
    model = workspace.model()
    data = workspace.data(model)
    init = np.asarray(model.config.suggested_init(), dtype=float)
    print(f"workspace: {len(model.config.channels)} channels, {model.config.nmaindata} bins, "
          f"{len(model.config.samples)} samples, {model.config.npars} parameters", flush=True)

    tensor_init, tensor_data = pyhf.tensorlib.astensor(init), pyhf.tensorlib.astensor(data)
    logpdf = model.logpdf
    if args.backend == "jax":  # pyhf jit-compiles the objective of its fits: time that
        import jax
        logpdf = jax.jit(model.logpdf)
    logpdf_seconds = seconds_per_call(
        lambda: pyhf.tensorlib.tolist(logpdf(tensor_init, tensor_data)))
    print(f"pyhf logpdf: {logpdf_seconds * 1e3:.3f} ms", flush=True)
    first_fit_seconds, bestfit, result = pyhf_fit(model, data)
    if args.backend == "jax":  # the first fit compiled: time a second one
        print(f"pyhf first (compiling) fit: {first_fit_seconds:.2f} s", flush=True)
        fit_seconds, bestfit, result = pyhf_fit(model, data)
    else:
        fit_seconds = first_fit_seconds
    bestfit = np.asarray(bestfit, dtype=float)
    print(f"pyhf fit: {fit_seconds:.2f} s, {result.nfev} evaluations, valid {result.minuit.valid}", flush=True)

    pdf = model.make_pdf(pyhf.tensorlib.astensor(init))
    np.random.seed(14)
    toy_times, toy_failed = [], 0
    for _ in range(args.toys):
        start = time.perf_counter()
        toy = pdf.sample()
        try:
            pyhf_fit(model, toy)
        except Exception:  # a failed toy fit still cost its time
            toy_failed += 1
        toy_times.append(time.perf_counter() - start)
    pyhf_toy_seconds = float(np.mean(toy_times)) if toy_times else float("nan")
    print(f"pyhf toys: {pyhf_toy_seconds:.2f} s per toy ({args.toys} toys, {toy_failed} failed)", flush=True)

    polished, polished_valid, polished_edm, polished_calls = polish(model, logpdf, tensor_data, bestfit[:, 0])
    print(f"polished minuit fit: valid {polished_valid}, EDM {polished_edm:.2e}, {polished_calls} calls", flush=True)

    out = subprocess.run([args.nsbi, args.workspace, str(args.nsbi_toys), "14"], check=True,
                         capture_output=True, text=True)
    nsbi = json.loads(out.stdout)
    nsbi_fit = nsbi["fit"]
    general = nsbi["general"]
    general_fit = general["fit"]

    errors = bestfit[:, 1]
    pull_default = largest_pull(model, bestfit[:, 0], errors, nsbi_fit["parameters"])
    pull_polished = largest_pull(model, polished, errors, nsbi_fit["parameters"])
    error_ratio = max(
        abs(nsbi_fit["errors"][name] / errors[i] - 1.0)
        for i, name in enumerate(model.config.par_names)
        if not model.config.suggested_fixed()[i] and errors[i] > 0
    )
    pyhf_nll = float(result.fun) / 2.0
    # The general path's minimum is the engine's (the same NLL, the same Newton steps).
    general_vs_engine = general["fit"]["nll"] - nsbi_fit["nll"]
    engine_toy = nsbi["toys"]["seconds_per_toy"]
    nsbi_toy = general["toys"]["seconds_per_toy"]
    summary = {
        "workspace": {
            "channels": len(model.config.channels), "bins": model.config.nmaindata,
            "samples": len(model.config.samples), "parameters": model.config.npars,
        },
        "pyhf": {
            "version": pyhf.__version__, "backend": args.backend, "optimizer": "minuit (iminuit "
            + iminuit.__version__ + ", tolerance 0.1, strategy 1, Hesse)",
            "nll_seconds": logpdf_seconds, "fit_seconds": fit_seconds, "first_fit_seconds": first_fit_seconds,
            "fit_evaluations": int(result.nfev), "fit_in_nll_evaluations": fit_seconds / logpdf_seconds,
            "fit_nll": pyhf_nll, "toy_seconds": pyhf_toy_seconds, "toys": args.toys, "toys_failed": toy_failed,
        },
        "nsbi_engine": {
            "nll_seconds": nsbi["nll_value_seconds"], "nll_gradient_seconds": nsbi["nll_gradient_seconds"],
            "nll_hessian_seconds": nsbi["nll_hessian_seconds"], "fit_seconds": nsbi_fit["seconds"],
            "fit_iterations": nsbi_fit["iterations"], "fit_value_evaluations": nsbi_fit["value_evaluations"],
            "fit_hessian_evaluations": nsbi_fit["hessian_evaluations"],
            "fit_in_nll_gradient_evaluations": nsbi_fit["seconds"] / nsbi["nll_gradient_seconds"],
            "fit_nll": nsbi_fit["nll"], "toy_seconds": engine_toy, "toys": nsbi["toys"],
        },
        "nsbi": {
            "path": "general likelihood (nsbi fit --no-minos, nsbi toys' toy source)",
            "nll_seconds": general["nll_value_seconds"],
            "nll_gradient_seconds": general["nll_gradient_seconds"],
            "nll_hessian_seconds": general["nll_hessian_seconds"], "fit_seconds": general_fit["seconds"],
            "fit": general_fit,
            "fit_in_nll_gradient_evaluations": general_fit["seconds"] / general["nll_gradient_seconds"],
            "toy_seconds": nsbi_toy, "toys": general["toys"],
            "toy_in_nll_gradient_evaluations": nsbi_toy / general["nll_gradient_seconds"],
        },
        "ratios": {
            "nll_value": logpdf_seconds / general["nll_value_seconds"],
            "fit": fit_seconds / general_fit["seconds"],
            "toys_per_second": pyhf_toy_seconds / nsbi_toy,
            "engine_fit": fit_seconds / nsbi_fit["seconds"],
            "engine_toys_per_second": pyhf_toy_seconds / engine_toy,
        },
        "agreement": {
            "nll_nsbi_minus_pyhf": nsbi_fit["nll"] - pyhf_nll,
            "nll_general_minus_engine": general_vs_engine,
            "max_pull_vs_pyhf_default_fit": pull_default,
            "polished_fit": {"valid": polished_valid, "edm": polished_edm, "calls": polished_calls},
            "max_pull_vs_polished_fit": pull_polished,
            "max_relative_error_difference": error_ratio,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")

    w = summary["workspace"]
    g, gf = general, general_fit
    print(f"\n{w['channels']} channels, {w['bins']} bins, {w['samples']} samples, {w['parameters']} parameters; one core each, same run")
    print(f"{'':34s}{f'pyhf ({args.backend}, minuit)':>22s}{'nsbi':>14s}{'ratio':>10s}   (nsbi through the general likelihood)")
    print(f"{'NLL value':34s}{logpdf_seconds * 1e3:>19.3f} ms{g['nll_value_seconds'] * 1e3:>11.4f} ms{summary['ratios']['nll_value']:>9.0f}×")
    gradient = "(numerical)" if args.backend == "numpy" else "(autodiff)"
    print(f"{'NLL value + gradient':34s}{gradient:>22s}{g['nll_gradient_seconds'] * 1e3:>11.4f} ms")
    print(f"{'NLL value + gradient + Hessian':34s}{'(numerical)':>22s}{g['nll_hessian_seconds'] * 1e3:>11.4f} ms")
    print(f"{'full MLE fit (with errors)':34s}{fit_seconds:>20.2f} s{gf['seconds'] * 1e3:>11.2f} ms{summary['ratios']['fit']:>9.0f}×")
    print(f"{'  NLL evaluations per fit':34s}{result.nfev:>22d}{gf['value_evaluations']:>6d} + {gf['gradient_evaluations']} grad + {gf['hessian_evaluations']} Hessian")
    print(f"{'  fit in NLL+gradient times':34s}{'':>22s}{summary['nsbi']['fit_in_nll_gradient_evaluations']:>14.1f}")
    print(f"{'toy (sample + fit)':34s}{pyhf_toy_seconds:>20.2f} s{nsbi_toy * 1e3:>11.2f} ms{summary['ratios']['toys_per_second']:>9.0f}×")
    print(f"{'toys per second':34s}{1 / pyhf_toy_seconds:>22.4f}{1 / nsbi_toy:>14.1f}")
    print(f"{'  toy in NLL+gradient times':34s}{'':>22s}{summary['nsbi']['toy_in_nll_gradient_evaluations']:>14.1f}")
    print(f"binned engine alone: fit {nsbi_fit['seconds'] * 1e3:.2f} ms ({summary['ratios']['engine_fit']:.0f}×), "
          f"toy {engine_toy * 1e3:.2f} ms ({summary['ratios']['engine_toys_per_second']:.0f}×); "
          f"general minus engine NLL at the minimum {general_vs_engine:.1e}")
    print(f"\nbest fits: NLL nsbi − pyhf = {summary['agreement']['nll_nsbi_minus_pyhf']:.2e}; "
          f"largest |Δθ|/σ vs pyhf's fit {pull_default[0]:.1e} ({pull_default[1]}), "
          f"vs the polished Minuit fit {pull_polished[0]:.1e} ({pull_polished[1]}); "
          f"errors within {error_ratio:.1e} relative")
    ok = pull_polished[0] <= 1e-5 and abs(general_vs_engine) <= 1e-8
    if not ok:
        print("FAIL: nsbi's best fit differs from the polished pyhf fit by more than 1e-5 σ, or the "
              "general likelihood's minimum from the engine's by more than 1e-8", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
