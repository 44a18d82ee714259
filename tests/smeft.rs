//! Several POIs: the SMEFT example (`workspaces/smeft_toy`, Wilson coefficients c1 and c2 in a
//! quadratic morphing basis of six samples) against its closed form
//! (`validation/smeft_closed_form.py`, which wrote `tests/fixtures/smeft/closed_form.json`):
//! the NLL at random points of the plane, the fit, the 2-D profile-likelihood regions, and
//! the grid points without a likelihood in the linear (O(1/Λ²)) truncation.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use nsbi::analysis::{Analysis, Dataset};
use nsbi::fit::{minimise, FitOptions};

fn smeft() -> PathBuf {
    root().join("workspaces/smeft_toy")
}

fn closed_form() -> serde_json::Value {
    read_json(&root().join("tests/fixtures/smeft/closed_form.json"))
}

fn analysis(file: &str) -> Analysis {
    Analysis::load(&smeft().join(file), &test_cache(), false).unwrap()
}

/// `nsbi scan` of (c1, c2) on `file`, its JSON report.
fn scan_2d(
    dir: &Path,
    file: &str,
    ranges: [&str; 2],
    points: &str,
    extra: &[&str],
) -> serde_json::Value {
    scan_2d_json(
        dir,
        &smeft().join(file),
        ["c1", "c2"],
        ranges,
        &[points],
        extra,
    )
}

#[test]
fn nll_equals_the_closed_form_at_random_points_of_the_plane() {
    let reference = closed_form();
    let quadratic = analysis("workspace_exact.yaml");
    assert_eq!(
        quadratic.model.parameters.iter().filter(|p| p.poi).count(),
        2
    );
    let like = quadratic.likelihood(&Dataset::Observed).unwrap();
    assert_nll_points(&like, &reference["points"]);
    // The linear truncation, where its density is positive.
    let linear = analysis("workspace_linear.yaml");
    let like = linear.likelihood(&Dataset::Observed).unwrap();
    assert_nll_points(&like, &reference["linear_points"]);
}

#[test]
fn fit_finds_the_closed_form_minimum() {
    let reference = &closed_form()["fit"];
    let quadratic = analysis("workspace_exact.yaml");
    let like = quadratic.likelihood(&Dataset::Observed).unwrap();
    let fit = minimise(&like, &FitOptions::new(&like));
    common::assert_fit_at_closed_form(&fit, reference, &["c1", "c2", "alpha_lumi"], 1e-7);
}

#[test]
fn profile_scan_regions_match_the_closed_form_profile_likelihood() {
    let reference = closed_form();
    let dir = tempfile::tempdir().unwrap();
    // A 0.05 grid in both coefficients.
    let step = 0.05;
    let v = scan_2d(
        dir.path(),
        "workspace_exact.yaml",
        ["-0.9:0.5", "-0.6:0.5"],
        "29",
        &["--points", "23"],
    );
    let best = &v["best_fit"];
    for name in ["c1", "c2"] {
        let (engine, exact) = (
            best[name].as_f64().unwrap(),
            reference["fit"][name].as_f64().unwrap(),
        );
        assert!((engine - exact).abs() < 1e-4, "{name}: {engine} vs {exact}");
    }
    assert_eq!(v["excluded_points"], serde_json::json!([]));
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
        let engine = &lines[0];
        assert_eq!(engine.first(), engine.last());
        let mut exact_line: Vec<[f64; 2]> =
            serde_json::from_value(exact["points"].clone()).unwrap();
        exact_line.push(exact_line[0]);
        // Both ways: every engine point near the closed-form level set, and every closed-form
        // point near the engine's contour, within a quarter of the grid step.
        let worst_engine = engine
            .iter()
            .map(|p| common::distance_to_polyline(*p, &exact_line))
            .fold(0.0, f64::max);
        let worst_exact = exact_line
            .iter()
            .map(|p| common::distance_to_polyline(*p, engine))
            .fold(0.0, f64::max);
        assert!(
            worst_engine < 0.25 * step && worst_exact < 0.25 * step,
            "t = {threshold}: engine contour up to {worst_engine}, closed form up to {worst_exact} away"
        );
    }
}

