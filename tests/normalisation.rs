//! The shape normalisation N_c(α) (issue 13, finding 1): every process's density is
//! normalised on its MC at every α, by either method, and fits no longer gain likelihood by
//! pushing shape nuisances outwards.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use nsbi::data::{CachedRatios, Events};
use nsbi::fit::{self, FitOptions};
use nsbi::likelihood::data::{self, ShapeData};
use nsbi::likelihood::normalisation::{Method, ProcessNormalisation, ShapeIntegral};
use nsbi::likelihood::{Likelihood, Order, ProcessData};
use nsbi::model::interpolation::{InterpolationCode, ShapeKernel, ShapeVariations};
use nsbi::model::{Channel, Coefficient, Model, Parameter, Process, ShapeSystematic};
use nsbi::ratio::ChannelRatios;
use nsbi::workspace::expr::Expr;
use nsbi::workspace::EventRole;

/// A fixed pseudo-random sequence in (0, 1).
fn uniforms(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// K shape systematics of the given codes on parameters 0..K over `n` MC events, with
/// generator weights of which some are negative (their sum is positive).
fn process(codes: &[InterpolationCode], n: usize, seed: u64) -> (Vec<ShapeData>, Vec<f64>) {
    let mut u = uniforms(seed);
    let shapes = codes
        .iter()
        .enumerate()
        .map(|(k, &code)| {
            let up: Vec<f64> = (0..n).map(|_| 0.75 + 0.6 * u()).collect();
            let down: Vec<f64> = (0..n).map(|_| 0.7 + 0.55 * u()).collect();
            ShapeData {
                parameter: k,
                code,
                variations: ShapeVariations::from_ratios(&up, &down),
            }
        })
        .collect();
    let weights = (0..n)
        .map(|_| if u() < 0.1 { -0.5 * u() } else { 0.2 + u() })
        .collect();
    (shapes, weights)
}

/// Σ b g(x|α) / Σ b with g as the likelihood computes it ([`ProcessData::shape_factors`]).
fn average_shape_factor(shapes: &[ShapeData], weights: &[f64], theta: &[f64]) -> f64 {
    let data = ProcessData {
        nominal_yield: 1.0,
        ratio: vec![1.0; weights.len()],
        shapes: shapes.to_vec(),
    };
    let g = data.shape_factors(theta);
    let total: f64 = weights.iter().sum();
    weights.iter().zip(&g).map(|(b, g)| b * g).sum::<f64>() / total
}

#[test]
fn every_code_and_k_averages_to_one_on_the_mc() {
    use InterpolationCode::*;
    let mut u = uniforms(11);
    let mut checked = 0;
    for code in [Code0, Code1, Code2, Code4p, Code4] {
        for k in 1..=3 {
            let (shapes, weights) = process(&vec![code; k], 1500, 3 + k as u64);
            let norm = ProcessNormalisation::new(shapes.clone(), &weights).unwrap();
            // Inside |α| < 1, outside, and mixed.
            for region in 0..3 {
                for _ in 0..3 {
                    let theta: Vec<f64> = (0..k)
                        .map(|j| match (region, j % 2) {
                            (0, _) | (2, 0) => 1.98 * u() - 0.99,
                            _ => (1.0 + 2.5 * u()) * if u() < 0.5 { -1.0 } else { 1.0 },
                        })
                        .collect();
                    let mut out = ShapeIntegral::default();
                    let method = norm.evaluate(&theta, Order::Value, &mut out);
                    let direct = average_shape_factor(&shapes, &weights, &theta);
                    assert!(
                        (direct / out.value - 1.0).abs() < 1e-12,
                        "{code:?} K={k} at {theta:?} ({method:?}): Σbg/Σb = {direct}, N = {}",
                        out.value
                    );
                    let inside = theta.iter().all(|a| a.abs() < 1.0);
                    let expected = match (code, k) {
                        (Code4, 1 | 2) if inside => Method::Code4Moments,
                        (Code4 | Code1, 1) => Method::ExponentialTable,
                        _ => Method::ExactPass,
                    };
                    assert_eq!(method, expected, "{code:?} K={k} at {theta:?}");
                    checked += 1;
                }
            }
        }
    }
    // Mixed codes in one process.
    let (shapes, weights) = process(&[Code4, Code1, Code0], 1500, 99);
    let norm = ProcessNormalisation::new(shapes.clone(), &weights).unwrap();
    for theta in [[0.3, -2.5, 0.7], [-1.7, 0.2, 2.2]] {
        let mut out = ShapeIntegral::default();
        norm.evaluate(&theta, Order::Value, &mut out);
        let direct = average_shape_factor(&shapes, &weights, &theta);
        assert!((direct / out.value - 1.0).abs() < 1e-12, "{theta:?}");
    }
    assert_eq!(checked, 5 * 3 * 3 * 3);
}

#[test]
fn code4_moments_agree_with_the_exact_pass_with_derivatives() {
    use InterpolationCode::Code4;
    let mut u = uniforms(5);
    for k in 1..=2 {
        // More MC events than one block of the exact pass.
        let (shapes, weights) = process(&vec![Code4; k], 10_000, 40 + k as u64);
        let norm = ProcessNormalisation::new(shapes, &weights).unwrap();
        for _ in 0..20 {
            let theta: Vec<f64> = (0..k).map(|_| 1.98 * u() - 0.99).collect();
            let (mut fast, mut exact) = (ShapeIntegral::default(), ShapeIntegral::default());
            assert_eq!(
                norm.evaluate(&theta, Order::Hessian, &mut fast),
                Method::Code4Moments
            );
            norm.exact_pass(&theta, Order::Hessian, &mut exact);
            let pairs = std::iter::once((fast.value, exact.value))
                .chain(fast.d1.iter().copied().zip(exact.d1.iter().copied()))
                .chain(fast.d2.iter().copied().zip(exact.d2.iter().copied()));
            for (a, b) in pairs {
                assert!(
                    (a - b).abs() < 1e-12 * (1.0 + b.abs()),
                    "K={k} at {theta:?}: moments {a} vs exact pass {b}"
                );
            }
        }
    }
}

#[test]
fn exponential_tables_agree_with_the_exact_pass_with_derivatives() {
    use InterpolationCode::*;
    let mut u = uniforms(8);
    for code in [Code4, Code1] {
        let (shapes, weights) = process(&[code], 6000, 21);
        let norm = ProcessNormalisation::new(shapes, &weights).unwrap();
        for _ in 0..30 {
            let alpha = (1.0 + 4.0 * u()) * if u() < 0.5 { -1.0 } else { 1.0 };
            let (mut table, mut exact) = (ShapeIntegral::default(), ShapeIntegral::default());
            let method = norm.evaluate(&[alpha], Order::Hessian, &mut table);
            assert_eq!(method, Method::ExponentialTable, "{code:?} at {alpha}");
            norm.exact_pass(&[alpha], Order::Hessian, &mut exact);
            let scale = exact.value;
            let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * b.abs().max(scale);
            assert!(
                close(table.value, exact.value, 1e-12)
                    && close(table.d1[0], exact.d1[0], 1e-10)
                    && close(table.d2[0], exact.d2[0], 1e-8),
                "{code:?} at {alpha}: table {table:?} vs exact pass {exact:?}"
            );
        }
        // Beyond the tables' reach: the exact pass.
        let mut out = ShapeIntegral::default();
        assert_eq!(
            norm.evaluate(&[5.5], Order::Value, &mut out),
            Method::ExactPass
        );
    }
}

#[test]
fn exact_pass_derivatives_match_finite_differences() {
    use InterpolationCode::*;
    let (shapes, weights) = process(&[Code4, Code1, Code4, Code2], 5000, 7);
    let norm = ProcessNormalisation::new(shapes, &weights).unwrap();
    for theta in [[0.3, -0.3, 2.5, -2.5], [-2.5, 2.5, 0.3, 0.4]] {
        let mut at = ShapeIntegral::default();
        norm.evaluate(&theta, Order::Hessian, &mut at);
        for j in 0..4 {
            let h = 1e-6;
            let (mut up, mut down) = (theta, theta);
            up[j] += h;
            down[j] -= h;
            let (mut eu, mut ed) = (ShapeIntegral::default(), ShapeIntegral::default());
            norm.evaluate(&up, Order::Gradient, &mut eu);
            norm.evaluate(&down, Order::Gradient, &mut ed);
            let numeric = (eu.value - ed.value) / (2.0 * h);
            assert!((numeric - at.d1[j]).abs() < 1e-7 * (1.0 + numeric.abs()));
            for l in 0..4 {
                let numeric = (eu.d1[l] - ed.d1[l]) / (2.0 * h);
                assert!(
                    (numeric - at.d2[j * 4 + l]).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "d2N/d{j}d{l} at {theta:?}: {} vs {numeric}",
                    at.d2[j * 4 + l]
                );
            }
        }
    }
}

/// The reproduction, small: one channel on x ∈ [−1, 1] with p_ref uniform, a signal
/// S (r_S = 1 + 0.8x, coefficient μ, one shape systematic alpha_s0) and a background B
/// (r_B = 1, shape systematics alpha_s1 and alpha_s2), every ±1σ shape ratio
/// 1 ± a tanh(·) scaled to average 1 over its process's MC, as in the issue. Each process's
/// MC is a stratified sample of its density, so the Asimov sets are exact to ~1/n².
struct Synthetic {
    model: Model,
    ratios: ChannelRatios,
}

const N_MC: usize = 20_000;

/// A closed-form ratio of x.
type RatioFunction = Box<dyn Fn(f64) -> f64>;

fn synthetic() -> Synthetic {
    let names = ["mu", "alpha_s0", "alpha_s1", "alpha_s2"];
    let parameter = |name: &str, poi: bool| Parameter {
        name: name.into(),
        poi,
        init: if poi { 1.0 } else { 0.0 },
        bounds: if poi { (0.0, 10.0) } else { (-5.0, 5.0) },
        constrained: !poi,
        fixed: false,
    };
    let quantile = |i: usize| (i as f64 + 0.5) / N_MC as f64;
    // p_S = (1 + 0.8x)/2: the inverse of its CDF; p_B uniform.
    let s_mc: Vec<f64> = (0..N_MC)
        .map(|i| (-0.5 + (0.25 - 0.8 * (0.3 - quantile(i))).sqrt()) / 0.4)
        .collect();
    let b_mc: Vec<f64> = (0..N_MC).map(|i| 2.0 * quantile(i) - 1.0).collect();
    // (process, parameter, amplitude, slope, offset) of each shape systematic.
    let systematics = [
        ("S", 1, 0.3, 2.0, 0.0),
        ("B", 2, 0.2, 2.0, 0.0),
        ("B", 3, 0.3, 3.0, 0.5),
    ];
    let raw = |a: f64, s: f64, o: f64, sign: f64, x: f64| 1.0 + sign * a * (s * x + o).tanh();
    let mut functions: Vec<(String, RatioFunction)> = vec![
        ("S".into(), Box::new(|x| 1.0 + 0.8 * x)),
        ("B".into(), Box::new(|_| 1.0)),
    ];
    for (j, &(process, _, a, s, o)) in systematics.iter().enumerate() {
        let own = if process == "S" { &s_mc } else { &b_mc };
        for (sign, label) in [(1.0, "up"), (-1.0, "down")] {
            let mean = own.iter().map(|&x| raw(a, s, o, sign, x)).sum::<f64>() / N_MC as f64;
            functions.push((
                format!("{process}_{label}{j}"),
                Box::new(move |x| raw(a, s, o, sign, x) / mean),
            ));
        }
    }
    let events = |xs: &[f64]| Events {
        file: PathBuf::from("synthetic"),
        features: vec!["x".into()],
        values: ndarray::Array2::from_shape_fn((xs.len(), 1), |(i, _)| xs[i] as f32),
        weights: vec![1.0; xs.len()],
    };
    let sources = vec![
        (EventRole::Process("S".into()), events(&s_mc)),
        (EventRole::Process("B".into()), events(&b_mc)),
    ];
    let mut ratios = BTreeMap::new();
    for (source, xs) in [&s_mc, &b_mc].into_iter().enumerate() {
        for (label, f) in &functions {
            let ratio: Vec<f64> = xs.iter().map(|&x| f(x)).collect();
            let spread = vec![0.0; ratio.len()];
            ratios.insert((label.clone(), source), CachedRatios { ratio, spread });
        }
    }
    let process = |name: &str, text: &str, nominal: f64| Process {
        name: name.into(),
        coefficient: Coefficient::new(text, Expr::parse(text, &names).unwrap()),
        nominal_yield: Some(nominal),
        ratio: name.into(),
        yield_systematics: vec![],
        shape_systematics: systematics
            .iter()
            .enumerate()
            .filter(|(_, s)| s.0 == name)
            .map(|(j, &(_, parameter, ..))| ShapeSystematic {
                parameter,
                code: InterpolationCode::Code4,
                up: format!("{name}_up{j}"),
                down: format!("{name}_down{j}"),
            })
            .collect(),
    };
    Synthetic {
        model: Model::unbinned(
            vec![
                parameter("mu", true),
                parameter("alpha_s0", false),
                parameter("alpha_s1", false),
                parameter("alpha_s2", false),
            ],
            vec![Channel {
                name: "SR".into(),
                processes: vec![process("S", "mu", 300.0), process("B", "1", 1000.0)],
            }],
        ),
        ratios: ChannelRatios::in_memory("SR", sources, ratios),
    }
}

impl Synthetic {
    /// The Asimov likelihood at `theta`, with the global observables there too (so that the
    /// best fit is `theta` itself).
    fn asimov(&self, theta: &[f64]) -> Likelihood<'_> {
        let sets = data::asimov(&self.model, std::slice::from_ref(&self.ratios), theta).unwrap();
        let mut like = Likelihood::new(&self.model, sets).unwrap();
        like.global_observables[1..].copy_from_slice(&theta[1..]);
        like
    }
}

