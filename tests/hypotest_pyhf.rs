//! Hypothesis tests on binned workspaces against pyhf 0.7.6 (`validation/pyhf_hypotest_reference.py`
//! wrote `tests/fixtures/hypotest/pyhf_asymptotic.json` and `pyhf_toys.json`, with fits polished
//! far below pyhf's defaults; their self-consistency is recorded in the fixture):
//! - asymptotic CLs, CLs+b, CLb and the expected CLs set, for q̃_μ and q_μ, on models that
//!   exercise every modifier (and deficits: q̃'s second branch, q ≠ q̃), to 10⁻⁶ relative;
//! - discovery p₀ and Z, observed and expected (Asimov at μ = 1);
//! - upper limits, observed and expected, against pyhf's toms748 scan at 10⁻¹⁰, to 10⁻⁵;
//! - toy-based CLs against pyhf's ToyCalculator with the same number of toys, within the two
//!   runs' toy-statistics errors.

mod common;

use common::*;
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;
const LIMIT_TOLERANCE: f64 = 1e-5;

fn fixture(name: &str) -> Value {
    read_json(&root().join("tests/fixtures/hypotest").join(name))
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Relative agreement; probabilities below 10⁻⁶ on ln p (p's relative error there is ~q/2
/// times q's), and values that are 0 in the reference (up to its fits' noise, 10⁻¹²) to `tol`
/// absolutely.
fn check(what: &str, engine: f64, reference: f64, tol: f64) {
    let difference = if reference.abs() < 1e-12 {
        (engine - reference).abs()
    } else if reference > 0.0 && reference < 1e-6 && engine > 0.0 {
        (engine.ln() - reference.ln()).abs() / reference.ln().abs()
    } else {
        (engine - reference).abs() / reference.abs()
    };
    assert!(
        difference <= tol,
        "{what}: nsbi {engine:.12e} vs pyhf {reference:.12e} (difference {difference:.2e} > {tol:.0e})"
    );
}

fn check_list(what: &str, engine: &Value, reference: &Value, tol: f64) {
    let (e, r) = (engine.as_array().unwrap(), reference.as_array().unwrap());
    assert_eq!(e.len(), r.len(), "{what}: lengths");
    for (k, (e, r)) in e.iter().zip(r).enumerate() {
        check(&format!("{what}[{k}]"), number(e), number(r), tol);
    }
}

fn workspace(model: &Value) -> String {
    root()
        .join(model["path"].as_str().unwrap())
        .display()
        .to_string()
}

#[test]
fn asymptotic_cls_equal_pyhf_on_every_modifier() {
    let fixture = fixture("pyhf_asymptotic.json");
    let models = fixture["models"].as_object().unwrap();
    assert!(models.len() >= 4);
    let mut compared = 0;
    for (name, model) in models {
        let ws = workspace(model);
        for (stat, points) in model["hypotest"].as_object().unwrap() {
            for point in points.as_array().unwrap() {
                let value = number(&point["value"]).to_string();
                let engine = nsbi_json(&["hypotest", &ws, "--value", &value, "--test-stat", stat]);
                let what = format!("{name} {stat} at {value}");
                check(
                    &format!("{what}: CLs"),
                    number(&engine["cls"]["observed"]),
                    number(&point["cls"]["observed"]),
                    TOLERANCE,
                );
                check_list(
                    &format!("{what}: expected CLs"),
                    &engine["cls"]["expected"],
                    &point["cls"]["expected"],
                    TOLERANCE,
                );
                for key in ["clsb", "clb"] {
                    check(
                        &format!("{what}: {key}"),
                        number(&engine[key]),
                        number(&point[key]),
                        TOLERANCE,
                    );
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 30, "{compared} points compared");
}

#[test]
fn discovery_significance_equals_pyhf() {
    let fixture = fixture("pyhf_asymptotic.json");
    for (name, model) in fixture["models"].as_object().unwrap() {
        let reference = &model["significance"];
        let signal = number(&reference["asimov_mu"]).to_string();
        let engine = nsbi_json(&["significance", &workspace(model), "--signal", &signal]);
        for side in ["observed", "expected"] {
            // The expected q0 is the statistic on an Asimov dataset made at the data's
            // conditional fit θ̂̂(μ = 1), which both fits know to their convergence (EDM 10⁻⁹:
            // δθ ≈ 4·10⁻⁵ σ), and q0_A moves at first order with it: 10⁻⁵ there.
            let tolerance = if side == "expected" { 1e-5 } else { TOLERANCE };
            for key in ["p0", "q0"] {
                check(
                    &format!("{name} {side} {key}"),
                    number(&engine[side][key]),
                    number(&reference[side][key]),
                    tolerance,
                );
            }
            // Z where it is not 0 (a deficit gives q0 = 0, Z = 0, absolutely to 10⁻⁶).
            let z = number(&reference[side]["z"]);
            check(
                &format!("{name} {side} z"),
                number(&engine[side]["z"]),
                z,
                tolerance.max(1e-6),
            );
        }
        check_list(
            &format!("{name} expected p0 set"),
            &engine["expected_p0"],
            &reference["expected_p0_set"],
            1e-5,
        );
    }
}

#[test]
fn upper_limits_equal_pyhf() {
    let fixture = fixture("pyhf_asymptotic.json");
    let mut compared = 0;
    for (name, model) in fixture["models"].as_object().unwrap() {
        for limit in model["limits"].as_array().into_iter().flatten() {
            let cl = number(&limit["cl"]).to_string();
            let stat = limit["test_stat"].as_str().unwrap();
            let engine = nsbi_json(&["limit", &workspace(model), "--cl", &cl, "--test-stat", stat]);
            let what = format!("{name} {stat} CL {cl}");
            check(
                &format!("{what}: observed"),
                number(&engine["observed"]),
                number(&limit["observed"]),
                LIMIT_TOLERANCE,
            );
            check_list(
                &format!("{what}: expected"),
                &engine["expected"],
                &limit["expected"],
                LIMIT_TOLERANCE,
            );
            compared += 1;
        }
    }
    assert!(compared >= 3, "{compared} limits compared");
}

#[test]
fn toy_cls_agree_with_pyhf_toys_within_toy_errors() {
    let fixture = fixture("pyhf_toys.json");
    let ws = root().join(fixture["model"]["path"].as_str().unwrap());
    let ws = ws.to_str().unwrap();
    let n_toys = fixture["ntoys"].as_u64().unwrap().to_string();
    for run in fixture["runs"].as_array().unwrap() {
        for point in run["points"].as_array().unwrap() {
            let value = number(&point["value"]).to_string();
            let engine = nsbi_json(&[
                "hypotest",
                ws,
                "--value",
                &value,
                "--calculator",
                "toys",
                "--toys",
                &n_toys,
                "--seed",
                "11",
            ]);
            // The observed statistic is no toy: it agrees to the precision of pyhf's default fits.
            check(
                &format!("q at {value}"),
                number(&engine["statistic"]["observed"]),
                number(&point["q_obs"]),
                1e-3,
            );
            for key in ["clsb", "clb", "cls"] {
                let (e, r) = if key == "cls" {
                    (
                        number(&engine["cls"]["observed"]),
                        number(&point["cls"]["observed"]),
                    )
                } else {
                    (number(&engine[key]), number(&point[key]))
                };
                let error = number(&engine["toys"][key]).hypot(number(&point["errors"][key]));
                assert!(
                    (e - r).abs() < 4.0 * error,
                    "{key} at {value} (pyhf seed {}): nsbi {e} vs pyhf {r}, combined error {error}",
                    run["seed"]
                );
            }
        }
    }
}
