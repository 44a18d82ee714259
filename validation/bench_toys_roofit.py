"""Toys end to end against RooFit (`make bench-roofit`): toys of the example model
(workspace_exact.yaml) drawn and fitted by RooFit (PyPI `root`, Minuit2, EvalBackend('cpu'),
one core) and by `nsbi toys` at the same grid point, back to back in one run.

Inputs come from `cargo run --release --example roofit_inputs` (the pool of the generation
point `nsbi toys --mu-grid 1:1:1` uses, and a few of that command's toys with nsbi's fits).

The RooFit model is nsbi's, term by term (README "Normalisation of the shape systematics"):
    NLL = nu(theta) - sum_i ln( sum_c nu~_c r_c(x_i) g_c(x_i|alpha) ) + sum_k (alpha_k - a_k)^2/2
with nu_c = nu0_c f_c(mu) prod G_ck (FlexibleInterpVar, code 4: 6th-order polynomial inside,
exponential outside |alpha| = 1), nu~_B = nu_B / N_B(alpha_shape), N_B the average of B's shape
factor over B's own MC, and g_B code 4 per event. RooFit's best set-up for it, as a RooFit user
writes it for speed: the per-event ratios and B's shape inputs are columns of a RooDataSet (with
the six code-4 polynomial coefficients of each event precomputed as columns, so an evaluation is
a Horner polynomial or one exp per event); the per-event mixture is one C++ RooAbsReal with a
vectorised doEval (the cpu backend's batch interface) wrapped by RooWrapperPdf(selfNormalized)
and extended by RooExtendPdf(nu); N_B is a C++ RooAbsReal (the moment polynomial inside, an MC
pass outside, as nsbi does); the yields are RooFit's own FlexibleInterpVar / RooProduct /
RooAddition; the constraints RooGaussian with global observables.

Toy generation for a model defined on MC events is a bootstrap from the weighted pool: per toy
N ~ Poisson(nu) with TRandom3, then N pool events with replacement with probability proportional
to the draw weight (inverse CDF: binary search in the cumulative weights), filled into a
RooDataSet row by row (RooDataSet::add), global observables a_k ~ N(alpha_gen,k, 1) - in C++
declared through the interpreter, as a RooFit user writing a toy loop would.

Each toy: conditional fit (mu fixed at 1) then free fit, both from theta_gen, t = 2 (NLL_cond -
NLL_free) (a free fit above the conditional one counts as the conditional point, as nsbi does).

Usage: bench_toys_roofit.py --inputs target/roofit/inputs.h5 --nsbi target/release/nsbi
       --workspace W --toys 200 --nsbi-toys 20000 --out target/roofit/summary.json
"""
import argparse
import json
import math
import os
import subprocess
import time

import h5py
import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
import ROOT  # noqa: E402

ROOT.gROOT.SetBatch(True)
ROOT.RooMsgService.instance().setGlobalKillBelow(ROOT.RooFit.WARNING)

