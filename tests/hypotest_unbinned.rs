//! Asymptotic hypothesis tests on the unbinned example against an independent closed-form
//! computation: `validation/closed_form_hypotest.py` (the closed-form densities of
//! `offshell_truth.py`, the NLL of `closed_form_nll.py`, iminuit plus a Newton polish, pyhf's
//! asymptotic formulas; no engine code) wrote `tests/fixtures/hypotest/closed_form.json`.
//! `nsbi hypotest`, `nsbi limit` and `nsbi significance` on `workspace_exact.yaml` must give
//! the same statistics on the data, observed limit and observed significance; the numbers that
//! rest on the Asimov dataset are compared with its exact expectation (see `ASIMOV_TOLERANCE`).
//!
//! Tolerance: the two computations build the same likelihood (the engine's Asimov set, the
//! pooled MC weighted to θ_A, is reproduced event by event). Checked with `nsbi fit`
//! (`engine_crosscheck` in the fixture): NLLs agree to ≤ 3.4·10⁻⁸ on Asimov sets and to
//! 1.2·10⁻⁷ at α̂̂(0) = (4.24, 2.24), where code 4 is exponential (the engine stores ln δ± in
//! f32), ≤ 10⁻¹⁰ elsewhere; propagated to q̃ (≥ 0.6 where not 0) and CLs that is ≤ 10⁻⁷
//! relative, below the tolerance here, 10⁻⁶. The reference's own fits reach EDM ≤ 3·10⁻¹⁴
//! (`precision` in each block).
//!
//! μ = 0: the engine's fits keep a margin of 10⁻¹⁰ from a bound (`fit::inner_bounds`; `nsbi fit
//! --fix mu=0` reports mu = 1e-10), so its "fit at μ = 0" (α̂̂(0) for θ_A, q_0 = t(0)) is a fit at
//! μ = 10⁻¹⁰, which, through √μ, moves the NLL by ~0.003 (q_0 by 1.5·10⁻⁵ relative). The
//! Asimov set itself must be built at μ_A = 0 exactly (pyhf: the POI of the Asimov point is the
//! tested value, not a fitted one): at μ_A = 10⁻¹⁰ the S and SBI samples enter with weights of
//! ∓10⁻⁵ ν, which moves the expected CLs by up to 4·10⁻³ and the expected limits by 5·10⁻⁴.
//! The fixture holds `mc_asimov` (μ = 0 exactly everywhere: the definition),
//! `mc_asimov_inner_bound_fits` (fits at 10⁻¹⁰, Asimov set at μ_A = 0: what the engine should
//! give) and `mc_asimov_inner_bound` (10⁻¹⁰ in the Asimov set too). `REFERENCE` names the one
//! the engine must match to `TOLERANCE`; `OTHER` is checked to the size of the margin's effect.

mod common;

use common::*;
use serde_json::Value;

/// The fixture block the engine reproduces to `TOLERANCE`.
const REFERENCE: &str = "mc_asimov_inner_bound_fits";
/// The definition (μ = 0 exactly): it differs from `REFERENCE` only by the 10⁻¹⁰ margin of
/// the fits at μ = 0.
const OTHER: &str = "mc_asimov";
/// Relative agreement required with `REFERENCE`.
const TOLERANCE: f64 = 1e-6;
/// Asimov-dependent numbers (q_A, expected CLs, limits and significance): the engine's Asimov
/// set is the pooled MC calibrated so that its fit returns its generating point
/// (`likelihood::closure`), which the reference does not reproduce; they are compared with the
/// exact expectation (`exact_asimov`: quadrature of the closed-form densities), to the MC
/// error left (100k B events: ~1 % on the expected limits), and must be no farther from it
/// than the uncalibrated pooled MC (up to 10 %).
const ASIMOV_TOLERANCE: f64 = 0.03;

fn fixture() -> Value {
    read_json(&root().join("tests/fixtures/hypotest/closed_form.json"))
}

/// Runs `nsbi COMMAND workspace_exact.yaml ARGS --json OUT` and returns OUT's JSON.
fn run_json(command: &str, args: &[&str]) -> Value {
    let ws = example().join("workspace_exact.yaml");
    let cache = root().join("target/test-ratio-cache");
    let mut full = vec![command, ws.to_str().unwrap()];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--cache-dir", cache.to_str().unwrap()]);
    nsbi_json(&full)
}

