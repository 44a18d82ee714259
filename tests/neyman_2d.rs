//! Neyman constructions of several POIs on the SMEFT example (`workspaces/smeft_toy`,
//! `workspace_exact.yaml`, Wilson coefficients c1 and c2): POI vectors in the toy files,
//! product grids and lists of points, profiled and held POIs, the same toys for any thread
//! count and shard split, the toys' t against Wilks' χ²₂ (statrs), regions and contours, and
//! the joint regions' coverage at three points of the plane.

mod common;

use std::path::Path;

use common::*;
use nsbi::analysis::Analysis;
use nsbi::infer::construction::{self, observed_profile, plan_pois};
use nsbi::infer::poi_grid::{read_points, PoiGrid};
use nsbi::infer::region::neyman_regions;
use nsbi::infer::run;
use nsbi::infer::test_stat::TestStatistic;
use nsbi::infer::toyfile::{self, ToyFile};
use nsbi::infer::toys::{ToyPlan, ToyRecord};

fn smeft_exact() -> Analysis {
    Analysis::load(
        &root().join("workspaces/smeft_toy/workspace_exact.yaml"),
        &test_cache(),
        false,
    )
    .unwrap()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The plan of `n_toys` toys per point of `grid`, whose points fix `pois` and whose statistic
/// profiles `profile`.
fn plan(
    analysis: &Analysis,
    pois: &[&str],
    profile: &[&str],
    grid: PoiGrid,
    n_toys: usize,
    seed: u64,
) -> ToyPlan {
    let (pois, profiled) =
        plan_pois(&analysis.model, &names(pois), &names(profile), false).unwrap();
    ToyPlan {
        pois,
        profiled,
        grid,
        n_toys,
        seed,
        systematics: true,
        statistic: TestStatistic::Tmu,
    }
}

/// The toy file of shard `shard` of `plan`, made on `threads` threads.
fn toy_file(analysis: &Analysis, plan: &ToyPlan, shard: (usize, usize), threads: usize) -> ToyFile {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let ws = root().join("workspaces/smeft_toy/workspace_exact.yaml");
    pool.install(|| run::make_toy_file(analysis, plan, &ws, shard, &|| {}).unwrap())
}

fn grid_2x2() -> PoiGrid {
    PoiGrid::product(vec![vec![-0.4, 0.0], vec![-0.2, 0.2]]).unwrap()
}

fn write_and_read(file: &ToyFile, dir: &Path, name: &str) -> ToyFile {
    let path = dir.join(name);
    file.write(&path).unwrap();
    ToyFile::read(&path).unwrap()
}

#[test]
fn toy_files_record_the_poi_vector_of_every_toy() {
    let analysis = smeft_exact();
    let plan = plan(&analysis, &["c1", "c2"], &[], grid_2x2(), 3, 5);
    let file = toy_file(&analysis, &plan, (0, 1), 2);
    let dir = tempfile::tempdir().unwrap();
    let read = write_and_read(&file, dir.path(), "toys.h5");
    assert_eq!(read, file);
    assert_eq!(read.header.pois, names(&["c1", "c2"]));
    assert!(read.header.profiled.is_empty());
    assert_eq!(read.header.grid, grid_2x2());
    assert_eq!(read.records.len(), 12);
    for r in &read.records {
        assert_eq!(r.poi_true, plan.grid.points[r.grid_index]);
        assert_eq!(r.poi_hat, r.theta_hat[..2].to_vec());
        assert!(r.t >= 0.0 && r.t.is_finite(), "{r:?}");
    }
    // The fitted POI vectors scatter around the true ones (500 + events a toy).
    let spread = read
        .records
        .iter()
        .map(|r| (r.poi_hat[0] - r.poi_true[0]).abs())
        .fold(0.0, f64::max);
    assert!(spread > 0.0 && spread < 1.0, "{spread}");
}

#[test]
fn toys_do_not_depend_on_threads_or_shards() {
    let analysis = smeft_exact();
    let plan = plan(&analysis, &["c1", "c2"], &[], grid_2x2(), 4, 11);
    let whole = toy_file(&analysis, &plan, (0, 1), 1);
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..3)
        .map(|i| {
            let shard = toy_file(&analysis, &plan, (i, 3), 2);
            let path = dir.path().join(format!("shard{i}.h5"));
            shard.write(&path).unwrap();
            path
        })
        .collect();
    let merged = toyfile::merge(&paths).unwrap();
    assert_eq!(merged.records, whole.records);
    assert_eq!(merged.header, whole.header);
}

