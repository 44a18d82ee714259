//! Toy fits per second per core for the example analysis (`workspace_exact.yaml`: ~2000-event
//! toys, 3 processes S/SBI/B, 2 nuisance parameters — a yield systematic on every process and a
//! yield + per-event code-4 shape systematic on B, normalised by N_B(α) over B's own MC),
//! against the same toys fitted by iminuit MIGRAD on a vectorised numpy NLL with analytic
//! gradient (`validation/bench_toys_iminuit.py`, its own implementation of N_B), measured in the
//! same run.
//!
//! K toys are drawn at the conditional best fit of the observed data at μ = 1, their per-event
//! inputs (and B's shape inputs and weights on its MC) written to `target/bench-toys.h5` and
//! fitted by both (conditional at μ = 1, then free); t and μ̂ of every toy are checked to agree
//! before anything is timed. Writes `target/criterion/toys_summary.json`.

use std::ffi::OsStr;
use std::path::Path;

mod common;
#[path = "common/example_model.rs"]
mod example_model;

use common::{criterion_mean_seconds, report_summary, root, run_python_baseline};
use criterion::{criterion_group, criterion_main, Criterion};
use example_model::{check_model, put, write_events, write_model_inputs};
use nsbi::analysis::Dataset;
use nsbi::fit::{minimise, FitOptions};
use nsbi::infer::toys::{fit_toy, toy_fits, ToyPlan, ToyRecord, ToySource};
use nsbi::likelihood::{Likelihood, Order};

use nsbi::model::Model;

const N_TOYS: usize = 100;
const SEED: u64 = 20261123;
const MU_TRUE: f64 = 1.0;
/// Agreement required between the engine and iminuit on toys both report converged.
const MAX_DT: f64 = 2e-3;
const MAX_DMU: f64 = 1e-3;

fn write_toys(path: &Path, model: &Model, theta_gen: &[f64], toys: &[Likelihood]) {
    let file = hdf5::File::create(path).unwrap();
    write_model_inputs(&file, model, &toys[0].unbinned()[0], theta_gen);
    put(&file, "mu_true", &[MU_TRUE]);
    for (t, like) in toys.iter().enumerate() {
        let group = file.create_group(&format!("toy_{t:04}")).unwrap();
        let channel = &like.unbinned()[0];
        assert!(channel.weights.iter().all(|&w| w == 1.0));
        write_events(&group, channel);
        put(&group, "global_observables", &like.global_observables);
    }
}

/// Mean evaluations and Newton iterations per toy of the two fits `fit_toy` makes.
fn fit_work(toys: &[Likelihood], plan: &ToyPlan, theta_gen: &[f64]) -> serde_json::Value {
    let (mut evaluations, mut iterations) = (0usize, 0usize);
    for like in toys {
        let (conditional, free) = toy_fits(like, plan, theta_gen);
        evaluations += conditional.n_eval + free.n_eval;
        iterations += conditional.iterations + free.iterations;
    }
    let n = toys.len() as f64;
    serde_json::json!({"evaluations": evaluations as f64 / n, "iterations": iterations as f64 / n})
}

