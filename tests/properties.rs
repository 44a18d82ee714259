//! Property tests of the pieces every input passes through: the coefficient-expression parser
//! and its symbolic derivatives, the YAML loader, and the interpolation codes. Arbitrary inputs
//! must never panic; where a value is finite and smooth its derivatives must agree with
//! central finite differences. Case counts are small so the suite stays fast; the seed is
//! fixed (proptest's deterministic RNG), so a failure reproduces.

mod common;

use nsbi::model::interpolation::{event_variation, InterpolationCode, ShapeKernel, Variation};
use nsbi::workspace::expr::Expr;
use nsbi::workspace::Workspace;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const PARAMS: [&str; 2] = ["mu", "theta"];

/// A runner with `cases` cases and a fixed seed: the same inputs on every run.
fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Text of a well-formed expression over `mu` and `theta`, with constant exponents.
fn expression_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("mu".to_string()),
        Just("theta".to_string()),
        (0.1f64..5.0).prop_map(|c| format!("{c:.3}")),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} - {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} * {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} / {b})")),
            (
                inner.clone(),
                prop_oneof![Just("2"), Just("3"), Just("0.5"), Just("-1"), Just("1.5")]
            )
                .prop_map(|(a, p)| format!("({a})^{p}")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("sqrt({a})")),
            inner.clone().prop_map(|a| format!("exp({a} / 4)")),
            inner.clone().prop_map(|a| format!("log({a})")),
        ]
    })
}

/// Central difference of `f` at `x` with step `h`.
fn central(f: impl Fn(f64) -> f64, x: f64, h: f64) -> f64 {
    (f(x + h) - f(x - h)) / (2.0 * h)
}

/// Whether `exact` agrees with the finite-difference derivative of `f` at `x`, where the
/// difference quotient is stable (two step sizes agree); `None` where it is not (a kink, a
/// pole or a branch point nearby), so that only smooth points are judged.
fn agrees_with_finite_differences(f: impl Fn(f64) -> f64, x: f64, exact: f64) -> Option<bool> {
    let h = 1e-5 * x.abs().max(1.0);
    let (coarse, fine) = (central(&f, x, h), central(&f, x, h / 2.0));
    let scale = 1.0 + fine.abs();
    if !(coarse.is_finite() && fine.is_finite()) || (coarse - fine).abs() > 1e-6 * scale {
        return None;
    }
    Some((exact - fine).abs() <= 1e-5 * scale)
}