#[test]
fn a_profiled_poi_floats_and_one_not_named_is_held() {
    let analysis = smeft_exact();
    let grid = PoiGrid::line(vec![-0.4, 0.0]);
    let held = toy_file(
        &analysis,
        &plan(&analysis, &["c1"], &[], grid.clone(), 3, 3),
        (0, 1),
        2,
    );
    assert!(
        held.records.iter().all(|r| r.theta_hat[1] == 0.0),
        "c2 is held at its initial value 0"
    );
    let profiled = plan(&analysis, &["c1"], &["c2"], grid.clone(), 3, 3);
    let profiled = toy_file(&analysis, &profiled, (0, 1), 2);
    assert_eq!(profiled.header.profiled, names(&["c2"]));
    assert!(profiled.records.iter().all(|r| r.theta_hat[1] != 0.0));
    // `--mu-grid` (one POI, every other POI profiled) is the same construction.
    let (pois, rest) = plan_pois(&analysis.model, &names(&["c1"]), &[], true).unwrap();
    assert_eq!(rest, vec![1]);
    let one_poi = ToyPlan {
        pois,
        profiled: rest,
        grid,
        n_toys: 3,
        seed: 3,
        systematics: true,
        statistic: TestStatistic::Tmu,
    };
    assert_eq!(
        toy_file(&analysis, &one_poi, (0, 1), 1).records,
        profiled.records
    );
}

#[test]
fn plans_name_their_pois() {
    let analysis = smeft_exact();
    let model = &analysis.model;
    let refused = |grid: &[&str], profile: &[&str]| {
        plan_pois(model, &names(grid), &names(profile), false)
            .unwrap_err()
            .to_string()
    };
    let text = refused(&["c3"], &[]);
    assert!(
        text.contains("--grid c3") && text.contains("c1, c2, alpha_lumi"),
        "{text}"
    );
    let text = refused(&["c1", "c1"], &[]);
    assert!(text.contains("names this parameter twice"), "{text}");
    let text = refused(&["c1"], &["c1"]);
    assert!(
        text.contains("--profile c1") && text.contains("on the grid"),
        "{text}"
    );
    let text = refused(&["c1"], &["alpha_lumi"]);
    assert!(text.contains("not a POI"), "{text}");
}

#[test]
fn points_files_are_read_and_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("points.csv");
    std::fs::write(
        &path,
        "# three points\nc1, c2\n0.1, -0.2\n\n0.3 0.4\n-1,0\n",
    )
    .unwrap();
    let (pois, grid) = read_points(&path).unwrap();
    assert_eq!(pois, names(&["c1", "c2"]));
    assert_eq!(
        grid.points,
        vec![vec![0.1, -0.2], vec![0.3, 0.4], vec![-1.0, 0.0]]
    );
    assert_eq!(grid.axes, None);
    std::fs::write(&path, "c1, c2\n0.1, -0.2\n0.3\n").unwrap();
    let text = read_points(&path).unwrap_err().to_string();
    assert!(
        text.contains("points.csv") && text.contains("line 3"),
        "{text}"
    );
    assert!(
        text.contains("1 value(s)") && text.contains("2 POI(s)"),
        "{text}"
    );
    std::fs::write(&path, "c1\nnan\n").unwrap();
    let text = read_points(&path).unwrap_err().to_string();
    assert!(
        text.contains("line 2") && text.contains("c1 = 'nan'"),
        "{text}"
    );
}

#[test]
fn one_poi_toy_files_of_the_previous_format_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.h5");
    let file = hdf5::File::create(&path).unwrap();
    let plan: hdf5::types::VarLenUnicode =
        r#"{"format": "nsbi-toys-4", "poi": "mu"}"#.parse().unwrap();
    file.new_attr::<hdf5::types::VarLenUnicode>()
        .create("plan")
        .unwrap()
        .write_scalar(&plan)
        .unwrap();
    drop(file);
    let text = ToyFile::read(&path).unwrap_err().to_string();
    assert!(text.contains("old.h5"), "{text}");
    assert!(text.contains("nsbi-toys-4 (one POI)"), "{text}");
    assert!(text.contains("make the toys again"), "{text}");
}

/// The sorted t of `records`.
fn sorted_t(records: &[ToyRecord]) -> Vec<f64> {
    let mut t: Vec<f64> = records.iter().map(|r| r.t).collect();
    t.sort_by(f64::total_cmp);
    t
}

