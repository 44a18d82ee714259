//! Hypothesis tests on the example analysis (`workspace_exact.yaml`), one core:
//! - a 95 % CLs upper limit with its expected band by the asymptotic calculator (the data's
//!   and the Asimov dataset's fits, Brent on each of the six curves), end to end from a loaded
//!   analysis;
//! - the toy calculator's rate (toys under both hypotheses, each with a conditional and a free
//!   fit) against the Neyman construction's toys (`fit_toy`) at the same generation point, in
//!   the same run: the two should fit toys at the same per-core rate.
//!
//! Writes `target/criterion/hypotest_summary.json`.

#[allow(dead_code)]
mod common;

use common::{criterion_mean_seconds, report_summary};
use criterion::{criterion_group, criterion_main, Criterion};
use nsbi::analysis::Dataset;
use nsbi::fit::{minimise, FitOptions};
use nsbi::infer::hypotest::{AsymptoticCalculator, Calculator, TestSettings, ToyCalculator};
use nsbi::infer::limit::{upper_limit, LimitSettings};
use nsbi::infer::test_stat::TestStatistic;
use nsbi::infer::toys::{fit_toy, ToyPlan, ToySource};

/// Toys per hypothesis in one timed toy-calculator test.
const N_TOYS: usize = 100;
const SEED: u64 = 20261202;
/// The tested value: near the observed limit, where a limit's toys are made.
const MU_TEST: f64 = 1.05;

fn settings() -> TestSettings {
    TestSettings {
        poi: 0,
        statistic: TestStatistic::Qtilde,
        signal: 1.0,
        systematics: true,
    }
}

/// The `nsbi limit` default: just above 0 to μ̂ + 5σ̂.
fn limit_settings(range_end: f64) -> LimitSettings {
    LimitSettings {
        cl: 0.95,
        range: (range_end / 84.0, range_end),
        background: 0.0,
        points: 21,
        root_finding: true,
    }
}

fn bench(c: &mut Criterion) {
    let analysis = common::example_analysis();
    analysis.prepare_generation().expect("pools");
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let first = AsymptoticCalculator::new(&analysis, &settings()).unwrap();
    let range_end = first.poi_hat() + 5.0 * first.poi_error().unwrap();
    drop(first);
    let limit = || {
        let mut calc = AsymptoticCalculator::new(&analysis, &settings()).unwrap();
        upper_limit(
            &mut calc,
            "mu",
            TestStatistic::Qtilde,
            &limit_settings(range_end),
        )
        .unwrap()
    };
    let result = single.install(limit);
    let mut group = c.benchmark_group("hypotest");
    group.sample_size(10);
    group.bench_function("asymptotic_limit", |b| b.iter(|| single.install(limit)));

    // The toy calculator at MU_TEST: 2 × N_TOYS toys.
    group.bench_function("toy_calculator_test", |b| {
        b.iter(|| {
            single.install(|| {
                let mut calc = ToyCalculator::new(&analysis, &settings(), N_TOYS, SEED).unwrap();
                calc.test(MU_TEST).unwrap()
            })
        })
    });

    // The Neyman construction's toys at the same generation point: 2 × N_TOYS of them.
    let observed = analysis.likelihood(&Dataset::Observed).unwrap();
    let mut options = FitOptions::new(&observed);
    options.init[0] = MU_TEST;
    options.fixed[0] = true;
    let theta_gen = minimise(&observed, &options).theta;
    let plan = ToyPlan {
        pois: vec![0],
        profiled: vec![],
        grid: nsbi::infer::poi_grid::PoiGrid::line(vec![MU_TEST]),
        n_toys: 2 * N_TOYS,
        seed: SEED,
        systematics: true,
        statistic: TestStatistic::Tmu,
    };
    group.bench_function("neyman_toys", |b| {
        b.iter(|| {
            single.install(|| {
                let source = ToySource::asimov(&analysis, &theta_gen).unwrap();
                (0..plan.n_toys)
                    .map(|t| {
                        let like = source.draw(plan.seed, 0, t, plan.systematics);
                        fit_toy(&like, &plan, &theta_gen, 0, t).t
                    })
                    .sum::<f64>()
            })
        })
    });
    group.finish();

    let seconds = |id: &str| criterion_mean_seconds("hypotest", id).unwrap_or(f64::NAN);
    let (toy_calculator, neyman) = (seconds("toy_calculator_test"), seconds("neyman_toys"));
    let toys = (2 * N_TOYS) as f64;
    let summary = serde_json::json!({
        "asymptotic_limit_seconds": seconds("asymptotic_limit"),
        "limit": {"observed": result.observed, "expected": result.expected,
                   "tested_values": result.scan.len()},
        "toy_calculator_toys_per_second": toys / toy_calculator,
        "neyman_toys_per_second": toys / neyman,
        "toy_calculator_over_neyman_rate": neyman / toy_calculator,
        "threads": 1,
    });
    report_summary("hypotest", &summary);
}

criterion_group!(benches, bench);
criterion_main!(benches);
