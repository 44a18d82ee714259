//! The scale-benchmark generator (`validation/make_scale_workspace.py`, issue 13): the same seed
//! gives the same bytes, every shape ratio averages to 1 over its process's MC, the negative
//! generator weights are the fraction asked for, and `nsbi validate` accepts the workspace.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{nsbi, python, root, stdout};

const EVENTS: &str = "2000";
const NEGATIVE_FRACTION: f64 = 0.2;

/// Runs the generator into `out` (2 channels, 4 processes, 2 yield and 2 shape NPs) and returns
/// its stdout; `nsbi validate` inside it runs this test's binary.
fn generate(out: &Path, seed: &str) -> String {
    let output = Command::new(python())
        .arg(root().join("validation/make_scale_workspace.py"))
        .args([
            "--out",
            out.to_str().unwrap(),
            "--seed",
            seed,
            "--events",
            EVENTS,
        ])
        .args([
            "--processes",
            "4",
            "--channels",
            "2",
            "--yield-nps",
            "2",
            "--shape-nps",
            "2",
        ])
        .args(["--negative-fraction", &NEGATIVE_FRACTION.to_string()])
        .env("NSBI", env!("CARGO_BIN_EXE_nsbi"))
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "generator failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

/// Every file under `dir` (relative path → bytes), caches excluded.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with(".nsbi-cache") {
                    walk(base, &path, out);
                }
            } else {
                let rel = path.strip_prefix(base).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn event_files(all: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<&PathBuf> {
    all.keys()
        .filter(|p| p.extension().is_some_and(|e| e == "h5"))
        .collect()
}

#[test]
fn scale_generator_is_deterministic_normalised_and_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let report = generate(&a, "7");
    generate(&b, "7");
    generate(&c, "8");

    // `nsbi validate` ran inside the generator and accepted the workspace.
    assert!(
        report.contains("valid — 2 channel(s), 10 event file(s)")
            && report.contains("40 ensemble(s)"),
        "unexpected validate report:\n{report}"
    );
    let validate = nsbi(&["validate", a.join("workspace.yaml").to_str().unwrap()]);
    assert!(
        stdout(&validate).contains("valid — 2 channel(s)"),
        "{}",
        common::stderr(&validate)
    );

    // Same seed: identical bytes, file by file; another seed: other events.
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    assert_eq!(event_files(&fa).len(), 10, "8 MC files + 2 observed");
    for (path, bytes) in &fa {
        assert!(
            &fb[path] == bytes,
            "{} differs between two runs with seed 7",
            path.display()
        );
    }
    for path in event_files(&fa) {
        assert!(
            fc[path] != fa[path],
            "{} is the same with seed 8",
            path.display()
        );
    }

    // Independent check with onnxruntime: each shape model's generator-weighted mean over its
    // process's MC, and the negative-weight fraction of each MC file.
    let verify = Command::new(python())
        .arg(root().join("validation/make_scale_workspace.py"))
        .args(["--verify", a.to_str().unwrap()])
        .output()
        .expect("python runs");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let means = json["shape_mean"].as_object().unwrap();
    assert_eq!(
        means.len(),
        2 * 4 * 2 * 2,
        "channels × processes × NPs × up/down"
    );
    for (model, mean) in means {
        let mean = mean.as_f64().unwrap();
        assert!(
            (mean - 1.0).abs() < 1e-6,
            "{model}: mean {mean} over its process's MC"
        );
    }
    let negative = json["negative_fraction"].as_object().unwrap();
    assert_eq!(negative.len(), 8);
    for (file, fraction) in negative {
        assert_eq!(fraction.as_f64().unwrap(), NEGATIVE_FRACTION, "{file}");
    }
}
