//! Off-shell in two POIs: the `workspaces/offshell_2d` example (gg → (H*) → ZZ with μ_ggF and an
//! EW, VBF-like production with μ_EW, each in its own (S, SBI, B) basis with coefficients in √μ)
//! against its closed form (`validation/offshell2d_closed_form.py`, which wrote
//! `tests/fixtures/offshell_2d/closed_form.json`): the NLL at random points of the plane, the
//! fit, and the 2-D profile-likelihood regions.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use nsbi::analysis::{Analysis, Dataset};
use nsbi::fit::{minimise, FitOptions};

const POIS: [&str; 2] = ["mu_ggF", "mu_EW"];

fn workspace() -> PathBuf {
    root().join("workspaces/offshell_2d/workspace.yaml")
}

fn closed_form() -> serde_json::Value {
    read_json(&root().join("tests/fixtures/offshell_2d/closed_form.json"))
}

/// `nsbi scan` of (μ_ggF, μ_EW) over `ranges` with `points` per axis; its JSON report.
fn scan_2d(dir: &Path, ranges: [&str; 2], points: [&str; 2], extra: &[&str]) -> serde_json::Value {
    scan_2d_json(dir, &workspace(), POIS, ranges, &points, extra)
}

#[test]
fn nll_equals_the_closed_form_at_random_points_of_the_plane() {
    let reference = closed_form();
    let analysis = Analysis::load(&workspace(), &test_cache(), false).unwrap();
    let pois: Vec<&str> = analysis
        .model
        .parameters
        .iter()
        .filter(|p| p.poi)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(pois, POIS);
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    assert_nll_points(&like, &reference["points"]);
}

#[test]
fn fit_finds_the_closed_form_minimum() {
    let reference = &closed_form()["fit"];
    let analysis = Analysis::load(&workspace(), &test_cache(), false).unwrap();
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    let fit = minimise(&like, &FitOptions::new(&like));
    common::assert_fit_at_closed_form(&fit, reference, &["mu_ggF", "mu_EW", "alpha_lumi"], 1e-9);
}

#[test]
fn profile_scan_regions_match_the_closed_form_profile_likelihood() {
    let reference = closed_form();
    let dir = tempfile::tempdir().unwrap();
    // A 0.025 grid in both POIs around the 95 % region.
    let step = [0.025, 0.025];
    let v = scan_2d(dir.path(), ["0.65:1.35", "0.5:1.4"], ["29", "37"], &[]);
    for name in POIS {
        let (engine, exact) = (
            v["best_fit"][name].as_f64().unwrap(),
            reference["fit"][name].as_f64().unwrap(),
        );
        assert!((engine - exact).abs() < 1e-4, "{name}: {engine} vs {exact}");
    }
    assert_eq!(v["excluded_points"], serde_json::json!([]));
    // Distances in grid units: each coordinate divided by its axis's step.
    let in_steps = |p: &[f64; 2]| [p[0] / step[0], p[1] / step[1]];
    let contours = v["contours"].as_array().unwrap();
    assert_eq!(contours.len(), 2);
    for (contour, exact) in contours
        .iter()
        .zip(reference["contours"].as_array().unwrap())
    {
        let threshold = contour["threshold"].as_f64().unwrap();
        assert!((threshold - exact["threshold"].as_f64().unwrap()).abs() < 1e-9);
        let lines: Vec<Vec<[f64; 2]>> =
            serde_json::from_value(contour["polylines"].clone()).unwrap();
        assert_eq!(lines.len(), 1, "one region at {threshold}");
        assert_eq!(contour["closed"], serde_json::json!([true]));
        let engine: Vec<[f64; 2]> = lines[0].iter().map(in_steps).collect();
        let mut exact_line: Vec<[f64; 2]> =
            serde_json::from_value::<Vec<[f64; 2]>>(exact["points"].clone())
                .unwrap()
                .iter()
                .map(in_steps)
                .collect();
        exact_line.push(exact_line[0]);
        // Both ways: every engine point near the closed-form level set and every closed-form
        // point near the engine's contour, within a quarter of a grid step.
        let worst_engine = engine
            .iter()
            .map(|p| common::distance_to_polyline(*p, &exact_line))
            .fold(0.0, f64::max);
        let worst_exact = exact_line
            .iter()
            .map(|p| common::distance_to_polyline(*p, &engine))
            .fold(0.0, f64::max);
        assert!(
            worst_engine < 0.25 && worst_exact < 0.25,
            "t = {threshold}: engine contour up to {worst_engine} steps, closed form up to {worst_exact} steps away"
        );
    }
}

#[test]
fn the_whole_quadrant_has_a_likelihood_and_the_regions_are_closed() {
    // The brief's scan: [0, 3]² in steps of 0.1. Both productions are squared moduli with a
    // non-vanishing phase, so no grid point is excluded, even at μ = 0 where √μ has no slope.
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("offshell_2d");
    let v = scan_2d(
        dir.path(),
        ["0:3", "0:3"],
        ["31", "31"],
        &["--plot", stem.to_str().unwrap()],
    );
    assert_eq!(v["excluded_points"], serde_json::json!([]));
    let points = v["points"].as_array().unwrap();
    // The grid and the best fit.
    assert_eq!(points.len(), 31 * 31 + 1);
    assert_eq!(points.iter().filter(|p| p["best_fit"] == true).count(), 1);
    assert!(points.iter().all(|p| p["t"].as_f64().unwrap() >= -1e-9));
    for contour in v["contours"].as_array().unwrap() {
        assert_eq!(contour["closed"], serde_json::json!([true]), "{contour}");
    }
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(svg.contains("95 % region (asymptotic, t ≤ 5.99)"));
    assert!(std::fs::read(stem.with_extension("png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
}
