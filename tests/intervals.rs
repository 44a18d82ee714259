//! Intervals that can be trusted: a scan's interval contains the best fit and matches the
//! profile interval on any grid (with a warning when the grid is coarse), ends on a grid's
//! edge are flagged open, fixed or repeated parameters are refused, a model without nuisance
//! parameters is not called stat+syst, and a command writes all its files or none.

mod common;

use common::*;
use nsbi::analysis::{fit_with_intervals, run_scan, Dataset, ScanRequest};
use nsbi::fit::FitOptions;

/// `nsbi ARGS... --cache-dir <test cache>`.
fn nsbi_cached(args: &[&str]) -> std::process::Output {
    let cache = test_cache();
    let mut all = args.to_vec();
    all.extend(["--cache-dir", cache.dir().to_str().unwrap()]);
    nsbi(&all)
}

fn example_workspace() -> String {
    example()
        .join("workspace_exact.yaml")
        .to_str()
        .unwrap()
        .to_string()
}

/// `nsbi scan WORKSPACE --poi mu --range RANGE --points POINTS ARGS...` on the tests' cache.
fn scan_mu(workspace: &str, range: &str, points: &str, args: &[&str]) -> std::process::Output {
    let scan = [
        "scan", workspace, "--poi", "mu", "--range", range, "--points", points,
    ];
    nsbi_cached(&[&scan[..], args].concat())
}