/// Near the best fit the SMEFT likelihood is close to Gaussian in (c1, c2): the toys' t of the
/// joint construction follows χ²₂ (statrs' quantiles 2.30 and 6.18), so the Neyman regions
/// agree with the asymptotic ones; on a product grid both come with contours, the Neyman one
/// drawn through the critical values point by point.
#[test]
fn joint_regions_follow_wilks_near_the_best_fit() {
    let analysis = smeft_exact();
    let grid = PoiGrid::product(vec![
        vec![-0.7, -0.45, -0.2, 0.05, 0.3],
        vec![-0.55, -0.3, -0.05, 0.2, 0.45],
    ])
    .unwrap();
    let plan = plan(&analysis, &["c1", "c2"], &[], grid, 60, 17);
    let file = toy_file(&analysis, &plan, (0, 1), 2);
    let t = sorted_t(&file.records);
    for level in [0.6827, 0.9545] {
        // χ²₂ has the closed-form CDF 1 − exp(−x/2).
        let threshold = -2.0 * f64::ln(1.0 - level);
        assert!(
            (nsbi::fit::contour::chi2_threshold(level, 2) - threshold).abs() < 1e-9,
            "statrs' χ²₂ quantile at {level}"
        );
        let n = t.len() as f64;
        let below = t.iter().filter(|&&x| x <= threshold).count() as f64 / n;
        let error = (level * (1.0 - level) / n).sqrt();
        assert!(
            (below - level).abs() < 3.0 * error,
            "{below} of the toys' t ≤ {threshold}, expected {level} ± {error}"
        );
    }
    let profile = observed_profile(&analysis, &plan).unwrap();
    let best = vec![profile.free.theta[0], profile.free.theta[1]];
    let levels = [0.6827, 0.9545];
    let result = neyman_regions(
        &file.header,
        &file.records,
        profile.t(),
        best,
        &levels,
        true,
    )
    .unwrap();
    assert_eq!(result.n_toys, vec![60; 25]);
    assert_eq!(result.pois, names(&["c1", "c2"]));
    for (neyman, asymptotic) in result.regions.iter().zip(&result.asymptotic_regions) {
        assert_eq!(neyman.cl, asymptotic.cl);
        let contour = neyman.contour.as_ref().unwrap();
        assert!(!contour.polylines.is_empty());
        // Each contour point lies on a grid edge, where t_obs − c changes sign.
        for line in &contour.polylines {
            for p in line {
                let on_edge = |axis: &[f64], v: f64| axis.iter().any(|a| (a - v).abs() < 1e-12);
                let axes = result.axes.as_ref().unwrap();
                assert!(on_edge(&axes[0], p[0]) || on_edge(&axes[1], p[1]), "{p:?}");
            }
        }
        // The regions agree on all but the grid points whose membership the toys' finite
        // statistics leave open or where c differs from χ²₂ by more than that.
        let differ = (0..25)
            .filter(|&g| neyman.accepted[g] != asymptotic.accepted[g])
            .count();
        assert!(
            differ <= 3,
            "{} %: {differ} of 25 grid points differ",
            neyman.cl
        );
        for g in 0..25 {
            assert!(neyman.critical_low[g] <= neyman.critical_values[g]);
            assert!(neyman.critical_values[g] <= neyman.critical_high[g]);
            assert!(neyman.accepted_narrow[g] <= neyman.accepted[g]);
            assert!(neyman.accepted[g] <= neyman.accepted_wide[g]);
        }
    }
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["regions"][0]["cl"], 68.27);
    let threshold = json["asymptotic_regions"][1]["contour"]["threshold"].as_f64();
    assert!((threshold.unwrap() + 2.0 * f64::ln(1.0 - 0.9545)).abs() < 1e-9);
}

/// The joint 68.27 % and 95.45 % regions cover their true point at three points of the plane:
/// fresh toys (another seed) against the construction's critical values, within 2σ (the
/// coverage toys' binomial error and the construction's in quadrature).
#[test]
fn joint_regions_cover_at_three_points() {
    let analysis = smeft_exact();
    let grid = PoiGrid {
        points: vec![vec![-0.2, -0.1], vec![0.4, -0.5], vec![-0.8, 0.6]],
        axes: None,
    };
    let plan = plan(&analysis, &["c1", "c2"], &[], grid, 300, 31);
    let construction = toy_file(&analysis, &plan, (0, 1), 2);
    for g in 0..3 {
        let report = construction::coverage(
            &analysis,
            &construction,
            g,
            300,
            32,
            &[0.6827, 0.9545],
            &|| {},
        )
        .unwrap();
        let point = report.poi_true.as_ref().unwrap();
        assert_eq!(
            point.values().copied().collect::<Vec<_>>(),
            plan.grid.points[g]
        );
        for (label, level) in &report.levels {
            eprintln!(
                "coverage at {point:?}, {label} %: {:.4} ± {:.4} (construction ± {:.4}), pull {:.2}",
                level.coverage, level.error, level.construction_error, level.pull
            );
            assert!(
                level.pull.abs() < 2.0,
                "{label} % at {point:?}: coverage {} ± {} (pull {})",
                level.coverage,
                level.error,
                level.pull
            );
        }
    }
}