#[test]
fn asimov_fits_give_back_the_generated_shape_nuisances() {
    let synthetic = synthetic();
    for alpha in [0.0, 0.5, -2.5] {
        let theta = [1.0, alpha, alpha, alpha];
        let like = synthetic.asimov(&theta);
        let fit = fit::minimise(&like, &FitOptions::new(&like));
        assert!(fit.converged, "α_gen = {alpha}: {}", fit.message);
        for k in 1..4 {
            assert!(
                (fit.theta[k] - alpha).abs() < 0.05,
                "α_gen = {alpha}: fitted {:?}",
                fit.theta
            );
        }
        assert!((fit.theta[0] - 1.0).abs() < 0.05, "μ̂ = {}", fit.theta[0]);
    }
}

#[test]
fn pushing_a_shape_nuisance_to_its_bound_costs_likelihood() {
    let synthetic = synthetic();
    let like = synthetic.asimov(&[1.0, 0.0, 0.0, 0.0]);
    let free = fit::minimise(&like, &FitOptions::new(&like));
    let mut options = FitOptions::new(&like);
    options.init[1] = 5.0;
    options.fixed[1] = true;
    let at_bound = fit::minimise(&like, &options);
    assert!(free.converged && at_bound.converged);
    assert!(
        at_bound.nll > free.nll + 5.0,
        "NLL with alpha_s0 = 5: {} vs free {} (α̂ = {:?})",
        at_bound.nll,
        free.nll,
        free.theta
    );
}

