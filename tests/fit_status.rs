//! What a fit says about how it ended: a Hessian that is not positive definite, parameters
//! at bounds, unbounded parameters, coefficients undefined inside the bounds (issue 12,
//! items 6, 8 and 9), free parameters that nothing uses, and the evaluation budget.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nsbi::analysis::{Analysis, Dataset};
use nsbi::fit::{minimise, minimise_with, FitOptions, Strategy};

/// Generous bound on the time of one fit here (they take below a second): a hang guard only.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// One process, coefficient `k_norm` on a nominal yield of 1000, fitted to the example's
/// 2023 observed events: the extended likelihood's maximum is k̂ = 2023/1000 whatever the
/// ratio, with Hessian error √2023/1000.
fn normalisation_workspace(dir: &Path, parameter: &str) -> PathBuf {
    let ex = example();
    let yaml = format!(
        r#"parameters:
  - {parameter}
channels:
  - name: SR
    features: [m4l, cos_theta1, cos_theta2]
    data: {{file: {ex}/data/observed.h5, group: events}}
    processes:
      - name: S
        coefficient: k_norm
        yield: 1000
        samples: {{file: {ex}/data/mc_S.h5, group: events, weight: weight}}
        ratio: {{models: {ex}/models/S/exact.onnx, output: ratio, convention: ratio}}
"#,
        ex = ex.display()
    );
    write_workspace(dir, &yaml)
}

const K_HAT: f64 = 2.023;

fn cache_dir() -> String {
    root().join("target/test-ratio-cache").display().to_string()
}

