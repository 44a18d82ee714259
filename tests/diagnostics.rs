//! `nsbi calibrate` and `nsbi closure`: exact ratios pass every test and lie on the diagonal;
//! a deliberately miscalibrated model (tests/fixtures/distorted_S.onnx, exact r_S times
//! 1 + 0.3 cos_theta1) fails both, and the report names the feature and the bins; an
//! independent numpy/scipy recomputation agrees with the engine's numbers.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// The held-out varied samples of the background shape systematic (the workspace does not list
/// them: only the diagnostics need them).
fn shape_holdouts() -> Vec<String> {
    let data = example().join("data");
    vec![
        "--holdout".into(),
        format!(
            "B/alpha_shape:up={}",
            data.join("mc_B_shape_up.h5").display()
        ),
        "--holdout".into(),
        format!(
            "B/alpha_shape:down={}",
            data.join("mc_B_shape_down.h5").display()
        ),
    ]
}

/// Runs `nsbi COMMAND WORKSPACE --out OUT --cache-dir … EXTRA…`.
fn diagnose(command: &str, workspace: &Path, out: &Path, extra: &[String]) -> std::process::Output {
    let cache = root().join("target/test-ratio-cache");
    let mut args: Vec<String> = vec![
        command.into(),
        workspace.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--cache-dir".into(),
        cache.display().to_string(),
    ];
    args.extend(extra.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    nsbi(&refs)
}

fn read_json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn assert_png_and_svg(stem: &Path) {
    let png = std::fs::read(stem.with_extension("png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", stem.display());
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(svg.contains("<svg"), "{}", stem.display());
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn exact_ratios_pass_calibration_on_the_diagonal() {
    let out = tempfile::tempdir().unwrap();
    let ws = example().join("workspace_exact.yaml");
    let mut extra = shape_holdouts();
    extra.push("--strict".into());
    let run = diagnose("calibrate", &ws, out.path(), &extra);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let report = read_json(out.path().join("calibration.json"));
    assert_eq!(report["pass"], true);
    let ensembles = report["ensembles"].as_array().unwrap();
    let labels: Vec<&str> = ensembles
        .iter()
        .map(|e| e["ensemble"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "SR/S",
            "SR/SBI",
            "SR/B",
            "SR/B/alpha_shape:up",
            "SR/B/alpha_shape:down"
        ]
    );
    let threshold = f(&report["settings"]["per_test_threshold"]);
    assert!(
        (threshold - 0.01 / 5.0).abs() < 1e-15,
        "Bonferroni over 5 curves"
    );
    for e in ensembles {
        let curve = &e["curve"];
        let label = &e["ensemble"];
        assert!(f(&curve["p_value"]) >= threshold, "{label}: {curve}");
        assert!(f(&curve["ece"]) < 0.006, "{label}: ECE {}", curve["ece"]);
        assert!(
            curve["ndf"].as_u64().unwrap() >= 15,
            "{label}: too few bins tested"
        );
        // The diagonal within errors: every tested bin within 3.5σ of observed = predicted.
        for bin in curve["bins"].as_array().unwrap() {
            if bin["in_test"] == true {
                let deviation = f(&bin["observed"]) - f(&bin["mean_predicted"]);
                assert!(
                    deviation.abs() < 3.5 * f(&bin["error"]),
                    "{label}: bin {bin} off the diagonal"
                );
            }
        }
        // One exact member: its curve is the ensemble's, and the members agree exactly.
        assert_eq!(e["members"][0]["chi2"], curve["chi2"]);
        assert_eq!(f(&e["spread"]["mean"]), 0.0);
        let stem = format!(
            "calibration_{}",
            label.as_str().unwrap().replace(['/', ':'], "_")
        );
        assert_png_and_svg(&out.path().join(stem));
    }
}

#[test]
fn exact_ratios_pass_every_closure_test() {
    let out = tempfile::tempdir().unwrap();
    let ws = example().join("workspace_exact.yaml");
    let mut extra = shape_holdouts();
    extra.extend(["--mu", "1.7", "--mu", "0.5", "--strict"].map(String::from));
    let run = diagnose("closure", &ws, out.path(), &extra);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let report = read_json(out.path().join("closure.json"));
    assert_eq!(report["pass"], true);
    let tests = report["tests"].as_array().unwrap();
    let names: Vec<&str> = tests.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "SR/S",
            "SR/SBI",
            "SR/B",
            "SR/B/alpha_shape:up",
            "SR/B/alpha_shape:down",
            "SR/mu=1.7",
            "SR/mu=0.5"
        ]
    );
    let threshold = f(&report["settings"]["per_test_threshold"]);
    assert!(
        (threshold - 0.01 / 21.0).abs() < 1e-15,
        "7 tests × 3 features"
    );
    for t in tests {
        // Exact ratios conserve the yield up to MC statistics (< 1 %).
        let (target, reweighted) = (f(&t["target_total"]), f(&t["reweighted_total"]));
        assert!(
            (reweighted / target - 1.0).abs() < 0.01,
            "{}: totals {target} vs {reweighted}",
            t["name"]
        );
        for feature in t["features"].as_array().unwrap() {
            assert!(
                f(&feature["p_value"]) >= threshold,
                "{}: {feature}",
                t["name"]
            );
            assert_eq!(feature["ndf"], 20);
        }
    }
    // μ = 1.7 has negative weights (B's coefficient 1 − √μ < 0) and μ = 0.5 negative S
    // weights; both share the SBI events with the reweighted sample, and still close with
    // χ²/ndf ≈ 1 because the errors count Σ(t − u)² per event (stats.rs).
    assert_png_and_svg(&out.path().join("closure_SR_mu_1p7"));
    assert_png_and_svg(&out.path().join("closure_SR_S"));
}

/// The exact workspace with r_S replaced by the ensemble [exact, distorted].
fn distorted_workspace(dir: &Path) -> PathBuf {
    let ex = example();
    let text = std::fs::read_to_string(ex.join("workspace_exact.yaml")).unwrap();
    let text = text
        .replace(
            "models: models/S/exact.onnx",
            &format!(
                "models: [{}, {}]",
                ex.join("models/S/exact.onnx").display(),
                root().join("tests/fixtures/distorted_S.onnx").display()
            ),
        )
        .replace("file: data/", &format!("file: {}/data/", ex.display()))
        .replace(
            "models: models/",
            &format!("models: {}/models/", ex.display()),
        );
    write_workspace(dir, &text)
}

#[test]
fn a_distorted_model_fails_calibration_and_the_member_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ws = distorted_workspace(dir.path());
    let out = dir.path().join("out");
    let strict = ["--process".into(), "S".into(), "--strict".into()];
    let run = diagnose("calibrate", &ws, &out, &strict);
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
    // Without --strict the same failure is reported but the exit status is 0.
    let lenient = diagnose("calibrate", &ws, &out, &strict[..2]);
    assert!(lenient.status.success());
    let text = stdout(&lenient);
    assert!(text.contains("SR/S") && text.contains("FAIL"), "{text}");
    assert!(text.contains("bins beyond 3σ"), "{text}");

    let report = read_json(out.join("calibration.json"));
    assert_eq!(report["pass"], false);
    let s = &report["ensembles"][0];
    assert_eq!(s["ensemble"], "SR/S");
    assert_eq!(s["pass"], false);
    let threshold = f(&report["settings"]["per_test_threshold"]);
    assert!(f(&s["curve"]["p_value"]) < threshold);
    assert!(!s["curve"]["bins_beyond_3_sigma"]
        .as_array()
        .unwrap()
        .is_empty());
    // Member 0 is exact and passes; member 1 is the distorted one and fails.
    let members = s["members"].as_array().unwrap();
    assert!(members[0]["model"]
        .as_str()
        .unwrap()
        .ends_with("exact.onnx"));
    assert!(f(&members[0]["p_value"]) >= threshold, "{}", members[0]);
    assert!(members[1]["model"]
        .as_str()
        .unwrap()
        .ends_with("distorted_S.onnx"));
    assert!(f(&members[1]["p_value"]) < 1e-10);
    assert!(f(&members[1]["ece"]) > 3.0 * f(&members[0]["ece"]));
    assert!(f(&s["spread"]["mean"]) > 0.01, "the members disagree");
}

