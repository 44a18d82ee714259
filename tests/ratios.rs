//! The engine's ratios against independent Python computations (onnxruntime + numpy in
//! `validation/reference_ratios.py`) and against the closed-form toy densities.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use nsbi::data::Events;
use nsbi::ratio::{OutputSpec, RatioEnsemble, Standardisation};
use nsbi::workspace::schema::{Aggregation, OutputConvention};

const FEATURES: [&str; 3] = ["m4l", "cos_theta1", "cos_theta2"];

fn features() -> Vec<String> {
    FEATURES.iter().map(|s| s.to_string()).collect()
}

fn events(file: &str) -> Events {
    Events::read(
        &example().join("data").join(file),
        "events",
        &features(),
        Some("weight"),
    )
    .unwrap()
}

fn members(process: &str) -> Vec<PathBuf> {
    (0..5)
        .map(|i| example().join(format!("models/{process}/member_{i}.onnx")))
        .collect()
}

fn standardisation_file(process: &str) -> PathBuf {
    example().join(format!("models/{process}/standardisation.json"))
}

struct Reference {
    ratio: Vec<f64>,
    spread: Vec<f64>,
}

/// Runs `reference_ratios.py` and parses its JSON.
fn reference(args: &[String]) -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reference.json");
    let mut all: Vec<String> = args.to_vec();
    all.extend(["--out".into(), out.display().to_string()]);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    run_validation_script("reference_ratios.py", &refs);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    let numbers = |key: &str| -> Vec<f64> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    Reference {
        ratio: numbers("ratio"),
        spread: numbers("spread"),
    }
}

