#!/usr/bin/env python3
"""Scale benchmark (issue 13): fit time, memory and toy cost on synthetic workspaces of
real-analysis shape made by `make_scale_workspace.py`.

For each workspace (generated into target/scale/<name>/, reused when its generator.json
matches the parameters and the generator's hash) it runs, each under a timeout:

    nsbi ratios WS                                   (fills the cache; timed, not tabulated)
    nsbi fit WS --no-minos                           observed fit: iterations, μ̂, α at a bound
    nsbi fit WS --asimov mu=1 --no-minos             Asimov fit
    nsbi fit WS --asimov mu=1                        Asimov fit + MINOS on μ
    nsbi toys WS --mu-grid 1:1:1 --toys n --threads 1   (RAYON_NUM_THREADS=1): n = 1 gives the
        set-up cost, then 10, then as many as fit in the toy budget; ms per toy is
        (T_n - T_1)/(n - 1); ⟨t⟩ at μ = 1 and the fraction of free toy fits with a parameter at
        a bound come from the largest run

and records each command's wall time and peak resident memory (getrusage of that child, via
os.wait4). A command past its timeout is killed and reported as "> T s".

Tables: (a) the issue's table redone (10⁵ MC events per process; yield, shape NPs in
(2,0) (100,0) (2,3) (20,3) (2,10) (20,10) (100,10)); (b) scaling of fit time and memory with MC
events per process (default 10⁵, 3·10⁵, 10⁶ at 20 yield + 3 shape NPs: 10⁷ takes hours on two
cores, ask for it with --events-list) and with NPs (2…200 yield-only at 10⁵),
each column with the exponent of a power law fitted to the points that finished. The markdown
replaces what lies between `<!-- bench-scale:begin -->` and `<!-- bench-scale:end -->` in
README.md; raw numbers go to target/scale/bench_scale.json.

`--tables target` adds (d), the issue's target workspace (10⁶ events, 100 + 10 NPs).

Usage: bench_scale.py [--quick] [--tables issue,nps,events,target] [--events-list 1e5,1e6]
       [--np-list 2,20,100,200] [--timeout 600] [--toy-budget 30] [--max-toys 1000]
       [--nice 10] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "validation"))
import make_scale_workspace as G  # noqa: E402

BEGIN, END = "<!-- bench-scale:begin -->", "<!-- bench-scale:end -->"
ISSUE_ROWS = [(2, 0), (100, 0), (2, 3), (20, 3), (2, 10), (20, 10), (100, 10)]
EVENTS_NPS = (20, 3)  # yield, shape NPs of the events-scaling rows
TARGET = (1_000_000, 100, 10)  # the issue's target workspace: events per process, yield, shape NPs
BOUND_TOL = 1e-6


# ----------------------------------------------------------------------------------------------
# Running commands with a timeout and their peak memory
# ----------------------------------------------------------------------------------------------


def run(cmd, timeout, nice=0, env=None, cwd=None):
    """Run `cmd`; returns {wall_s, peak_rss_mb, rc, timed_out, stdout, stderr}. The child runs in
    its own process group (killed as a whole on timeout) at the given niceness."""
    t0 = time.perf_counter()
    with open(_tmp("stdout"), "w+") as out, open(_tmp("stderr"), "w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True,
                                preexec_fn=(lambda: os.nice(nice)) if nice else None)
        timed_out, status, usage = False, None, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        return {"cmd": " ".join(map(str, cmd)), "wall_s": time.perf_counter() - t0,
                "peak_rss_mb": usage.ru_maxrss / 1024.0, "rc": proc.returncode, "timed_out": timed_out,
                "timeout_s": timeout, "stdout": out.read()[-4000:], "stderr": err.read()[-4000:]}


_TMP = ROOT / "target" / "scale" / ".run"


def _tmp(name):
    _TMP.mkdir(parents=True, exist_ok=True)
    return _TMP / name


# ----------------------------------------------------------------------------------------------
# Workspaces
# ----------------------------------------------------------------------------------------------


def gen_args(events, yield_nps, shape_nps, args):
    return G.parse_args([f"--events={events}", f"--yield-nps={yield_nps}", f"--shape-nps={shape_nps}",
                         f"--seed={args.seed}", f"--negative-fraction={args.negative_fraction}",
                         f"--out={args.scale_dir / f'e{events}_y{yield_nps}_s{shape_nps}'}"])


def workspace(events, yield_nps, shape_nps, args):
    """The workspace folder, generated unless a matching one (same generator.json parameters,
    i.e. same script hash and settings) is already there."""
    gargs = gen_args(events, yield_nps, shape_nps, args)
    out = gargs.out
    info = out / "generator.json"
    if info.exists() and json.loads(info.read_text())["parameters"] == G.parameters(gargs):
        return out, None, None
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, str(ROOT / "validation" / "make_scale_workspace.py")] + gargs.argv
    r = run(cmd, args.gen_timeout, args.nice)
    if r["rc"] != 0 or r["timed_out"]:
        raise SystemExit(f"generating {out} failed:\n{r['stderr']}")
    return out, r["wall_s"], r["peak_rss_mb"]


# ----------------------------------------------------------------------------------------------
# One workspace's measurements
# ----------------------------------------------------------------------------------------------


def nsbi(args, *words):
    return [str(args.nsbi), *map(str, words)]


def fit_summary(path):
    """Iterations, status, μ̂ and the parameters at a bound from a fit JSON (None if absent)."""
    if not path.exists():
        return None
    j = json.loads(path.read_text())
    pars = j["parameters"]
    return {"converged": j["status"]["converged"], "message": j["status"]["message"],
            "iterations": j["status"].get("iterations"), "n_eval": j["status"].get("n_eval"),
            "mu_hat": pars["mu"]["value"], "mu_error_low": pars["mu"].get("error_low"),
            "mu_error_high": pars["mu"].get("error_high"),
            "at_bound": sorted(k for k, v in pars.items() if v.get("at_bound")), "nll": j["nll"]}


def toy_summary(path, bounds):
    """⟨t⟩ (with its error), mean μ̂ and the fraction of free fits with a parameter at a bound."""
    with h5py.File(path, "r") as f:
        t, mu_hat, theta = f["t"][...], f["mu_hat"][...], f["theta_hat"][...]
        conv = f["converged_free"][...] & f["converged_conditional"][...]
        names = json.loads(f.attrs["plan"])["parameters"]
    lo = np.array([bounds[n][0] for n in names])
    hi = np.array([bounds[n][1] for n in names])
    at = np.any((theta <= lo + BOUND_TOL) & np.isfinite(lo) & (lo != 0.0) | (theta >= hi - BOUND_TOL), axis=1)
    return {"n": int(len(t)), "mean_t": float(np.mean(t)), "mean_t_error": float(np.std(t, ddof=1) / math.sqrt(len(t)))
            if len(t) > 1 else None, "mean_mu_hat": float(np.mean(mu_hat)), "fraction_at_bound": float(np.mean(at)),
            "fraction_not_converged": float(np.mean(conv == 0))}


def bounds_of(ws):
    """{parameter: (lo, hi)}: μ in [0, 20] (a fit at μ = 0 is physics, not a runaway nuisance:
    only the upper end counts), every α in [-5, 5] (as the generator writes them)."""
    names = ["mu"] + [line.split("name: ")[1].split(",")[0] for line in ws.read_text().splitlines()
                      if line.startswith("  - {name: alpha_")]
    return {n: ((0.0, 20.0) if n == "mu" else (-5.0, 5.0)) for n in names}


def toys(args, ws, bench):
    """ms per toy on one core and the toys' ⟨t⟩ / bound fraction (see the module doc)."""
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    runs = {}

    def once(n):
        out = bench / f"toys_{n}.h5"
        r = run(nsbi(args, "toys", ws, "--mu-grid", "1:1:1", "--toys", n, "--threads", 1, "--seed", 1, "--out", out),
                args.toy_timeout, args.nice, env)
        r["toys"] = n
        runs[n] = r
        return r, out

    r1, _ = once(1)
    result = {"runs": runs}
    if r1["rc"] != 0 or r1["timed_out"]:
        result["ms_per_toy_upper"] = r1["wall_s"] * 1e3 if r1["timed_out"] else None
        return result
    n = 10
    while True:
        r, out = once(n)
        if r["rc"] != 0 or r["timed_out"]:
            result["ms_per_toy_lower"] = (r["wall_s"] - r1["wall_s"]) / (n - 1) * 1e3 if r["timed_out"] else None
            break
        per_toy = max(r["wall_s"] - r1["wall_s"], 0.0) / (n - 1)
        result.update(ms_per_toy=per_toy * 1e3, toys_run=n, peak_rss_mb=r["peak_rss_mb"],
                      **toy_summary(out, bounds_of(ws)))
        nxt = min(args.max_toys, int(args.toy_budget / max(per_toy, 1e-4)))
        if nxt <= n * 2:
            break
        n = nxt
    for f in bench.glob("toys_*.h5"):
        f.unlink()
    return result


