"""A pyhf workspace of realistic size for the binned benchmark (issue 14, `make bench-pyhf`).

    make_pyhf_workspace.py OUT.json [--channels 10] [--bins 20] [--seed 14]

Deterministic for a given seed. Channels `SR_0`, `SR_1` (signal regions) and `CR_k` (control
regions), each with `--bins` bins and six samples: `signal` (normfactor `mu`, the POI) and five
backgrounds. Modifiers, as an analysis has them:
  - `lumi` on every sample (σ = 2 %);
  - a staterror on every sample of the signal regions and the first three control regions
    (one γ per bin of each: 5 × bins parameters; the other control regions are MC-rich);
  - normsys: a cross-section uncertainty per background, and `n_detector` detector systematics
    (`jes_k`, ...) on every sample with channel- and sample-dependent sizes;
  - histosys: `n_shape` smooth shape systematics on the backgrounds (tilts and bumps, with a
    normsys of the same name on some samples, as pyhf allows);
  - shapesys on the `fakes` sample of `CR_3` (Poisson-constrained γ per bin).
The size is set so that pyhf's fit (numerical gradients, then a numerical Hesse) takes tens of
seconds on a busy machine: 10 channels of 20 bins give 143 parameters.
Observed counts are a Poisson draw from the nominal expectation with the signal at μ = 1.2
and the nuisance parameters pulled a little, so that the fit moves every parameter.
"""
import argparse
import json
from pathlib import Path

import numpy as np

BACKGROUNDS = ["ttbar", "wjets", "zjets", "diboson", "fakes"]
DETECTOR = ["jes", "jer", "btag", "ctag", "mistag", "met", "pileup", "lepton_eff", "trigger", "muon_scale"]
SHAPES = ["ttbar_gen", "ttbar_isr", "wjets_scale", "zjets_pdf", "fakes_shape_sys", "ps_model"]


def channel(rng, name, bins, signal_region, staterror, shapesys):
    x = (np.arange(bins) + 0.5) / bins
    falling = np.exp(-3.0 * x)
    samples = []
    signal = (25.0 if signal_region else 2.0) * np.exp(-0.5 * ((x - 0.6) / 0.12) ** 2) + 0.2
    scale = {"ttbar": 400.0, "wjets": 250.0, "zjets": 150.0, "diboson": 40.0, "fakes": 60.0}
    for sample in ["signal"] + BACKGROUNDS:
        if sample == "signal":
            nominal = signal
        else:
            nominal = scale[sample] * falling * rng.uniform(0.6, 1.4) * (1 + 0.2 * np.sin(6 * x + rng.uniform(0, 6)))
        nominal = np.round(nominal, 4)
        modifiers = [{"name": "lumi", "type": "lumi", "data": None}]
        if sample == "signal":
            modifiers.append({"name": "mu", "type": "normfactor", "data": None})
        else:
            size = rng.uniform(0.04, 0.15)
            modifiers.append({"name": f"xsec_{sample}", "type": "normsys", "data": {"hi": 1 + size, "lo": 1 - 0.9 * size}})
        for syst in DETECTOR:
            up = rng.uniform(0.005, 0.06)
            down = up * rng.uniform(0.7, 1.3)
            modifiers.append({"name": syst, "type": "normsys", "data": {"hi": round(1 + up, 5), "lo": round(1 - down, 5)}})
        if sample != "signal":
            for k, syst in enumerate(SHAPES):
                if (k + BACKGROUNDS.index(sample)) % 2:
                    continue
                tilt = rng.uniform(-0.08, 0.08) * (x - 0.5) + rng.uniform(-0.03, 0.03) * np.cos(8 * x)
                hi = np.round(nominal * (1 + tilt + rng.uniform(0.0, 0.02)), 4)
                lo = np.round(nominal * (1 - 0.9 * tilt - rng.uniform(0.0, 0.02)), 4)
                modifiers.append({"name": syst, "type": "histosys", "data": {"hi_data": list(hi), "lo_data": list(lo)}})
        if staterror:
            modifiers.append({"name": f"staterror_{name}", "type": "staterror",
                              "data": list(np.round(np.sqrt(nominal) * rng.uniform(0.05, 0.3, bins), 4))})
        if sample == "fakes" and shapesys:
            modifiers.append({"name": f"fakes_{name}", "type": "shapesys",
                              "data": list(np.round(nominal * rng.uniform(0.1, 0.3, bins), 4))})
        samples.append({"name": sample, "data": list(nominal), "modifiers": modifiers})
    return {"name": name, "samples": samples}


def workspace(channels, bins, seed):
    rng = np.random.default_rng(seed)
    names = [f"SR_{k}" for k in range(2)] + [f"CR_{k}" for k in range(channels - 2)]
    specs = [channel(rng, name, bins, name.startswith("SR"), k < 5, k == 5) for k, name in enumerate(names)]
    spec = {
        "channels": specs,
        "observations": [],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": [
            {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.8, 1.2]], "inits": [1.0]},
            {"name": "mu", "bounds": [[-5.0, 10.0]], "inits": [1.0]},
        ]}}],
        "version": "1.0.0",
    }
    import pyhf

    model = pyhf.Workspace({**spec, "observations": [{"name": c["name"], "data": [0.0] * bins} for c in specs]}).model()
    pars = np.asarray(model.config.suggested_init(), dtype=float)
    pars[model.config.poi_index] = 1.2
    for name in DETECTOR[:4] + SHAPES[:2]:
        pars[model.config.par_slice(name)] = rng.normal(0.0, 0.7)
    expected = model.expected_actualdata(pars)
    counts = rng.poisson(expected).astype(float)
    for name in model.config.channels:
        data = counts[model.config.channel_slices[name]]
        spec["observations"].append({"name": name, "data": [float(v) for v in data]})
    return spec


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--bins", type=int, default=20)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    spec = workspace(args.channels, args.bins, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(spec, indent=1) + "\n")


if __name__ == "__main__":
    main()
