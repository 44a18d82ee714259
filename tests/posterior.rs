//! Posteriors of amortised (ONNX) estimators from the workspace's `posterior:` section
//! (issue 18), on `workspaces/nre_toy`, whose exact models were written by
//! `validation/make_nre_toy.py` with the analytic posteriors in `truth.json`.

use std::path::{Path, PathBuf};

use common::sampler_settings as settings;
use nsbi::bayes::diagnostics::{self, ParameterDiagnostics};
use nsbi::bayes::run::{run_posterior, write_posterior, PosteriorOutputs, PosteriorRun};
use nsbi::bayes::{SamplerSettings, Samples};

fn toy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workspaces/nre_toy")
}

fn truth() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(toy().join("truth.json")).unwrap()).unwrap()
}

fn run_in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// The largest deviation, in Monte-Carlo errors, of the draws' means and covariances from a
/// normal posterior's. The error of each estimate comes from its own series' bulk ESS: for
/// the mean Σᵢᵢ/ESS, for a covariance (Σᵢᵢ Σⱼⱼ + Σᵢⱼ²)/ESS.
fn gaussian_pulls(samples: &Samples, mean: &[f64], cov: &[Vec<f64>]) -> f64 {
    let dim = samples.dim;
    let n = (samples.chains * samples.draws) as f64;
    let series = |f: &dyn Fn(&[f64]) -> f64| -> Vec<Vec<f64>> {
        (0..samples.chains)
            .map(|c| (0..samples.draws).map(|k| f(samples.draw(c, k))).collect())
            .collect()
    };
    let mut worst: f64 = 0.0;
    for i in 0..dim {
        let s = series(&|t| t[i]);
        let m = s.concat().iter().sum::<f64>() / n;
        let pull = (m - mean[i]) / (cov[i][i] / diagnostics::ess_bulk(&s)).sqrt();
        assert!(
            pull.abs() < 4.5,
            "mean θ{i}: {m} vs {} ({pull:.2} MC errors)",
            mean[i]
        );
        worst = worst.max(pull.abs());
        for j in 0..=i {
            let s = series(&|t| (t[i] - mean[i]) * (t[j] - mean[j]));
            let c = s.concat().iter().sum::<f64>() / n;
            let error = ((cov[i][i] * cov[j][j] + cov[i][j] * cov[i][j])
                / diagnostics::ess_bulk(&s))
            .sqrt();
            let pull = (c - cov[i][j]) / error;
            assert!(
                pull.abs() < 4.5,
                "cov θ{i}θ{j}: {c} vs {} ({pull:.2} MC errors)",
                cov[i][j]
            );
            worst = worst.max(pull.abs());
        }
    }
    worst
}

fn linear_gaussian_truth() -> (Vec<f64>, Vec<Vec<f64>>) {
    let t = truth();
    let lg = &t["linear_gaussian"];
    (
        serde_json::from_value(lg["posterior_mean"].clone()).unwrap(),
        serde_json::from_value(lg["posterior_cov"].clone()).unwrap(),
    )
}

fn check_converged(run: &PosteriorRun) {
    for p in &run.report.summary.parameters {
        assert!(p.diagnostics.rhat < 1.01, "{}: {:?}", p.name, p.diagnostics);
        assert!(
            p.diagnostics.ess_bulk > 400.0 && p.diagnostics.ess_tail > 400.0,
            "{}: {:?}",
            p.name,
            p.diagnostics
        );
    }
    assert_eq!(run.report.summary.divergences, 0);
    assert!(
        run.report.summary.warnings.is_empty(),
        "{:?}",
        run.report.summary.warnings
    );
}