def measure(args, events, yield_nps, shape_nps):
    """All measurements on one workspace, as a dict (also printed as they come)."""
    label = f"{events:.0e} events, {yield_nps} yield + {shape_nps} shape NPs"
    ws_dir, gen_s, gen_mb = workspace(events, yield_nps, shape_nps, args)
    ws = ws_dir / "workspace.yaml"
    bench = ws_dir / "bench"
    bench.mkdir(exist_ok=True)
    rec = {"events": events, "yield_nps": yield_nps, "shape_nps": shape_nps, "generate_s": gen_s,
           "generate_peak_rss_mb": gen_mb, "workspace": str(ws)}
    print(f"[bench-scale] {label}: generated in {gen_s:.1f} s, {gen_mb:.0f} MB" if gen_s else f"[bench-scale] {label}: reused",
          flush=True)
    ratios = run(nsbi(args, "ratios", ws, "--quiet"), args.ratio_timeout, args.nice)
    rec["ratios"] = _strip(ratios)
    if ratios["rc"] != 0 or ratios["timed_out"]:
        print(f"  ratios failed: {_fmt_run(ratios)}\n{ratios['stderr'][-800:]}", flush=True)
        return rec
    for key, extra in (("observed_fit", ["--no-minos"]), ("asimov_fit", ["--asimov", "mu=1", "--no-minos"]),
                       ("asimov_minos", ["--asimov", "mu=1"])):
        out = bench / f"{key}.json"
        out.unlink(missing_ok=True)
        r = run(nsbi(args, "fit", ws, "--accept-non-pd-hessian", "--json", out, *extra), args.timeout, args.nice)
        rec[key] = _strip(r)
        rec[key]["fit"] = fit_summary(out) if not r["timed_out"] else None
        print(f"  {key}: {_fmt_run(r)}" + (f" {rec[key]['fit']['message']}" if rec[key]["fit"] else ""), flush=True)
    if args.max_toys > 0:
        rec["toys"] = toys(args, ws, bench)
        rec["toys"]["runs"] = {n: _strip(r) for n, r in rec["toys"]["runs"].items()}
        t = rec["toys"]
        print(f"  toys: {_fmt_ms(t)} ms/toy, ⟨t⟩ {t.get('mean_t', float('nan')):.3g} over {t.get('n', 0)}, "
              f"at bound {t.get('fraction_at_bound', float('nan')):.3f}", flush=True)
    rec["peak_rss_mb"] = max([rec[k]["peak_rss_mb"] for k in ("observed_fit", "asimov_fit", "asimov_minos")] +
                             [r["peak_rss_mb"] for r in rec.get("toys", {}).get("runs", {}).values()])
    return rec


