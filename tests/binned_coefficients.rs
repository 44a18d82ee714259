//! Coefficients f_c(θ) on binned samples (issue 14): a sample's expected yield is f_c(θ) times
//! its HistFactory yield, so an S/SBI/B interference basis can be binned as it is unbinned.
//!
//! References: a closed form of the NLL written out in this file (independent of the engine's
//! factor/shift bookkeeping), central finite differences, and the equivalent `normfactor`.

mod common;

use std::path::{Path, PathBuf};

use common::{nsbi, stderr};
use nsbi::analysis::{Analysis, Dataset};
use nsbi::binned::combine::BinnedPart;
use nsbi::data::RatioCache;
use nsbi::likelihood::Order;
use serde_json::Value;

/// A binned signal region with the interference basis of the off-shell example,
///   λ_b = (μ − √(μ μ_B)) S_b + γ_b √(μ μ_B) SBI_b + γ_b (μ_B − √(μ μ_B)) B_b,
/// where B carries a `normfactor` μ_B and the coefficient 1 − √(μ/μ_B) (μ_B in a coefficient
/// and a modifier of one sample), SBI and B a shared `staterror` γ; and a control region
/// μ_B C_b.
const INTERFERENCE: &str = "\
name: binned_interference
parameters:
  - {name: mu, poi: true, init: 1.0, bounds: [0.0, 20.0]}
  - {name: mu_B, init: 1.0, bounds: [0.1, 5.0], constraint: none}
channels:
  - name: SR
    type: binned
    data: [140, 150, 130, 66]
    samples:
      - name: S
        coefficient: mu - sqrt(mu * mu_B)
        yields: [20.0, 35.0, 25.0, 10.0]
      - name: SBI
        coefficient: sqrt(mu * mu_B)
        yields: [130.0, 160.0, 120.0, 70.0]
        modifiers:
          - {type: staterror, name: stat_SR, uncertainties: [4.0, 5.0, 4.0, 3.0]}
      - name: B
        coefficient: 1 - sqrt(mu / mu_B)
        yields: [115.0, 140.0, 100.0, 62.0]
        modifiers:
          - {type: normfactor, name: mu_B}
          - {type: staterror, name: stat_SR, uncertainties: [3.0, 4.0, 3.0, 2.5]}
  - name: CR
    type: binned
    data: [410, 290, 160]
    samples:
      - name: B
        yields: [400.0, 300.0, 150.0]
        modifiers:
          - {type: normfactor, name: mu_B}
";

const S: [f64; 4] = [20.0, 35.0, 25.0, 10.0];
const SBI: [f64; 4] = [130.0, 160.0, 120.0, 70.0];
const B: [f64; 4] = [115.0, 140.0, 100.0, 62.0];
const SR_OBSERVED: [f64; 4] = [140.0, 150.0, 130.0, 66.0];
const C: [f64; 3] = [400.0, 300.0, 150.0];
const CR_OBSERVED: [f64; 3] = [410.0, 290.0, 160.0];

/// λ of the signal region's bins at θ = (μ, μ_B, γ_0..γ_3), written out.
fn sr_expected(theta: &[f64]) -> Vec<f64> {
    let (mu, mu_b) = (theta[0], theta[1]);
    let root = (mu * mu_b).sqrt();
    (0..4)
        .map(|b| {
            let gamma = theta[2 + b];
            (mu - root) * S[b] + gamma * root * SBI[b] + gamma * (mu_b - root) * B[b]
        })
        .collect()
}

/// ln n! of a count.
fn ln_factorial(n: f64) -> f64 {
    (2..=n as u64).map(|k| (k as f64).ln()).sum()
}

fn poisson_nll(lambda: f64, n: f64) -> f64 {
    lambda - n * lambda.ln() + ln_factorial(n)
}

/// The NLL of [`INTERFERENCE`] in closed form: Poisson terms with their constants, and the
/// staterror's Gauss(1 | γ_b, σ_b), σ_b = √(σ_SBI² + σ_B²)/(SBI_b + B_b), as pyhf writes it.
fn closed_form_nll(theta: &[f64]) -> f64 {
    let sigma_sbi = [4.0, 5.0, 4.0, 3.0];
    let sigma_b = [3.0, 4.0, 3.0, 2.5];
    let mut nll = 0.0;
    for (lambda, n) in sr_expected(theta).iter().zip(SR_OBSERVED) {
        nll += poisson_nll(*lambda, n);
    }
    for (c, n) in C.iter().zip(CR_OBSERVED) {
        nll += poisson_nll(theta[1] * c, n);
    }
    for b in 0..4 {
        let sigma = f64::hypot(sigma_sbi[b], sigma_b[b]) / (SBI[b] + B[b]);
        let z = (1.0 - theta[2 + b]) / sigma;
        nll += 0.5 * z * z + sigma.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln();
    }
    nll
}

