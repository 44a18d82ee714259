//! Closure of the likelihood and the fit against an independent computation: the example's
//! closed-form densities, code-4 interpolation solved numerically, B's shape normalisation
//! summed over its MC by brute force, and iminuit
//! (`validation/closed_form_nll.py`), on the workspace with exact-ratio models.

mod common;

use common::*;
use nsbi::analysis::{fit_with_intervals, Dataset};
use nsbi::fit::FitOptions;

#[test]
fn nll_and_fit_agree_with_closed_form_and_iminuit() {
    let analysis = example_analysis("workspace_exact.yaml");
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    let points = [
        [1.0, 0.0, 0.0],
        [0.5, 0.3, -0.2],
        [2.2, -1.1, 0.7],
        [0.05, 1.6, -2.4],
        [1.3, 0.0, 1.5],
    ];
    let text: Vec<String> = points
        .iter()
        .map(|p| format!("{},{},{}", p[0], p[1], p[2]))
        .collect();
    let observed = example().join("data/observed.h5");
    let out = run_validation_script(
        "closed_form_nll.py",
        &[
            "--events",
            observed.to_str().unwrap(),
            "--mc-b",
            example().join("data/mc_B.h5").to_str().unwrap(),
            "--points",
            &text.join(";"),
        ],
    );
    let reference: serde_json::Value = serde_json::from_str(&out).unwrap();

    for (point, expected) in points.iter().zip(reference["points"].as_array().unwrap()) {
        let expected = expected["nll"].as_f64().unwrap();
        let engine = like.nll(point).nll;
        assert!(
            (engine - expected).abs() <= 1e-9 * expected.abs(),
            "NLL at {point:?}: engine {engine} vs closed form {expected}"
        );
    }

    let report = fit_with_intervals(&like, &FitOptions::new(&like), true);
    assert!(report.result.converged, "{}", report.result.message);
    let fit = &reference["fit"];
    assert!(fit["valid"].as_bool().unwrap());
    for i in 0..3 {
        let value = fit["values"][i].as_f64().unwrap();
        let (hesse, exact) = (
            fit["errors"][i].as_f64().unwrap(),
            fit["fd_errors"][i].as_f64().unwrap(),
        );
        let engine = report.result.error(i);
        assert!(
            (report.result.theta[i] - value).abs() < 1e-4,
            "parameter {i}: engine {} vs iminuit {value}",
            report.result.theta[i]
        );
        // Against the closed form's Hessian (fine central differences) to 1e-4; iminuit's
        // HESSE uses coarser adaptive steps and agrees to a few 1e-3 relative.
        assert!(
            (engine - exact).abs() < 1e-4,
            "error {i}: engine {engine} vs closed-form Hessian {exact}"
        );
        assert!(
            (engine / hesse - 1.0).abs() < 3e-3,
            "error {i}: engine {engine} vs HESSE {hesse}"
        );
    }
    // The profile interval brackets the best fit and is close to ± the Hessian error here.
    let interval = &report.intervals[0];
    let (lo, hi) = (interval.low.unwrap(), interval.high.unwrap());
    let (mu, sigma) = (report.result.theta[0], report.result.error(0));
    assert!(lo < mu && mu < hi);
    assert!(
        ((mu - lo) / sigma - 1.0).abs() < 0.15 && ((hi - mu) / sigma - 1.0).abs() < 0.15,
        "[{lo}, {hi}] vs {mu} ± {sigma}"
    );
}

