//! `nsbi coverage-bayes` (issue 18): TARP and SBC of a `posterior:` workspace on held-out
//! pairs, on `workspaces/nre_toy` (exact linear-Gaussian NRE, and two wrong versions of it) with
//! the pairs of `validation/make_nre_test_pairs.py`; the ECP against the PyPI `tarp` package
//! (`validation/tarp_reference.py`); shards merged against an unsharded run; thread counts;
//! bad test files.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{assert_refused, nsbi, read_json, root, stderr};

fn toy() -> PathBuf {
    root().join("workspaces/nre_toy")
}

fn exact() -> String {
    toy().join("linear_gaussian.yaml").display().to_string()
}

fn pairs_file() -> String {
    toy().join("data/test_pairs.h5").display().to_string()
}

/// Small settings that keep a run of 100 pairs to seconds: 2 chains × 200 draws a pair, SBC
/// ranks among 49 of them.
const SMALL: [&str; 12] = [
    "--chains",
    "2",
    "--warmup",
    "200",
    "--draws",
    "200",
    "--sbc-draws",
    "49",
    "--sbc-bins",
    "10",
    "--seed",
    "1",
];
const PAIRS: &str = "100";

/// `nsbi coverage-bayes WS --test PAIRS SMALL extra…`, asserting success; returns stdout.
fn coverage(workspace: &str, test: &str, extra: &[&str]) -> String {
    let mut args = vec!["coverage-bayes", workspace, "--test", test];
    args.extend(SMALL);
    args.extend(extra);
    let out = nsbi(&args);
    assert!(
        out.status.success(),
        "nsbi {}: {}",
        args.join(" "),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The unsharded run of the exact model on 100 pairs (2 threads), shared by the tests: its
/// folder holds `result.json`, `draws.h5` and the plots.
fn exact_run() -> &'static Path {
    static RUN: OnceLock<tempfile::TempDir> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        coverage(
            &exact(),
            &pairs_file(),
            &[
                "--pairs",
                PAIRS,
                "--threads",
                "2",
                "--json",
                d.join("result.json").to_str().unwrap(),
                "--samples-out",
                d.join("draws.h5").to_str().unwrap(),
                "--plot",
                d.join("coverage").to_str().unwrap(),
            ],
        );
        dir
    })
    .path()
}