def _strip(r):
    return {k: v for k, v in r.items() if k not in ("stdout",)} | {"stderr": r["stderr"][-600:]}


def _fmt_run(r):
    if r["timed_out"]:
        return f"> {r['timeout_s']:g} s"
    return f"{r['wall_s']:.2f} s, {r['peak_rss_mb']:.0f} MB" + ("" if r["rc"] == 0 else f", exit {r['rc']}")


def _num(v):
    """3 significant digits, without exponents: 0.708, 12.4, 207, 5 300."""
    return f"{v:.3g}" if abs(v) < 1000 else f"{float(f'{v:.3g}'):,.0f}".replace(",", " ")


def _fmt_ms(t):
    if "ms_per_toy" in t:
        return _num(t["ms_per_toy"])
    if t.get("ms_per_toy_lower") is not None:
        return f"> {_num(t['ms_per_toy_lower'])}"
    if t.get("ms_per_toy_upper") is not None:
        return f"> {_num(t['ms_per_toy_upper'])} (set-up timed out)"
    return "failed"


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------


def cell_time(r):
    if r is None:
        return "—"
    if r["timed_out"]:
        return f"> {r['timeout_s']:g} s"
    return f"{r['wall_s']:.2f} s" + ("" if r["rc"] == 0 else f" (exit {r['rc']})")