#[test]
fn asimov_weights_sum_to_the_expected_yield_away_from_zero() {
    let synthetic = synthetic();
    for theta in [
        [1.3, 1.7, -0.6, 0.2],
        [0.8, -2.5, 0.4, 2.5],
        [2.0, 0.5, 0.5, -0.5],
    ] {
        let sets = data::asimov(
            &synthetic.model,
            std::slice::from_ref(&synthetic.ratios),
            &theta,
        )
        .unwrap();
        let total: f64 = sets[0].weights.iter().sum();
        let expected = 300.0 * theta[0] + 1000.0;
        assert!(
            (total / expected - 1.0).abs() < 1e-12,
            "{theta:?}: Asimov weights sum to {total}, ν = {expected}"
        );
    }
    // Without signal (μ = 0) the model density on B's own MC is ν_B g_B/N_B (r_B = 1): its
    // average there is ν_B at every α.
    for theta in [[0.0, 1.7, -0.6, 0.3], [0.0, -2.5, 0.4, -1.2]] {
        let sets = data::asimov(
            &synthetic.model,
            std::slice::from_ref(&synthetic.ratios),
            &theta,
        )
        .unwrap();
        let density = sets[0].model_density(&synthetic.model.channels[0], &theta);
        let mean_on_b = density[N_MC..].iter().sum::<f64>() / N_MC as f64;
        assert!(
            (mean_on_b / 1000.0 - 1.0).abs() < 1e-12,
            "{theta:?}: model density averages {mean_on_b} on B's MC, ν_B = 1000"
        );
    }
}