/// The exact likelihood-to-evidence ratio of the 4-parameter linear-Gaussian toy, one
/// concatenated (x, θ) input: posterior means and covariances equal the analytic ones within
/// Monte-Carlo error, R̂ < 1.01, no divergence.
#[test]
fn exact_nre_gives_the_analytic_linear_gaussian_posterior() {
    let run = run_posterior(
        &toy().join("linear_gaussian.yaml"),
        None,
        &settings(4, 2000, 18),
    )
    .unwrap();
    check_converged(&run);
    let (mean, cov) = linear_gaussian_truth();
    let worst = gaussian_pulls(&run.samples, &mean, &cov);
    eprintln!(
        "exact NRE: largest deviation {worst:.2} MC errors; {:?}",
        run.report.summary.parameters[0]
    );
    assert_eq!(run.report.estimator, "nre");
    assert_eq!(run.report.observations, 1);
}

/// The same posterior through the exact likelihood with x and θ as two named inputs.
#[test]
fn exact_nle_with_two_inputs_gives_the_same_posterior() {
    let run = run_posterior(
        &toy().join("linear_gaussian_nle.yaml"),
        None,
        &settings(4, 2000, 7),
    )
    .unwrap();
    check_converged(&run);
    let (mean, cov) = linear_gaussian_truth();
    let worst = gaussian_pulls(&run.samples, &mean, &cov);
    eprintln!("exact NLE: largest deviation {worst:.2} MC errors");
    assert_eq!(run.report.estimator, "nle");
}

/// The 5-parameter exact NRE of the ESS/s benchmark (validation/bench_posterior.py): its
/// posterior is truth.json's `linear_gaussian_5d`.
#[test]
fn exact_nre_in_five_parameters_gives_the_analytic_posterior() {
    let run = run_posterior(
        &toy().join("linear_gaussian_5d.yaml"),
        None,
        &settings(4, 1000, 5),
    )
    .unwrap();
    check_converged(&run);
    let lg = &truth()["linear_gaussian_5d"];
    let mean: Vec<f64> = serde_json::from_value(lg["posterior_mean"].clone()).unwrap();
    let cov: Vec<Vec<f64>> = serde_json::from_value(lg["posterior_cov"].clone()).unwrap();
    assert_eq!(run.samples.dim, 5);
    let worst = gaussian_pulls(&run.samples, &mean, &cov);
    eprintln!("exact 5-D NRE: largest deviation {worst:.2} MC errors");
}

/// The seed-004 mixture from its exact ONNX likelihood and 12 events: E[θ²] and E[|θ|] of the
/// bimodal posterior equal quadrature's within Monte-Carlo error, both modes visited.
#[test]
fn exact_mixture_likelihood_matches_quadrature() {
    let run = run_posterior(&toy().join("mixture.yaml"), None, &settings(4, 3000, 4)).unwrap();
    check_converged(&run);
    assert_eq!(run.report.observations, 12);
    let t = truth();
    let q = &t["mixture"]["quadrature"];
    let moments = common::mixture_moments(&run.samples.parameter(0));
    for (m, key) in moments.iter().zip(["theta2", "abs_theta"]) {
        let exact = q[format!("E_{key}")].as_f64().unwrap();
        let var = q[format!("Var_{key}")].as_f64().unwrap();
        let pull = (m.estimate - exact) / (var / m.ess).sqrt();
        eprintln!(
            "mixture {}: {:.4} vs quadrature {exact:.4} ({pull:.2} MC errors, ESS {:.0})",
            m.label, m.estimate, m.ess
        );
        assert!(pull.abs() < 4.5, "{}: {} vs {exact}", m.label, m.estimate);
    }
}