ROOT.gInterpreter.Declare(r"""
#include <RooAbsReal.h>
#include <RooRealProxy.h>
#include <RooListProxy.h>
#include <RooFit/EvalContext.h>
#include <RooDataSet.h>
#include <RooArgList.h>
#include <RooRealVar.h>
#include <TRandom3.h>
#include <algorithm>
#include <cmath>
#include <vector>

// s(x)/nu: (nuS r0 + nuSBI r1 + nuB/NB r2 gB(x|alpha)) / nu, gB code 4 from per-event
// coefficients c1..c6 inside |alpha| < 1 and exp(+-alpha ln delta) outside.
class NsbiMixture : public RooAbsReal {
public:
  NsbiMixture() = default;
  NsbiMixture(const char* name, const char* title, RooArgList const& obs, RooAbsReal& nuS,
              RooAbsReal& nuSBI, RooAbsReal& nuB, RooAbsReal& normB, RooAbsReal& alpha,
              RooAbsReal& nu)
    : RooAbsReal(name, title), _obs("obs", "", this), _nuS("nuS", "", this, nuS),
      _nuSBI("nuSBI", "", this, nuSBI), _nuB("nuB", "", this, nuB),
      _normB("normB", "", this, normB), _alpha("alpha", "", this, alpha), _nu("nu", "", this, nu)
  {
    _obs.add(obs);
  }
  NsbiMixture(const NsbiMixture& o, const char* name = nullptr)
    : RooAbsReal(o, name), _obs("obs", this, o._obs), _nuS("nuS", this, o._nuS),
      _nuSBI("nuSBI", this, o._nuSBI), _nuB("nuB", this, o._nuB), _normB("normB", this, o._normB),
      _alpha("alpha", this, o._alpha), _nu("nu", this, o._nu) {}
  TObject* clone(const char* newname) const override { return new NsbiMixture(*this, newname); }

  static inline double shape(double a, double lnup, double lndn, const double* c) {
    if (a >= 1.0) return std::exp(a * lnup);
    if (a <= -1.0) return std::exp(-a * lndn);
    return 1.0 + a * (c[0] + a * (c[1] + a * (c[2] + a * (c[3] + a * (c[4] + a * c[5])))));
  }

protected:
  double evaluate() const override {
    double x[11];
    for (int k = 0; k < 11; ++k) x[k] = static_cast<RooAbsReal&>(_obs[k]).getVal();
    double s = _nuS * x[0] + _nuSBI * x[1] + _nuB / _normB * x[2] * shape(_alpha, x[3], x[4], x + 5);
    return s / _nu;
  }

  void doEval(RooFit::EvalContext& ctx) const override {
    auto out = ctx.output();
    std::vector<decltype(ctx.at(&_obs[0], this))> col;
    for (int k = 0; k < 11; ++k) col.push_back(ctx.at(&_obs[k], this));
    const double nuS = ctx.at(_nuS)[0], nuSBI = ctx.at(_nuSBI)[0];
    const double nuBt = ctx.at(_nuB)[0] / ctx.at(_normB)[0];
    const double a = ctx.at(_alpha)[0], inv = 1.0 / ctx.at(_nu)[0];
    for (std::size_t i = 0; i < out.size(); ++i) {
      double c[6] = {col[5][i], col[6][i], col[7][i], col[8][i], col[9][i], col[10][i]};
      out[i] = (nuS * col[0][i] + nuSBI * col[1][i]
                + nuBt * col[2][i] * shape(a, col[3][i], col[4][i], c)) * inv;
    }
  }

private:
  RooListProxy _obs;
  RooRealProxy _nuS, _nuSBI, _nuB, _normB, _alpha, _nu;
};

// N_B(alpha) = sum_j b_j gB(x_j|alpha) over B's own MC: inside |alpha| < 1 the polynomial of the
// b-averaged coefficients, outside one pass over the MC.
class ShapeNorm : public RooAbsReal {
public:
  ShapeNorm() = default;
  ShapeNorm(const char* name, RooAbsReal& alpha, std::vector<double> b, std::vector<double> lnup,
            std::vector<double> lndn, std::vector<double> meanCoeffs, double bSum)
    : RooAbsReal(name, name), _alpha("alpha", "", this, alpha), _b(b), _lnup(lnup), _lndn(lndn),
      _mean(meanCoeffs), _bSum(bSum) {}
  ShapeNorm(const ShapeNorm& o, const char* name = nullptr)
    : RooAbsReal(o, name), _alpha("alpha", this, o._alpha), _b(o._b), _lnup(o._lnup),
      _lndn(o._lndn), _mean(o._mean), _bSum(o._bSum) {}
  TObject* clone(const char* newname) const override { return new ShapeNorm(*this, newname); }

protected:
  double evaluate() const override {
    const double a = _alpha;
    if (std::abs(a) < 1.0) {
      double v = 0.0;
      for (int n = 5; n >= 0; --n) v = a * (_mean[n] + v);
      return _bSum + v;
    }
    double s = 0.0;
    const auto& ln = a >= 1.0 ? _lnup : _lndn;
    const double e = a >= 1.0 ? a : -a;
    for (std::size_t j = 0; j < _b.size(); ++j) s += _b[j] * std::exp(e * ln[j]);
    return s;
  }

private:
  RooRealProxy _alpha;
  std::vector<double> _b, _lnup, _lndn, _mean;
  double _bSum = 1.0;
};

// The bootstrap: N ~ Poisson(nu), N pool rows with probability proportional to the draw weight.
struct Bootstrap {
  std::vector<std::vector<double>> columns;  // pool columns, in the order of the observables
  std::vector<double> cumulative;
  double nu = 0.0;
  TRandom3 rng;

  Bootstrap(std::vector<std::vector<double>> cols, std::vector<double> weights, double nu_,
            unsigned seed) : columns(cols), nu(nu_), rng(seed) {
    cumulative.resize(weights.size());
    double sum = 0.0;
    for (std::size_t i = 0; i < weights.size(); ++i) cumulative[i] = (sum += weights[i]);
  }

  std::vector<std::size_t> indices() {
    const int n = rng.Poisson(nu);
    std::vector<std::size_t> out(n);
    for (auto& i : out) {
      const double u = rng.Uniform(cumulative.back());
      i = std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin();
      if (i >= cumulative.size()) i = cumulative.size() - 1;
    }
    return out;
  }

  // A toy's RooDataSet and its global observables (set on `globals`, mean `centres`).
  RooDataSet* draw(RooArgList& obs, RooArgList& globals, std::vector<double> const& centres) {
    auto rows = indices();
    auto* data = fill(obs, rows);
    for (int k = 0; k < globals.getSize(); ++k)
      static_cast<RooRealVar&>(globals[k]).setVal(centres[k] + rng.Gaus(0.0, 1.0));
    return data;
  }

  RooDataSet* fill(RooArgList& obs, std::vector<std::size_t> const& rows) {
    auto* data = new RooDataSet("toy", "toy", RooArgSet(obs));
    const int m = obs.getSize();
    for (auto i : rows) {
      for (int k = 0; k < m; ++k) static_cast<RooRealVar&>(obs[k]).setVal(columns[k][i]);
      data->add(RooArgSet(obs));
    }
    return data;
  }
};
""")

