//! The unbinned NLL: analytic gradient and Hessian against finite differences, determinism
//! across thread counts, and the Asimov set's normalisation.

mod common;

use common::*;
use nsbi::likelihood::data::ShapeData;
use nsbi::likelihood::{data, ChannelData, Likelihood, Order, ProcessData};
use nsbi::model::interpolation::{InterpolationCode, ShapeVariations};
use nsbi::model::{Channel, Coefficient, Model, Parameter, Process, ShapeSystematic};
use nsbi::workspace::expr::Expr;

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
    let observed = Likelihood::new(model, data::observed(model, ratios).unwrap()).unwrap();
    for theta in [[1.3, 0.2, -0.4], [0.6, -1.7, 1.4], [2.5, 0.0, 0.5]] {
        check_derivatives(&observed, &theta);
    }
    let asimov = Likelihood::new(
        model,
        data::asimov(model, ratios, &[1.0, 0.0, 0.0]).unwrap(),
    )
    .unwrap();
    check_derivatives(&asimov, &[1.2, 0.3, -0.2]);
}

/// Three processes whose coefficients depend on the nuisances, two shape systematics each
/// (codes 4, 1 and 0 mixed, parameters shared between processes): every cross term of the
/// Hessian's assembly, which the example (one shape systematic) does not reach.
fn several_shapes() -> (Model, ChannelData) {
    let names = ["mu", "alpha_0", "alpha_1"];
    let parameter = |name: &str, poi: bool| Parameter {
        name: name.into(),
        poi,
        init: 0.0,
        bounds: (-5.0, 5.0),
        constrained: !poi,
        fixed: false,
    };
    let parameters = vec![
        parameter("mu", true),
        parameter("alpha_0", false),
        parameter("alpha_1", false),
    ];
    let coefficients = [
        "mu * (1 + 0.1 * alpha_0)",
        "sqrt(mu)",
        "1 + 0.05 * alpha_1 * mu",
    ];
    let codes = [
        [InterpolationCode::Code4, InterpolationCode::Code1],
        [InterpolationCode::Code1, InterpolationCode::Code4],
        [InterpolationCode::Code4, InterpolationCode::Code0],
    ];
    let n_events = 1500;
    let mut state = 7u64;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut processes = Vec::new();
    let mut data = Vec::new();
    for (c, text) in coefficients.iter().enumerate() {
        let parameters_of = |k: usize| if c == 1 { 2 - k } else { 1 + k };
        processes.push(Process {
            name: format!("p{c}"),
            coefficient: Coefficient::new(text, Expr::parse(text, &names).unwrap()),
            nominal_yield: Some([400.0, 900.0, 600.0][c]),
            ratio: format!("p{c}"),
            yield_systematics: vec![],
            shape_systematics: (0..2)
                .map(|k| ShapeSystematic {
                    parameter: parameters_of(k),
                    code: codes[c][k],
                    up: String::new(),
                    down: String::new(),
                })
                .collect(),
        });
        let ratio: Vec<f64> = (0..n_events).map(|_| 0.3 + 1.4 * uniform()).collect();
        let shapes = (0..2)
            .map(|k| {
                let up: Vec<f64> = (0..n_events).map(|_| 1.0 + 0.3 * uniform()).collect();
                let down: Vec<f64> = (0..n_events).map(|_| 1.0 - 0.25 * uniform()).collect();
                ShapeData {
                    parameter: parameters_of(k),
                    code: codes[c][k],
                    variations: ShapeVariations::from_ratios(&up, &down),
                }
            })
            .collect();
        data.push(ProcessData {
            nominal_yield: [400.0, 900.0, 600.0][c],
            ratio,
            shapes,
        });
    }
    let model = Model::unbinned(
        parameters,
        vec![Channel {
            name: "several".into(),
            processes,
        }],
    );
    let channel = ChannelData {
        name: "several".into(),
        weights: (0..n_events).map(|_| 0.5 + uniform()).collect(),
        processes: data,
        mc_weights: None,
        normalisation: Default::default(),
    };
    (model, channel)
}

#[test]
fn hessian_of_several_shape_systematics_matches_finite_differences() {
    let (model, channel) = several_shapes();
    let like = Likelihood::new(&model, vec![channel]).unwrap();
    // Inside |α| < 1 (code 4's polynomial) and outside (its exponential).
    for theta in [[1.2, 0.3, -0.4], [0.8, -1.3, 1.6]] {
        check_derivatives(&like, &theta);
    }
}