/// The HDF5 draws are the same bytes with 1 and 3 threads; the file carries the run's
/// fingerprint, and the JSON summary and corner plot are written beside it.
#[test]
fn outputs_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let ws = toy().join("linear_gaussian.yaml");
    let write = |threads: usize, tag: &str| {
        let run = run_in_pool(threads, || {
            run_posterior(&ws, None, &settings(3, 300, 9)).unwrap()
        });
        let to = PosteriorOutputs {
            samples: Some(dir.path().join(format!("{tag}.h5"))),
            json: Some(dir.path().join(format!("{tag}.json"))),
            corner: Some(dir.path().join(format!("{tag}_corner"))),
            proposal: None,
        };
        write_posterior(&run, &to).unwrap();
        run
    };
    let one = write(1, "one");
    let three = write(3, "three");
    assert_eq!(one.samples, three.samples);
    let read = |tag: &str| {
        let file = hdf5::File::open(dir.path().join(format!("{tag}.h5"))).unwrap();
        let draws = file.dataset("samples").unwrap().read_dyn::<f64>().unwrap();
        let fingerprint: hdf5::types::VarLenUnicode =
            file.attr("fingerprint").unwrap().read_scalar().unwrap();
        (draws, fingerprint.as_str().to_string())
    };
    let (a, fa) = read("one");
    let (b, fb) = read("three");
    assert_eq!(a.shape(), [3, 300, 4]);
    assert_eq!(a, b);
    assert_eq!(fa, fb);
    assert_eq!(fa, one.report.fingerprint);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("one.json")).unwrap())
            .unwrap();
    assert_eq!(json["fingerprint"], fa.as_str());
    assert_eq!(json["parameters"][2]["name"], "theta2");
    assert_eq!(json["chains"], 3);
    for ext in ["png", "svg"] {
        let path = dir.path().join(format!("one_corner.{ext}"));
        assert!(
            std::fs::metadata(&path).unwrap().len() > 1000,
            "{}",
            path.display()
        );
    }
    // Another seed is another run, with another fingerprint.
    let other = run_posterior(&ws, None, &settings(3, 300, 10)).unwrap();
    assert_ne!(other.report.fingerprint, fa);
}

/// The next round's proposal: 750 points thinned from the draws, 250 from the prior, flagged.
#[test]
fn proposal_mixes_thinned_draws_with_the_prior() {
    use nsbi::bayes::run::{proposal, ProposalRequest};
    let run = run_posterior(
        &toy().join("linear_gaussian.yaml"),
        None,
        &settings(2, 1000, 5),
    )
    .unwrap();
    let request = ProposalRequest {
        size: 1000,
        prior_fraction: 0.25,
    };
    let (points, flags) = proposal(&run, &request).unwrap();
    assert_eq!(points.len(), 1000);
    assert_eq!(flags.iter().filter(|&&f| f).count(), 250);
    assert!(points[..750]
        .iter()
        .all(|p| run.samples.values.chunks(4).any(|d| d == p.as_slice())));
    // The prior part has the prior's spread (θ1 ~ N(−1, 2)), wider than the posterior's (0.52).
    let prior_part: Vec<f64> = points[750..].iter().map(|p| p[1]).collect();
    let mean = prior_part.iter().sum::<f64>() / 250.0;
    let sd = (prior_part.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / 249.0).sqrt();
    assert!(
        (mean + 1.0).abs() < 4.0 * 2.0 / 250f64.sqrt() && (sd - 2.0).abs() < 0.4,
        "{mean} {sd}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proposal.h5");
    let to = PosteriorOutputs {
        proposal: Some((path.clone(), request)),
        ..PosteriorOutputs::default()
    };
    write_posterior(&run, &to).unwrap();
    let file = hdf5::File::open(&path).unwrap();
    let theta = file.dataset("theta").unwrap().read_dyn::<f64>().unwrap();
    assert_eq!(theta.shape(), [1000, 4]);
    assert_eq!(theta[[3, 2]], points[3][2]);
    let too_many = ProposalRequest {
        size: 5000,
        prior_fraction: 0.0,
    };
    let err = proposal(&run, &too_many).unwrap_err().to_string();
    assert!(
        err.starts_with("proposal: 5000 posterior points asked for, the run has 2000 draws"),
        "{err}"
    );
}

// ---------------------------------------------------------------- errors

/// A workspace in a temporary folder whose estimator uses the toy's models (absolute paths).
fn workspace(dir: &Path, body: &str) -> PathBuf {
    let text = body.replace("TOY", &toy().display().to_string());
    let path = dir.join("posterior.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn error_of(path: &Path, observed: Option<&Path>) -> String {
    match run_posterior(path, observed, &settings(1, 10, 1)) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    }
}

