//! The unbinned NLL: analytic gradient and Hessian against finite differences, determinism
//! across thread counts, and the Asimov set's normalisation.

mod common;

use common::*;
use nsbi::likelihood::{data, Likelihood, Order};

fn check_derivatives(like: &Likelihood, theta: &[f64]) {
    let n = theta.len();
    let at = like.evaluate(theta, Order::Hessian);
    assert!(at.invalid.is_none());
    for j in 0..n {
        let h = 1e-5 * (1.0 + theta[j].abs());
        let (mut up, mut down) = (theta.to_vec(), theta.to_vec());
        up[j] += h;
        down[j] -= h;
        let (eu, ed) = (
            like.evaluate(&up, Order::Gradient),
            like.evaluate(&down, Order::Gradient),
        );
        let numeric = (eu.nll - ed.nll) / (2.0 * h);
        let scale = 1.0 + at.gradient[j].abs();
        assert!(
            (numeric - at.gradient[j]).abs() < 1e-5 * scale,
            "dNLL/d{j}: analytic {} vs numeric {numeric}",
            at.gradient[j]
        );
        for k in 0..n {
            let numeric = (eu.gradient[k] - ed.gradient[k]) / (2.0 * h);
            let analytic = at.hessian[j * n + k];
            assert!(
                (numeric - analytic).abs() < 1e-4 * (1.0 + analytic.abs()),
                "d2NLL/d{j}d{k}: analytic {analytic} vs numeric {numeric}"
            );
        }
    }
}

#[test]
fn gradient_and_hessian_match_finite_differences() {
    let analysis = example_analysis("workspace_exact.yaml");
    let (model, ratios) = (&analysis.model, &analysis.ratios);
    let observed = Likelihood::new(model, data::observed(model, ratios).unwrap());
    for theta in [[1.3, 0.2, -0.4], [0.6, -1.7, 1.4], [2.5, 0.0, 0.5]] {
        check_derivatives(&observed, &theta);
    }
    let asimov = Likelihood::new(
        model,
        data::asimov(model, ratios, &[1.0, 0.0, 0.0]).unwrap(),
    );
    check_derivatives(&asimov, &[1.2, 0.3, -0.2]);
}

#[test]
fn same_bits_whatever_the_thread_count() {
    let analysis = example_analysis("workspace_exact.yaml");
    let (model, ratios) = (&analysis.model, &analysis.ratios);
    let like = Likelihood::new(
        model,
        data::asimov(model, ratios, &[1.0, 0.0, 0.0]).unwrap(),
    );
    let theta = [1.37, 0.21, -0.66];
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| like.evaluate(&theta, Order::Hessian))
    };
    let (one, many) = (run(1), run(4));
    assert_eq!(one.nll.to_bits(), many.nll.to_bits());
    assert_eq!(one.gradient, many.gradient);
    assert_eq!(one.hessian, many.hessian);
}

#[test]
fn asimov_weights_sum_to_the_expected_yield_with_negative_weights() {
    let analysis = example_analysis("workspace_exact.yaml");
    let (model, ratios) = (&analysis.model, &analysis.ratios);
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example().join("truth.json")).unwrap())
            .unwrap();
    let y = &truth["yields"];
    let (s, sbi, b) = (
        y["nu_S"].as_f64().unwrap(),
        y["nu_SBI"].as_f64().unwrap(),
        y["nu_B"].as_f64().unwrap(),
    );
    for mu in [0.0f64, 0.5, 1.0, 2.0] {
        let sets = data::asimov(model, ratios, &[mu, 0.0, 0.0]).unwrap();
        let total: f64 = sets[0].weights.iter().sum();
        let expected = (mu - mu.sqrt()) * s + mu.sqrt() * sbi + (1.0 - mu.sqrt()) * b;
        assert!(
            (total / expected - 1.0).abs() < 1e-9,
            "mu={mu}: {total} vs {expected}"
        );
        if mu == 0.5 {
            assert!(
                sets[0].weights.iter().any(|w| *w < 0.0),
                "interference gives negative weights below mu = 1"
            );
        }
    }
}

#[test]
fn negative_density_is_reported_not_logged() {
    let analysis = example_analysis("workspace_exact.yaml");
    let (model, ratios) = (&analysis.model, &analysis.ratios);
    let like = Likelihood::new(model, data::observed(model, ratios).unwrap());
    for mu in [0.0, 1e-12, 1.0, 3.0] {
        let ev = like.evaluate(&[mu, 0.0, 0.0], Order::Gradient);
        assert!(
            ev.invalid.is_none() && ev.nll.is_finite(),
            "mu={mu}: the true model is positive: {:?}",
            ev.invalid
        );
    }
    // Far outside the systematic's calibrated range, with a negative B coefficient (mu > 1),
    // the mixture goes negative for some events: +inf and the first offending event.
    let ev = like.evaluate(&[9.0, 0.0, 5.0], Order::Gradient);
    let invalid = ev
        .invalid
        .expect("a non-positive density at mu = 9, alpha_shape = 5");
    assert_eq!(ev.nll, f64::INFINITY);
    assert!(invalid.density <= 0.0);
    assert_eq!(invalid.channel, "SR");
    assert!(invalid
        .to_string()
        .contains(&format!("event {}", invalid.event)));
}