fn network_args(
    models: &[PathBuf],
    output: &str,
    column: usize,
    convention: &str,
    aggregation: &str,
    events: &Path,
) -> Vec<String> {
    let mut args = vec!["--models".to_string()];
    args.extend(models.iter().map(|m| m.display().to_string()));
    args.extend(
        [
            "--output",
            output,
            "--column",
            &column.to_string(),
            "--convention",
            convention,
            "--aggregation",
            aggregation,
            "--events",
            &events.display().to_string(),
            "--group",
            "events",
            "--features",
            &FEATURES.join(","),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args
}

fn spec(
    output: &str,
    column: usize,
    convention: OutputConvention,
    aggregation: Aggregation,
) -> OutputSpec {
    OutputSpec {
        name: Some(output.into()),
        column,
        convention,
        aggregation,
    }
}

#[test]
fn each_output_convention_matches_python() {
    let observed = events("observed.h5");
    let model = vec![example().join("models/SBI/exact.onnx")];
    let conventions = [
        ("score", OutputConvention::Score),
        ("logit", OutputConvention::Logit),
        ("log_ratio", OutputConvention::LogRatio),
        ("ratio", OutputConvention::Ratio),
    ];
    let mut engine_results = Vec::new();
    for (name, convention) in conventions {
        // The exact model exposes one output per convention, named after it.
        let ensemble = RatioEnsemble::load(
            name,
            &model,
            spec(name, 0, convention, Aggregation::MeanRatio),
            None,
            3,
        )
        .unwrap();
        let engine = ensemble.evaluate(&observed, None).unwrap();
        let python = reference(&network_args(
            &model,
            name,
            0,
            name,
            "mean_ratio",
            &observed.file,
        ));
        assert_close(
            &format!("convention {name}"),
            &engine.ratio,
            &python.ratio,
            1e-12,
        );
        engine_results.push(engine.ratio);
    }
    // All four encodings describe the same ratio.
    for other in &engine_results[1..] {
        assert_close(
            "score vs other conventions",
            &engine_results[0],
            other,
            1e-9,
        );
    }
}

#[test]
fn each_aggregation_matches_python_with_standardised_inputs() {
    let observed = events("observed.h5");
    let models = members("S");
    let standardisation = Standardisation::read(&standardisation_file("S"), &features()).unwrap();
    for (name, aggregation) in [
        ("mean_ratio", Aggregation::MeanRatio),
        ("mean_logit", Aggregation::MeanLogit),
        ("median_score", Aggregation::MedianScore),
    ] {
        let output = spec("probabilities", 1, OutputConvention::Score, aggregation);
        let ensemble =
            RatioEnsemble::load(name, &models, output, Some(standardisation.clone()), 3).unwrap();
        assert_eq!(ensemble.n_members(), 5);
        let engine = ensemble.evaluate(&observed, None).unwrap();
        let mut args = network_args(&models, "probabilities", 1, "score", name, &observed.file);
        args.extend([
            "--standardisation".into(),
            standardisation_file("S").display().to_string(),
        ]);
        let python = reference(&args);
        // float32 networks evaluated in different batch sizes: agreement to float32 precision.
        assert_close(
            &format!("aggregation {name}"),
            &engine.ratio,
            &python.ratio,
            1e-5,
        );
        assert_close(
            &format!("spread under {name}"),
            &engine.spread,
            &python.spread,
            1e-4,
        );
    }
}

#[test]
fn standardisation_changes_what_the_networks_see() {
    let observed = events("observed.h5");
    let models = &members("S")[..1];
    let output = spec(
        "probabilities",
        1,
        OutputConvention::Score,
        Aggregation::MeanRatio,
    );
    let with = Standardisation::read(&standardisation_file("S"), &features()).unwrap();
    let standardised = RatioEnsemble::load("with", models, output.clone(), Some(with), 3).unwrap();
    let raw = RatioEnsemble::load("without", models, output, None, 3).unwrap();
    let a = standardised.evaluate(&observed, None).unwrap().ratio;
    // Raw GeV-scale inputs saturate the network: either its scores hit 0 or 1 (a clear error,
    // since r = s/(1−s) must be finite and > 0) or the ratios differ for most events.
    match raw.evaluate(&observed, None) {
        Err(e) => assert!(e.to_string().contains("must be finite and > 0"), "{e}"),
        Ok(b) => {
            let differing = a
                .iter()
                .zip(&b.ratio)
                .filter(|(x, y)| (*x - *y).abs() > 1e-3 * x.abs())
                .count();
            assert!(
                differing > a.len() / 2,
                "standardisation had no effect on {} of {} events",
                a.len() - differing,
                a.len()
            );
        }
    }
}

#[test]
fn exact_models_reproduce_the_closed_form_ratios() {
    let cases = [
        ("S", "mc_S.h5"),
        ("SBI", "mc_SBI.h5"),
        ("B", "mc_B.h5"),
        ("B_shape_up", "mc_B_shape_up.h5"),
        ("B_shape_down", "mc_B.h5"),
    ];
    for (process, file) in cases {
        let sample = events(file);
        let model = vec![example().join(format!("models/{process}/exact.onnx"))];
        let ensemble = RatioEnsemble::load(
            process,
            &model,
            spec("ratio", 0, OutputConvention::Ratio, Aggregation::MeanRatio),
            None,
            3,
        )
        .unwrap();
        let engine = ensemble.evaluate(&sample, None).unwrap();
        let n = 20_000.min(sample.len());
        let closed_form = reference(&[
            "--exact".into(),
            process.into(),
            "--events".into(),
            sample.file.display().to_string(),
            "--group".into(),
            "events".into(),
            "--features".into(),
            FEATURES.join(","),
            "--first".into(),
            n.to_string(),
        ]);
        assert_close(
            &format!("exact {process} on {file}"),
            &engine.ratio[..n],
            &closed_form.ratio,
            1e-10,
        );
        assert!(
            engine.spread.iter().all(|s| *s == 0.0),
            "one member has no spread"
        );
    }
}

#[test]
fn trained_ensembles_learn_the_true_ratio() {
    // Not a precision test: the networks must be usable (a few percent on average).
    let sample = events("observed.h5");
    let standardisation = Standardisation::read(&standardisation_file("SBI"), &features()).unwrap();
    let output = spec(
        "probabilities",
        1,
        OutputConvention::Score,
        Aggregation::MeanRatio,
    );
    let learned = RatioEnsemble::load("SBI", &members("SBI"), output, Some(standardisation), 3)
        .unwrap()
        .evaluate(&sample, None)
        .unwrap();
    let exact = RatioEnsemble::load(
        "SBI exact",
        &[example().join("models/SBI/exact.onnx")],
        spec("ratio", 0, OutputConvention::Ratio, Aggregation::MeanRatio),
        None,
        3,
    )
    .unwrap()
    .evaluate(&sample, None)
    .unwrap();
    let mean_abs_dev: f64 = learned
        .ratio
        .iter()
        .zip(&exact.ratio)
        .map(|(l, e)| (l / e - 1.0).abs())
        .sum::<f64>()
        / sample.len() as f64;
    assert!(
        mean_abs_dev < 0.1,
        "mean |r_learned / r_exact − 1| = {mean_abs_dev}"
    );
}
