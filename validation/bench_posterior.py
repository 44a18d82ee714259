"""Effective samples per second of `nsbi posterior` against numpyro's NUTS on the same density
(issue 18): the 5-parameter exact linear-Gaussian NRE of workspaces/nre_toy
(linear_gaussian_5d.yaml; the analytic posterior is truth.json's `linear_gaussian_5d`).

Both samplers get the same chains, warm-up and draws, target acceptance 0.8, a diagonal mass
matrix, and one core: the caller pins the process (`taskset -c 0`, as `make bench-posterior`
does), nsbi runs with --threads 1, XLA with one host device and no multithreaded Eigen; numpyro
runs its chains both sequentially and vectorised (one batched chain state), and the faster is
compared. The density is the same function: nsbi evaluates the workspace's ONNX
model (ln r(x, θ) in float64 after a float32 input) with central-difference gradients from one
batched call; numpyro the same prior + ln N(x; Aθ + b, Σx) in float64 JAX with autodiff (the
evidence term is a constant). ESS is arviz's bulk ESS of each parameter, min over parameters,
on each sampler's draws. nsbi's time is the whole command (loading the model, warm-up,
sampling, writing the draws); numpyro's first run includes JIT compilation, its second run
(another seed, compiled code reused) does not; both are reported, with CPU times.

Usage: taskset -c 0 PEERS_PYTHON validation/bench_posterior.py --nsbi target/release/nsbi
           [--chains 4 --warmup 1000 --draws 1000 --seed 1 --out target/bench_posterior.json]
"""

import os

os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=1 --xla_cpu_multi_thread_eigen=false "
                           "intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["JAX_ENABLE_X64"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import arviz as az  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = ROOT / "workspaces" / "nre_toy" / "linear_gaussian_5d.yaml"


def min_bulk_ess(draws):
    """min over parameters of arviz's bulk ESS; draws [chains, draws, parameters]."""
    ess = az.ess(az.convert_to_dataset(draws), method="bulk")["x"].values
    return float(np.min(ess)), float(np.max(az.rhat(az.convert_to_dataset(draws))["x"].values))


def moments_error(draws, truth):
    """Largest |mean − analytic| and |sd − analytic sd| in analytic sd (a sanity check that both
    samplers sample the same posterior)."""
    flat = draws.reshape(-1, draws.shape[-1])
    sd = np.sqrt(np.diag(truth["posterior_cov"]))
    return float(max(np.abs(flat.mean(0) - truth["posterior_mean"]).max() / sd.min(),
                     np.abs(flat.std(0, ddof=1) / sd - 1).max()))


