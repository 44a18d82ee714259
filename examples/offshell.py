# %% [markdown]
# # The off-shell example from Python
#
# Loads the example workspace, fits, scans μ, minimises the likelihood with iminuit (if
# installed), runs a small Neyman construction and draws the results with matplotlib (if
# installed). A script (`python examples/offshell.py`, after `pip install .` from the
# repository root) and a notebook (`examples/offshell.ipynb`, generated from this file by
# `examples/make_notebook.py`). Plots go to `target/offshell-py/`.

# %%
import time
from pathlib import Path

import numpy as np

import nsbi


def repository_root():
    """The folder holding workspaces/ (this script's parent, or above the notebook's folder)."""
    here = Path(globals().get("__file__", Path.cwd() / "offshell.py")).resolve().parent
    for folder in [here, *here.parents]:
        if (folder / "workspaces" / "offshell_toy").is_dir():
            return folder
    raise SystemExit("run from the nsbi repository (workspaces/offshell_toy not found)")


ROOT = repository_root()
OUT = ROOT / "target" / "offshell-py"
OUT.mkdir(parents=True, exist_ok=True)
ws = nsbi.Workspace.load(ROOT / "workspaces/offshell_toy/workspace_exact.yaml")
print(ws.validate())

# %% [markdown]
# ## Fit and profile scan

# %%
start = time.perf_counter()
fit = ws.fit()
print(f"fit ({time.perf_counter() - start:.2f} s): {fit}")
for name, p in fit.parameters.items():
    print(f"  {name:<12} {p.value:+.5f}  -{p.error_low:.5f} +{p.error_high:.5f}")

scan = ws.scan("mu", (0.6, 1.4), 41, stat_only=True)
for curve, label in [(scan, "stat+syst"), (scan.stat_only, "stat-only")]:
    print(f"  {label}: 68.27 % CL {curve.intervals['68.27']}, "
          f"95.45 % CL {curve.intervals['95.45']}")

# %% [markdown]
# ## The likelihood in a user's own minimiser

# %%
like = ws.likelihood()
try:
    from iminuit import Minuit
except ImportError:
    print("iminuit not installed: skipping the user-side minimisation")
else:
    m = Minuit(like.nll, like.init, grad=like.grad, name=like.parameter_names)
    m.errordef = Minuit.LIKELIHOOD
    m.limits = [tuple(b) for b in like.bounds]
    m.migrad()
    m.hesse()
    print(f"iminuit on Likelihood.nll: mu = {m.values['mu']:.6f} ± {m.errors['mu']:.6f} "
          f"({m.nfcn} calls; nsbi's own fit: {fit.values['mu']:.6f} ± {fit.errors['mu']:.6f})")

# %% [markdown]
# ## A small Neyman construction
#
# 40 toys at each of 9 values of μ (a real construction takes thousands), the critical
# values of t_μ at 68.27 % and 95.45 %, and the confidence sets beside the asymptotic ones.

# %%
start = time.perf_counter()
toys = ws.toys("0.6:1.4:0.1", 40, OUT / "toys.h5", seed=1)
neyman = ws.neyman(toys.path)
print(f"{toys} ({time.perf_counter() - start:.1f} s)")
for level, intervals in neyman.intervals.items():
    print(f"  {level} % Neyman: {intervals}; asymptotic: "
          f"{neyman.asymptotic_intervals[level]}")
header, records = nsbi.read_toys(toys.path)
t, mu_true = np.asarray(records["t"]), np.asarray(records["mu_true"])
print(f"  median toy t at mu = 1.0: {np.median(t[np.isclose(mu_true, 1.0)]):.3f}")

# %% [markdown]
# ## Plots

# %%
try:
    import matplotlib

    if "__file__" in globals():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
    print("matplotlib not installed: no plots (pip install matplotlib)")

if plt is not None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for curve, label, style in [(scan, "stat+syst", "-"), (scan.stat_only, "stat-only", "--")]:
        order = np.argsort(curve.points["mu"])
        left.plot(curve.points["mu"][order], curve.t[order], style, label=label)
    for level, cl in [(1.0, "68.27 %"), (4.0, "95.45 %")]:
        left.axhline(level, color="grey", lw=0.8, ls=":")
        left.text(1.38, level + 0.1, cl, ha="right", fontsize=8)
    left.set_xlabel(r"$\mu$")
    left.set_ylabel(r"$t_\mu = -2\Delta\ln L$")
    left.set_ylim(0, 8)
    left.legend()
    left.set_title(f"profile scan: $\\hat\\mu$ = {fit.values['mu']:.3f}")

    right.plot(neyman.grid, neyman.observed_t, "o-", label="observed $t_\\mu$")
    for level, critical in neyman.critical_values.items():
        right.plot(neyman.grid, critical, "--", label=f"critical value {level} %")
    right.set_xlabel(r"$\mu$")
    right.set_ylabel(r"$t_\mu$")
    right.set_ylim(0, 8)
    right.legend(fontsize=8)
    right.set_title("Neyman construction (40 toys per point)")
    path = OUT / "offshell.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")