/// Four processes with 7, 6, 0 and 3 shape systematics on four shape parameters, each used
/// by several processes and several times within one (codes 4 and 1: the one-pass path at
/// K = 7; codes 0 and 2 in the K = 6 process: a pass per step), and coefficients that depend
/// on the shape parameters and on a yield-only nuisance: the contraction of the yields with
/// the shape derivatives (u = (t_c; ∂s/∂α_p)) in every term of the Hessian.
fn many_shapes() -> (Model, ChannelData) {
    use InterpolationCode::*;
    let names = ["mu", "a0", "a1", "a2", "a3", "b"];
    let parameters = names
        .iter()
        .map(|&name| Parameter {
            name: name.into(),
            poi: name == "mu",
            init: 0.0,
            bounds: (-5.0, 5.0),
            constrained: name != "mu",
            fixed: false,
        })
        .collect();
    let systematics: [&[(usize, InterpolationCode)]; 4] = [
        &[
            (1, Code4),
            (2, Code1),
            (3, Code4),
            (1, Code4),
            (4, Code1),
            (2, Code4),
            (3, Code4),
        ],
        &[
            (4, Code4),
            (3, Code0),
            (1, Code4),
            (2, Code2),
            (4, Code1),
            (1, Code4),
        ],
        &[],
        &[(2, Code4), (3, Code1), (2, Code4)],
    ];
    let coefficients = [
        "mu * (1 + 0.1 * a0)",
        "1 + 0.05 * b * mu",
        "sqrt(mu)",
        "1 - 0.1 * a2",
    ];
    let n_events = 1500;
    let mut state = 29u64;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut processes = Vec::new();
    let mut data = Vec::new();
    for (c, text) in coefficients.iter().enumerate() {
        let yield_c = 300.0 + 200.0 * c as f64;
        processes.push(Process {
            name: format!("p{c}"),
            coefficient: Coefficient::new(text, Expr::parse(text, &names).unwrap()),
            nominal_yield: Some(yield_c),
            ratio: format!("p{c}"),
            yield_systematics: vec![],
            shape_systematics: systematics[c]
                .iter()
                .map(|&(parameter, code)| ShapeSystematic {
                    parameter,
                    code,
                    up: String::new(),
                    down: String::new(),
                })
                .collect(),
        });
        let ratio: Vec<f64> = (0..n_events).map(|_| 0.3 + 1.4 * uniform()).collect();
        let shapes = systematics[c]
            .iter()
            .map(|&(parameter, code)| {
                let up: Vec<f64> = (0..n_events).map(|_| 1.0 + 0.2 * uniform()).collect();
                let down: Vec<f64> = (0..n_events).map(|_| 1.0 - 0.15 * uniform()).collect();
                ShapeData {
                    parameter,
                    code,
                    variations: ShapeVariations::from_ratios(&up, &down),
                }
            })
            .collect();
        data.push(ProcessData {
            nominal_yield: yield_c,
            ratio,
            shapes,
        });
    }
    let model = Model::unbinned(
        parameters,
        vec![Channel {
            name: "many".into(),
            processes,
        }],
    );
    let channel = ChannelData {
        name: "many".into(),
        weights: (0..n_events).map(|_| 0.5 + uniform()).collect(),
        processes: data,
        mc_weights: None,
        normalisation: Default::default(),
    };
    (model, channel)
}

#[test]
fn hessian_of_many_shape_systematics_per_process_matches_finite_differences() {
    let (model, channel) = many_shapes();
    let like = Likelihood::new(&model, vec![channel]).unwrap();
    // Every α inside |α| < 1 (all one kind per process), some outside (kinds mixed), all
    // outside.
    for alphas in [
        [0.3, -0.6, 0.8, -0.2],
        [1.4, -0.6, -1.3, 0.2],
        [-1.6, 1.2, 2.1, -1.1],
    ] {
        let mut theta = vec![1.1];
        theta.extend(alphas);
        theta.push(0.4);
        check_derivatives(&like, &theta);
    }
}