def cpu_seconds(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def run_nsbi(exe, args, truth):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "draws.h5"
        cmd = [exe, "posterior", str(WORKSPACE), "--chains", str(args.chains), "--warmup", str(args.warmup),
               "--draws", str(args.draws), "--seed", str(args.seed), "--threads", "1", "--out", str(out)]
        cpu0, t0 = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall, cpu = time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
        with h5py.File(out, "r") as f:
            draws = f["samples"][...]
    ess, rhat = min_bulk_ess(draws)
    return {"wall_s": wall, "cpu_s": cpu, "min_ess_bulk": ess, "max_rhat": rhat,
            "ess_per_s": ess / wall, "ess_per_cpu_s": ess / cpu, "moment_error_in_sd": moments_error(draws, truth)}


def run_numpyro(args, truth, chain_method):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    numpyro.set_host_device_count(1)
    A, b = jnp.array(truth["A"]), jnp.array(truth["b"])
    noise_sd = jnp.sqrt(jnp.diag(jnp.array(truth["noise_cov"])))
    x = jnp.array(truth["x"])
    prior_mean, prior_sigma = jnp.array(truth["prior_mean"]), jnp.array(truth["prior_sigma"])

    def model():
        theta = numpyro.sample("theta", dist.Normal(prior_mean, prior_sigma).to_event(1))
        numpyro.sample("x", dist.Normal(A @ theta + b, noise_sd).to_event(1), obs=x)

    mcmc = MCMC(NUTS(model, target_accept_prob=0.8, dense_mass=False, max_tree_depth=10),
                num_warmup=args.warmup, num_samples=args.draws, num_chains=args.chains,
                chain_method=chain_method, progress_bar=False)
    runs = []
    for label, seed in (("first run (with JIT)", args.seed), ("second run (compiled)", args.seed + 1)):
        cpu0, t0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
        mcmc.run(jax.random.PRNGKey(seed))
        draws = np.asarray(mcmc.get_samples(group_by_chain=True)["theta"])
        wall, cpu = time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_SELF) - cpu0
        ess, rhat = min_bulk_ess(draws)
        runs.append({"run": label, "wall_s": wall, "cpu_s": cpu, "min_ess_bulk": ess, "max_rhat": rhat,
                     "ess_per_s": ess / wall, "ess_per_cpu_s": ess / cpu,
                     "moment_error_in_sd": moments_error(draws, truth)})
    return {"chain_method": chain_method, "versions": {"jax": jax.__version__, "numpyro": numpyro.__version__},
            "runs": runs,
            "jit_compile_s": runs[0]["wall_s"] - runs[1]["wall_s"],
            "jit_compile_cpu_s": runs[0]["cpu_s"] - runs[1]["cpu_s"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nsbi", default=str(ROOT / "target" / "release" / "nsbi"))
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "target" / "bench_posterior.json"))
    args = parser.parse_args()
    truth = json.loads((ROOT / "workspaces" / "nre_toy" / "truth.json").read_text())["linear_gaussian_5d"]
    affinity = sorted(os.sched_getaffinity(0))
    nsbi = run_nsbi(args.nsbi, args, truth)
    peers = {method: run_numpyro(args, truth, method) for method in ("sequential", "vectorized")}
    # The faster of numpyro's two ways of running several chains on one core.
    peer = max(peers.values(), key=lambda p: p["runs"][1]["ess_per_s"])
    compiled = peer["runs"][1]
    summary = {
        "workspace": str(WORKSPACE.relative_to(ROOT)),
        "chains": args.chains, "warmup": args.warmup, "draws": args.draws, "seed": args.seed,
        "cpu_affinity": affinity,
        "nsbi": nsbi, "numpyro": peers, "numpyro_best_chain_method": peer["chain_method"],
        "ratio_ess_per_s_nsbi_over_numpyro_compiled": nsbi["ess_per_s"] / compiled["ess_per_s"],
        "ratio_ess_per_s_nsbi_over_numpyro_with_jit": nsbi["ess_per_s"] / peer["runs"][0]["ess_per_s"],
        "ratio_ess_per_cpu_s_nsbi_over_numpyro_compiled": nsbi["ess_per_cpu_s"] / compiled["ess_per_cpu_s"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{args.chains} chains × {args.draws} draws after {args.warmup} warm-up, CPUs {affinity}")
    print(f"{'sampler':44s} {'wall s':>8s} {'cpu s':>8s} {'min ESS':>8s} {'R-hat':>7s} {'ESS/s':>9s} {'ESS/cpu s':>10s}")
    rows = [("nsbi posterior (whole command)", nsbi)]
    rows += [(f"numpyro {p['chain_method']}, {r['run']}", r) for p in peers.values() for r in p["runs"]]
    for name, r in rows:
        print(f"{name:44s} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {r['min_ess_bulk']:8.0f} {r['max_rhat']:7.4f} "
              f"{r['ess_per_s']:9.0f} {r['ess_per_cpu_s']:10.0f}")
    print(", ".join(f"numpyro {p['chain_method']} JIT compilation ≈ {p['jit_compile_s']:.2f} s ({p['jit_compile_cpu_s']:.2f} CPU s)" for p in peers.values()))
    print(f"ESS/s nsbi / numpyro ({peer['chain_method']} chains): {summary['ratio_ess_per_s_nsbi_over_numpyro_compiled']:.2f} (compiled), "
          f"{summary['ratio_ess_per_s_nsbi_over_numpyro_with_jit']:.2f} (with JIT); per CPU second "
          f"{summary['ratio_ess_per_cpu_s_nsbi_over_numpyro_compiled']:.2f}")
    for name, r in [("nsbi", nsbi), ("numpyro", compiled)]:
        assert r["moment_error_in_sd"] < 0.2, f"{name} does not sample the analytic posterior: {r}"


if __name__ == "__main__":
    main()
