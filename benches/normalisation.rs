//! The exact normalisation pass N_c(α) = Σ b g_c / Σ b over a process's MC (issue 13), one
//! thread, 10⁵ MC events: ns per event for value, gradient and Hessian against the number K of
//! shape systematics (code 4 inside |α| < 1, and mixed with the exponential beyond), and, as
//! the same run's baseline, the value by the likelihood's per-event shape factors
//! (`ProcessData::shape_factors`, then a weighted sum).
//!
//! Writes `target/criterion/normalisation_summary.json`.

// The benches' shared helpers; this bench runs no Python baseline.
#[allow(dead_code)]
mod common;

use common::{criterion_mean_seconds, report_summary};
use criterion::{criterion_group, criterion_main, Criterion};
use nsbi::likelihood::data::ShapeData;
use nsbi::likelihood::normalisation::{ProcessNormalisation, ShapeIntegral};
use nsbi::likelihood::{Order, ProcessData};
use nsbi::model::interpolation::{InterpolationCode, ShapeVariations};

const EVENTS: usize = 100_000;
/// (label, K, whether half the α lie beyond |α| = 1).
const SHAPES: [(&str, usize, bool); 4] = [
    ("k3", 3, false),
    ("k10", 10, false),
    ("k3_mixed", 3, true),
    ("k10_mixed", 10, true),
];
const ORDERS: [(Order, &str); 3] = [
    (Order::Value, "value"),
    (Order::Gradient, "gradient"),
    (Order::Hessian, "hessian"),
];

/// K code-4 shape systematics on parameters 0..K with ±1σ ratios within ±25 %, and positive
/// generator weights.
fn process(k: usize) -> (Vec<ShapeData>, Vec<f64>) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut u = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let shapes = (0..k)
        .map(|j| {
            let up: Vec<f64> = (0..EVENTS).map(|_| 0.75 + 0.5 * u()).collect();
            let down: Vec<f64> = (0..EVENTS).map(|_| 0.75 + 0.5 * u()).collect();
            ShapeData {
                parameter: j,
                code: InterpolationCode::Code4,
                variations: ShapeVariations::from_ratios(&up, &down),
            }
        })
        .collect();
    let weights = (0..EVENTS).map(|_| 0.5 + u()).collect();
    (shapes, weights)
}

fn point(k: usize, mixed: bool) -> Vec<f64> {
    (0..k)
        .map(|j| match j {
            j if mixed && j % 2 == 0 => 1.3 * if j % 4 == 0 { 1.0 } else { -1.0 },
            j => 0.8 * ((j as f64 + 1.0) * 0.7).sin(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("normalisation");
    group.sample_size(10);
    for (label, k, mixed) in SHAPES {
        let (shapes, weights) = process(k);
        let norm = ProcessNormalisation::new(shapes.clone(), &weights).unwrap();
        let theta = point(k, mixed);
        for (order, name) in ORDERS {
            group.bench_function(format!("exact_pass_{label}_{name}"), |b| {
                let mut out = ShapeIntegral::default();
                b.iter(|| single.install(|| norm.exact_pass(&theta, order, &mut out)))
            });
        }
        let data = ProcessData {
            nominal_yield: 1.0,
            ratio: vec![1.0; EVENTS],
            shapes,
        };
        group.bench_function(format!("per_event_factors_{label}_value"), |b| {
            b.iter(|| {
                let g = data.shape_factors(&theta);
                weights.iter().zip(&g).map(|(b, g)| b * g).sum::<f64>()
            })
        });
    }
    group.finish();
    let ns =
        |id: &str| criterion_mean_seconds("normalisation", id).map(|s| s * 1e9 / EVENTS as f64);
    let mut summary = serde_json::Map::new();
    for (label, ..) in SHAPES {
        for (_, name) in ORDERS {
            let id = format!("exact_pass_{label}_{name}");
            summary.insert(format!("{id}_ns_per_event"), serde_json::json!(ns(&id)));
        }
        let id = format!("per_event_factors_{label}_value");
        summary.insert(format!("{id}_ns_per_event"), serde_json::json!(ns(&id)));
    }
    report_summary("normalisation", &serde_json::Value::Object(summary));
}

criterion_group!(benches, bench);
criterion_main!(benches);