fn analysis(path: &Path) -> Analysis {
    let cache = RatioCache::new(path.parent().unwrap().join(".nsbi-cache"));
    Analysis::load(path, &cache, false).unwrap()
}

/// `count` deterministic points, parameter i uniform in `ranges[i]`.
fn points(ranges: &[(f64, f64)], count: usize) -> Vec<Vec<f64>> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..count)
        .map(|_| {
            ranges
                .iter()
                .map(|(low, high)| low + (high - low) * uniform())
                .collect()
        })
        .collect()
}

/// Central difference of `f` in direction `i` at `x`.
fn central_difference(f: &dyn Fn(&[f64]) -> f64, x: &[f64], i: usize) -> f64 {
    let h = 1e-5 * x[i].abs().max(1.0);
    let (mut up, mut down) = (x.to_vec(), x.to_vec());
    up[i] += h;
    down[i] -= h;
    (f(&up) - f(&down)) / (2.0 * h)
}

#[test]
fn interference_basis_nll_gradient_and_hessian_equal_the_closed_form() {
    let dir = tempfile::tempdir().unwrap();
    let analysis = analysis(&common::write_workspace(dir.path(), INTERFERENCE));
    let names: Vec<&str> = analysis
        .model
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "mu",
            "mu_B",
            "stat_SR[0]",
            "stat_SR[1]",
            "stat_SR[2]",
            "stat_SR[3]"
        ]
    );
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    let n = names.len();
    let ranges = [
        (0.3, 3.0),
        (0.7, 1.4),
        (0.95, 1.05),
        (0.95, 1.05),
        (0.95, 1.05),
        (0.95, 1.05),
    ];
    for (k, theta) in points(&ranges, 20).iter().enumerate() {
        let at = like.evaluate(theta, Order::Hessian);
        assert!(at.invalid.is_none(), "point {k}: {:?}", at.invalid);
        let expected = closed_form_nll(theta);
        assert!(
            (at.nll - expected).abs() <= 1e-12 * expected.abs(),
            "point {k} {theta:?}: NLL engine {} vs closed form {expected}",
            at.nll
        );
        for i in 0..n {
            let fd = central_difference(&closed_form_nll, theta, i);
            assert!(
                (at.gradient[i] - fd).abs() <= 1e-6 * fd.abs().max(1.0),
                "point {k}: ∂NLL/∂{} engine {} vs finite difference of the closed form {fd}",
                names[i],
                at.gradient[i]
            );
            for j in 0..n {
                let gradient_j = |x: &[f64]| like.evaluate(x, Order::Gradient).gradient[j];
                let fd = central_difference(&gradient_j, theta, i);
                let h = at.hessian[i * n + j];
                assert!(
                    (h - fd).abs() <= 1e-5 * fd.abs().max(1.0),
                    "point {k}: ∂²NLL/∂{}∂{} engine {h} vs finite difference {fd}",
                    names[i],
                    names[j]
                );
            }
        }
    }
    // Asimov counts (and the means toys draw from) carry the coefficients.
    let theta = [2.0, 1.1, 1.0, 1.02, 0.98, 1.0];
    let binned = analysis.model.kind::<BinnedPart>().unwrap();
    let expected = binned.expected(&theta);
    for (engine, closed) in expected[0].iter().zip(sr_expected(&theta)) {
        assert!(
            (engine - closed).abs() <= 1e-12 * closed,
            "{engine} vs {closed}"
        );
    }
    let asimov = analysis
        .likelihood(&Dataset::Asimov(theta.to_vec()))
        .unwrap();
    let at = asimov.evaluate(&theta, Order::Gradient);
    assert!(
        at.gradient[0].abs() < 1e-9,
        "the Asimov set at μ = 2 has its Poisson minimum there in μ: ∂NLL/∂μ = {}",
        at.gradient[0]
    );
}

/// A signal region where the signal's scale μ is a coefficient or, equivalently, a normfactor.
fn scaled_signal(scale: &str) -> String {
    format!(
        "\
name: scaled_signal
parameters:
  - {{name: mu, poi: true, init: 1.0, bounds: [0.0, 10.0]}}
channels:
  - name: SR
    type: binned
    data: [63, 80, 49]
    samples:
      - name: S
{scale}
        yields: [12.0, 25.0, 9.0]
        modifiers:
          - {{type: normsys, name: alpha_sig, hi: 1.06, lo: 0.93}}
{normfactor}
      - name: B
        yields: [50.0, 52.0, 41.0]
        modifiers:
          - {{type: staterror, name: stat_SR, uncertainties: [2.0, 2.5, 1.5]}}
",
        scale = if scale == "coefficient" {
            "        coefficient: mu"
        } else {
            ""
        },
        normfactor = if scale == "normfactor" {
            "          - {type: normfactor, name: mu}"
        } else {
            ""
        },
    )
}