#[test]
fn arbitrary_text_never_panics_the_expression_parser() {
    let text = prop_oneof![
        any::<String>(),
        "[-+*/^() .0-9a-z_]{0,40}",
        "(mu|theta|sqrt|exp|log|[-+*/^()]|[0-9.e]+| ){0,30}",
    ];
    runner(2048)
        .run(&text, |text| {
            if let Ok(e) = Expr::parse(&text, &PARAMS) {
                let _ = e.eval(&[1.3, -0.4]);
                let _ = e.derivative(0).eval(&[1.3, -0.4]);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn deeply_nested_expressions_are_refused_not_a_stack_overflow() {
    for text in [
        format!("{}mu{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{}mu", "-".repeat(100_000)),
        format!("mu{}", " + mu".repeat(100_000)),
        format!("{}mu{}", "sqrt(".repeat(50_000), ")".repeat(50_000)),
    ] {
        let err = Expr::parse(&text, &PARAMS).unwrap_err();
        assert!(err.message.contains("too long"), "{}", err.message);
    }
}

#[test]
fn symbolic_derivatives_agree_with_finite_differences() {
    let point = (0.2f64..4.0, -2.0f64..2.0);
    let judged = std::cell::Cell::new(0);
    runner(1024)
        .run(&(expression_text(), point), |(text, (mu, theta))| {
            let e = Expr::parse(&text, &PARAMS).expect("generated text parses");
            let theta_point = [mu, theta];
            if !e.eval(&theta_point).is_finite() {
                return Ok(());
            }
            for k in 0..2 {
                let exact = e.derivative(k).eval(&theta_point);
                let along = |x: f64| {
                    let mut p = theta_point;
                    p[k] = x;
                    e.eval(&p)
                };
                if let Some(ok) = agrees_with_finite_differences(along, theta_point[k], exact) {
                    judged.set(judged.get() + 1);
                    prop_assert!(ok, "d/d{} of {text} at {theta_point:?}: {exact}", PARAMS[k]);
                }
            }
            Ok(())
        })
        .unwrap();
    let judged = judged.get();
    assert!(judged > 500, "only {judged} derivatives were judged");
}

/// Mutations of a valid workspace's text: each keeps most of the YAML so that the loader gets
/// past the first line and meets the damage in the middle.
fn mutated_workspace() -> impl Strategy<Value = Vec<u8>> {
    let base = std::fs::read(common::example().join("workspace_exact.yaml")).unwrap();
    let n = base.len();
    let edit = prop_oneof![
        (0..n, 0..n).prop_map(|(a, b)| (a.min(b), a.max(b), Vec::new())),
        (0..n, prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(a, bytes)| (a, a, bytes)),
        (0..n, "[-:{}\\[\\],&*!|>'\"%@` #\t\n0-9a-z.]{1,6}").prop_map(|(a, s)| (
            a,
            a,
            s.into_bytes()
        )),
        (0..n).prop_map(move |a| (a, n, Vec::new())),
    ];
    prop::collection::vec(edit, 1..4).prop_map(move |edits| {
        let mut text = base.clone();
        for (from, to, bytes) in edits {
            let (from, to) = (from.min(text.len()), to.min(text.len()));
            text.splice(from..to, bytes);
        }
        text
    })
}

#[test]
fn mutated_yaml_never_panics_the_loader_and_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutated.yaml");
    let arbitrary = prop_oneof![
        mutated_workspace(),
        prop::collection::vec(any::<u8>(), 0..200)
    ];
    runner(1024)
        .run(&arbitrary, |bytes| {
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = Workspace::load(&path) {
                let text = e.to_string();
                prop_assert!(text.contains(&path.display().to_string()), "{text}");
            }
            Ok(())
        })
        .unwrap();
}

const CODES: [InterpolationCode; 5] = [
    InterpolationCode::Code0,
    InterpolationCode::Code1,
    InterpolationCode::Code2,
    InterpolationCode::Code4p,
    InterpolationCode::Code4,
];

fn code() -> impl Strategy<Value = InterpolationCode> {
    (0..CODES.len()).prop_map(|i| CODES[i])
}

#[test]
fn arbitrary_variations_never_panic_the_interpolation() {
    runner(512)
        .run(
            &(code(), any::<f64>(), any::<f64>(), any::<f64>()),
            |(code, up, down, alpha)| {
                let _ = Variation::new(code, up, down, 1.0).eval(alpha);
                let _ = ShapeKernel::new(code, alpha).eval(&event_variation(up, down));
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn interpolation_is_finite_and_its_derivatives_agree_with_finite_differences() {
    // Away from the kinks: |α| = 1 (every code's boundary) and α = 0 (codes 0 and 1 switch
    // between the up and down slopes there).
    let alpha = (-4.0f64..4.0).prop_filter("away from kinks", |a| {
        (a.abs() - 1.0).abs() > 1e-3 && a.abs() > 1e-3
    });
    let factor = 0.05f64..5.0;
    runner(512)
        .run(
            &(code(), factor.clone(), factor, alpha),
            |(code, up, down, alpha)| {
                let v = Variation::new(code, up, down, 1.0);
                let at = v.eval(alpha);
                prop_assert!(
                    at.value.is_finite() && at.d1.is_finite() && at.d2.is_finite(),
                    "{code:?} ({up}, {down}) at {alpha}: {at:?}"
                );
                let first = agrees_with_finite_differences(|a| v.eval(a).value, alpha, at.d1);
                let second = agrees_with_finite_differences(|a| v.eval(a).d1, alpha, at.d2);
                prop_assert!(
                    first != Some(false),
                    "{code:?} ({up}, {down}) d1 at {alpha}"
                );
                prop_assert!(
                    second != Some(false),
                    "{code:?} ({up}, {down}) d2 at {alpha}"
                );
                // The per-event shape kernel is the same function of α.
                let shape = ShapeKernel::new(code, alpha).eval(&event_variation(up, down));
                prop_assert!(
                    (shape.value - at.value).abs() <= 1e-9 * at.value.abs().max(1.0),
                    "{code:?} ({up}, {down}) at {alpha}: shape {shape:?} vs yield {at:?}"
                );
                Ok(())
            },
        )
        .unwrap();
}