#[test]
fn toys_share_one_normalisation() {
    let analysis = example_analysis("workspace_exact.yaml");
    let source = nsbi::infer::toys::ToySource::asimov(&analysis, &[1.0, 0.0, 0.3]).unwrap();
    let (a, b) = (source.draw(1, 0, 0, true), source.draw(1, 0, 1, true));
    assert!(std::sync::Arc::ptr_eq(
        &a.unbinned()[0].normalisation,
        &b.unbinned()[0].normalisation
    ));
    assert_eq!(a.unbinned()[0].normalisation.processes[2].n_shapes(), 1);
}

#[test]
fn fit_reports_the_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("fit.json");
    let out = nsbi(&[
        "fit",
        example().join("workspace_exact.yaml").to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("shape normalisation N_c(θ̂): SR/B "), "{text}");
    let report = read_json(&json);
    let processes = report["normalisation"]["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 1, "only B has a shape systematic");
    let b = &processes[0];
    assert_eq!(b["process"], "B");
    assert_eq!(b["method"], "code4_moments");
    assert!((b["n"].as_f64().unwrap() - 1.0).abs() < 1e-3, "{b}");
    assert!(report["normalisation"]["max_error"].as_f64().unwrap() < 1e-10);
    // The existing keys are still there.
    assert!(report["parameters"]["mu"]["value"].is_f64());
}

/// The vectorised exact pass (four events per lane group, sub-blocks, per-lane sums) on a
/// process whose MC ends in a partial quad and a partial block, with six systematics of every
/// kind the pass meets (code 4 inside and beyond ±1, code 1, code 0 through the event-by-event
/// kernels): the value agrees with the direct average, and the result does not depend on the
/// thread count or on what the memo of recent passes holds.
#[test]
fn exact_pass_is_exact_and_deterministic_on_ragged_mc() {
    use InterpolationCode::*;
    let n = 2 * 4096 + 4 * 64 + 3;
    let (shapes, weights) = process(&[Code4, Code4, Code1, Code0, Code4, Code1], n, 21);
    let norm = ProcessNormalisation::new(shapes.clone(), &weights).unwrap();
    let theta = [0.4, -2.2, 1.3, -0.6, 0.95, -0.2];
    let direct = average_shape_factor(&shapes, &weights, &theta);
    let pass = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut out = ShapeIntegral::default();
            norm.exact_pass(&theta, Order::Hessian, &mut out);
            out
        })
    };
    let (one, two) = (pass(1), pass(2));
    assert!(
        (direct / one.value - 1.0).abs() < 1e-12,
        "{direct} vs {}",
        one.value
    );
    assert_eq!(one.value.to_bits(), two.value.to_bits());
    assert_eq!(one.d1, two.d1);
    assert_eq!(one.d2, two.d2);
    // The Hessian is symmetric bit for bit, and evaluate (memo or not) gives the same bits.
    for j in 0..6 {
        for l in 0..6 {
            assert_eq!(one.d2[j * 6 + l].to_bits(), one.d2[l * 6 + j].to_bits());
        }
    }
    for order in [
        Order::Hessian,
        Order::Value,
        Order::Hessian,
        Order::Gradient,
    ] {
        let mut out = ShapeIntegral::default();
        assert_eq!(norm.evaluate(&theta, order, &mut out), Method::ExactPass);
        assert_eq!(out.value.to_bits(), one.value.to_bits(), "{order:?}");
        if order >= Order::Gradient {
            assert_eq!(out.d1, one.d1, "{order:?}");
        } else {
            assert!(
                out.d1.iter().all(|&d| d == 0.0),
                "derivatives not asked for"
            );
        }
    }
}

