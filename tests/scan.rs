//! Profile scans: intervals agree with the profile-likelihood interval of the fit, the stat-only
//! curve is narrower, 2-D scans produce their grid and plots, bad requests are clear errors.

mod common;

use common::*;
use nsbi::analysis::{fit_with_intervals, run_scan, Dataset, ScanRequest};
use nsbi::fit::FitOptions;

#[test]
fn scan_interval_matches_the_profile_interval_and_stat_only_is_narrower() {
    let analysis = example_analysis("workspace_exact.yaml");
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    let options = FitOptions::new(&like);
    let request = ScanRequest {
        parameters: vec![0],
        ranges: vec![(0.6, 1.4)],
        points: vec![161],
        stat_only: true,
        levels: nsbi::analysis::CONTOUR_LEVELS_2D.to_vec(),
    };
    let (report, scans) = run_scan(&like, &options, &request, false).unwrap();
    assert_eq!(report["poi"], "mu");
    // The grid and the best fit, which lies inside the range.
    assert_eq!(report["points"].as_array().unwrap().len(), 162);
    assert_eq!(report["warnings"], serde_json::json!([]));
    let minos = fit_with_intervals(&like, &options, true);
    let interval = &minos.intervals[0];
    let (lo, hi) = (interval.low.unwrap(), interval.high.unwrap());
    let iv = &report["intervals"]["68.27"][0];
    let (slo, shi) = (iv[0].as_f64().unwrap(), iv[1].as_f64().unwrap());
    // The crossings are found by profiled fits, not interpolated on the grid (step 0.005).
    assert!(
        (slo - lo).abs() < 1e-4 && (shi - hi).abs() < 1e-4,
        "scan [{slo}, {shi}] vs profile [{lo}, {hi}]"
    );
    let stat = &report["stat_only"]["intervals"]["68.27"][0];
    let width = |v: &serde_json::Value| v[1].as_f64().unwrap() - v[0].as_f64().unwrap();
    assert!(
        width(stat) < width(iv),
        "stat-only {} vs stat+syst {}",
        width(stat),
        width(iv)
    );
    assert!(scans[0].points.iter().all(|p| p.t >= 0.0 && p.converged));
}

#[test]
fn two_parameter_scan_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let ws = example().join("workspace_exact.yaml");
    let cache = root().join("target/test-ratio-cache");
    let (json, stem) = (dir.path().join("scan2d.json"), dir.path().join("scan2d"));
    let out = nsbi(&[
        "scan",
        ws.to_str().unwrap(),
        "--poi",
        "mu",
        "--range",
        "0.7:1.3",
        "--poi",
        "alpha_shape",
        "--range",
        "-2:2",
        "--points",
        "9",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        stem.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["pois"], serde_json::json!(["mu", "alpha_shape"]));
    let points = v["points"].as_array().unwrap();
    // The 9 × 9 grid and the best fit.
    assert_eq!(points.len(), 82);
    assert_eq!(
        points.iter().filter(|p| p["best_fit"] == true).count(),
        1,
        "{points:?}"
    );
    let min_t = points
        .iter()
        .map(|p| p["t"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(
        min_t < 0.5,
        "the grid brackets the best fit: min t = {min_t}"
    );
    for ext in ["png", "svg"] {
        let bytes = std::fs::read(stem.with_extension(ext)).unwrap();
        assert!(bytes.len() > 1000, "{ext} plot is empty");
    }
    assert!(std::fs::read(stem.with_extension("png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
}

#[test]
fn bad_scan_requests_are_clear_errors() {
    let ws = example().join("workspace_exact.yaml");
    let cache = root().join("target/test-ratio-cache");
    let run = |args: &[&str]| {
        let mut all = vec![
            "scan",
            ws.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let out = nsbi(&all);
        assert!(!out.status.success());
        stderr(&out)
    };
    let text = run(&["--poi", "mu", "--range", "-1:3"]);
    assert!(text.contains("outside its bounds [0, 20]"), "{text}");
    let text = run(&["--poi", "nu", "--range", "0:3"]);
    assert!(text.contains("unknown parameter 'nu'"), "{text}");
    // Far outside the calibrated range of the shape systematic, with mu fixed at 9, some events'
    // densities go negative: the scan says where instead of returning numbers.
    let text = run(&[
        "--poi",
        "alpha_shape",
        "--range",
        "-5:5",
        "--points",
        "11",
        "--fix",
        "mu=9",
    ]);
    assert!(
        text.contains("crosses a region where the per-event density"),
        "{text}"
    );
    assert!(text.contains("[5.0]"), "{text}");
}