A0 = 1.0
N = np.arange(1, 7, dtype=float)
A_INV = np.linalg.inv(np.array([
    A0 ** N, (-A0) ** N, N * A0 ** (N - 1), N * (-A0) ** (N - 1),
    N * (N - 1) * A0 ** np.maximum(N - 2, 0), N * (N - 1) * (-A0) ** np.maximum(N - 2, 0)]))


def code4_coefficients(up, down):
    """Per event the six code-4 polynomial coefficients of delta+- (value, first and second
    derivative matching the exponential branches at +-1)."""
    lu, ld = np.log(up), np.log(down)
    return A_INV @ np.stack([up - 1.0, down - 1.0, lu * up, -ld * down, lu * lu * up, ld * ld * down])


def event_columns(group):
    """The 11 observables of a set of events: r0, r1, r2, ln delta+, ln delta-, c1..c6."""
    up, down = group["r2_shape0_up"][:], group["r2_shape0_down"][:]
    return [group["r0"][:], group["r1"][:], group["r2"][:], np.log(up), np.log(down),
            *code4_coefficients(up, down)]


class RooFitModel:
    def __init__(self, f):
        self.keep = []
        lo, hi = f["lower_bounds"][:], f["upper_bounds"][:]
        margin = 1e-10 * np.maximum(np.abs(lo), 1.0)
        self.theta_gen = f["theta_gen"][:]
        self.mu_true = float(f["mu_true"][0])
        names = ("mu", "alpha_eff", "alpha_shape")
        steps = (0.07, 0.5, 0.9)
        self.params = [ROOT.RooRealVar(n, n, float(t), float(a), float(b))
                       for n, t, a, b in zip(names, self.theta_gen, lo + margin, hi - margin)]
        for p, s in zip(self.params, steps):
            p.setError(s)
        mu, a_eff, a_shape = self.params
        names_obs = ["r0", "r1", "r2", "lnup", "lndn"] + [f"c{k}" for k in range(1, 7)]
        self.obs = ROOT.RooArgList()
        for n in names_obs:
            v = ROOT.RooRealVar(n, n, 0.0, -1e30, 1e30)
            self.keep.append(v)
            self.obs.add(v)
        self.globals = ROOT.RooArgList()
        self.constraints = ROOT.RooArgSet()
        for k in np.flatnonzero(f["constrained"][:]):
            g = ROOT.RooRealVar(f"a_{names[k]}", "", float(self.theta_gen[k]), -10.0, 10.0)
            g.setConstant(True)
            c = ROOT.RooGaussian(f"c_{names[k]}", "", self.params[k], g, 1.0)
            self.keep += [g, c]
            self.globals.add(g)
            self.constraints.add(c)
        coeff = [ROOT.RooFormulaVar("fS", "mu - sqrt(mu)", ROOT.RooArgList(mu)),
                 ROOT.RooFormulaVar("fSBI", "sqrt(mu)", ROOT.RooArgList(mu)),
                 ROOT.RooFormulaVar("fB", "1 - sqrt(mu)", ROOT.RooArgList(mu))]
        factors = [[coeff[c], ROOT.RooConstVar(f"nu0_{c}", "", float(v))]
                   for c, v in enumerate(f["nominal_yields"][:])]
        for row, (c, k, up, down) in enumerate(f["yield_factors"][:].reshape(-1, 4)):
            g = ROOT.RooStats.HistFactory.FlexibleInterpVar(
                f"G{row}", "", ROOT.RooArgList(self.params[int(k)]), 1.0,
                ROOT.std.vector["double"]([float(down)]), ROOT.std.vector["double"]([float(up)]),
                ROOT.std.vector["int"]([self.yield_code]))
            factors[int(c)].append(g)
        self.nus = []
        for c, fs in enumerate(factors):
            lst = ROOT.RooArgList()
            for x in fs:
                lst.add(x)
            self.nus.append(ROOT.RooProduct(f"nu_{c}", "", lst))
        self.keep += coeff + [x for fs in factors for x in fs]
        self.nu = ROOT.RooAddition("nu", "", ROOT.RooArgList(*self.nus))
        up, down, b = f["mc2_shape0_up"][:], f["mc2_shape0_down"][:], f["mc2_weights"][:]
        vec = ROOT.std.vector["double"]
        self.norm = ROOT.ShapeNorm("NB", a_shape, vec(b), vec(np.log(up)), vec(np.log(down)),
                                   vec(code4_coefficients(up, down) @ b), float(b.sum()))
        self.density = ROOT.NsbiMixture("s", "", self.obs, *self.nus, self.norm, a_shape, self.nu)
        self.pdf = ROOT.RooWrapperPdf("pdf", "", self.density, True)
        self.model = ROOT.RooExtendPdf("model", "", self.pdf, self.nu)

    yield_code = 4

    def set_globals(self, values):
        for k in range(self.globals.getSize()):
            self.globals[k].setVal(values[k])

    def fit(self, data, tolerance=None):
        """Conditional then free fit of `data`: (t, mu_hat, converged). `tolerance`: MIGRAD's
        (RooMinimizer::setEps), RooFit's default when None."""
        nll = self.model.createNLL(data, ROOT.RooFit.Extended(True),
                                   ROOT.RooFit.ExternalConstraints(self.constraints),
                                   ROOT.RooFit.GlobalObservables(ROOT.RooArgSet(self.globals)),
                                   ROOT.RooFit.EvalBackend("cpu"))
        results = []
        for conditional in (True, False):
            for p, t in zip(self.params, self.theta_gen):
                p.setVal(float(t))
                p.setError(p.getError())
            self.params[0].setVal(self.mu_true)
            self.params[0].setConstant(conditional)
            m = ROOT.RooMinimizer(nll)
            m.setMinimizerType("Minuit2")
            m.setPrintLevel(-1)
            m.setStrategy(1)
            if tolerance is not None:
                m.setEps(tolerance)
            status = m.minimize("Minuit2", "Migrad")
            results.append((nll.getVal(), self.params[0].getVal(), status == 0))
        self.params[0].setConstant(False)
        (nll_c, _, ok_c), (nll_f, mu_f, ok_f) = results
        if not (ok_f and nll_f <= nll_c):
            nll_f, mu_f, ok_f = nll_c, self.mu_true, False
        return 2.0 * (nll_c - nll_f), mu_f, ok_c and ok_f


