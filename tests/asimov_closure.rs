//! The Asimov set closes on small MC (issue 13, reliability): a fit of the Asimov set at θ_gen
//! returns θ_gen — the POI and every nuisance parameter — however few MC events the pool has,
//! at the nominal point and away from it (shape nuisances on the exponential branch too). Before
//! the calibration of the Asimov weights (`likelihood::closure`), a 3 000-event-per-process
//! workspace gave μ̂ = 1.136 ± 0.075 at μ = 1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{nsbi, python, root, stderr, stdout};
use nsbi::analysis::{Analysis, Dataset};
use nsbi::data::RatioCache;
use nsbi::likelihood::Order;

/// A scale-generator workspace (the example's S, SBI, B with 5 yield and 2 shape nuisances)
/// with `events` MC events per process, in `out`; returns the workspace file.
fn generate(out: &Path, events: &str, negative_fraction: &str) -> PathBuf {
    let output = Command::new(python())
        .arg(root().join("validation/make_scale_workspace.py"))
        .args(["--out", out.to_str().unwrap(), "--events", events])
        .args(["--yield-nps", "5", "--shape-nps", "2", "--no-validate"])
        .args(["--negative-fraction", negative_fraction])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "generator failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out.join("workspace.yaml")
}

/// `nsbi fit WS --asimov POINT` and its JSON report.
fn asimov_fit(workspace: &Path, point: &str) -> serde_json::Value {
    let json = workspace.with_file_name(format!("fit-{}.json", point.replace([',', '='], "_")));
    let output = nsbi(&[
        "fit",
        workspace.to_str().unwrap(),
        "--asimov",
        point,
        "--no-minos",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "fit failed:\n{}{}",
        stdout(&output),
        stderr(&output)
    );
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// Every fitted parameter equals its value at the generating point `point` (the rest at their
/// nominal values) to `tolerance` in units of its error.
fn assert_closes(report: &serde_json::Value, point: &[(&str, f64)], tolerance: f64) {
    let parameters = report["parameters"].as_object().unwrap();
    assert!(parameters.len() >= 8, "{report}");
    for (name, p) in parameters {
        let truth = point
            .iter()
            .find(|(n, _)| n == name)
            .map_or(if name == "mu" { 1.0 } else { 0.0 }, |(_, v)| *v);
        let (value, error) = (p["value"].as_f64().unwrap(), p["error"].as_f64().unwrap());
        assert!(
            error > 0.0 && ((value - truth) / error).abs() < tolerance,
            "{name}: fitted {value} ± {error}, generated at {truth}: {:.2e}σ off",
            (value - truth) / error
        );
    }
}

fn text(point: &[(&str, f64)]) -> String {
    point
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn asimov_fit_on_small_mc_returns_its_generating_point() {
    let tmp = tempfile::tempdir().unwrap();
    let workspace = generate(tmp.path(), "3000", "0");
    let points: [&[(&str, f64)]; 3] = [
        &[("mu", 1.0)],
        &[
            ("mu", 1.3),
            ("alpha_y0", 0.5),
            ("alpha_s0", 0.4),
            ("alpha_s1", -0.7),
        ],
        // Shape nuisances on the exponential branch, μ below 1 (negative SBI-basis weights).
        &[
            ("mu", 0.6),
            ("alpha_y3", -1.2),
            ("alpha_s0", 1.5),
            ("alpha_s1", -1.8),
        ],
    ];
    for point in points {
        let report = asimov_fit(&workspace, &text(point));
        assert_eq!(report["status"]["converged"], true, "{report}");
        assert_closes(&report, point, 1e-4);
    }
}

#[test]
fn asimov_score_vanishes_at_the_generating_point_with_negative_generator_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let workspace = generate(tmp.path(), "2000", "0.2");
    let cache = RatioCache::new(tmp.path().join(".nsbi-cache"));
    let analysis = Analysis::load(&workspace, &cache, false).unwrap();
    let mut theta = analysis.model.init();
    for (i, v) in analysis
        .assignments("mu=1.2,alpha_y1=-0.4,alpha_s0=0.7,alpha_s1=1.4", "test")
        .unwrap()
    {
        theta[i] = v;
    }
    let like = analysis
        .likelihood(&Dataset::Asimov(theta.clone()))
        .unwrap();
    let at = like.evaluate(&theta, Order::Hessian);
    let n = theta.len();
    let hessian = nsbi::fit::linalg::cholesky(&at.hessian, n).expect("positive definite");
    for j in 0..n {
        let mut unit = vec![0.0; n];
        unit[j] = 1.0;
        let sigma = nsbi::fit::linalg::cholesky_solve(&hessian, n, &unit)[j].sqrt();
        // The score times σ: the shift of θ̂_j it would cause, in units of σ_j (roughly).
        assert!(
            (at.gradient[j] * sigma).abs() < 1e-7,
            "{}: ∂NLL = {:e}, σ = {sigma}",
            analysis.model.parameters[j].name,
            at.gradient[j]
        );
    }
    // The calibrated weights still sum to the expected count.
    let sets = analysis.datasets(&Dataset::Asimov(theta.clone())).unwrap();
    let total: f64 = sets[0].weights.iter().sum();
    let mixture: f64 = nsbi::likelihood::ChannelData::mc_mixture(
        &analysis.model.channels[0],
        &analysis.ratios[0],
        &theta,
    )
    .unwrap()
    .weights
    .iter()
    .sum();
    assert!(
        (total / mixture - 1.0).abs() < 1e-12,
        "{total} vs {mixture}"
    );
}
