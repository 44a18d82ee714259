//! The cost of one posterior gradient at 19 parameters against one forward pass (issue 18), on
//! a network the size of seed 000's pMSSM NRE (sbi's residual classifier, 200 features, 20
//! blocks, 1.6 M weights; `validation/make_bench_nre19.py` writes it with random weights into
//! `target/bench-data/`). One thread, one member, one observation.
//!
//! - `forward`: ln r at one θ, one network call of one row;
//! - `gradient`: ln p(θ) and its gradient, the central differences of
//!   [`nsbi::bayes::amortised`]: one batched call of 1 + 2·19 = 39 rows;
//! - `gradient_unbatched`: the same 39 rows as 39 one-row calls (what batching saves).
//!
//! Writes the ratios to `target/criterion/posterior_gradient_summary.json`.

mod common;

use common::{criterion_mean_seconds, report_summary, root, run_python_baseline};
use criterion::{criterion_group, criterion_main, Criterion};
use nsbi::bayes::amortised::AmortisedPosterior;
use nsbi::bayes::workspace::PosteriorWorkspace;
use nsbi::bayes::LogDensity;

const GROUP: &str = "posterior_gradient";

fn load() -> (AmortisedPosterior, serde_json::Value) {
    let out = root().join("target/bench-data");
    let made = run_python_baseline(
        "make_bench_nre19.py",
        ["--out".into(), out.into_os_string()],
        true,
    );
    let ws = PosteriorWorkspace::load(made["workspace"].as_str().unwrap().as_ref()).unwrap();
    let posterior = ws.posterior(ws.observations(None).unwrap()).unwrap();
    (posterior, made)
}

fn bench(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (posterior, made) = pool.install(load);
    let dim = posterior.dim();
    let theta: Vec<f64> = (0..dim)
        .map(|i| 0.9 * (i as f64 / dim as f64) - 0.45)
        .collect();
    let centre: Vec<f32> = theta.iter().map(|&t| t as f32).collect();
    let rows: Vec<Vec<f32>> = (0..1 + 2 * dim)
        .map(|k| {
            let mut t = centre.clone();
            if k > 0 {
                t[(k - 1) / 2] += if k % 2 == 1 { 0.004 } else { -0.004 };
            }
            t
        })
        .collect();
    let mut group = c.benchmark_group(GROUP);
    group.bench_function("forward", |b| {
        b.iter(|| pool.install(|| posterior.log_model(std::slice::from_ref(&centre)).unwrap()))
    });
    let mut grad = vec![0.0; dim];
    group.bench_function("gradient", |b| {
        b.iter(|| pool.install(|| posterior.logp_and_grad(&theta, &mut grad).unwrap()))
    });
    group.bench_function("gradient_unbatched", |b| {
        b.iter(|| {
            pool.install(|| {
                rows.iter()
                    .map(|r| posterior.log_model(std::slice::from_ref(r)).unwrap()[0])
                    .sum::<f64>()
            })
        })
    });
    group.finish();

    let time = |id: &str| criterion_mean_seconds(GROUP, id);
    if let (Some(forward), Some(gradient), Some(unbatched)) = (
        time("forward"),
        time("gradient"),
        time("gradient_unbatched"),
    ) {
        report_summary(
            GROUP,
            &serde_json::json!({
                "model": made,
                "rows_per_gradient": 1 + 2 * dim,
                "forward_s": forward,
                "gradient_s": gradient,
                "gradient_unbatched_s": unbatched,
                "gradient_over_forward": gradient / forward,
                "unbatched_over_batched": unbatched / gradient,
            }),
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