fn number(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"))
}

fn numbers(v: &Value, what: &str) -> Vec<f64> {
    let list = v
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not an array: {v}"));
    list.iter().map(|x| number(x, what)).collect()
}

/// |engine − reference| ≤ tol · |reference|; deep-tail probabilities (below 10⁻⁶) on ln p:
/// there p ≈ e^{−q/2}, so p's relative difference is ~q/2 times q's (at q₀ ≈ 480, a 10⁻⁶
/// agreement in q is 2·10⁻⁴ in p), and the significance ∝ √(−2 ln p) is what is compared.
fn check(what: &str, engine: f64, reference: f64, tol: f64) {
    let deep_tail = reference > 0.0 && reference < 1e-6 && engine > 0.0;
    let rel = if deep_tail {
        (engine.ln() - reference.ln()).abs() / reference.ln().abs()
    } else {
        (engine - reference).abs() / reference.abs().max(1e-300)
    };
    assert!(
        rel <= tol,
        "{what}: engine {engine:.12e} vs closed form {reference:.12e} (relative {rel:.2e} > {tol:.0e})"
    );
}

fn check_all(what: &str, engine: &[f64], reference: &[f64], tol: f64) {
    assert_eq!(engine.len(), reference.len(), "{what}: lengths differ");
    for (k, (e, r)) in engine.iter().zip(reference).enumerate() {
        check(&format!("{what}[{k}]"), *e, *r, tol);
    }
}

/// The largest relative difference between the two fixture blocks at `path` (numbers or lists
/// of numbers): how much the 10⁻¹⁰ margin at μ = 0 moves that quantity.
fn margin_effect(a: &Value, b: &Value) -> f64 {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(x, y)| margin_effect(x, y))
            .fold(0.0, f64::max),
        _ => {
            let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            (x - y).abs() / y.abs().max(1e-300)
        }
    }
}

/// Checks the engine's value against `REFERENCE` to `TOLERANCE`, and against `OTHER` to the
/// margin's effect on it (plus `TOLERANCE`).
fn check_both(what: &str, engine: &[f64], reference: &Value, other: &Value) {
    let r = match reference {
        Value::Array(_) => numbers(reference, what),
        _ => vec![number(reference, what)],
    };
    let o = match other {
        Value::Array(_) => numbers(other, what),
        _ => vec![number(other, what)],
    };
    check_all(&format!("{what} ({REFERENCE})"), engine, &r, TOLERANCE);
    let margin = margin_effect(reference, other);
    check_all(
        &format!("{what} ({OTHER})"),
        engine,
        &o,
        2.0 * margin + TOLERANCE,
    );
}

fn hypotest_matches(test_stat: &str) {
    let fixture = fixture();
    let (reference, other) = (&fixture[REFERENCE], &fixture[OTHER]);
    let points = reference["hypotest"].as_array().unwrap();
    assert!(points.len() >= 5, "fixture has {} points", points.len());
    let mut deviations = Vec::new();
    for (k, point) in points.iter().enumerate() {
        let mu = number(&point["mu"], "mu");
        let value = format!("{mu}");
        let engine = run_json(
            "hypotest",
            &["--poi", "mu", "--value", &value, "--test-stat", test_stat],
        );
        assert_eq!(engine["poi"], "mu");
        // pyhf's `q` is q_μ, written `qmu` in the engine's JSON.
        let canonical = if test_stat == "q" { "qmu" } else { test_stat };
        assert_eq!(engine["test_stat"], canonical);
        assert_eq!(engine["calculator"], "asymptotic");
        check("value", number(&engine["value"], "value"), mu, 1e-15);
        let (r, o) = (&point[test_stat], &other["hypotest"][k][test_stat]);
        assert_eq!(number(&other["hypotest"][k]["mu"], "mu"), mu);
        let at = |key: &str| format!("{test_stat} at mu = {mu}: {key}");
        // The data's statistic: the same likelihood on both sides.
        check_both(
            &at("statistic.observed"),
            &[number(&engine["statistic"]["observed"], "q")],
            &r["q_obs"],
            &o["q_obs"],
        );
        // The Asimov dataset's statistic: near the exact expectation (see ASIMOV_TOLERANCE),
        // and no farther from it than the uncalibrated pooled MC's.
        let exact = number(
            &fixture["exact_asimov"]["hypotest"][k][test_stat]["q_asimov"],
            "q_A",
        );
        let raw = number(&r["q_asimov"], "q_A");
        let engine_qa = number(&engine["statistic"]["asimov"], "q_A");
        let (deviation, raw_deviation) =
            ((engine_qa / exact - 1.0).abs(), (raw / exact - 1.0).abs());
        assert!(
            deviation < ASIMOV_TOLERANCE,
            "{}: engine {engine_qa} vs exact {exact} (relative {deviation:.2e})",
            at("statistic.asimov")
        );
        deviations.push((deviation, raw_deviation));
    }
    let (sum, raw_sum) = deviations
        .iter()
        .fold((0.0, 0.0), |(a, b), (d, r)| (a + d, b + r));
    assert!(
        sum < raw_sum,
        "{test_stat}: the calibrated Asimov's q_A deviates more from the exact one ({sum:.3e}) than \
         the uncalibrated pooled MC's ({raw_sum:.3e})"
    );
}

