//! Inputs nsbi refuses, each with a message that names what is wrong and what to do
//! (issue 12, "Unclear errors" and items 10–11): never an abort, a panic or a hang.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use nsbi::workspace::Workspace;

fn exact_workspace() -> String {
    example().join("workspace_exact.yaml").display().to_string()
}

fn test_cache_dir() -> String {
    root().join("target/test-ratio-cache").display().to_string()
}

#[test]
fn non_utf8_byte_in_workspace_gives_offset_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"parameters:\n  - {name: mu, poi: true}\n# caf".to_vec();
    let offset = bytes.len();
    bytes.extend_from_slice(b"\xe9 au lait\nchannels: []\n");
    let path = dir.path().join("latin1.yaml");
    std::fs::write(&path, &bytes).unwrap();
    let text = Workspace::load(&path).unwrap_err().to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(&format!("byte offset {offset}")), "{text}");
    assert!(text.contains("line 3"), "{text}");
    assert!(text.contains("0xE9") && text.contains("UTF-8"), "{text}");
}

#[test]
fn empty_workspace_file_says_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("empty.yaml", ""),
        ("comments.yaml", "# nothing yet\n\n  \n"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let text = Workspace::load(&path).unwrap_err().to_string();
        assert!(
            text.contains(&format!("workspace file {} is empty", path.display())),
            "{text}"
        );
        assert!(
            text.contains("expected a YAML mapping with parameters and channels"),
            "{text}"
        );
    }
}

#[test]
fn negative_grid_start_is_a_value_not_a_flag() {
    // A missing workspace is the first thing checked after the arguments: reaching it proves
    // `-0.5:1:0.1` was taken as the grid.
    let out = nsbi(&[
        "toys",
        "/nonexistent/ws.yaml",
        "--mu-grid",
        "-0.5:1:0.1",
        "--toys",
        "1",
        "--out",
        "/nonexistent/toys.h5",
    ]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cannot read workspace /nonexistent/ws.yaml"),
        "{text}"
    );
    let out = nsbi(&[
        "coverage",
        "/nonexistent/ws.yaml",
        "--toys",
        "/nonexistent/toys.h5",
        "--mu-true",
        "-0.5",
        "--seed",
        "2",
    ]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("no toy file matches '/nonexistent/toys.h5'"),
        "{text}"
    );
}

#[test]
fn absurd_toy_grids_are_refused() {
    use nsbi::infer::construction::parse_grid;
    for grid in ["0:1:1e-13", "0:1:1e-300", "0:1e300:1"] {
        let text = parse_grid(grid).unwrap_err().to_string();
        assert!(text.contains(&format!("--mu-grid '{grid}'")), "{text}");
        assert!(text.contains("at most 1000000 points"), "{text}");
    }
    assert_eq!(
        parse_grid("0:1:0.25").unwrap(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    let text = nsbi::infer::construction::check_toy_count(11, usize::MAX)
        .unwrap_err()
        .to_string();
    assert!(text.contains("--toys"), "{text}");
    assert!(text.contains("11 grid points"), "{text}");
}

#[test]
fn absurd_scan_points_are_refused() {
    let out = nsbi(&[
        "scan",
        &exact_workspace(),
        "--poi",
        "mu",
        "--range",
        "0:3",
        "--points",
        "18446744073709551615",
        "--cache-dir",
        &test_cache_dir(),
    ]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--points"), "{text}");
    assert!(text.contains("at most 1000000"), "{text}");
}

#[test]
fn toy_files_without_toys_are_refused() {
    use nsbi::infer::toyfile::{ModelFingerprint, ToyFile, ToyFileHeader};
    use nsbi::infer::toys::ToyPlan;
    let dir = tempfile::tempdir().unwrap();
    let toys = dir.path().join("empty.h5");
    let plan = ToyPlan {
        pois: vec![0],
        profiled: vec![],
        grid: nsbi::infer::poi_grid::PoiGrid::line(vec![]),
        n_toys: 5,
        seed: 1,
        systematics: true,
        statistic: nsbi::infer::test_stat::TestStatistic::Tmu,
    };
    let names = vec!["mu".into(), "alpha_eff".into(), "alpha_shape".into()];
    let ws = example().join("workspace_exact.yaml");
    let fingerprint = ModelFingerprint::of(&example_analysis("workspace_exact.yaml"));
    let header = ToyFileHeader::new(&ws, &plan, names, fingerprint, (0, 1));
    ToyFile {
        header,
        records: vec![],
    }
    .write(&toys)
    .unwrap();
    let plot = dir.path().join("belt");
    let (ended, text) = nsbi_with_limit(
        &[
            "neyman",
            &exact_workspace(),
            "--toys",
            toys.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
            "--cache-dir",
            &test_cache_dir(),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(ended, Ended::Exit(1), "{text}");
    assert!(text.contains(&toys.display().to_string()), "{text}");
    assert!(text.contains("holds no toys"), "{text}");
}

#[test]
fn fixed_batch_onnx_model_is_caught_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("tests/fixtures/fixed_batch.onnx");
    let block = format!(
        "          models: {}\n          convention: ratio",
        model.display()
    );
    let yaml = single_process_workspace(
        &example().join("data/mc_S.h5").display().to_string(),
        &block,
    );
    let path = write_workspace(dir.path(), &yaml);
    let text = nsbi::validate::validate(&path).unwrap_err().to_string();
    assert!(text.contains("fixed_batch.onnx"), "{text}");
    assert!(text.contains("fixed batch size 1000"), "{text}");
    assert!(text.contains("dynamic first axis"), "{text}");
}

#[test]
fn closed_stdout_is_a_quiet_exit_and_files_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("fit.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsbi"))
        .args([
            "fit",
            &exact_workspace(),
            "--no-minos",
            "--json",
            json.to_str().unwrap(),
            "--cache-dir",
            &test_cache_dir(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsbi starts");
    // The reader goes away before nsbi prints anything (`nsbi fit … | head -0`).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let text = stderr(&out);
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains("Broken pipe"), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("fit.json written")).unwrap();
    assert!(v["parameters"]["mu"]["value"].as_f64().is_some(), "{v}");
}