/// `nsbi toys WORKSPACE --mu-grid GRID --toys N --out OUT`, which must succeed.
fn make_toys(workspace: &str, grid: &str, n: &str, out: &std::path::Path) {
    let o = nsbi_cached(&[
        "toys",
        workspace,
        "--mu-grid",
        grid,
        "--toys",
        n,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `nsbi neyman WORKSPACE --toys TOYS --json JSON`, which must succeed.
fn neyman_json(
    workspace: &str,
    toys: &std::path::Path,
    json: &std::path::Path,
) -> std::process::Output {
    let o = nsbi_cached(&[
        "neyman",
        workspace,
        "--toys",
        toys.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// Item 3: a 7-point grid on 0:3 gave 68 % = [0.9905, 1.0050] around μ̂ = 0.944, and 31 points
/// on 0:20 gave no interval at all. With the best fit in the curve and the crossings found by
/// profile fits, both equal the fit's profile (MINOS-like) interval, and the coarse grids warn.
#[test]
fn coarse_grids_give_the_profile_interval_around_the_best_fit() {
    let analysis = example_analysis("workspace_exact.yaml");
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    let options = FitOptions::new(&like);
    let minos = fit_with_intervals(&like, &options, true);
    let mu_hat = minos.result.theta[0];
    let interval = &minos.intervals[0];
    let (lo, hi) = (interval.low.unwrap(), interval.high.unwrap());
    for (range, points) in [((0.0, 3.0), 7), ((0.0, 20.0), 31)] {
        let request = ScanRequest {
            parameters: vec![0],
            ranges: vec![range],
            points: vec![points],
            stat_only: false,
            levels: nsbi::analysis::CONTOUR_LEVELS_2D.to_vec(),
        };
        let (report, scans) = run_scan(&like, &options, &request, false).unwrap();
        let found = report["intervals"]["68.27"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{range:?}: {found:?}");
        let (slo, shi) = (found[0][0].as_f64().unwrap(), found[0][1].as_f64().unwrap());
        assert!(
            (slo - lo).abs() < 1e-3 && (shi - hi).abs() < 1e-3,
            "{range:?}, {points} points: scan [{slo}, {shi}] vs profile [{lo}, {hi}]"
        );
        assert!(
            slo < mu_hat && mu_hat < shi,
            "[{slo}, {shi}] misses {mu_hat}"
        );
        assert_eq!(
            report["open_ends"]["68.27"],
            serde_json::json!([[false, false]])
        );
        // The best fit is a point of the curve, at t = 0.
        let best = scans[0].points.iter().find(|p| p.best_fit).unwrap();
        assert_eq!((best.values[0], best.t), (mu_hat, 0.0));
        let warnings = report["warnings"].to_string();
        assert!(warnings.contains("too coarse"), "{range:?}: {warnings}");
    }
}

/// Item 3 in two dimensions: the best fit is in the scan, and a grid with one point in the
/// 68 % region (μ = 1, α = 0) warns.
#[test]
fn a_coarse_two_parameter_scan_has_its_best_fit_and_warns() {
    let analysis = example_analysis("workspace_exact.yaml");
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    let options = FitOptions::new(&like);
    let request = ScanRequest {
        parameters: vec![0, 2],
        ranges: vec![(0.0, 3.0), (-2.0, 2.0)],
        points: vec![4, 3],
        stat_only: false,
        levels: nsbi::analysis::CONTOUR_LEVELS_2D.to_vec(),
    };
    let (report, scans) = run_scan(&like, &options, &request, false).unwrap();
    let best = scans[0].points.iter().find(|p| p.best_fit).unwrap();
    assert_eq!(best.t, 0.0);
    assert_eq!(report["points"].as_array().unwrap().len(), 13);
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("the 68.27 % region spans 1 grid value(s) of mu"),
        "{warnings}"
    );
}

/// Item 3 on the command line: the warning reaches stderr and the interval stdout.
#[test]
fn a_coarse_scan_warns_on_stderr() {
    let ws = example_workspace();
    let out = scan_mu(&ws, "0:3", "7", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("68.27 % CL (asymptotic): [0.8727, 1.0168]"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("warning: stat+syst, 68.27 %: the interval [0.8727, 1.0168] of mu holds 1 grid point(s)"),
        "{}",
        stderr(&out)
    );
}

/// Item 4: a fixed POI has no best fit and no interval: `--fix` and `fixed: true` are refused.
#[test]
fn scanning_a_fixed_parameter_is_refused() {
    let ws = example_workspace();
    let out = nsbi_cached(&[
        "scan", &ws, "--poi", "mu", "--range", "0:3", "--fix", "mu=1",
    ]);
    assert_refused(&out, &["cannot scan 'mu': it is fixed"]);
    let dir = tempfile::tempdir().unwrap();
    let fixed = example_with(
        dir.path(),
        &[("bounds: [0.0, 20.0]}", "bounds: [0.0, 20.0], fixed: true}")],
    );
    let out = nsbi_cached(&[
        "scan",
        fixed.to_str().unwrap(),
        "--poi",
        "mu",
        "--range",
        "0:3",
    ]);
    assert_refused(&out, &["cannot scan 'mu': it is fixed"]);
}

/// `--fix` holds a parameter at every scan point too, not only in the global fit: scanning
/// alpha_shape with mu fixed at 1.5 profiled mu at each point before.
#[test]
fn fixed_parameters_stay_fixed_at_every_scan_point() {
    let analysis = example_analysis("workspace_exact.yaml");
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    let mut options = FitOptions::new(&like);
    options.init[0] = 1.5;
    options.fixed[0] = true;
    let request = ScanRequest {
        parameters: vec![2],
        ranges: vec![(-1.0, 1.0)],
        points: vec![3],
        stat_only: false,
        levels: nsbi::analysis::CONTOUR_LEVELS_2D.to_vec(),
    };
    let (_, scans) = run_scan(&like, &options, &request, false).unwrap();
    assert!(scans[0].points.iter().all(|p| p.theta[0] == 1.5));
}

/// Item 7: an interval end where the grid stops short of the parameter's bound is open, in
/// the text and in the JSON; an end at a crossing is not.
#[test]
fn interval_ends_on_the_grid_edge_are_flagged_open() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scan.json");
    let ws = example_workspace();
    let out = scan_mu(&ws, "0.85:1.5", "14", &["--json", json.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // μ̂ = 0.944: the 95 % interval's lower end (0.805) lies below the grid, the 68 % one's
    // (0.873) on it.
    assert!(
        stdout(&out).contains("95.45 % CL (asymptotic): [0.8500 (grid edge: open), 1.0925]"),
        "{}",
        stdout(&out)
    );
    let v = read_json(&json);
    assert_eq!(v["open_ends"]["95.45"], serde_json::json!([[true, false]]));
    assert_eq!(v["open_ends"]["68.27"], serde_json::json!([[false, false]]));
    assert_eq!(v["intervals"]["95.45"][0][0], 0.85);
}

/// Item 7 for the Neyman construction: the asymptotic 95 % set of a grid starting at 0.9.
#[test]
fn neyman_ends_on_the_grid_edge_are_flagged_open() {
    let dir = tempfile::tempdir().unwrap();
    let (toys, json) = (dir.path().join("toys.h5"), dir.path().join("ci.json"));
    let ws = example_workspace();
    make_toys(&ws, "0.9:1.5:0.3", "3", &toys);
    let out = neyman_json(&ws, &toys, &json);
    let v = read_json(&json);
    assert_eq!(v["asymptotic_intervals"]["95.45"][0][0], 0.9);
    assert_eq!(
        v["asymptotic_open_ends"]["95.45"][0],
        serde_json::json!([true, false])
    );
    assert!(v["open_ends"]["68.27"].is_array(), "{v}");
    assert!(
        stdout(&out).contains("95.45 % asymptotic interval(s): [0.9000 (grid edge: open), "),
        "{}",
        stdout(&out)
    );
    assert_eq!(v["systematics"], true);
    // The 68 % asymptotic set holds only μ = 0.9 of the grid: too coarse, and said so.
    assert!(
        stderr(&out).contains("warning: 68.27 % asymptotic: the interval [0.9000, "),
        "{}",
        stderr(&out)
    );
    assert!(
        v["warnings"]
            .to_string()
            .contains("rests on 1 grid point(s)"),
        "{v}"
    );
}

/// Item 7: with every nuisance parameter fixed the scan and the toys are stat-only, and say so.
#[test]
fn a_model_without_free_nuisances_is_not_called_stat_plus_syst() {
    let dir = tempfile::tempdir().unwrap();
    let ws = example_with(
        dir.path(),
        &[(
            "constraint: gaussian}",
            "constraint: gaussian, fixed: true}",
        )],
    );
    let ws = ws.to_str().unwrap();
    let json = dir.path().join("scan.json");
    let out = scan_mu(ws, "0.6:1.4", "9", &["--json", json.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("stat+syst"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("stat-only   68.27 % CL"),
        "{}",
        stdout(&out)
    );
    assert_eq!(read_json(&json)["systematics"], false);
    // --stat-only would repeat the main curve: one curve, and a warning saying why.
    let out = scan_mu(
        ws,
        "0.6:1.4",
        "9",
        &["--stat-only", "--json", json.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).matches("stat-only   68.27 % CL").count(), 1);
    assert!(stderr(&out).contains("no second curve"), "{}", stderr(&out));
    assert!(read_json(&json).get("stat_only").is_none());
    let (toys, ci) = (dir.path().join("toys.h5"), dir.path().join("ci.json"));
    make_toys(ws, "0.8:1.2:0.4", "2", &toys);
    assert!(
        !nsbi::infer::toyfile::ToyFile::read(&toys)
            .unwrap()
            .header
            .systematics
    );
    neyman_json(ws, &toys, &ci);
    assert_eq!(read_json(&ci)["systematics"], false);
}

/// Item 7: a parameter given twice is an error, not the last value silently winning.
#[test]
fn a_parameter_given_twice_is_an_error() {
    let ws = example_workspace();
    let out = nsbi_cached(&["fit", &ws, "--asimov", "mu=1,mu=2"]);
    assert_refused(&out, &["--asimov: mu is given twice"]);
    let out = nsbi_cached(&[
        "scan", &ws, "--poi", "mu", "--range", "0:3", "--poi", "mu", "--range", "0:3",
    ]);
    assert_refused(&out, &["--poi mu is given twice"]);
}

/// Item 12: `--plot out/scan_v1.0` and `--plot out/scan_v1.5` write two plots, not one
/// `scan_v1.png` twice.
#[test]
fn plot_stems_with_dots_are_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let ws = example_workspace();
    for version in ["scan_v1.0", "scan_v1.5"] {
        let stem = dir.path().join(version);
        let out = scan_mu(&ws, "0.6:1.4", "5", &["--plot", stem.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(
        file_names(dir.path()),
        [
            "scan_v1.0.png",
            "scan_v1.0.svg",
            "scan_v1.5.png",
            "scan_v1.5.svg"
        ]
    );
}

/// Item 13: when the plot cannot be written the scan writes nothing: the old JSON stays, and
/// no temporary file is left.
#[test]
fn a_failing_plot_leaves_the_old_outputs_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scan.json");
    std::fs::write(&json, "{\"old\": true}").unwrap();
    // The plot's folder does not exist; then the plot's path is a folder.
    let missing = dir.path().join("missing/scan");
    let occupied = dir.path().join("scan");
    std::fs::create_dir(dir.path().join("scan.svg")).unwrap();
    let ws = example_workspace();
    let missing_folder = dir.path().join("missing");
    for (stem, why) in [
        (
            missing,
            format!("the folder {} does not exist", missing_folder.display()),
        ),
        (occupied, "it is a folder".to_string()),
    ] {
        let plot = [
            "--json",
            json.to_str().unwrap(),
            "--plot",
            stem.to_str().unwrap(),
        ];
        let out = scan_mu(&ws, "0.6:1.4", "5", &plot);
        let message = assert_refused(&out, &["scan.", &why]);
        assert_eq!(std::fs::read_to_string(&json).unwrap(), "{\"old\": true}");
        assert_eq!(
            file_names(dir.path()),
            ["scan.json", "scan.svg"],
            "{message}"
        );
    }
}