/// `nsbi ARGS --cache-dir <the tests' cache>`, killed (and the test failed) past
/// [`HANG_GUARD`].
fn nsbi_guarded(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsbi"))
        .args(args)
        .args(["--cache-dir", &cache_dir()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsbi runs");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > HANG_GUARD {
            child.kill().unwrap();
            panic!("nsbi {args:?} still ran after {HANG_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs `f` on another thread and fails the test if it panics or takes longer than
/// [`HANG_GUARD`].
fn guarded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::sync::mpsc::RecvTimeoutError;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(f()));
    match receiver.recv_timeout(HANG_GUARD) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("{what} still ran after {HANG_GUARD:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

fn load(path: &Path) -> Analysis {
    Analysis::load(path, &test_cache(), false).unwrap()
}

/// `nsbi fit WORKSPACE --json JSON ARGS`, which must succeed; the JSON report.
fn fit_json(workspace: &Path, json: &Path, args: &[&str]) -> serde_json::Value {
    let out = nsbi_guarded(
        &[
            &[
                "fit",
                workspace.to_str().unwrap(),
                "--json",
                json.to_str().unwrap(),
            ],
            args,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    read_json(json)
}

/// Item 6: with μ bounded to [0, 0.3], α_eff fixed and B scaled by 1 + 0.05 k⁴ (k in [0, 1],
/// unconstrained), the fit of the example ends with μ and k on their upper bounds, where the
/// NLL is concave in k: the Hessian is not positive definite. Such fits used to say
/// "converged", write error 0.0 and an identity correlation, and exit 0. (The example's own
/// run-away of α_shape to its bound, the first reproduction, was the missing shape
/// normalisation, issue 13.)
#[test]
fn a_hessian_not_positive_definite_is_reported_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ws = example_with(
        dir.path(),
        &[
            (
                "{name: mu, poi: true, init: 1.0, bounds: [0.0, 20.0]}",
                "{name: mu, poi: true, init: 0.0001, bounds: [0.0, 0.3]}\n  \
                 - {name: k, init: 0.5, bounds: [0.0, 1.0], constraint: none}",
            ),
            (
                "coefficient: 1 - sqrt(mu)",
                "coefficient: (1 - sqrt(mu))*(1 + 0.05*k*k*k*k)",
            ),
        ],
    );
    let json = dir.path().join("fit.json");
    let args = [
        "fit",
        ws.to_str().unwrap(),
        "--fix",
        "alpha_eff=0",
        "--no-minos",
        "--json",
        json.to_str().unwrap(),
    ];
    let refused = nsbi_guarded(&args);
    assert_refused(
        &refused,
        &["not positive definite", "--accept-non-pd-hessian"],
    );
    assert!(
        stdout(&refused).contains("WARNING: the Hessian is not positive definite"),
        "{}",
        stdout(&refused)
    );

    let v = read_json(&json);
    let status = &v["status"];
    assert_eq!(status["hessian"], "not_positive_definite", "{status}");
    let text = status["message"].as_str().unwrap();
    assert!(
        text.contains("at bound: mu = 0.29999") && text.contains("k = 0.9999"),
        "the parameters at bounds are named: {text}"
    );
    assert!(v["correlation"].is_null(), "{}", v["correlation"]);
    // Every free parameter has no error (the fixed α_eff keeps its conventional 0).
    for (name, p) in v["parameters"].as_object().unwrap() {
        for key in ["error", "error_low", "error_high"] {
            let fixed = name == "alpha_eff" && p[key] == 0.0;
            assert!(p[key].is_null() || fixed, "{name}.{key} = {}", p[key]);
        }
    }
    assert!((v["parameters"]["mu"]["value"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    assert_eq!(v["parameters"]["mu"]["at_bound"], true);

    let accepted = nsbi_guarded(&[&args[..], &["--accept-non-pd-hessian"]].concat());
    assert_eq!(accepted.status.code(), Some(0), "{}", stderr(&accepted));
    assert_eq!(
        read_json(&json)["status"]["hessian"],
        "not_positive_definite"
    );

    // The example itself: a positive-definite Hessian, errors and correlations.
    let v = fit_json(&example_with(dir.path(), &[]), &json, &[]);
    assert_eq!(v["status"]["hessian"], "positive_definite");
    let error = v["parameters"]["mu"]["error"].as_f64().unwrap();
    assert!((error - 0.0714).abs() < 1e-3, "σ(μ) = {error}");
    assert_eq!(v["correlation"]["mu"]["mu"], 1.0);
}

/// Item 8: a free normalisation without bounds (the README's `k_norm`), or with one infinite
/// bound, fits to the analytic k̂ = 2.023 ± 0.04498 with every strategy; it used to panic
/// (`clamp` with NaN bounds).
#[test]
fn unbounded_and_half_bounded_parameters_fit_with_every_strategy() {
    let sigma = 2023f64.sqrt() / 1000.0;
    for parameter in [
        "{name: k_norm, poi: true, init: 1.0}",
        "{name: k_norm, poi: true, init: 1.0, bounds: [0, .inf]}",
        "{name: k_norm, poi: true, init: 1.0, bounds: [-.inf, 10]}",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let analysis = load(&normalisation_workspace(dir.path(), parameter));
        let analysis: &'static Analysis = Box::leak(Box::new(analysis));
        for strategy in [
            Strategy::Newton,
            Strategy::QuasiNewton,
            Strategy::DampedNewton,
        ] {
            let fit = guarded(&format!("{strategy:?} fit of {parameter}"), move || {
                let like = analysis.likelihood(&Dataset::Observed).unwrap();
                minimise_with(&like, &FitOptions::new(&like), strategy)
            });
            assert!(fit.converged, "{parameter} {strategy:?}: {}", fit.message);
            assert!(
                (fit.theta[0] - K_HAT).abs() < 1e-6,
                "{parameter} {strategy:?}: k̂ = {}",
                fit.theta[0]
            );
            assert!(
                (fit.error(0) / sigma - 1.0).abs() < 1e-4,
                "{parameter} {strategy:?}: σ = {} vs {sigma}",
                fit.error(0)
            );
        }
    }

    // The CLI, its JSON bounds, and the profile interval towards the infinite side.
    let dir = tempfile::tempdir().unwrap();
    let ws = normalisation_workspace(dir.path(), "{name: k_norm, poi: true, init: 1.0}");
    let k = &fit_json(&ws, &dir.path().join("fit.json"), &[])["parameters"]["k_norm"];
    assert_eq!(k["bounds"], serde_json::json!([null, null]));
    assert!((k["value"].as_f64().unwrap() - K_HAT).abs() < 1e-6, "{k}");
    let high = k["error_high"].as_f64().unwrap();
    assert!(high > sigma && high < 1.1 * sigma, "+σ = {high}");
}

/// Item 8 on the example: `k_norm` without bounds scaling the background gives the same fit
/// as with bounds that do not bind.
#[test]
fn an_unbounded_normalisation_agrees_with_a_bounded_one() {
    let fit = |parameter: &'static str| {
        let dir = tempfile::tempdir().unwrap();
        let ws = example_with(
            dir.path(),
            &[
                (
                    "  - {name: alpha_shape, init: 0.0, bounds: [-5.0, 5.0], constraint: gaussian}\n",
                    &format!("  - {{name: alpha_shape, init: 0.0, bounds: [-5.0, 5.0], constraint: gaussian}}\n  - {parameter}\n"),
                ),
                ("coefficient: 1 - sqrt(mu)", "coefficient: k_norm * (1 - sqrt(mu))"),
            ],
        );
        let analysis: &'static Analysis = Box::leak(Box::new(load(&ws)));
        guarded(parameter, move || {
            let like = analysis.likelihood(&Dataset::Observed).unwrap();
            minimise(&like, &FitOptions::new(&like))
        })
    };
    let bounded = fit("{name: k_norm, constraint: none, init: 1.0, bounds: [0.0, 10.0]}");
    let free = fit("{name: k_norm, constraint: none, init: 1.0}");
    assert!(bounded.converged && free.converged, "{}", free.message);
    for i in 0..4 {
        assert!(
            (free.theta[i] - bounded.theta[i]).abs() < 1e-5,
            "parameter {i}: {} unbounded vs {} bounded",
            free.theta[i],
            bounded.theta[i]
        );
    }
}

/// Item 9: `sqrt(mu)` with μ ∈ [−1, 5] started at μ = −0.5 has no likelihood; every strategy
/// stops at once with the expression and the point (L-BFGS used to spin for ever on NaN).
#[test]
fn an_undefined_coefficient_stops_every_strategy_with_its_expression() {
    let dir = tempfile::tempdir().unwrap();
    let ws = example_with(
        dir.path(),
        &[("bounds: [0.0, 20.0]", "bounds: [-1.0, 5.0]")],
    );
    let analysis: &'static Analysis = Box::leak(Box::new(load(&ws)));
    for strategy in [
        Strategy::Newton,
        Strategy::QuasiNewton,
        Strategy::DampedNewton,
    ] {
        let fit = guarded(&format!("{strategy:?}"), move || {
            let like = analysis.likelihood(&Dataset::Observed).unwrap();
            let mut options = FitOptions::new(&like);
            options.init[0] = -0.5;
            minimise_with(&like, &options, strategy)
        });
        assert!(!fit.converged, "{strategy:?}");
        assert!(
            fit.message
                .contains("coefficient 'mu - sqrt(mu)' of process S in channel SR is NaN")
                && fit.message.contains("mu = -0.5"),
            "{strategy:?}: {}",
            fit.message
        );
    }
    // From a valid start, on data whose optimum is μ = 0 at the edge of where √μ exists:
    // L-BFGS (then Newton) ends at a valid point.
    let fit = guarded("QuasiNewton on the μ = 0 Asimov set", move || {
        let like = analysis
            .likelihood(&Dataset::Asimov(vec![0.0, 0.0, 0.0]))
            .unwrap();
        let mut options = FitOptions::new(&like);
        options.init[0] = 0.5;
        minimise_with(&like, &options, Strategy::QuasiNewton)
    });
    assert!(fit.converged, "{}", fit.message);
    assert!((0.0..1e-3).contains(&fit.theta[0]), "μ̂ = {}", fit.theta[0]);
}

/// Item 9 from the command line: `log(mu - 2)` is undefined at the start μ = 1; the fit ends
/// with exit 1 naming it (it used to hang), and `validate` warns about it.
#[test]
fn an_undefined_coefficient_is_named_by_fit_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let ws = example_with(
        dir.path(),
        &[
            ("bounds: [0.0, 20.0]", "bounds: [-1.0, 5.0]"),
            ("coefficient: mu - sqrt(mu)", "coefficient: log(mu - 2)"),
        ],
    );
    let line = line_of(&ws, "coefficient: log(mu - 2)");
    let ws = ws.to_str().unwrap();
    assert_refused(
        &nsbi_guarded(&["fit", ws, "--no-minos"]),
        &["coefficient 'log(mu - 2)' of process S in channel SR is NaN at mu = 1,"],
    );

    let out = nsbi(&["validate", ws]);
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings = stderr(&out);
    assert!(
        warnings.contains(&format!("workspace.yaml:{line}:"))
            && warnings.contains("warning: coefficient 'log(mu - 2)' of process S")
            && warnings.contains("at mu = -0.99"),
        "{warnings}"
    );
    assert!(
        warnings.contains("coefficient 'sqrt(mu)' of process SBI"),
        "{warnings}"
    );
    // Within bounds where every coefficient is defined: no warning.
    let ws = example_with(dir.path(), &[]);
    let out = nsbi(&["validate", ws.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// A free parameter that nothing uses makes the Hessian singular: refused at its line. A
/// constrained one is only useless: a warning.
#[test]
fn unused_parameters_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let declaration =
        "  - {name: alpha_shape, init: 0.0, bounds: [-5.0, 5.0], constraint: gaussian}\n";
    let with = |extra: &str| {
        example_with(
            dir.path(),
            &[(declaration, &format!("{declaration}  - {extra}\n"))],
        )
    };
    let ws = with("{name: k_spare, init: 1.0, bounds: [0.0, 5.0], constraint: none}");
    let line = line_of(&ws, "k_spare");
    for command in ["validate", "fit"] {
        assert_refused(
            &nsbi(&[command, ws.to_str().unwrap()]),
            &[&format!(
                "workspace.yaml:{line}:12: error: parameter 'k_spare' is free, but no \
                 coefficient or systematic uses it"
            )],
        );
    }
    let ws = with("{name: alpha_spare, bounds: [-5.0, 5.0]}");
    let out = nsbi(&["validate", ws.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: nuisance parameter 'alpha_spare' is constrained, but no"),
        "{}",
        stderr(&out)
    );
    let ws = with("{name: k_spare, init: 1.0, constraint: none, fixed: true}");
    let out = nsbi(&["validate", ws.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("k_spare"), "{}", stderr(&out));
}

/// A fit that runs out of evaluations or iterations is not converged, and says why.
#[test]
fn exhausted_budgets_are_not_convergence() {
    let analysis = example_analysis("workspace_exact.yaml");
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    let mut options = FitOptions::new(&like);
    options.init = vec![3.0, 1.0, -1.0];
    options.max_evaluations = 3;
    let fit = minimise(&like, &options);
    assert!(!fit.converged);
    assert!(
        fit.message.contains("evaluation budget of 3 exhausted"),
        "{}",
        fit.message
    );
    assert!(fit.n_eval <= 3, "{} evaluations", fit.n_eval);
    options.max_evaluations = nsbi::fit::DEFAULT_MAX_EVALUATIONS;
    options.max_iterations = 1;
    let fit = minimise(&like, &options);
    assert!(!fit.converged);
    assert!(
        fit.message.contains("no convergence in 1 iterations"),
        "{}",
        fit.message
    );
}

/// A yield factor of 1e23 (a typing error) made `fit` end with "no convergence in 200
/// iterations; Hessian not positive definite", naming no parameter. Factors beyond a
/// million-fold change either way are refused at their line by `validate` and `fit`.
#[test]
fn absurd_yield_factors_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    for (factors, shown) in [
        (
            "{up: 99999999999999999999999, down: 0.95}",
            "up=100000000000000000000000, down=0.95",
        ),
        ("{up: 1.04, down: 1e-9}", "up=1.04, down=0.000000001"),
    ] {
        let ws = example_with(dir.path(), &[("{up: 1.04, down: 0.95}", factors)]);
        let line = line_of(&ws, factors);
        for command in ["validate", "fit"] {
            assert_refused(
                &nsbi(&[command, ws.to_str().unwrap()]),
                &[
                    &format!("workspace.yaml:{line}:"),
                    &format!(
                        "error: yield factors of 'alpha_eff' on process 'S' must be finite and \
                         in [1e-6, 1e6], got {shown}"
                    ),
                ],
            );
        }
    }
}