def cell_observed(r):
    if r is None:
        return "—"
    f = r.get("fit")
    if r["timed_out"] or f is None:
        return cell_time(r)
    alphas = [p for p in f["at_bound"] if p != "mu"]
    parts = [f"{f['iterations']} it." if f["iterations"] is not None else f"{f['n_eval']} eval.", f"μ̂ {f['mu_hat']:.3f}"]
    if alphas:
        parts.append(f"{len(alphas)} α at bound")
    if not f["converged"]:
        parts.append("not converged")
    return ", ".join(parts) + f", {cell_time(r)}"


def cell_toys(rec):
    t = rec.get("toys")
    if not t:
        return "—", "—", "—"
    ms = _fmt_ms(t)
    if "mean_t" not in t:
        return ms, "—", "—"
    err = f" ± {_num(t['mean_t_error'])}" if t.get("mean_t_error") is not None else ""
    return ms, f"{_num(t['mean_t'])}{err} ({t['n']} toys, ⟨μ̂⟩ {t['mean_mu_hat']:.2f})", f"{100 * t['fraction_at_bound']:.1f} %"


def issue_table(records):
    lines = [f"| yield NPs, shape NPs ({records[0]['events']:.0e} MC/process) | observed fit | Asimov fit / +MINOS | ms per toy (1 core) "
             "| ⟨t⟩ at μ = 1 (χ²₁: 1) | free toy fits at a bound | peak RSS |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for rec in records:
        ms, mean_t, bound = cell_toys(rec)
        lines.append(f"| {rec['yield_nps']}, {rec['shape_nps']} | {cell_observed(rec.get('observed_fit'))} | "
                     f"{cell_time(rec.get('asimov_fit'))} / {cell_time(rec.get('asimov_minos'))} | {ms} | {mean_t} | "
                     f"{bound} | {_mb(rec)} |")
    return "\n".join(lines)


def _mb(rec):
    return f"{rec['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in rec else "—"


def _value(rec, column):
    """The numeric value of a column for the growth law (None when it did not finish)."""
    if column == "ms_per_toy":
        return rec.get("toys", {}).get("ms_per_toy")
    if column == "peak_rss_mb":
        return rec.get("peak_rss_mb")
    r = rec.get(column)
    return None if r is None or r["timed_out"] or r["rc"] != 0 else r["wall_s"]


COLUMNS = [("observed_fit", "observed fit"), ("asimov_fit", "Asimov fit"), ("asimov_minos", "Asimov + MINOS"),
           ("ms_per_toy", "ms per toy"), ("peak_rss_mb", "peak RSS (MB)")]


def growth_exponent(xs, ys):
    """Least-squares slope of ln y against ln x (None with fewer than two finished points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if y is not None and y > 0]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return None
    lx, ly = np.array(pts).T
    return float(np.polyfit(lx, ly, 1)[0])


def scaling_table(records, xkey, xlabel):
    lines = [f"| {xlabel} | " + " | ".join(c for _, c in COLUMNS) + " |", "|" + " --- |" * (len(COLUMNS) + 1)]
    for rec in records:
        cells = [cell_time(rec.get(k)) for k in ("observed_fit", "asimov_fit", "asimov_minos")]
        cells += [cell_toys(rec)[0], _mb(rec)]
        lines.append(f"| {_xfmt(rec, xkey)} | " + " | ".join(cells) + " |")
    xs = [_x(rec, xkey) for rec in records]
    law = []
    for key, _ in COLUMNS:
        ys = [_value(rec, key) for rec in records]
        e, last = growth_exponent(xs, ys), growth_exponent(xs[-2:], ys[-2:])
        cell = "—" if e is None else f"∝ x^{e:.2f}"
        if last is not None and len(xs) > 2:
            cell += f" (last two: x^{last:.2f})"
        law.append(cell)
    lines.append("| growth law (power-law fit to the finished points) | " + " | ".join(law) + " |")
    return "\n".join(lines), dict(zip([k for k, _ in COLUMNS], law))


def _x(rec, xkey):
    return rec["events"] if xkey == "events" else rec["yield_nps"] + rec["shape_nps"]


def _xfmt(rec, xkey):
    if xkey == "events":
        return f"{rec['events']:.0e} ({rec['yield_nps']} + {rec['shape_nps']} NPs)"
    return f"{rec['yield_nps'] + rec['shape_nps']} ({rec['yield_nps']} yield + {rec['shape_nps']} shape, {rec['events']:.0e} events)"


def markdown(results, args):
    st = results["settings"]
    parts = [f"Generated by `make bench-scale` ({'--quick' if st['quick'] else 'full'}; {st['date'][:10]}, "
             f"{st['cpus']} CPUs shared with other work, nice {st['nice']}; \"> T s\": killed at its timeout). "
             f"Raw numbers: `{_rel(args.json)}`."]
    if results.get("issue"):
        parts += ["", f"**(a) The issue's table** ({results['issue'][0]['events']:.0e} MC events per process, 3 processes, "
                  "~4 100 observed events; toys at μ = 1 on one core):", "", issue_table(results["issue"])]
    if results.get("events"):
        text, _ = scaling_table(results["events"], "events", "MC events per process")
        parts += ["", "**(b) Scaling with MC events** (x = events per process):", "", text]
    if results.get("nps"):
        text, _ = scaling_table(results["nps"], "nps", "nuisance parameters")
        parts += ["", "**(c) Scaling with nuisance parameters** (x = number of NPs):", "", text]
    if results.get("target"):
        rec = results["target"][0]
        ms, mean_t, bound = cell_toys(rec)
        parts += ["", f"**(d) The issue's target workspace** ({rec['events']:.0e} MC events per process, "
                  f"{rec['yield_nps']} yield + {rec['shape_nps']} shape NPs; targets: observed fit ≤ 2 s, Asimov + MINOS "
                  "≤ 10 s, ≥ 500 toy fits/s per core, peak memory ≤ 4 GB):", "",
                  "| observed fit | Asimov fit / +MINOS | ms per toy (1 core) | ⟨t⟩ at μ = 1 | peak RSS |",
                  "| --- | --- | --- | --- | --- |",
                  f"| {cell_observed(rec.get('observed_fit'))} | {cell_time(rec.get('asimov_fit'))} / "
                  f"{cell_time(rec.get('asimov_minos'))} | {ms} | {mean_t} | {_mb(rec)} |"]
    return "\n".join(parts)


def _rel(path):
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_readme(path, text):
    content = path.read_text()
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{path}: markers {BEGIN} … {END} not found")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    tmp.replace(path)


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and timeouts: a few minutes")
    ap.add_argument("--tables", default="issue,nps,events", help="comma-separated subset of issue,nps,events,target")
    ap.add_argument("--issue-events", type=float, default=None, help="MC events per process of table (a) (1e5)")
    ap.add_argument("--issue-rows", default=None, help="'Y:S,Y:S,...' rows of table (a)")
    ap.add_argument("--events-list", default=None, help="events per process of table (b) (1e5,3e5,1e6; 1e7 takes hours)")
    ap.add_argument("--np-list", default=None, help="yield NPs of table (c) (2,20,100,200)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per fit command (600)")
    ap.add_argument("--toy-budget", type=float, default=None, help="seconds aimed at per toy run (30; quick 5)")
    ap.add_argument("--max-toys", type=int, default=None, help="toys in the largest run (1000; quick 200; 0: no toys)")
    ap.add_argument("--negative-fraction", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=G.DEFAULT_SEED)
    ap.add_argument("--nice", type=int, default=10, help="niceness of every child (shared machines)")
    ap.add_argument("--scale-dir", type=Path, default=ROOT / "target" / "scale")
    ap.add_argument("--nsbi", type=Path, default=ROOT / "target" / "release" / "nsbi")
    ap.add_argument("--json", type=Path, default=None, help="raw numbers (target/scale/bench_scale.json)")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--render-only", action="store_true", help="rewrite the README tables from the JSON, run nothing")
    ap.add_argument("--fresh", action="store_true", help="drop the tables of the previous run's JSON (default: "
                    "tables not re-run are kept, so `--tables target` adds to a full run)")
    args = ap.parse_args(argv)
    quick = args.quick
    args.issue_events = int(args.issue_events or (2e4 if quick else 1e5))
    rows = args.issue_rows or ("2:0,20:0,2:3" if quick else ",".join(f"{y}:{s}" for y, s in ISSUE_ROWS))
    issue_rows = [tuple(int(v) for v in r.split(":")) for r in rows.split(",")]
    events_list = [int(float(v)) for v in (args.events_list or ("1e4,3e4,1e5" if quick else "1e5,3e5,1e6")).split(",")]
    np_list = [int(v) for v in (args.np_list or ("2,20,100" if quick else "2,20,100,200")).split(",")]
    args.timeout = args.timeout or (60.0 if quick else 600.0)
    args.toy_timeout = args.timeout
    args.toy_budget = args.toy_budget or (5.0 if quick else 30.0)
    args.max_toys = 200 if quick and args.max_toys is None else (1000 if args.max_toys is None else args.max_toys)
    args.ratio_timeout = args.gen_timeout = max(1800.0, args.timeout)
    args.json = args.json or args.scale_dir / ("bench_scale_quick.json" if quick else "bench_scale.json")
    tables = set(args.tables.split(","))
    if not args.nsbi.exists():
        raise SystemExit(f"{args.nsbi} missing: cargo build --release first")

    if args.render_only:
        results = json.loads(args.json.read_text())
        text = markdown(results, args)
        print(text)
        if not args.no_readme:
            write_readme(args.readme, text)
        return
    results = {}
    if args.json.exists() and not args.fresh:  # tables not re-run this time are kept
        results = {k: v for k, v in json.loads(args.json.read_text()).items() if k in ("issue", "nps", "events", "target")}
    results["settings"] = {"quick": quick, "timeout_s": args.timeout, "toy_budget_s": args.toy_budget,
                            "max_toys": args.max_toys, "nice": args.nice, "seed": args.seed,
                            "negative_fraction": args.negative_fraction, "cpus": os.cpu_count(),
                            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def save():
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        tmp.replace(args.json)

    done = {}

    def measured(events, yield_nps, shape_nps):
        """One workspace's record, measured once even when two tables share it."""
        key = (events, yield_nps, shape_nps)
        if key not in done:
            done[key] = measure(args, events, yield_nps, shape_nps)
        return done[key]

    plan = {"issue": [(args.issue_events, y, s) for y, s in issue_rows],
            "nps": [(args.issue_events, y, 0) for y in np_list],
            "events": [(n, *(EVENTS_NPS if not quick else (2, 2))) for n in events_list],
            "target": [(TARGET[0], TARGET[1], TARGET[2])]}
    for table in ("issue", "nps", "events", "target"):
        if table in tables:
            results[table] = []
            for key in plan[table]:
                results[table].append(measured(*key) | {"measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                save()
    text = markdown(results, args)
    results["markdown"] = text
    save()
    print(text)
    if not args.no_readme:
        write_readme(args.readme, text)
        print(f"[bench-scale] README.md updated between {BEGIN} and {END}; raw numbers in {args.json}")


if __name__ == "__main__":
    main()