#[test]
fn a_negative_density_excludes_grid_points_of_the_linear_truncation() {
    let reference = closed_form();
    let dir = tempfile::tempdir().unwrap();
    let v = scan_2d(
        dir.path(),
        "workspace_linear.yaml",
        ["-3:3", "-3:3"],
        "13",
        &["--plot", dir.path().join("linear").to_str().unwrap()],
    );
    let excluded = v["excluded_points"].as_array().unwrap();
    let engine: Vec<[f64; 2]> = excluded
        .iter()
        .map(|p| [p["c1"].as_f64().unwrap(), p["c2"].as_f64().unwrap()])
        .collect();
    let exact: Vec<[f64; 2]> =
        serde_json::from_value(reference["linear_excluded"].clone()).unwrap();
    assert!(!exact.is_empty());
    assert_eq!(engine, exact, "the points without a likelihood");
    for p in excluded {
        let reason = p["reason"].as_str().unwrap();
        assert!(
            reason.contains("per-event density") && reason.contains("≤ 0"),
            "{reason}"
        );
    }
    // Excluded points carry no t, and no contour passes within their cells.
    let points = v["points"].as_array().unwrap();
    let no_t = points.iter().filter(|p| p["t"].is_null()).count();
    assert_eq!(no_t, exact.len());
    for contour in v["contours"].as_array().unwrap() {
        let lines: Vec<Vec<[f64; 2]>> =
            serde_json::from_value(contour["polylines"].clone()).unwrap();
        for p in lines.iter().flatten() {
            let near = exact
                .iter()
                .any(|e| (e[0] - p[0]).abs() < 0.5 && (e[1] - p[1]).abs() < 0.5);
            assert!(
                !near,
                "contour point {p:?} in a cell with an excluded corner"
            );
        }
    }
    let svg = std::fs::read_to_string(dir.path().join("linear.svg")).unwrap();
    assert!(
        svg.contains("no likelihood (density ≤ 0)"),
        "the plot shows the excluded cells"
    );
    assert!(std::fs::read(dir.path().join("linear.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
}

#[test]
fn a_2d_scan_plot_draws_the_contours_and_any_confidence_level() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("smeft");
    let v = scan_2d(
        dir.path(),
        "workspace_exact.yaml",
        ["-0.9:0.5", "-0.6:0.5"],
        "15",
        &["--cl", "90", "--plot", stem.to_str().unwrap()],
    );
    let contours = v["contours"].as_array().unwrap();
    assert_eq!(contours.len(), 1);
    assert_eq!(contours[0]["cl"], 90.0);
    // χ²₂ at 90 %: −2 ln 0.1.
    let threshold = contours[0]["threshold"].as_f64().unwrap();
    assert!((threshold + 2.0 * 0.1f64.ln()).abs() < 1e-9, "{threshold}");
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(
        svg.contains("90 % region (asymptotic, t ≤ 4.61)"),
        "legend missing"
    );
    assert!(svg.contains("<polyline"), "no contour line drawn");
}

/// `nsbi closure --at c1=…,c2=…`: the parameter-point closure of the exact-ratio model at two
/// points of the plane (the SM mixture reweighted to each) passes, and its χ² per feature is
/// the closed form's (`validation/smeft_closure_reference.py`, no engine code nor ONNX) in the
/// engine's bin edges. A model of two POIs takes no `--mu`; without `--at` it gets no point test.
#[test]
fn closure_at_points_of_the_plane_matches_the_closed_form() {
    let dir = tempfile::tempdir().unwrap();
    let ws = smeft().join("workspace_exact.yaml").display().to_string();
    let out = dir.path().display().to_string();
    let cache = test_cache().dir().display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["closure", &ws, "--out", &out, "--cache-dir", &cache];
        args.extend_from_slice(extra);
        nsbi(&args)
    };
    let done = run(&[
        "--at",
        "c1=0.5,c2=-0.3",
        "--at",
        "c1=-1,c2=1",
        "--bins",
        "10",
    ]);
    assert!(done.status.success(), "{}", stderr(&done));
    let closure = dir.path().join("closure.json");
    let engine = read_json(&closure);
    let reference: serde_json::Value = serde_json::from_str(&run_validation_script(
        "smeft_closure_reference.py",
        &["--closure", closure.to_str().unwrap()],
    ))
    .unwrap();
    for name in ["SR/c1=0.5,c2=-0.3", "SR/c1=-1,c2=1"] {
        let test = engine["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no test {name}"));
        assert_eq!(test["pass"], true, "{name}");
        for feature in test["features"].as_array().unwrap() {
            let f = feature["feature"].as_str().unwrap();
            let py = &reference[name][f];
            assert_eq!(feature["ndf"], py["ndf"], "{name} {f}");
            let (a, b) = (
                feature["chi2"].as_f64().unwrap(),
                py["chi2"].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() <= 1e-6 * b.max(1.0),
                "{name} {f}: χ² {a} vs {b}"
            );
        }
    }
    assert!(dir.path().join("closure_SR_c1_0p5_c2_-0p3.svg").exists());
    let refused = run(&["--mu", "0.5"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--at"), "{}", stderr(&refused));
    let none = run(&[]);
    assert!(none.status.success(), "{}", stderr(&none));
    assert!(stderr(&none).contains("no parameter-point closure test"));
}