/// The exact pass's Hessian, whose terms off the diagonal are summed as a product of the
/// gradient's terms u_s u_t / (b g), against the per-event products b Π_{u≠s,t} f_u f'_s f'_t
/// summed directly: K = 10 of mixed codes (both branches of code 4) on a ragged number of MC
/// events with negative weights, and one systematic whose factor is exactly 0 on some events
/// (where b g = 0 the pass takes those quads pair by pair).
#[test]
fn exact_pass_hessian_matches_per_event_products() {
    use InterpolationCode::*;
    let codes = [
        Code4, Code4, Code1, Code0, Code4, Code1, Code4, Code2, Code4, Code4,
    ];
    let n = 4096 + 64 * 4 * 3 + 5;
    let (mut shapes, weights) = process(&codes, n, 33);
    // Code 0 at α = 1 is 1 + (δ⁺ − 1): 0 where δ⁺ = 0.
    let mut u = uniforms(5);
    let up: Vec<f64> = (0..n)
        .map(|i| if i % 97 == 3 { 0.0 } else { 0.8 + 0.4 * u() })
        .collect();
    let down: Vec<f64> = (0..n).map(|_| 0.8 + 0.4 * u()).collect();
    shapes[3].variations = ShapeVariations::from_ratios(&up, &down);
    let theta = [0.4, -0.7, 1.3, 1.0, 1.6, -0.2, -1.4, 0.5, 0.05, 0.9];
    let k = codes.len();
    let norm = ProcessNormalisation::new(shapes.clone(), &weights).unwrap();
    let mut pass = ShapeIntegral::default();
    norm.exact_pass(&theta, Order::Hessian, &mut pass);
    let kernels: Vec<ShapeKernel> = shapes
        .iter()
        .map(|s| ShapeKernel::new(s.code, theta[s.parameter]))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut direct = vec![0.0; k * k];
    let mut zero_factors = 0;
    for (i, b) in weights.iter().enumerate() {
        let f: Vec<_> = (0..k)
            .map(|s| kernels[s].eval(&shapes[s].variations.event(i)))
            .collect();
        zero_factors += usize::from(f.iter().any(|x| x.value == 0.0));
        for s in 0..k {
            for t in 0..k {
                let others: f64 = (0..k)
                    .filter(|&q| q != s && q != t)
                    .map(|q| f[q].value)
                    .product();
                let derivatives = if s == t { f[s].d2 } else { f[s].d1 * f[t].d1 };
                direct[s * k + t] += b / total * others * derivatives;
            }
        }
    }
    assert!(zero_factors > 40, "{zero_factors} events with a factor 0");
    let scale = direct.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for s in 0..k {
        for t in 0..k {
            let (a, b) = (pass.d2[s * k + t], direct[s * k + t]);
            assert!(
                (a - b).abs() <= 1e-12 * scale,
                "d2N/dα{s}dα{t}: pass {a}, per event {b}"
            );
            assert_eq!(a.to_bits(), pass.d2[t * k + s].to_bits());
        }
    }
}