/// Every mistake of the section at once, each at its file, line and column, saying what was
/// expected.
#[test]
fn workspace_mistakes_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = workspace(
        dir.path(),
        "\
posterior:
  priors:
    - {parameter: a, kind: uniform, low: 2, high: 1}
  estimator:
    kind: nrx
    models: TOY/models/linear_gaussian_nre.onnx
    inputs: {concatenated: z, x: x}
    aggregation: median
  observed:
    values: [1.0, 2.0]
    dataset: x
",
    );
    let err = error_of(&path, None);
    let p = path.display();
    let expected = [
        format!("{p}:3:42: error: prior of `a`: a uniform prior needs finite bounds with low < high; got low = 2, high = 1"),
        format!("{p}:5:11: error: estimator: unknown kind `nrx`; expected nre, nle or npe"),
        format!("{p}:8:18: error: estimator: unknown aggregation `median`; expected mean_log (alias mean_logit) or mean (alias mean_ratio)"),
        format!("{p}:7:13: error: estimator: `inputs` must be {{concatenated: NAME}} (one [N, len(x) + len(θ)] input, x first) or {{x: NAME, theta: NAME}} (two inputs)"),
        format!("{p}:11:14: error: observed: `dataset` applies to `file`, not to inline `values`"),
    ];
    assert_eq!(err.lines().collect::<Vec<_>>(), expected, "{err}");

    let path = workspace(
        dir.path(),
        "\
posterior:
  priors:
    - {parameter: a, kind: normal, mean: 0, sigma: 1}
  estimator:
    kind: nle
    convention: logit
    models: TOY/models/missing_*.onnx
    inputs: {concatenated: z}
  observed: {values: [1.0]}
",
    );
    let err = error_of(&path, None);
    assert!(err.contains(":6:17: error: estimator: `convention` does not apply to `nle`: its output is a log density"), "{err}");
    assert!(
        err.contains(":7:13: error: estimator: model file `")
            && err.contains("missing_*.onnx` not found"),
        "{err}"
    );
}

/// Observations: a dataset the file lacks, and an `--observed` file that does not exist.
#[test]
fn missing_observations_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = workspace(
        dir.path(),
        "\
posterior:
  priors:
    - {parameter: theta, kind: normal, mean: 0, sigma: 3}
  estimator:
    kind: nle
    models: TOY/models/mixture_nle.onnx
    inputs: {concatenated: z}
  observed:
    file: TOY/data/observed.h5
    dataset: events
",
    );
    let err = error_of(&path, None);
    assert!(
        err.starts_with(&format!("{}:10:14: error: observed file ", path.display())),
        "{err}"
    );
    assert!(
        err.ends_with("observed.h5: no dataset `events` (found: mixture_x, x); expected the observations as [n, len(x)] or [len(x)]"),
        "{err}"
    );
    let err = error_of(&path, Some(&dir.path().join("nowhere.h5")));
    assert!(err.ends_with("nowhere.h5: file not found"), "{err}");
}

/// A network whose input width is not len(x) + len(θ), and one whose output is not a finite
/// log density, are refused naming the model file.
#[test]
fn model_mismatches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // The 9-wide linear-Gaussian ratio fed 1-D mixture events and one parameter.
    let path = workspace(
        dir.path(),
        "\
posterior:
  priors:
    - {parameter: theta, kind: normal, mean: 0, sigma: 3}
  estimator:
    kind: nre
    convention: log_ratio
    models: TOY/models/linear_gaussian_nre.onnx
    inputs: {concatenated: z}
  observed:
    file: TOY/data/observed.h5
    dataset: mixture_x
",
    );
    let err = error_of(&path, None);
    assert!(
        err.starts_with("model ") && err.contains("linear_gaussian_nre.onnx: input 'z' has shape"),
        "{err}"
    );
    assert!(
        err.ends_with("but x has 1 and θ has 1 components (one concatenated input, x then θ): expected [N, 2]"),
        "{err}"
    );
    // ln r read as r: negative outputs have no logarithm.
    let path = workspace(
        dir.path(),
        "\
posterior:
  priors:
    - {parameter: theta, kind: normal, mean: 0, sigma: 3}
  estimator:
    kind: nre
    convention: ratio
    models: TOY/models/mixture_nle.onnx
    inputs: {concatenated: z}
  observed:
    file: TOY/data/observed.h5
    dataset: mixture_x
",
    );
    let err = error_of(&path, None);
    assert!(err.contains("mixture_nle.onnx: output -"), "{err}");
    assert!(
        err.starts_with(
            "posterior sampling, chain 0: the starting point: Logp function returned error: model "
        ),
        "{err}"
    );
    assert!(
        !err.contains("Model(") && !err.contains("backtrace"),
        "{err}"
    );
    assert!(
        err.contains("expected a finite ratio > 0 under convention Ratio"),
        "{err}"
    );
}