fn floats(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn the_exact_posterior_passes_tarp_and_sbc() {
    let result = read_json(&exact_run().join("result.json"));
    let tarp = &result["tarp"];
    assert_eq!(result["pairs"], 100);
    assert_eq!(tarp["pass"], true, "{tarp}");
    assert!(tarp["p_value"].as_f64().unwrap() > 0.05, "{tarp}");
    // 100 pairs: the KS distance of a calibrated posterior is ~0.09 at 1σ.
    assert!(tarp["ks_distance"].as_f64().unwrap() < 0.15, "{tarp}");
    let alpha = floats(&tarp["alpha"]);
    let ecp = floats(&tarp["ecp"]);
    assert_eq!((alpha.len(), ecp[0], ecp[100]), (101, 0.0, 1.0));
    let sd = floats(&tarp["ecp_bootstrap_sd"]);
    // A bootstrap of 100 pairs: sd √(α(1−α)/100) ≈ 0.05 at α = 0.5.
    assert!((0.03..0.07).contains(&sd[50]), "{sd:?}");
    for p in result["sbc"]["parameters"].as_array().unwrap() {
        assert_eq!(p["pass"], true, "{p}");
        let counts = p["histogram"].as_array().unwrap();
        assert_eq!(counts.len(), 10);
        let total: u64 = counts.iter().map(|c| c.as_u64().unwrap()).sum();
        assert_eq!(total, 100);
    }
    assert_eq!(result["sbc"]["threshold_per_parameter"], 0.0025);
    assert_eq!(result["pass"], true);
    for name in [
        "coverage_tarp.png",
        "coverage_tarp.svg",
        "coverage_sbc.png",
        "coverage_sbc.svg",
    ] {
        assert!(exact_run().join(name).is_file(), "{name} missing");
    }
}

/// The draws file against the `tarp` package: the same coverage fractions, the same ECP at
/// the package's credibility levels, and scipy's KS and χ² p-values.
#[test]
fn tarp_and_the_tests_agree_with_the_tarp_package_and_scipy() {
    let draws = exact_run().join("draws.h5");
    let text = common::run_validation_script(
        "tarp_reference.py",
        &[
            draws.to_str().unwrap(),
            "--sbc-draws",
            "49",
            "--sbc-bins",
            "10",
        ],
    );
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    if let Some(why) = reference.get("missing") {
        eprintln!("skipped: the `tarp` package is not installed ({why}); validation/requirements.txt lists it");
        return;
    }
    let result = read_json(&exact_run().join("result.json"));
    let file = hdf5::File::open(&draws).unwrap();
    let f: Vec<f64> = file.dataset("tarp_f").unwrap().read_raw().unwrap();
    assert_eq!(f, floats(&reference["f"]), "coverage fractions");
    let mut sorted = f.clone();
    sorted.sort_by(f64::total_cmp);
    let alpha = floats(&reference["alpha"]);
    let ecp = floats(&reference["ecp"]);
    // The package's levels are its histogram's edges, min(f) … max(f); the last bin is closed.
    let last = alpha.len() - 1;
    for (k, (&a, &e)) in alpha.iter().zip(&ecp).enumerate() {
        let ours = if k == last {
            1.0
        } else {
            nsbi::bayes::coverage::tarp::ecp_at(&sorted, a)
        };
        assert!((ours - e).abs() < 1e-12, "α = {a}: nsbi {ours}, tarp {e}");
    }
    // The reported curve is the same function of the same f.
    let grid = floats(&result["tarp"]["alpha"]);
    assert_eq!(
        nsbi::bayes::coverage::tarp::ecp_curve(&f, &grid),
        floats(&result["tarp"]["ecp"])
    );
    let p = result["tarp"]["p_value"].as_f64().unwrap();
    let scipy = reference["ks_p"].as_f64().unwrap();
    assert!(
        (p - scipy).abs() < 1e-12 * scipy.max(1e-3),
        "KS p {p} vs {scipy}"
    );
    for (ours, scipy) in result["sbc"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .zip(floats(&reference["sbc_p"]))
    {
        let p = ours["p_value"].as_f64().unwrap();
        assert!((p - scipy).abs() < 1e-10, "χ² p {p} vs {scipy}");
    }
}

/// Posteriors √10 too narrow, or shifted by half a prior σ in theta0, are rejected.
#[test]
fn wrong_posteriors_fail() {
    let dir = tempfile::tempdir().unwrap();
    let over = dir.path().join("over.json");
    let args = ["--pairs", "60", "--json", over.to_str().unwrap()];
    let ws = toy().join("linear_gaussian_overconfident.yaml");
    coverage(ws.to_str().unwrap(), &pairs_file(), &args);
    let result = read_json(&over);
    assert_eq!(result["pass"], false);
    assert_eq!(result["tarp"]["pass"], false, "{}", result["tarp"]);
    assert!(result["tarp"]["p_value"].as_f64().unwrap() < 1e-4);
    assert!(result["tarp"]["ks_distance"].as_f64().unwrap() > 0.25);
    // Too narrow: the draws sit on one side of θ*'s ball around the reference, f piles up
    // at 0 and 1, and the ECP rises above the diagonal at small α.
    let ecp = floats(&result["tarp"]["ecp"]);
    assert!(ecp[10] > 0.25, "ECP(0.1) = {}", ecp[10]);
    for p in result["sbc"]["parameters"].as_array().unwrap() {
        assert_eq!(p["pass"], false, "{p}");
    }

    let biased = dir.path().join("biased.json");
    let ws = toy().join("linear_gaussian_biased.yaml");
    let mut args = vec!["coverage-bayes", ws.to_str().unwrap(), "--test"];
    let test = pairs_file();
    args.push(&test);
    args.extend(SMALL);
    args.extend(["--pairs", "60", "--strict", "--json"]);
    args.push(biased.to_str().unwrap());
    let out = nsbi(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("SBC fails for theta0"),
        "{}",
        stderr(&out)
    );
    let result = read_json(&biased);
    let theta0 = &result["sbc"]["parameters"][0];
    assert_eq!(theta0["pass"], false, "{theta0}");
    // ln r(x, θ − δ) puts the posterior δ = 0.5 above θ*: θ* ranks low among the draws.
    let counts: Vec<u64> = theta0["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert!(counts[0] > 3 * counts[9], "{counts:?}");
}

/// Three shards (one thread each) merged give the unsharded result (two threads) byte for
/// byte; the merge refuses missing, doubled and foreign shards.
#[test]
fn shards_merge_to_the_unsharded_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shard = |i: usize, extra: &[&str]| {
        let out = d.join(format!("shard_{i}.h5"));
        let mut args = vec![
            "--pairs",
            PAIRS,
            "--threads",
            "1",
            "--out",
            out.to_str().unwrap(),
        ];
        let text = format!("{i}/3");
        args.extend(["--shard", text.as_str()]);
        args.extend(extra);
        coverage(&exact(), &pairs_file(), &args);
        out
    };
    let files: Vec<PathBuf> = (0..3).map(|i| shard(i, &[])).collect();
    let merged = d.join("merged.json");
    let mut args = vec![
        "--pairs",
        PAIRS,
        "--json",
        merged.to_str().unwrap(),
        "--merge",
    ];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    coverage(&exact(), &pairs_file(), &args);
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(exact_run().join("result.json")).unwrap(),
        "merged shards differ from the unsharded run"
    );

    let merge = |files: &[&PathBuf], workspace: &str| {
        let mut args = vec!["coverage-bayes", workspace, "--test"];
        let test = pairs_file();
        args.push(&test);
        args.extend(SMALL);
        args.extend(["--pairs", PAIRS, "--merge"]);
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        nsbi(&args)
    };
    assert_refused(
        &merge(&[&files[0], &files[2]], &exact()),
        &["pairs are missing", "shards without their file: 1/3"],
    );
    assert_refused(
        &merge(&[&files[0], &files[0], &files[1], &files[2]], &exact()),
        &["appears in more than one shard file", "shard_0.h5"],
    );
    let other = toy().join("linear_gaussian_overconfident.yaml");
    assert_refused(
        &merge(&[&files[0]], other.to_str().unwrap()),
        &["shard_0.h5", "does not belong", "another workspace"],
    );
    // A shard of another target acceptance rate (a small one: its header is what is refused).
    let foreign = d.join("foreign.h5");
    let foreign_str = foreign.to_str().unwrap().to_string();
    coverage(
        &exact(),
        &pairs_file(),
        &[
            "--pairs",
            PAIRS,
            "--target-accept",
            "0.9",
            "--shard",
            "99/100",
            "--out",
            &foreign_str,
        ],
    );
    assert_refused(
        &merge(&[&files[0], &files[1], &foreign], &exact()),
        &["foreign.h5", "other settings", "\"target_accept\":0.9"],
    );
}

/// The same pairs on 1 and 3 threads: the same draws and the same result.
#[test]
fn the_result_does_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let run = |threads: &str| {
        let json = dir.path().join(format!("r{threads}.json"));
        let draws = dir.path().join(format!("d{threads}.h5"));
        coverage(
            &exact(),
            &pairs_file(),
            &[
                "--pairs",
                "12",
                "--threads",
                threads,
                "--json",
                json.to_str().unwrap(),
                "--samples-out",
                draws.to_str().unwrap(),
            ],
        );
        let file = hdf5::File::open(&draws).unwrap();
        let samples: Vec<f64> = file.dataset("samples").unwrap().read_raw().unwrap();
        (std::fs::read(&json).unwrap(), samples)
    };
    let (one, three) = (run("1"), run("3"));
    assert_eq!(one.1.len(), 12 * 2 * 200 * 4);
    assert!(one.1 == three.1, "draws differ between 1 and 3 threads");
    assert!(one.0 == three.0, "results differ between 1 and 3 threads");
}