fn bench(c: &mut Criterion) {
    let analysis = common::example_analysis();
    check_model(&analysis.model);
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();

    // Generation point: the conditional best fit of the observed data at μ = 1.
    let observed = analysis.likelihood(&Dataset::Observed).unwrap();
    let mut options = FitOptions::new(&observed);
    options.init[0] = MU_TRUE;
    options.fixed[0] = true;
    let gen_fit = minimise(&observed, &options);
    assert!(gen_fit.converged, "{}", gen_fit.message);
    let theta_gen = gen_fit.theta.clone();

    let source = ToySource::asimov(&analysis, &theta_gen).unwrap();
    let plan = ToyPlan {
        pois: vec![0],
        profiled: vec![],
        grid: nsbi::infer::poi_grid::PoiGrid::line(vec![MU_TRUE]),
        n_toys: N_TOYS,
        seed: SEED,
        systematics: true,
        statistic: nsbi::infer::test_stat::TestStatistic::Tmu,
    };
    let draw_all = || -> Vec<Likelihood> {
        (0..N_TOYS)
            .map(|t| source.draw(plan.seed, 0, t, plan.systematics))
            .collect()
    };
    let fit_all = |toys: &[Likelihood]| -> Vec<ToyRecord> {
        toys.iter()
            .enumerate()
            .map(|(t, like)| fit_toy(like, &plan, &theta_gen, 0, t))
            .collect()
    };
    let toys = draw_all();
    let mean_events = toys
        .iter()
        .map(|l| l.unbinned()[0].weights.len())
        .sum::<usize>() as f64
        / N_TOYS as f64;
    let path = root().join("target/bench-toys.h5");
    write_toys(&path, &analysis.model, &theta_gen, &toys);

    // Correctness first: the same toys fitted by both give the same t and μ̂.
    let records = single.install(|| fit_all(&toys));
    let baseline = run_python_baseline(
        "bench_toys_iminuit.py",
        [OsStr::new("--data"), path.as_os_str()],
        true,
    );
    let (mut max_dt, mut max_dmu, mut compared) = (0.0f64, 0.0f64, 0);
    let mut disagreements = Vec::new();
    let mut not_converged = Vec::new();
    for (t, r) in records.iter().enumerate() {
        let b_t = baseline["t"][t].as_f64().unwrap();
        let b_mu = baseline["mu_hat"][t].as_f64().unwrap();
        let b_ok = baseline["converged"][t].as_bool().unwrap();
        let e_ok = r.converged_conditional && r.converged_free;
        let (dt, dmu) = ((r.t - b_t).abs(), (r.poi_hat[0] - b_mu).abs());
        let entry = serde_json::json!({
            "toy": t, "events": r.n_events, "engine": {"t": r.t, "mu_hat": r.poi_hat[0], "converged": e_ok},
            "iminuit": {"t": b_t, "mu_hat": b_mu, "converged": b_ok,
                        "nll_conditional_minus_engine": baseline["nll_conditional"][t].as_f64().unwrap() - r.nll_conditional,
                        "nll_free_minus_engine": baseline["nll_free"][t].as_f64().unwrap() - r.nll_free},
        });
        if !(e_ok && b_ok) {
            not_converged.push(entry);
            continue;
        }
        compared += 1;
        max_dt = max_dt.max(dt);
        max_dmu = max_dmu.max(dmu);
        if dt >= MAX_DT || dmu >= MAX_DMU {
            disagreements.push(entry);
        }
    }
    if !disagreements.is_empty() || !not_converged.is_empty() {
        eprintln!(
            "disagreements: {}\nnot converged: {}",
            serde_json::to_string_pretty(&disagreements).unwrap(),
            serde_json::to_string_pretty(&not_converged).unwrap()
        );
    }
    assert!(
        disagreements.is_empty(),
        "{} toys where engine and iminuit disagree (|Δt| ≥ {MAX_DT} or |Δμ̂| ≥ {MAX_DMU})",
        disagreements.len()
    );
    assert!(compared * 10 >= N_TOYS * 9, "too few converged toys");

    let mut group = c.benchmark_group("toys");
    group.sample_size(10);
    group.bench_function("toy_fits_1_thread", |b| {
        b.iter(|| single.install(|| fit_all(&toys)))
    });
    group.bench_function("toy_generation_1_thread", |b| {
        b.iter(|| single.install(draw_all))
    });
    // One NLL evaluation of one toy at each order (the fits' Newton steps use the Hessian). A
    // toy is one block of events, evaluated on the calling thread: no pool is involved (and
    // `install` per call would add the pool's wake-up to every evaluation).
    for (id, order) in [
        ("toy_nll_value_1_thread", Order::Value),
        ("toy_nll_gradient_1_thread", Order::Gradient),
        ("toy_nll_hessian_1_thread", Order::Hessian),
    ] {
        group.bench_function(id, |b| b.iter(|| toys[0].evaluate(&theta_gen, order)));
    }
    group.finish();

    let per_toy = |id: &str| criterion_mean_seconds("toys", id).map(|s| N_TOYS as f64 / s);
    let engine_rate = per_toy("toy_fits_1_thread");
    let baseline_rate = baseline["toys_per_s"].as_f64().unwrap();
    let summary = serde_json::json!({
        "toys": N_TOYS, "mean_events_per_toy": mean_events, "processes": 3, "nuisance_parameters": 2,
        "threads": 1, "mu_true": MU_TRUE, "theta_gen": theta_gen,
        "toy_fits_per_s": {"engine": engine_rate, "iminuit_numpy": baseline_rate,
                           "ratio": engine_rate.map(|r| r / baseline_rate)},
        "toy_generation_per_s": {"engine": per_toy("toy_generation_1_thread")},
        "toy_nll_evaluation_seconds": {
            "value": criterion_mean_seconds("toys", "toy_nll_value_1_thread"),
            "gradient": criterion_mean_seconds("toys", "toy_nll_gradient_1_thread"),
            "hessian": criterion_mean_seconds("toys", "toy_nll_hessian_1_thread"),
            "events": toys[0].unbinned()[0].weights.len()},
        "iminuit": {"migrad_calls": baseline["calls"], "tolerance": baseline["tol"],
                    "versions": baseline["versions"]},
        "engine_per_toy": fit_work(&toys, &plan, &theta_gen),
        "agreement": {"compared_toys": compared, "max_abs_dt": max_dt, "max_abs_dmu_hat": max_dmu,
                      "not_converged": not_converged},
    });
    report_summary("toys", &summary);
}

criterion_group!(benches, bench);
criterion_main!(benches);