/// The summary's warnings reach the report: a run far too short is flagged.
#[test]
fn short_runs_are_flagged() {
    let run = run_posterior(
        &toy().join("mixture.yaml"),
        None,
        &SamplerSettings {
            chains: 2,
            warmup: 50,
            draws: 40,
            seed: 3,
            ..SamplerSettings::default()
        },
    )
    .unwrap();
    let warnings = &run.report.summary.warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("theta: effective sample size")),
        "{warnings:?}"
    );
    let _ = ParameterDiagnostics::of(&run.samples.parameter(0));
}

// ---------------------------------------------------------------- command line

mod common;

/// `nsbi posterior` prints the summary table, writes draws, JSON and corner plot; numpy on the
/// written draws gives the JSON's means and quantiles, and arviz its R̂ and ESS, to 1e-6.
#[test]
fn the_command_writes_what_arviz_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (h5, json, plot) = (
        dir.path().join("samples.h5"),
        dir.path().join("summary.json"),
        dir.path().join("corner"),
    );
    let ws = toy().join("linear_gaussian.yaml");
    let output = common::nsbi(&[
        "posterior",
        ws.to_str().unwrap(),
        "--chains",
        "4",
        "--draws",
        "500",
        "--warmup",
        "500",
        "--seed",
        "3",
        "--out",
        h5.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let out = common::stdout(&output);
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert!(
        out.contains("(nre estimator, 1 observation(s) from "),
        "{out}"
    );
    assert!(
        out.contains("divergent transitions after warm-up: 0"),
        "{out}"
    );
    assert!(dir.path().join("corner.png").is_file() && dir.path().join("corner.svg").is_file());
    let summary = common::read_json(&json);
    let reference: serde_json::Value = serde_json::from_str(&common::run_validation_script(
        "posterior_arviz_check.py",
        &[h5.to_str().unwrap()],
    ))
    .unwrap();
    eprintln!("R-hat and ESS compared with arviz {}", reference["arviz"]);
    for p in summary["parameters"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let r = &reference[name];
        for (key, ours) in [
            ("rhat", &p["rhat"]),
            ("ess_bulk", &p["ess_bulk"]),
            ("ess_tail", &p["ess_tail"]),
            ("mean", &p["mean"]),
            ("sd", &p["sd"]),
            ("q05", &p["quantiles"]["q05"]),
            ("q50", &p["quantiles"]["q50"]),
            ("q95", &p["quantiles"]["q95"]),
        ] {
            let b = r[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{name} {key}: {r}"));
            let a = ours.as_f64().unwrap();
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{name} {key}: nsbi {a}, arviz/numpy {b}"
            );
        }
    }

    // A bad workspace is refused with its location, exit 1, nothing written.
    let bad = workspace(
        dir.path(),
        "posterior:\n  priors: []\n  estimator: {kind: nre, models: TOY/models/linear_gaussian_nre.onnx, inputs: {concatenated: z}}\n  observed: {values: [1.0]}\n",
    );
    let output = common::nsbi(&[
        "posterior",
        bad.to_str().unwrap(),
        "--json",
        dir.path().join("x.json").to_str().unwrap(),
    ]);
    common::assert_refused(
        &output,
        &[
            "`posterior.priors` is empty",
            ":3:21: error: estimator: an `nre` estimator needs `convention`",
        ],
    );
    assert!(!dir.path().join("x.json").exists());
}