#[test]
fn hypotest_qtilde_matches_the_closed_form() {
    hypotest_matches("qtilde");
}

#[test]
fn hypotest_q_matches_the_closed_form() {
    hypotest_matches("q");
}

#[test]
fn limit_matches_the_closed_form() {
    let fixture = fixture();
    let (reference, other) = (
        &fixture[REFERENCE]["limit_qtilde"],
        &fixture[OTHER]["limit_qtilde"],
    );
    let engine = run_json("limit", &["--poi", "mu", "--cl", "0.95"]);
    check("cl", number(&engine["cl"], "cl"), 0.95, 1e-15);
    check_both(
        "observed limit",
        &[number(&engine["observed"], "observed")],
        &reference["observed"],
        &other["observed"],
    );
    let expected = numbers(&engine["expected"], "expected");
    assert_eq!(expected.len(), 5, "expected limits: {expected:?}");
    // pyhf's order: the −2σ band's limit (the lowest) first.
    assert!(
        expected.windows(2).all(|w| w[0] < w[1]),
        "expected limits not increasing: {expected:?}"
    );
    closer_to_exact(
        "expected limits",
        &expected,
        &numbers(&reference["expected"], "raw"),
        &numbers(
            &fixture["exact_asimov"]["limit_qtilde"]["expected"],
            "exact",
        ),
    );
}

/// Asimov-dependent numbers: within `ASIMOV_TOLERANCE` of the exact expectation, and each at
/// least as close to it as the uncalibrated pooled MC's.
fn closer_to_exact(what: &str, engine: &[f64], raw: &[f64], exact: &[f64]) {
    for k in 0..engine.len() {
        let deviation = (engine[k] / exact[k] - 1.0).abs();
        let raw_deviation = (raw[k] / exact[k] - 1.0).abs();
        assert!(
            deviation < ASIMOV_TOLERANCE && deviation <= raw_deviation,
            "{what}[{k}]: engine {} vs exact {} (relative {deviation:.2e}; uncalibrated MC \
             {raw_deviation:.2e})",
            engine[k],
            exact[k]
        );
    }
}

#[test]
fn significance_matches_the_closed_form() {
    let fixture = fixture();
    let (reference, other) = (
        &fixture[REFERENCE]["significance"],
        &fixture[OTHER]["significance"],
    );
    let engine = run_json("significance", &["--poi", "mu"]);
    for key in ["q0", "p0", "z"] {
        check_both(
            &format!("significance.observed.{key}"),
            &[number(&engine["observed"][key], key)],
            &reference["observed"][key],
            &other["observed"][key],
        );
    }
    let exact = &fixture["exact_asimov"]["significance"]["expected"];
    for key in ["q0", "z"] {
        closer_to_exact(
            &format!("significance.expected.{key}"),
            &[number(&engine["expected"][key], key)],
            &[number(&reference["expected"][key], key)],
            &[number(&exact[key], key)],
        );
    }
}

/// The reference itself converged: its fits' EDM is far below what the comparisons resolve
/// (a regenerated fixture with a fit stopped short fails here, not as an engine mismatch).
#[test]
fn the_closed_form_reference_is_converged() {
    let fixture = fixture();
    for block in [REFERENCE, OTHER] {
        let edm = number(&fixture[block]["precision"]["max_edm"], "max_edm");
        assert!(edm < 1e-12, "{block}: EDM {edm:e}");
    }
}