fn smeft_exact_path() -> String {
    root()
        .join("workspaces/smeft_toy/workspace_exact.yaml")
        .to_string_lossy()
        .into_owned()
}

fn cache_dir() -> String {
    test_cache().dir().to_string_lossy().into_owned()
}

/// `nsbi ARGS… --cache-dir CACHE`, which must succeed; its stdout.
fn run_ok(args: &[&str]) -> String {
    let cache = cache_dir();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--cache-dir", &cache]);
    let out = nsbi(&all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

const GRID_2D: [&str; 4] = ["--grid", "c1=-0.7:0.3:0.25", "--grid", "c2=-0.55:0.45:0.25"];

/// The commands a user runs for a 2-D construction: `toys --grid --grid`, `neyman --json
/// --plot` (regions with contours, PNG and SVG), `coverage --at`; and a list of points, whose
/// regions are masks without contours.
#[test]
fn the_commands_make_a_2d_construction() {
    let dir = tempfile::tempdir().unwrap();
    let ws = smeft_exact_path();
    let toys = dir.path().join("toys.h5");
    let mut args = vec!["toys", &ws];
    args.extend_from_slice(&GRID_2D);
    let out_path = toys.to_string_lossy().into_owned();
    args.extend_from_slice(&["--toys", "20", "--seed", "4", "--out", &out_path]);
    run_ok(&args);
    let file = ToyFile::read(&toys).unwrap();
    assert_eq!(file.header.pois, names(&["c1", "c2"]));
    assert_eq!(file.header.grid.len(), 25);
    assert_eq!(file.records.len(), 500);

    let json = dir.path().join("region.json");
    let plot = dir.path().join("region");
    let printed = run_ok(&[
        "neyman",
        &ws,
        "--toys",
        &out_path,
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--cl",
        "0.9",
    ]);
    assert!(
        printed.contains("68.27 % joint region of c1, c2"),
        "{printed}"
    );
    assert!(printed.contains("best fit: c1 = -0.21"), "{printed}");
    for ext in ["png", "svg"] {
        let size = std::fs::metadata(dir.path().join(format!("region.{ext}")))
            .unwrap()
            .len();
        assert!(size > 10_000, "region.{ext}: {size} bytes");
    }
    let report = read_json(&json);
    assert_eq!(report["pois"], serde_json::json!(["c1", "c2"]));
    assert_eq!(report["regions"].as_array().unwrap().len(), 3);
    assert_eq!(report["regions"][2]["cl"], 90.0);
    let threshold = report["asymptotic_regions"][2]["threshold"]
        .as_f64()
        .unwrap();
    assert!((threshold + 2.0 * f64::ln(0.1)).abs() < 1e-9, "{threshold}");
    for region in report["regions"].as_array().unwrap() {
        assert!(!region["contour"]["polylines"]
            .as_array()
            .unwrap()
            .is_empty());
        assert_eq!(region["critical_values"].as_array().unwrap().len(), 25);
    }

    let coverage = dir.path().join("coverage.json");
    run_ok(&[
        "coverage",
        &ws,
        "--toys",
        &out_path,
        "--at",
        "c1=-0.2,c2=-0.05",
        "--n",
        "20",
        "--seed",
        "5",
        "--json",
        coverage.to_str().unwrap(),
    ]);
    let coverage = read_json(&coverage);
    // The grid's values (start + i·step), which the true point names to 1e-9.
    let at = &coverage["poi_true"];
    assert!((at["c1"].as_f64().unwrap() + 0.2).abs() < 1e-9, "{at}");
    assert!((at["c2"].as_f64().unwrap() + 0.05).abs() < 1e-9, "{at}");
    assert!(coverage.get("mu_true").is_none());
    assert_eq!(coverage["construction_toys"], 20);
    let cache = cache_dir();
    let refused = nsbi(&[
        "coverage",
        &ws,
        "--toys",
        &out_path,
        "--mu-true",
        "0",
        "--n",
        "5",
        "--seed",
        "5",
        "--cache-dir",
        &cache,
    ]);
    assert_refused(&refused, &["--mu-true", "2 (c1, c2)", "--at c1=…,c2=…"]);
    let refused = nsbi(&[
        "coverage",
        &ws,
        "--toys",
        &out_path,
        "--at",
        "c1=-0.2",
        "--n",
        "5",
        "--seed",
        "5",
        "--cache-dir",
        &cache,
    ]);
    assert_refused(&refused, &["--at: no value for c2"]);

    // A list of points: a mask per region, no contour, and no plot.
    let points = dir.path().join("points.txt");
    std::fs::write(&points, "c2 c1\n0.0 -0.2\n0.2 -0.2\n").unwrap();
    let listed = dir.path().join("listed.h5");
    let listed_path = listed.to_string_lossy().into_owned();
    run_ok(&[
        "toys",
        &ws,
        "--points",
        points.to_str().unwrap(),
        "--toys",
        "3",
        "--out",
        &listed_path,
    ]);
    let file = ToyFile::read(&listed).unwrap();
    assert_eq!(file.header.pois, names(&["c2", "c1"]));
    assert_eq!(
        file.header.grid.points,
        vec![vec![0.0, -0.2], vec![0.2, -0.2]]
    );
    let json = dir.path().join("listed.json");
    run_ok(&[
        "neyman",
        &ws,
        "--toys",
        &listed_path,
        "--json",
        json.to_str().unwrap(),
    ]);
    let report = read_json(&json);
    assert_eq!(
        report["regions"][0]["accepted"].as_array().unwrap().len(),
        2
    );
    assert!(report["regions"][0].get("contour").is_none());
    assert!(report.get("axes").is_none());
    let refused = nsbi(&[
        "neyman",
        &ws,
        "--toys",
        &listed_path,
        "--plot",
        plot.to_str().unwrap(),
        "--cache-dir",
        &cache,
    ]);
    assert_refused(&refused, &["two POIs on a product grid", "list of points"]);
    let refused = nsbi(&[
        "toys",
        &ws,
        "--points",
        points.to_str().unwrap(),
        "--profile",
        "c1",
        "--toys",
        "3",
        "--out",
        listed.to_str().unwrap(),
        "--cache-dir",
        &cache,
    ]);
    assert_refused(&refused, &["--profile c1", "on the grid"]);
    std::fs::write(&points, "c2\n0.0\n0.2\n").unwrap();
    run_ok(&[
        "toys",
        &ws,
        "--points",
        points.to_str().unwrap(),
        "--profile",
        "c1",
        "--toys",
        "3",
        "--out",
        listed.to_str().unwrap(),
    ]);
    let file = ToyFile::read(&listed).unwrap();
    assert_eq!(
        (file.header.pois.clone(), file.header.profiled.clone()),
        (names(&["c2"]), names(&["c1"]))
    );
    assert_eq!(file.header.grid.axes, None);
}

/// `nsbi batch` of a 2-D plan: the manifest's shards split the (point, toy) list, and their
/// merged files equal the single-process run.
#[test]
fn batch_shards_a_2d_plan() {
    let dir = tempfile::tempdir().unwrap();
    let ws = smeft_exact_path();
    let plan = [
        "--grid",
        "c1=-0.4:0:0.4",
        "--grid",
        "c2=-0.2:0.2:0.4",
        "--toys",
        "3",
    ];
    let farm = dir.path().join("farm");
    let mut args = vec!["batch", "condor", &ws];
    args.extend_from_slice(&plan);
    args.extend_from_slice(&["--shards", "3", "--dir", farm.to_str().unwrap()]);
    let printed = run_ok(&args);
    assert!(
        printed.contains("12 toys (4 grid points of c1, c2 × 3 toys)"),
        "{printed}"
    );
    let manifest = nsbi::batch::Manifest::read(&farm).unwrap();
    assert!(manifest
        .toys_arguments
        .contains(&"c2=-0.2:0.2:0.4".to_string()));
    for i in 0..3 {
        let command = manifest.rerun_command(&farm, i);
        let out = std::process::Command::new("sh")
            .args(["-c", &command])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", stderr(&out));
    }
    let merged = dir.path().join("merged.h5");
    let out = nsbi(&[
        "merge",
        farm.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let single = dir.path().join("single.h5");
    let mut args = vec!["toys", &ws];
    args.extend_from_slice(&plan);
    args.extend_from_slice(&["--threads", "1", "--out", single.to_str().unwrap()]);
    run_ok(&args);
    let (merged, single) = (
        ToyFile::read(&merged).unwrap(),
        ToyFile::read(&single).unwrap(),
    );
    assert_eq!(merged.records.len(), 12);
    assert_eq!(merged.records, single.records);
}