#[test]
fn a_distorted_model_fails_closure_in_cos_theta1_and_names_the_bins() {
    let dir = tempfile::tempdir().unwrap();
    let ws = distorted_workspace(dir.path());
    let out = dir.path().join("out");
    let args = ["--process", "S", "--mu", "1.7", "--mu", "10", "--strict"].map(String::from);
    let run = diagnose("closure", &ws, &out, &args);
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
    let text = stdout(&run);
    let line = text
        .lines()
        .find(|l| l.starts_with("SR/S ") && l.contains("cos_theta1"))
        .unwrap();
    assert!(line.ends_with("FAIL"), "{text}");

    let report = read_json(out.join("closure.json"));
    let threshold = f(&report["settings"]["per_test_threshold"]);
    let test = |name: &str| {
        report["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    let feature = |t: &Value, name: &str| {
        t["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["feature"] == name)
            .unwrap()
            .clone()
    };
    let s = test("SR/S");
    assert_eq!(s["pass"], false);
    // The tilt (1 + 0.15 cos_theta1 on average over the two members) shows in cos_theta1 …
    let c1 = feature(&s, "cos_theta1");
    assert!(f(&c1["p_value"]) < 1e-10, "{c1}");
    // … and the named bins are where the tilt is largest, at |cos_theta1| near 1, with the sign
    // of the tilt: too few reweighted events (positive pull) at −1, too many at +1.
    let bad = c1["bins_beyond_3_sigma"].as_array().unwrap();
    assert!(!bad.is_empty());
    for bin in bad.iter().take(2) {
        let centre = 0.5 * (f(&bin["low"]) + f(&bin["high"]));
        assert!(centre.abs() > 0.5, "{bin}");
        assert!(f(&bin["pull"]) * centre < 0.0, "{bin}");
    }
    // … but not in m4l: r_S's distortion depends only on the angle, S factorises in m4l and
    // the angles, and is even in cos_theta1, so the m4l distribution is unchanged.
    assert!(f(&feature(&s, "m4l")["p_value"]) >= threshold);
    // The full model uses r_S too. At μ = 1.7 the signal is a small part of the mixture
    // ((μ − √μ) ν_S ≈ 120 of 2130 events) and the halved tilt hides in the statistics; at
    // μ = 10 the signal is half of it and the test fails, in cos_theta1 only.
    assert_eq!(test("SR/mu=1.7")["pass"], true);
    let mu = test("SR/mu=10");
    assert_eq!(mu["pass"], false);
    assert!(f(&feature(&mu, "cos_theta1")["p_value"]) < threshold);
    assert!(f(&feature(&mu, "m4l")["p_value"]) >= threshold);
}

#[test]
fn python_recomputes_ece_and_chi2() {
    let out = tempfile::tempdir().unwrap();
    let ws = example().join("workspace_exact.yaml");
    let process = ["--process".into(), "S".into()];
    let cal = diagnose("calibrate", &ws, out.path(), &process);
    assert!(cal.status.success(), "{}", stderr(&cal));
    let clo = diagnose("closure", &ws, out.path(), &[]);
    assert!(clo.status.success(), "{}", stderr(&clo));
    let closure_path = out.path().join("closure.json");
    let reference: Value = serde_json::from_str(&run_validation_script(
        "diagnostics_reference.py",
        &[
            "--example",
            example().to_str().unwrap(),
            "--closure",
            closure_path.to_str().unwrap(),
        ],
    ))
    .unwrap();
    let calibration = read_json(out.path().join("calibration.json"));
    let closure = read_json(closure_path);
    let close = |label: &str, engine: &Value, python: &Value| {
        let (a, b) = (f(engine), f(python));
        assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
            "{label}: engine {a} vs numpy {b}"
        );
    };
    let curve = &calibration["ensembles"][0]["curve"];
    let py = &reference["calibration_S"];
    for key in ["ece", "chi2", "p_value"] {
        close(&format!("calibration {key}"), &curve[key], &py[key]);
    }
    assert_eq!(curve["ndf"], py["ndf"]);
    close("s range low", &curve["bins"][0]["low"], &py["low"]);
    let find = |test: &str, feature: &str| {
        closure["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == test)
            .unwrap()["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["feature"] == feature)
            .unwrap()
            .clone()
    };
    for (key, test, feature) in [
        ("closure_S_cos_theta1", "SR/S", "cos_theta1"),
        ("closure_mu_1.7_m4l", "SR/mu=1.7", "m4l"),
    ] {
        let engine = find(test, feature);
        for number in ["chi2", "p_value"] {
            close(
                &format!("{key} {number}"),
                &engine[number],
                &reference[key][number],
            );
        }
        assert_eq!(engine["ndf"], reference[key]["ndf"]);
    }
}

#[test]
fn bad_requests_are_named() {
    let out = tempfile::tempdir().unwrap();
    let ws = example().join("workspace_exact.yaml");
    // Runs `command` with `extra`, which must fail; returns its error message.
    let refused = |command: &str, extra: &[&str]| {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let run = diagnose(command, &ws, out.path(), &extra);
        assert!(!run.status.success(), "{command} {extra:?} succeeded");
        stderr(&run)
    };

    let err = refused("calibrate", &["--holdout", "Z=nothing.h5"]);
    assert!(
        err.contains("no sample 'Z'") && err.contains("B/alpha_shape:up"),
        "{err}"
    );
    let err = refused("calibrate", &["--holdout", "reference=/nonexistent/ref.h5"]);
    assert!(
        err.contains("/nonexistent/ref.h5") && err.contains("not found"),
        "{err}"
    );
    let err = refused("closure", &["--process", "X"]);
    assert!(
        err.contains("--process X: no such process (processes: S, SBI, B)"),
        "{err}"
    );
    let err = refused("closure", &["--mu", "99"]);
    assert!(err.contains("mu=99 lies outside its bounds"), "{err}");
    let err = refused("calibrate", &["--p-threshold", "2"]);
    assert!(err.contains("--p-threshold must lie in (0, 1)"), "{err}");
}

#[test]
fn shape_variations_without_held_out_samples_are_skipped_with_the_reason() {
    let out = tempfile::tempdir().unwrap();
    let ws = example().join("workspace_exact.yaml");
    let run = diagnose(
        "calibrate",
        &ws,
        out.path(),
        &["--process".into(), "B".into()],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let report = read_json(out.path().join("calibration.json"));
    assert_eq!(report["ensembles"].as_array().unwrap().len(), 1);
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 2);
    assert!(
        skipped[0].contains("--holdout B/alpha_shape:up=FILE"),
        "{skipped:?}"
    );
}