fn write_in(dir: &Path, name: &str, text: &str) -> PathBuf {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    common::write_workspace(&sub, text)
}

fn fit_json(workspace: &Path, extra: &[&str]) -> Value {
    let json = workspace.with_extension("fit.json");
    let mut args = vec!["fit", workspace.to_str().unwrap(), "--json"];
    args.push(json.to_str().unwrap());
    args.extend_from_slice(extra);
    let run = nsbi(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    common::read_json(&json)
}

#[test]
fn a_coefficient_mu_equals_a_normfactor_mu() {
    let dir = tempfile::tempdir().unwrap();
    let with_coefficient = write_in(dir.path(), "coefficient", &scaled_signal("coefficient"));
    let with_normfactor = write_in(dir.path(), "normfactor", &scaled_signal("normfactor"));
    let (a, b) = (analysis(&with_coefficient), analysis(&with_normfactor));
    let names = |m: &Analysis| -> Vec<String> {
        m.model.parameters.iter().map(|p| p.name.clone()).collect()
    };
    assert_eq!(names(&a), names(&b));
    assert_eq!(
        names(&a),
        ["mu", "alpha_sig", "stat_SR[0]", "stat_SR[1]", "stat_SR[2]"]
    );
    let (like_a, like_b) = (
        a.likelihood(&Dataset::Observed).unwrap(),
        b.likelihood(&Dataset::Observed).unwrap(),
    );
    let ranges = [
        (0.0, 4.0),
        (-2.0, 2.0),
        (0.95, 1.05),
        (0.95, 1.05),
        (0.95, 1.05),
    ];
    for (k, theta) in points(&ranges, 20).iter().enumerate() {
        let (ea, eb) = (
            like_a.evaluate(theta, Order::Hessian),
            like_b.evaluate(theta, Order::Hessian),
        );
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * x.abs().max(1.0);
        assert!(close(ea.nll, eb.nll), "point {k}: {} vs {}", ea.nll, eb.nll);
        for (i, (x, y)) in ea.gradient.iter().zip(&eb.gradient).enumerate() {
            assert!(close(*x, *y), "point {k} gradient {i}: {x} vs {y}");
        }
        for (i, (x, y)) in ea.hessian.iter().zip(&eb.hessian).enumerate() {
            assert!(close(*x, *y), "point {k} Hessian {i}: {x} vs {y}");
        }
    }
    let (fit_a, fit_b) = (
        fit_json(&with_coefficient, &[]),
        fit_json(&with_normfactor, &[]),
    );
    assert_eq!(fit_a["status"]["verdict"], "converged");
    let (nll_a, nll_b) = (
        fit_a["nll"].as_f64().unwrap(),
        fit_b["nll"].as_f64().unwrap(),
    );
    assert!((nll_a - nll_b).abs() < 1e-9, "{nll_a} vs {nll_b}");
    for (name, p) in fit_a["parameters"].as_object().unwrap() {
        for key in ["value", "error"] {
            let (x, y) = (
                p[key].as_f64().unwrap(),
                fit_b["parameters"][name][key].as_f64().unwrap(),
            );
            assert!((x - y).abs() < 1e-7, "{name} {key}: {x} vs {y}");
        }
    }
}

#[test]
fn fit_and_scan_of_the_binned_interference_recover_the_generating_mu() {
    let dir = tempfile::tempdir().unwrap();
    let ws = common::write_workspace(dir.path(), INTERFERENCE);
    let asimov = "mu=2,mu_B=1";
    let fit = fit_json(&ws, &["--asimov", asimov, "--no-minos"]);
    assert_eq!(fit["status"]["verdict"], "converged");
    let mu = fit["parameters"]["mu"]["value"].as_f64().unwrap();
    assert!((mu - 2.0).abs() < 1e-6, "μ̂ = {mu}");
    let mu_b = fit["parameters"]["mu_B"]["value"].as_f64().unwrap();
    assert!((mu_b - 1.0).abs() < 1e-6, "μ̂_B = {mu_b}");

    let json = dir.path().join("scan.json");
    let run = nsbi(&[
        "scan",
        ws.to_str().unwrap(),
        "--poi",
        "mu",
        "--range=1:3",
        "--points",
        "5",
        "--asimov",
        asimov,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let scan = common::read_json(&json);
    let grid: Vec<(f64, f64)> = scan["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["best_fit"] == false)
        .map(|p| (p["mu"].as_f64().unwrap(), p["t"].as_f64().unwrap()))
        .collect();
    assert_eq!(grid.len(), 5);
    for &(mu, t) in &grid {
        if (mu - 2.0).abs() < 1e-12 {
            assert!(t.abs() < 1e-8, "t({mu}) = {t}");
        } else {
            assert!(
                t > 0.1,
                "t({mu}) = {t}: the generating μ = 2 must be the minimum"
            );
        }
    }
    let best = scan["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["best_fit"] == true)
        .unwrap();
    let best_mu = best["mu"].as_f64().unwrap();
    assert!(
        (best_mu - 2.0).abs() < 1e-6,
        "scan's best fit μ̂ = {best_mu}"
    );
}

/// A signal whose coefficient 1 − μ turns negative above μ = 1; bin 1 has little background.
const NEGATIVE: &str = "\
name: negative_signal
parameters:
  - {name: mu, poi: true, init: 0.5, bounds: [0.0, 10.0]}
channels:
  - name: SR
    type: binned
    data: [55, 4, 42]
    samples:
      - name: S
        coefficient: 1 - mu
        yields: [5.0, 10.0, 2.0]
      - name: B
        yields: [50.0, 3.0, 40.0]
";

#[test]
fn a_coefficient_that_makes_a_bin_negative_has_no_likelihood_there() {
    let dir = tempfile::tempdir().unwrap();
    let ws = common::write_workspace(dir.path(), NEGATIVE);
    let analysis = analysis(&ws);
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    // At μ = 3 bin 1 expects 3 − 2 · 10 = −17 events with 4 observed.
    let at = like.evaluate(&[3.0], Order::Hessian);
    let invalid = at.invalid.as_ref().expect("no likelihood at μ = 3");
    assert_eq!((invalid.channel.as_str(), invalid.event), ("SR", 1));
    assert!(invalid.bin);
    assert_eq!(invalid.density, -17.0);
    assert_eq!(
        at.nll,
        f64::INFINITY,
        "not a number the minimiser could take"
    );
    let text = invalid.to_string();
    assert!(
        text.contains("bin 1 of binned channel SR") && text.contains("-1.7"),
        "{text}"
    );
    // Below μ = 1.3 every bin is positive and the value is finite.
    assert!(like.evaluate(&[1.2], Order::Value).nll.is_finite());

    // A fit started there says where and why.
    let run = nsbi(&["fit", ws.to_str().unwrap(), "--set-init", "mu=3"]);
    common::assert_refused(&run, &["bin 1 of binned channel SR", "mu = 3"]);
}

#[test]
fn export_to_pyhf_refuses_coefficients_pyhf_cannot_express() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let export = |ws: &Path| {
        nsbi(&[
            "export",
            "pyhf",
            ws.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let interference = write_in(dir.path(), "interference", INTERFERENCE);
    common::assert_refused(
        &export(&interference),
        &[
            "channels[0].samples[0].coefficient",
            "channel 'SR', sample 'S': coefficient 'mu - sqrt(mu * mu_B)' is not a product of \
             parameters",
            "pyhf has no modifier for a coefficient",
        ],
    );
    assert!(!out.exists(), "nothing written");

    // A product with a parameter nsbi constrains would lose its constraint as a normfactor.
    let constrained = write_in(
        dir.path(),
        "constrained",
        &scaled_signal("coefficient")
            .replace("coefficient: mu", "coefficient: mu * k")
            .replace(
                "bounds: [0.0, 10.0]}",
                "bounds: [0.0, 10.0]}\n  - {name: k, init: 0.0}",
            ),
    );
    common::assert_refused(
        &export(&constrained),
        &[
            "channel 'SR', sample 'S': coefficient 'mu * k' names 'k'",
            "constraint",
        ],
    );
    assert!(!out.exists(), "nothing written");

    // A plain product is a normfactor: pyhf reads the same likelihood.
    let plain = write_in(dir.path(), "plain", &scaled_signal("coefficient"));
    let run = export(&plain);
    assert!(run.status.success(), "{}", stderr(&run));
    let json = common::read_json(&out);
    let modifiers = &json["channels"][0]["samples"][0]["modifiers"];
    assert!(
        modifiers
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["type"] == "normfactor" && m["name"] == "mu"),
        "{modifiers}"
    );
    let fit = fit_json(&plain, &[]);
    let (poi, pyhf_nll) = common::pyhf_nll_at_fit(&out, &fit);
    assert_eq!(poi, "mu");
    let nll = fit["nll"].as_f64().unwrap();
    assert!(
        (nll - pyhf_nll).abs() < 1e-10 * nll.abs(),
        "nsbi {nll} vs pyhf {pyhf_nll}"
    );
}