/// Five processes with 4, 2, 1, 0 and 3 shape systematics on four nuisances (codes 4, 1, 0, 2
/// and 4p; the last process has one parameter twice), each normalised on an MC sample of its
/// own with some negative generator weights: the derivatives of N_c(α) in the gradient and
/// Hessian, by the exact pass and by the code-4 moments (the K = 2 and K = 1 processes inside
/// |α| < 1).
fn normalised_shapes() -> (Model, ChannelData) {
    use nsbi::likelihood::normalisation::{ChannelNormalisation, ProcessNormalisation};
    use InterpolationCode::*;
    let names = ["mu", "a0", "a1", "a2", "a3"];
    let parameters = names
        .iter()
        .map(|&name| Parameter {
            name: name.into(),
            poi: name == "mu",
            init: 0.0,
            bounds: (-5.0, 5.0),
            constrained: name != "mu",
            fixed: false,
        })
        .collect();
    let systematics: [&[(usize, InterpolationCode)]; 5] = [
        &[(1, Code4), (2, Code1), (3, Code0), (4, Code4)],
        &[(1, Code4), (3, Code4)],
        &[(2, Code4)],
        &[],
        &[(4, Code2), (2, Code4p), (4, Code4)],
    ];
    let coefficients = ["mu", "sqrt(mu)", "1 + 0.1 * a0", "1", "1 - 0.2 * mu"];
    let (n_events, n_mc) = (1200, 3000);
    let mut state = 17u64;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut shapes_on = |n: usize, c: usize| -> Vec<ShapeData> {
        systematics[c]
            .iter()
            .map(|&(parameter, code)| {
                let up: Vec<f64> = (0..n).map(|_| 0.8 + 0.45 * uniform()).collect();
                let down: Vec<f64> = (0..n).map(|_| 0.8 + 0.4 * uniform()).collect();
                ShapeData {
                    parameter,
                    code,
                    variations: ShapeVariations::from_ratios(&up, &down),
                }
            })
            .collect()
    };
    let mut processes = Vec::new();
    let mut data = Vec::new();
    let mut norms = Vec::new();
    for (c, text) in coefficients.iter().enumerate() {
        let yield_c = 200.0 + 150.0 * c as f64;
        processes.push(Process {
            name: format!("p{c}"),
            coefficient: Coefficient::new(text, Expr::parse(text, &names).unwrap()),
            nominal_yield: Some(yield_c),
            ratio: format!("p{c}"),
            yield_systematics: vec![],
            shape_systematics: systematics[c]
                .iter()
                .map(|&(parameter, code)| ShapeSystematic {
                    parameter,
                    code,
                    up: String::new(),
                    down: String::new(),
                })
                .collect(),
        });
        let shapes = shapes_on(n_events, c);
        let mc_shapes = shapes_on(n_mc, c);
        let mc_weights: Vec<f64> = (0..n_mc)
            .map(|i| if i % 9 == 0 { -0.3 } else { 1.0 })
            .collect();
        norms.push(ProcessNormalisation::new(mc_shapes, &mc_weights).unwrap());
        data.push(ProcessData {
            nominal_yield: yield_c,
            ratio: (0..n_events).map(|i| 0.4 + (i % 7) as f64 * 0.2).collect(),
            shapes,
        });
    }
    let model = Model::unbinned(
        parameters,
        vec![Channel {
            name: "normalised".into(),
            processes,
        }],
    );
    let channel = ChannelData {
        name: "normalised".into(),
        weights: (0..n_events).map(|i| 0.5 + (i % 5) as f64 * 0.25).collect(),
        processes: data,
        mc_weights: None,
        normalisation: std::sync::Arc::new(ChannelNormalisation { processes: norms }),
    };
    (model, channel)
}

#[test]
fn derivatives_with_the_shape_normalisation_match_finite_differences() {
    let (model, channel) = normalised_shapes();
    let like = Likelihood::new(&model, vec![channel]).unwrap();
    for alphas in [
        [0.3; 4],
        [-0.3; 4],
        [2.5; 4],
        [-2.5; 4],
        [0.3, -2.5, 2.5, -0.3],
    ] {
        let mut theta = vec![0.9];
        theta.extend(alphas);
        check_derivatives(&like, &theta);
    }
}

#[test]
fn same_bits_whatever_the_thread_count() {
    let analysis = example_analysis("workspace_exact.yaml");
    let (model, ratios) = (&analysis.model, &analysis.ratios);
    let like = Likelihood::new(
        model,
        data::asimov(model, ratios, &[1.0, 0.0, 0.0]).unwrap(),
    )
    .unwrap();
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
    let like = Likelihood::new(model, data::observed(model, ratios).unwrap()).unwrap();
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