def check_yield_factors(model, f):
    """FlexibleInterpVar's code 4 against the code-4 definition (exp outside, polynomial in)."""
    for row, (c, k, up, down) in enumerate(f["yield_factors"][:].reshape(-1, 4)):
        g = model.keep[[i for i, x in enumerate(model.keep) if x.GetName() == f"G{row}"][0]]
        coeff = code4_coefficients(np.array([up]), np.array([down]))[:, 0]
        p = model.params[int(k)]
        for a in (-2.0, -0.5, 0.3, 0.9, 1.7):
            p.setVal(a)
            want = (up ** a if a >= 1 else down ** -a if a <= -1
                    else 1.0 + sum(cn * a ** (n + 1) for n, cn in enumerate(coeff)))
            assert abs(g.getVal() - want) < 1e-12 * want, (row, a, g.getVal(), want)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", required=True)
    p.add_argument("--nsbi", required=True)
    p.add_argument("--workspace", required=True)
    p.add_argument("--toys", type=int, default=200, help="RooFit toys to time")
    p.add_argument("--nsbi-toys", type=int, default=20000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    f = h5py.File(a.inputs, "r")
    model = RooFitModel(f)
    check_yield_factors(model, f)

    # Agreement first: RooFit fits nsbi's own toys.
    shared = sorted(k for k in f if k.startswith("toy_"))
    agreement = []
    for name in shared:
        g = f[name]
        cols = event_columns(g)
        data = ROOT.RooDataSet("shared", "", ROOT.RooArgSet(model.obs))
        for row in np.stack(cols, axis=1):
            for k, v in enumerate(row):
                model.obs[k].setVal(float(v))
            data.add(ROOT.RooArgSet(model.obs))
        model.set_globals(g["global_observables"][:][f["constrained"][:] > 0])
        # At a tight tolerance, so that what differs is the model, not where MIGRAD stops.
        t, mu_hat, ok = model.fit(data, tolerance=1e-4)
        agreement.append({"toy": name, "roofit": {"t": t, "mu_hat": mu_hat, "converged": ok},
                          "nsbi": {"t": float(g["nsbi_t"][0]), "mu_hat": float(g["nsbi_mu_hat"][0]),
                                   "converged": bool(g["nsbi_converged"][0])}})
    both = [x for x in agreement if x["roofit"]["converged"] and x["nsbi"]["converged"]]
    max_dt = max(abs(x["roofit"]["t"] - x["nsbi"]["t"]) for x in both)
    max_dmu = max(abs(x["roofit"]["mu_hat"] - x["nsbi"]["mu_hat"]) for x in both)
    print(f"agreement on {len(both)}/{len(shared)} shared toys: max |dt| {max_dt:.2e}, "
          f"max |dmu_hat| {max_dmu:.2e}", flush=True)

    # RooFit: generate and fit, timed per toy after the model is built.
    pool = f["pool"]
    cols = ROOT.std.vector[ROOT.std.vector["double"]]([ROOT.std.vector["double"](c) for c in event_columns(pool)])
    boot = ROOT.Bootstrap(cols, ROOT.std.vector["double"](pool["draw_weight"][:]),
                          float(f["expected"][0]), a.seed)
    centres = ROOT.std.vector["double"]([float(x) for x in model.theta_gen[f["constrained"][:] > 0]])
    t_gen = t_fit = 0.0
    ts = []
    for _ in range(a.toys):
        start = time.perf_counter()
        data = boot.draw(model.obs, model.globals, centres)
        t_gen += time.perf_counter() - start
        start = time.perf_counter()
        ts.append(model.fit(data)[0])
        t_fit += time.perf_counter() - start
        ROOT.SetOwnership(data, True)
        del data
    roofit = {"toys": a.toys, "toys_per_s": a.toys / (t_gen + t_fit), "fits_per_s": a.toys / t_fit,
              "generation_per_s": a.toys / t_gen, "mean_t": float(np.mean(ts))}
    print(f"RooFit: {roofit['toys_per_s']:.1f} toys/s end to end "
          f"(generation {roofit['generation_per_s']:.0f}/s, fits {roofit['fits_per_s']:.1f}/s)", flush=True)

    # nsbi toys as a user runs it, one thread: the marginal rate of two runs (which removes
    # loading the workspace and the observed fits) and the whole command's.
    def run_nsbi(n):
        start = time.perf_counter()
        subprocess.run([a.nsbi, "toys", a.workspace, "--mu-grid", "1:1:1", "--toys", str(n),
                        "--threads", "1", "--seed", str(a.seed), "--out",
                        os.path.join(os.path.dirname(a.out), f"nsbi_toys_{n}.h5")],
                       check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start
    small, large = a.nsbi_toys // 10, a.nsbi_toys
    t_small, t_large = run_nsbi(small), run_nsbi(large)
    nsbi = {"toys": large, "whole_command_toys_per_s": large / t_large,
            "marginal_toys_per_s": (large - small) / (t_large - t_small),
            "command_seconds": {str(small): t_small, str(large): t_large}}
    print(f"nsbi toys: {nsbi['marginal_toys_per_s']:.0f} toys/s marginal, "
          f"{nsbi['whole_command_toys_per_s']:.0f} toys/s whole command", flush=True)
    summary = {
        "model": "workspaces/offshell_toy/workspace_exact.yaml at mu = 1 (nsbi's generation point)",
        "threads": 1, "busy_machine": True,
        "roofit": roofit, "nsbi": nsbi,
        "ratio_end_to_end": nsbi["marginal_toys_per_s"] / roofit["toys_per_s"],
        "ratio_whole_command": nsbi["whole_command_toys_per_s"] / roofit["toys_per_s"],
        "agreement": {"compared": len(both), "shared": len(shared), "max_abs_dt": max_dt,
                      "max_abs_dmu_hat": max_dmu, "toys": agreement},
        "versions": {"root": ROOT.gROOT.GetVersion()},
    }
    tmp = a.out + ".tmp"
    with open(tmp, "w") as out:
        json.dump(summary, out, indent=1)
    os.replace(tmp, a.out)
    print(json.dumps({k: summary[k] for k in ("ratio_end_to_end", "ratio_whole_command")}))


if __name__ == "__main__":
    main()
