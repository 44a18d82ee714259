//! How the cost of one NLL evaluation scales (issue 13), one thread:
//! - the fixed cost per evaluation (Hessian order, 64 events) against the number of
//!   parameters, 3 processes each with a yield systematic on every nuisance parameter (and a
//!   second factor on every fourth: parameters shared by several factors);
//! - the cost per event (value and Hessian order, 3 processes × 10⁵ events) against the
//!   number K of shape systematics per process, all code 4 inside |α| < 1, and mixed
//!   (code 4 inside and the exponential beyond |α| = 1 in one process).
//!
//! Writes `target/criterion/scale_summary.json` (µs per evaluation, ns per event).

// The benches' shared helpers; this bench runs no Python baseline.
#[allow(dead_code)]
mod common;

use common::{criterion_mean_seconds, report_summary};
use criterion::{criterion_group, criterion_main, Criterion};
use nsbi::likelihood::data::ShapeData;
use nsbi::likelihood::{ChannelData, Likelihood, Order, ProcessData};
use nsbi::model::interpolation::{InterpolationCode, ShapeVariations, Variation};
use nsbi::model::{
    Channel, Coefficient, Model, Parameter, Process, ShapeSystematic, YieldSystematic,
};
use nsbi::workspace::expr::Expr;

const PARAMETERS: [usize; 4] = [3, 20, 100, 200];
const EVENTS: usize = 100_000;
/// (label, K, whether half the α lie beyond |α| = 1).
const SHAPES: [(&str, usize, bool); 6] = [
    ("k2", 2, false),
    ("k3", 3, false),
    ("k4", 4, false),
    ("k10", 10, false),
    ("k3_mixed", 3, true),
    ("k10_mixed", 10, true),
];

/// Deterministic pseudo-random numbers in (0, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

fn parameter(name: String, poi: bool) -> Parameter {
    Parameter {
        name,
        poi,
        init: if poi { 1.0 } else { 0.0 },
        bounds: (if poi { 0.0 } else { -5.0 }, 5.0),
        constrained: !poi,
        fixed: false,
    }
}

/// μ and `n − 1` nuisance parameters; 3 processes (coefficients μ, 1, 1) with a yield factor
/// on every nuisance (two on every fourth) and `k` code-4 shape systematics on α_1…α_k.
fn model(n: usize, k: usize) -> Model {
    let names: Vec<String> = std::iter::once("mu".to_string())
        .chain((1..n).map(|j| format!("alpha_{j}")))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let parameters = names
        .iter()
        .enumerate()
        .map(|(j, name)| parameter(name.clone(), j == 0))
        .collect();
    let processes = ["mu", "1", "1"]
        .iter()
        .enumerate()
        .map(|(c, text)| Process {
            name: format!("p{c}"),
            coefficient: Coefficient::new(text, Expr::parse(text, &refs).unwrap()),
            nominal_yield: Some(1000.0 * (c + 1) as f64),
            ratio: format!("p{c}"),
            yield_systematics: (1..n)
                .chain((1..n).step_by(4))
                .map(|j| YieldSystematic {
                    parameter: j,
                    variation: Variation::new(InterpolationCode::Code4, 1.03, 0.98, 1.0),
                })
                .collect(),
            shape_systematics: (1..=k)
                .map(|j| ShapeSystematic {
                    parameter: j,
                    code: InterpolationCode::Code4,
                    up: String::new(),
                    down: String::new(),
                })
                .collect(),
        })
        .collect();
    Model::unbinned(
        parameters,
        vec![Channel {
            name: "bench".into(),
            processes,
        }],
    )
}

fn data(events: usize, k: usize) -> ChannelData {
    let mut rng = Lcg(20261201);
    let processes = (0..3)
        .map(|c| ProcessData {
            nominal_yield: 1000.0 * (c + 1) as f64,
            ratio: (0..events).map(|_| 0.2 + 1.6 * rng.next()).collect(),
            shapes: (1..=k)
                .map(|j| {
                    let up: Vec<f64> = (0..events).map(|_| 1.0 + 0.1 * rng.next()).collect();
                    let down: Vec<f64> = (0..events).map(|_| 1.0 - 0.1 * rng.next()).collect();
                    ShapeData {
                        parameter: j,
                        code: InterpolationCode::Code4,
                        variations: ShapeVariations::from_ratios(&up, &down),
                    }
                })
                .collect(),
        })
        .collect();
    ChannelData {
        name: "bench".into(),
        weights: (0..events).map(|_| rng.next()).collect(),
        processes,
        mc_weights: None,
        // N ≡ 1: this bench measures the event loop alone.
        normalisation: Default::default(),
    }
}

/// μ = 1.1 and the α in (−0.8, 0.8); with `mixed`, every other α at ±1.3 (the exponential).
fn point(n: usize, mixed: bool) -> Vec<f64> {
    (0..n)
        .map(|j| match j {
            0 => 1.1,
            j if mixed && j % 2 == 0 => 1.3 * if j % 4 == 0 { 1.0 } else { -1.0 },
            j => 0.8 * ((j as f64) * 0.7).sin(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("scale");
    group.sample_size(10);
    for n in PARAMETERS {
        let model = model(n, 0);
        let like = Likelihood::new(&model, vec![data(64, 0)]).unwrap();
        let theta = point(n, false);
        group.bench_function(format!("fixed_cost_{n}_parameters"), |b| {
            b.iter(|| single.install(|| like.evaluate(&theta, Order::Hessian)))
        });
    }
    for (label, k, mixed) in SHAPES {
        let n = 1 + k;
        let model = model(n, k);
        let like = Likelihood::new(&model, vec![data(EVENTS, k)]).unwrap();
        let theta = point(n, mixed);
        for (order, name) in [(Order::Value, "value"), (Order::Hessian, "hessian")] {
            group.bench_function(format!("events_{label}_{name}"), |b| {
                b.iter(|| single.install(|| like.evaluate(&theta, order)))
            });
        }
    }
    group.finish();
    let seconds = |id: &str| criterion_mean_seconds("scale", id);
    let mut summary = serde_json::Map::new();
    for n in PARAMETERS {
        let id = format!("fixed_cost_{n}_parameters");
        summary.insert(id.clone(), serde_json::json!(seconds(&id).map(|s| s * 1e6)));
    }
    for (label, ..) in SHAPES {
        for name in ["value", "hessian"] {
            let id = format!("events_{label}_{name}");
            let ns = seconds(&id).map(|s| s * 1e9 / EVENTS as f64);
            summary.insert(format!("{id}_ns_per_event"), serde_json::json!(ns));
        }
    }
    report_summary("scale", &serde_json::Value::Object(summary));
}

criterion_group!(benches, bench);
criterion_main!(benches);