/// Pairs of several observations each ([n, m, len(x)]): the seed-004 mixture, 12 events a pair.
#[test]
fn pairs_of_several_observations_are_read() {
    let ws = toy().join("mixture.yaml");
    let test = toy().join("data/mixture_test_pairs.h5");
    let out = nsbi(&[
        "coverage-bayes",
        ws.to_str().unwrap(),
        "--test",
        test.to_str().unwrap(),
        "--pairs",
        "4",
        "--chains",
        "2",
        "--draws",
        "20",
        "--warmup",
        "20",
        "--sbc-draws",
        "19",
    ]);
    let stdout = common::stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout.contains("(4 pairs"), "{stdout}");
}

/// Writes `theta` and `x` (shapes given) into an HDF5 file in `dir`.
fn bad_file(
    dir: &Path,
    name: &str,
    theta: Option<(&[f64], &[usize])>,
    x: Option<(&[f64], &[usize])>,
) -> String {
    let path = dir.join(name);
    let file = hdf5::File::create(&path).unwrap();
    for (key, data) in [("theta", theta), ("x", x)] {
        if let Some((values, shape)) = data {
            let array = ndarray::ArrayD::from_shape_vec(shape.to_vec(), values.to_vec()).unwrap();
            file.new_dataset_builder()
                .with_data(&array)
                .create(key)
                .unwrap();
        }
    }
    path.display().to_string()
}