/// The trained ensembles against the MC itself: the plain weighted MC mixture at μ = 1 (not
/// the Asimov set, which is calibrated to close on the model whatever its ratios, see
/// `likelihood::closure`) fitted with the trained ratios gives μ̂ within 1σ of 1 (1.033).
#[test]
fn trained_ensembles_recover_mu_on_the_mc_mixture() {
    let analysis = example_analysis("workspace.yaml");
    let theta = [1.0, 0.0, 0.0];
    let mixture = analysis
        .model
        .channels
        .iter()
        .zip(analysis.ratios.iter())
        .map(|(c, r)| nsbi::likelihood::ChannelData::mc_mixture(c, r, &theta).unwrap())
        .collect();
    let like = nsbi::likelihood::Likelihood::new(&analysis.model, mixture).unwrap();
    let report = fit_with_intervals(&like, &FitOptions::new(&like), false);
    assert!(report.result.converged, "{}", report.result.message);
    let (mu, sigma) = (report.result.theta[0], report.result.error(0));
    assert!(
        (mu - 1.0).abs() < sigma && (mu - 1.0).abs() > 1e-3,
        "mu_hat = {mu} ± {sigma} on the mu = 1 MC mixture"
    );
}

#[test]
fn best_fit_at_the_boundary_mu_zero() {
    // Asimov data at mu = 0 fitted with the POI bounded at 0: converges at (or within 1e-6 of) the bound.
    let analysis = example_analysis("workspace_exact.yaml");
    let like = analysis
        .likelihood(&Dataset::Asimov(vec![0.0, 0.0, 0.0]))
        .unwrap();
    let mut options = FitOptions::new(&like);
    options.init = vec![1.5, 0.0, 0.0];
    let report = fit_with_intervals(&like, &options, false);
    assert!(report.result.converged, "{}", report.result.message);
    assert!(
        report.result.theta[0] < 0.05,
        "mu_hat = {}",
        report.result.theta[0]
    );
}

#[test]
fn cli_fit_json_schema_and_bad_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("fit.json");
    let ws = example().join("workspace_exact.yaml");
    let cache = root().join("target/test-ratio-cache");
    let out = nsbi(&[
        "fit",
        ws.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--fix",
        "alpha_shape=0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["status"]["converged"], true);
    assert!((v["twice_nll"].as_f64().unwrap() - 2.0 * v["nll"].as_f64().unwrap()).abs() < 1e-9);
    let mu = &v["parameters"]["mu"];
    assert_eq!(mu["bounds"][0].as_f64(), Some(0.0));
    assert!(mu["error_low"].as_f64().unwrap() > 0.0 && mu["error_high"].as_f64().unwrap() > 0.0);
    assert_eq!(v["parameters"]["alpha_shape"]["fixed"], true);
    assert_eq!(v["parameters"]["alpha_shape"]["value"].as_f64(), Some(0.0));
    assert_eq!(v["correlation"]["mu"]["mu"].as_f64(), Some(1.0));

    let out = nsbi(&[
        "fit",
        ws.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--fix",
        "alpha_nope=0",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown parameter 'alpha_nope'"),
        "{}",
        stderr(&out)
    );
    let out = nsbi(&[
        "fit",
        ws.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--asimov",
        "mu=-1",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("outside its bounds"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_strategy_reaches_the_same_minimum() {
    use nsbi::fit::{minimise_with, Strategy};
    let analysis = example_analysis("workspace.yaml");
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    let mut options = FitOptions::new(&like);
    options.init = vec![3.0, -1.0, 1.0];
    let results: Vec<_> = [
        Strategy::Newton,
        Strategy::QuasiNewton,
        Strategy::DampedNewton,
    ]
    .iter()
    .map(|&s| (s, minimise_with(&like, &options, s)))
    .collect();
    let reference = &results[0].1;
    for (strategy, r) in &results {
        assert!(r.converged, "{strategy:?}: {}", r.message);
        assert!(
            (r.nll - reference.nll).abs() < 1e-7,
            "{strategy:?}: NLL {} vs {}",
            r.nll,
            reference.nll
        );
        for (a, b) in r.theta.iter().zip(&reference.theta) {
            assert!(
                (a - b).abs() < 1e-5,
                "{strategy:?}: {:?} vs {:?}",
                r.theta,
                reference.theta
            );
        }
    }
}
