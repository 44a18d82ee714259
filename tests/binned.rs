//! Binned (HistFactory) channels against pyhf 0.7.6: the NLL at random parameter points for
//! every modifier type and interpolation code, its gradient and Hessian against finite
//! differences, and pyhf JSON import → YAML → export read back by `pyhf.Workspace`.
//!
//! Reference numbers: `tests/fixtures/binned/reference.json`, written by
//! `validation/pyhf_reference.py make tests/fixtures/binned` (pyhf's numpy backend). The round
//! trip runs pyhf itself on the exported file (the project's `.venv`).

mod common;

use common::{binned_fixtures as fixtures, binned_reference as reference, import_pyhf};
use common::{nsbi, python, reference_point, root, stderr, stdout};
use nsbi::binned::interpolation::{HistosysCode, NormsysCode};
use nsbi::binned::schema::InterpolationSettings;
use nsbi::binned::{pyhf, BinnedModel, BinnedWorkspaceSpec};
use serde_json::Value;

fn imported(case: &str) -> BinnedWorkspaceSpec {
    let path = fixtures().join(format!("{case}.json"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    pyhf::import(&json, None, case).unwrap()
}

fn codes(entry: &Value) -> InterpolationSettings {
    let normsys = match entry["codes"]["normsys"].as_str().unwrap() {
        "code1" => NormsysCode::Code1,
        "code4" => NormsysCode::Code4,
        other => panic!("{other}"),
    };
    let histosys = match entry["codes"]["histosys"].as_str().unwrap() {
        "code0" => HistosysCode::Code0,
        "code2" => HistosysCode::Code2,
        "code4p" => HistosysCode::Code4p,
        other => panic!("{other}"),
    };
    InterpolationSettings { normsys, histosys }
}

/// The model of a reference entry (case and codes).
fn model(entry: &Value) -> BinnedModel {
    let case = entry["case"].as_str().unwrap();
    let mut spec = imported(case);
    spec.interpolation = codes(entry);
    BinnedModel::from_spec(&spec, case).unwrap()
}

/// A reference point's values in the model's parameter order.
fn point(model: &BinnedModel, pars: &Value) -> Vec<f64> {
    reference_point(model.parameters.iter().map(|p| p.name.as_str()), pars)
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn nll_equals_pyhf_logpdf_at_random_points() {
    let reference = reference();
    let mut worst = 0.0f64;
    let mut compared = 0;
    for entry in reference["cases"].as_array().unwrap() {
        let model = model(entry);
        let label = format!("{} {}", entry["case"], entry["codes"]);
        // Same parameters, defaults and fixed flags as pyhf's model config.
        let names: Vec<&str> = entry["par_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(model.parameters.len(), names.len(), "{label}");
        let init = numbers(&entry["suggested_init"]);
        let fixed: Vec<bool> = entry["suggested_fixed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_bool().unwrap())
            .collect();
        for (i, name) in names.iter().enumerate() {
            let p = &model.parameters[model
                .parameter_index(name)
                .unwrap_or_else(|| panic!("{label}: no {name}"))];
            let bounds = numbers(&entry["suggested_bounds"][i]);
            assert_eq!(
                (p.init, p.bounds, p.fixed),
                (init[i], (bounds[0], bounds[1]), fixed[i]),
                "{label}: {name}"
            );
        }
        let inits = model.inits();
        let at_init = model.nll(&inits, &model.observed).unwrap();
        let expected = entry["nll_at_init"].as_f64().unwrap();
        assert!(
            ((at_init - expected) / expected).abs() < 1e-10,
            "{label}: at init {at_init} vs pyhf {expected}"
        );
        let points = entry["points"].as_array().unwrap();
        assert!(points.len() >= 20);
        for (k, p) in points.iter().enumerate() {
            let pars = point(&model, &p["pars"]);
            let nll = model.nll(&pars, &model.observed).unwrap();
            let expected = p["nll"].as_f64().unwrap();
            let relative = ((nll - expected) / expected).abs();
            assert!(
                relative < 1e-10,
                "{label} point {k}: nsbi {nll} vs pyhf {expected} (relative {relative:e})"
            );
            worst = worst.max(relative);
            compared += 1;
        }
    }
    eprintln!("{compared} points, largest relative difference from pyhf {worst:e}");
    assert!(compared >= 9 * 20);
}

/// Central differences of `f` in parameter `i` (step relative to the value).
fn central(f: &dyn Fn(&[f64]) -> Vec<f64>, x: &[f64], i: usize) -> Vec<f64> {
    let h = 1e-6 * x[i].abs().max(1.0);
    let (mut up, mut down) = (x.to_vec(), x.to_vec());
    up[i] += h;
    down[i] -= h;
    f(&up)
        .iter()
        .zip(f(&down))
        .map(|(u, d)| (u - d) / (2.0 * h))
        .collect()
}

#[test]
fn gradient_and_hessian_match_finite_differences() {
    let reference = reference();
    let mut worst = (0.0f64, 0.0f64);
    for entry in reference["cases"].as_array().unwrap() {
        let model = model(entry);
        let n = model.parameters.len();
        for p in entry["points"].as_array().unwrap().iter().take(4) {
            let x = point(&model, &p["pars"]);
            let d = model.nll_hessian(&x, &model.observed).unwrap();
            let (value, gradient) = model.nll_gradient(&x, &model.observed).unwrap();
            assert_eq!((value, &gradient), (d.value, &d.gradient));
            let nll = |x: &[f64]| vec![model.nll(x, &model.observed).unwrap()];
            let grad = |x: &[f64]| model.nll_gradient(x, &model.observed).unwrap().1;
            for i in 0..n {
                let fd = central(&nll, &x, i)[0];
                let error = (fd - d.gradient[i]).abs() / (1.0 + d.gradient[i].abs());
                assert!(
                    error < 1e-6,
                    "{} ∂/∂{}: analytic {} vs numeric {fd}",
                    entry["case"],
                    model.parameters[i].name,
                    d.gradient[i]
                );
                worst.0 = worst.0.max(error);
                let column = central(&grad, &x, i);
                for (j, numeric) in column.iter().enumerate() {
                    let analytic = d.hessian[j * n + i];
                    let error = (numeric - analytic).abs() / (1.0 + analytic.abs());
                    assert!(
                        error < 1e-6,
                        "{} ∂²/∂{}∂{}: analytic {analytic} vs numeric {numeric}",
                        entry["case"],
                        model.parameters[j].name,
                        model.parameters[i].name,
                    );
                    assert_eq!(analytic, d.hessian[i * n + j], "Hessian not symmetric");
                    worst.1 = worst.1.max(error);
                }
            }
        }
    }
    eprintln!(
        "largest relative error: gradient {:e}, Hessian {:e}",
        worst.0, worst.1
    );
}

#[test]
fn import_export_round_trip_gives_pyhf_the_same_logpdf() {
    let dir = tempfile::tempdir().unwrap();
    for case in ["simple_uncorrelated", "simple_correlated", "multichannel"] {
        let yaml = dir.path().join(format!("{case}.yaml"));
        let back = dir.path().join(format!("{case}.json"));
        let input = fixtures().join(format!("{case}.json"));
        let out = import_pyhf(&input, &yaml);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("binned channels"), "{}", stdout(&out));
        // The YAML reads back to the spec the JSON gave.
        let (spec, _) = nsbi::binned::read_binned_workspace(&yaml, None).unwrap();
        assert_eq!(
            spec,
            imported(case),
            "{case}: YAML does not read back to the same workspace"
        );
        let out = nsbi(&[
            "export",
            "pyhf",
            yaml.to_str().unwrap(),
            "--out",
            back.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let check = std::process::Command::new(python())
            .arg(root().join("validation/pyhf_reference.py"))
            .args(["logpdf", back.to_str().unwrap()])
            .arg(fixtures().join("reference.json"))
            .arg(case)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let result: Value = serde_json::from_slice(&check.stdout).unwrap();
        let points = result["points"].as_u64().unwrap();
        let worst = result["max_relative_difference"].as_f64().unwrap();
        eprintln!("{case}: pyhf on the exported JSON, {points} points, largest relative difference {worst:e}");
        assert!(points >= 60 && worst < 1e-12, "{case}: {result}");
    }
}

/// A copy of the multichannel workspace with one edit, imported by the CLI; its stderr.
fn import_error(edit: impl Fn(&mut Value)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut json: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("multichannel.json")).unwrap(),
    )
    .unwrap();
    edit(&mut json);
    let input = dir.path().join("ws.json");
    std::fs::write(&input, serde_json::to_string(&json).unwrap()).unwrap();
    let out_path = dir.path().join("ws.yaml");
    let out = import_pyhf(&input, &out_path);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!out_path.exists(), "no output after an error");
    stderr(&out)
}

#[test]
fn unsupported_or_malformed_pyhf_names_the_json_path() {
    let message =
        import_error(|j| j["channels"][1]["samples"][0]["modifiers"][3]["type"] = "bogus".into());
    assert!(
        message.contains(
            "channels[1].samples[0].modifiers[3].type: unsupported modifier type 'bogus'"
        ),
        "{message}"
    );
    let message = import_error(|j| {
        j["channels"][0]["samples"][1]["modifiers"][2]["data"]["hi_data"] = serde_json::json!([1.0])
    });
    assert!(
        message.contains("channels[0].samples[1].modifiers[2].data.hi_data: expected 4 values"),
        "{message}"
    );
    let message = import_error(|j| j["channels"][2]["samples"][0]["extra"] = 1.into());
    assert!(
        message.contains("channels[2].samples[0].extra: unsupported pyhf key 'extra'"),
        "{message}"
    );
    let message =
        import_error(|j| j["channels"][1]["samples"][0]["modifiers"][0]["type"] = "lumi".into());
    assert!(message.contains("channels[1].samples[0].modifiers[0]: lumi 'mu_B' shares its parameter with the modifier at channels[0].samples[1].modifiers[0]"), "{message}");
    let message = import_error(|j| {
        j["measurements"][0]["config"]["parameters"][1]["sigmas"] = serde_json::json!([0.1])
    });
    assert!(
        message.contains("parameters[1]: parameter 'mu_B' has no sigmas"),
        "{message}"
    );
    let message = import_error(|j| {
        j["measurements"][0]["config"]["parameters"][0] = serde_json::json!({"name": "lumi"})
    });
    assert!(
        message.contains("parameter 'lumi' needs inits, bounds, auxdata, sigmas"),
        "{message}"
    );
}

#[test]
fn newton_fit_finds_pyhf_minuit_best_fit() {
    let reference = reference();
    for entry in reference["cases"].as_array().unwrap() {
        let Some(mle) = entry.get("mle").filter(|m| !m.is_null()) else {
            continue;
        };
        let model = model(entry);
        let fit = nsbi::binned::fit::fit(&model, &model.observed, &model.inits()).unwrap();
        let pyhf_nll = mle["nll"].as_f64().unwrap();
        let (mut worst_par, mut worst_err) = (0.0f64, 0.0f64);
        for (i, p) in model.parameters.iter().enumerate() {
            let pyhf_value = mle["pars"][&p.name].as_f64().unwrap();
            let pyhf_error = mle["errors"][&p.name].as_f64().unwrap();
            worst_par = worst_par.max((fit.parameters[i] - pyhf_value).abs());
            worst_err = worst_err.max((fit.errors[i] - pyhf_error).abs() / pyhf_error.max(1e-3));
        }
        eprintln!(
            "{}: {} Newton iterations, NLL nsbi {} pyhf {pyhf_nll} (nsbi − pyhf = {:e}), largest |Δθ| {worst_par:e}, largest relative Δσ {worst_err:e}",
            entry["case"], fit.iterations, fit.nll, fit.nll - pyhf_nll
        );
        // Minuit stops at its tolerance: the Newton minimum is at least as deep.
        assert!(
            fit.nll <= pyhf_nll + 1e-9,
            "{}: {} above pyhf's {pyhf_nll}",
            entry["case"],
            fit.nll
        );
        assert!(
            pyhf_nll - fit.nll < 1e-7,
            "{}: {} far below pyhf's {pyhf_nll}",
            entry["case"],
            fit.nll
        );
        assert!(
            worst_par < 1e-5,
            "{}: parameters differ by {worst_par}",
            entry["case"]
        );
        assert!(
            worst_err < 1e-5,
            "{}: errors differ by {worst_err}",
            entry["case"]
        );
    }
}