#[test]
fn bad_test_files_are_refused_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let theta: Vec<f64> = (0..12).map(|k| 0.1 * k as f64).collect();
    let x: Vec<f64> = (0..15).map(|k| 0.2 * k as f64).collect();
    let refused = |file: &str, needles: &[&str]| {
        let out = nsbi(&["coverage-bayes", &exact(), "--test", file]);
        let mut all = vec![file];
        all.extend(needles);
        assert_refused(&out, &all);
    };
    let x6: Vec<f64> = (0..18).map(|k| k as f64).collect();
    let mut nan_x = x.clone();
    nan_x[12] = f64::NAN;
    let mut inf_theta = theta.clone();
    inf_theta[5] = f64::INFINITY;
    type Dataset<'a> = Option<(&'a [f64], &'a [usize])>;
    let cases: [(&str, Dataset, Dataset, &[&str]); 6] = [
        (
            "no_x.h5",
            Some((&theta, &[3, 4])),
            None,
            &["no dataset `x`", "found: theta"],
        ),
        (
            "wide_theta.h5",
            Some((&theta, &[4, 3])),
            Some((&x, &[3, 5])),
            &["dataset `theta` has shape [4, 3]", "expected [n, 4]"],
        ),
        (
            "short_x.h5",
            Some((&theta, &[3, 4])),
            Some((&x[..10], &[2, 5])),
            &["dataset `x` has shape [2, 5]", "3 pairs"],
        ),
        (
            "wide_x.h5",
            Some((&theta, &[3, 4])),
            Some((&x6, &[3, 6])),
            &["6 values per observation", "observed.h5", "have 5"],
        ),
        (
            "nan_x.h5",
            Some((&theta, &[3, 4])),
            Some((&nan_x, &[3, 5])),
            &["dataset `x`, pair 2", "value 2 of observation 0 is NaN"],
        ),
        (
            "inf_theta.h5",
            Some((&inf_theta, &[3, 4])),
            Some((&x, &[3, 5])),
            &["dataset `theta`, pair 1", "theta1 = inf"],
        ),
    ];
    for (name, theta, x, needles) in cases {
        refused(&bad_file(d, name, theta, x), needles);
    }
    refused(
        &d.join("absent.h5").display().to_string(),
        &["test file not found"],
    );
    // Settings the SBC cannot use, before anything is sampled.
    let out = nsbi(&[
        "coverage-bayes",
        &exact(),
        "--test",
        &pairs_file(),
        "--sbc-draws",
        "49",
        "--sbc-bins",
        "7",
    ]);
    assert_refused(&out, &["--sbc-bins 7", "divide --sbc-draws + 1 = 50"]);
}

/// `nsbi batch slurm coverage-bayes`: the submission runs each shard into the run's folder, and
/// the manifest's result command merges them (and `nsbi merge` points to it).
#[test]
fn the_batch_planner_shards_the_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("farm");
    let out = nsbi(&[
        "batch",
        "slurm",
        "coverage-bayes",
        &exact(),
        "--test",
        &pairs_file(),
        "--pairs",
        "6",
        "--chains",
        "2",
        "--draws",
        "20",
        "--warmup",
        "20",
        "--sbc-draws",
        "19",
        "--shards",
        "2",
        "--dir",
        d.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = read_json(&d.join("manifest.json"));
    assert_eq!(manifest["task"], "coverage_bayes");
    let script = std::fs::read_to_string(d.join("submit.sbatch")).unwrap();
    assert!(
        script.contains("--shard ${SLURM_ARRAY_TASK_ID}/2 --out")
            && script.contains("shard_${SLURM_ARRAY_TASK_ID}.h5"),
        "{script}"
    );
    let words = |key: &str| -> Vec<String> {
        manifest[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect()
    };
    for i in 0..2 {
        let mut args = words("toys_arguments");
        let shard = d.join(format!("shard_{i}.h5"));
        args.extend([
            "--shard".into(),
            format!("{i}/2"),
            "--out".into(),
            shard.display().to_string(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(nsbi(&args).status.success());
    }
    let out = nsbi(&["merge", d.to_str().unwrap(), "--out", "x.h5"]);
    assert_refused(&out, &["coverage-bayes shards", "--merge"]);
    let result = words("result_arguments");
    let args: Vec<&str> = result.iter().map(String::as_str).collect();
    let out = nsbi(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = read_json(&d.join("coverage_bayes.json"));
    assert_eq!(json["pairs"], 6);
    assert!(d.join("coverage_tarp.png").is_file());
}
