"""The off-shell example from Python: load the workspace, fit, scan μ, minimise the likelihood
with iminuit (if installed) and draw the scan with matplotlib (if installed).

    pip install .            # from the repository root (builds the nsbi package)
    python examples/offshell.py [--out target/offshell-py]
"""

import argparse
import time
from pathlib import Path

import numpy as np

import nsbi

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default=ROOT / "workspaces/offshell_toy/workspace_exact.yaml")
    parser.add_argument("--out", default=ROOT / "target/offshell-py", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    ws = nsbi.Workspace.load(args.workspace)
    print(ws.validate())
    start = time.perf_counter()
    fit = ws.fit()
    print(f"fit ({time.perf_counter() - start:.2f} s): {fit}")
    for name, p in fit.parameters.items():
        print(f"  {name:<12} {p.value:+.5f}  -{p.error_low:.5f} +{p.error_high:.5f}")

    scan = ws.scan("mu", (0.6, 1.4), 41, stat_only=True)
    for curve, label in [(scan, "stat+syst"), (scan.stat_only, "stat-only")]:
        print(f"  {label}: 68.27 % CL {curve.intervals['68.27']}, 95.45 % CL {curve.intervals['95.45']}")

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

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for curve, label, style in [(scan, "stat+syst", "-"), (scan.stat_only, "stat-only", "--")]:
        order = np.argsort(curve.points["mu"])
        ax.plot(curve.points["mu"][order], curve.t[order], style, label=label)
    for level, cl in [(1.0, "68.27 %"), (4.0, "95.45 %")]:
        ax.axhline(level, color="grey", lw=0.8, ls=":")
        ax.text(1.38, level + 0.1, cl, ha="right", fontsize=8)
    ax.set_xlabel(r"$\mu$")
    ax.set_ylabel(r"$t_\mu = -2\Delta\ln L$")
    ax.set_ylim(0, 8)
    ax.legend()
    ax.set_title(f"offshell_toy: $\\hat\\mu$ = {fit.values['mu']:.3f}")
    path = args.out / "scan_mu.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
