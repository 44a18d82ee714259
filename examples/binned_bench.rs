//! nsbi's side of the binned benchmark against pyhf (`make bench-pyhf`,
//! `validation/bench_pyhf.py`, which runs this in the same session as pyhf and prints the
//! ratios).
//!
//! Usage: `cargo run --release --example binned_bench -- WORKSPACE.json TOYS SEED`
//!
//! On one thread: the time of one NLL value, value + gradient, and value + gradient + Hessian
//! evaluation at the model's inits (`BinnedModel::evaluate_into`, buffers reused); the full
//! MLE fit of the observed data (`binned::fit`, Hessian errors included) with its Newton
//! iterations and NLL evaluations; and TOYS toys drawn at the inits
//! (`BinnedModel::sample_into`, ChaCha8 seeded by SEED) each fitted from the inits.
//!
//! The same again through the path `nsbi fit` and `nsbi toys` take (`general`): the workspace
//! loaded as an [`Analysis`], its general [`Likelihood`] over every channel kind
//! (`Likelihood::evaluate_into`), the fit as `nsbi fit --no-minos` makes it
//! (`fit_with_intervals`: Newton, Hessian errors), toys from [`ToySource`] (the model's toy
//! streams, global observables fluctuated) each fitted with the same options from the inits.
//! Each time is the median over repeats. Prints one JSON object with the best fit by parameter
//! name.

use std::path::PathBuf;
use std::time::Instant;

use nsbi::analysis::{fit_with_intervals, Analysis, Dataset};
use nsbi::binned::fit::fit;
use nsbi::binned::nll::{NllDerivatives, Order};
use nsbi::binned::{read_binned_workspace, BinnedData, BinnedModel};
use nsbi::fit::minimise;
use nsbi::infer::toys::ToySource;
use nsbi::likelihood::{Evaluation, Likelihood};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// Seconds per call of `f`: the median over batches, each batch about 0.2 s long.
fn seconds_per_call(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    f();
    let once = start.elapsed().as_secs_f64().max(1e-7);
    let per_batch = ((0.2 / once) as usize).clamp(1, 100_000);
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            start.elapsed().as_secs_f64() / per_batch as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn evaluation_seconds(model: &BinnedModel, x: &[f64], order: Order) -> f64 {
    let mut out = NllDerivatives::default();
    seconds_per_call(|| {
        model
            .evaluate_into(x, &model.observed, order, &mut out)
            .expect("NLL at the inits");
    })
}

fn general_evaluation_seconds(like: &Likelihood, x: &[f64], order: Order) -> f64 {
    let mut out = Evaluation::default();
    seconds_per_call(|| like.evaluate_into(x, order, &mut out))
}

/// The general likelihood's side: NLL evaluations, the fit of `nsbi fit --no-minos`, and
/// `toys` toys from the model's toy source at the inits, each fitted with the fit's options.
fn general(workspace: &str, toys: usize, seed: u64) -> serde_json::Value {
    let cache = std::env::temp_dir().join("nsbi-binned-bench-cache");
    let analysis = Analysis::open(&PathBuf::from(workspace), Some(cache), false).expect("analysis");
    let like = analysis.likelihood(&Dataset::Observed).expect("likelihood");
    let options = analysis.fit_options(&like, None, None).expect("options");
    let init = options.init.clone();
    let value = general_evaluation_seconds(&like, &init, Order::Value);
    let gradient = general_evaluation_seconds(&like, &init, Order::Gradient);
    let hessian = general_evaluation_seconds(&like, &init, Order::Hessian);
    let best = fit_with_intervals(&like, &options, false).result;
    let fit_seconds = seconds_per_call(|| {
        fit_with_intervals(&like, &options, false);
    });
    let source = ToySource::asimov(&analysis, &init).expect("toys at the inits");
    let (mut failed, mut evaluations) = (0, [0usize; 3]);
    let start = Instant::now();
    for t in 0..toys {
        let toy = source.draw(seed, 0, t, true);
        let fit = minimise(&toy, &options);
        if !fit.converged {
            failed += 1;
        }
        let counts = fit.evaluations;
        for (total, n) in
            evaluations
                .iter_mut()
                .zip([counts.value, counts.gradient, counts.hessian])
        {
            *total += n;
        }
    }
    let toys_seconds = start.elapsed().as_secs_f64();
    let per_toy = |n: usize| n as f64 / toys.max(1) as f64;
    json!({
        "nll_value_seconds": value,
        "nll_gradient_seconds": gradient,
        "nll_hessian_seconds": hessian,
        "fit": {
            "seconds": fit_seconds,
            "converged": best.converged,
            "iterations": best.iterations,
            "value_evaluations": best.evaluations.value,
            "gradient_evaluations": best.evaluations.gradient,
            "hessian_evaluations": best.evaluations.hessian,
            "nll": best.nll,
        },
        "toys": {
            "count": toys,
            "seconds_per_toy": toys_seconds / toys.max(1) as f64,
            "failed": failed,
            "mean_value_evaluations": per_toy(evaluations[0]),
            "mean_gradient_evaluations": per_toy(evaluations[1]),
            "mean_hessian_evaluations": per_toy(evaluations[2]),
        },
    })
}

fn by_name(model: &BinnedModel, values: &[f64]) -> serde_json::Value {
    model
        .parameters
        .iter()
        .zip(values)
        .map(|(p, v)| (p.name.clone(), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workspace, toys, seed] = &args[..] else {
        panic!("usage: binned_bench WORKSPACE.json TOYS SEED");
    };
    let (toys, seed): (usize, u64) = (toys.parse().unwrap(), seed.parse().unwrap());
    let (_, model) = read_binned_workspace(&PathBuf::from(workspace), None).expect("workspace");
    let init = model.inits();

    let value = evaluation_seconds(&model, &init, Order::Value);
    let gradient = evaluation_seconds(&model, &init, Order::Gradient);
    let hessian = evaluation_seconds(&model, &init, Order::Hessian);

    let best = fit(&model, &model.observed, &init).expect("observed fit");
    let fit_seconds = seconds_per_call(|| {
        fit(&model, &model.observed, &init).expect("observed fit");
    });

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut toy = BinnedData {
        counts: Vec::new(),
        auxdata: Vec::new(),
    };
    let (mut sample_seconds, mut fit_total, mut failed, mut iterations) = (0.0, 0.0, 0, 0);
    let start = Instant::now();
    for _ in 0..toys {
        let t0 = Instant::now();
        model
            .sample_into(&init, &mut rng, &mut toy)
            .expect("toy at the inits");
        sample_seconds += t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        match fit(&model, &toy, &init) {
            Ok(f) => iterations += f.iterations,
            Err(_) => failed += 1,
        }
        fit_total += t1.elapsed().as_secs_f64();
    }
    let toys_seconds = start.elapsed().as_secs_f64();

    let general = general(workspace, toys, seed);

    let report = json!({
        "parameters": model.parameters.len(),
        "bins": model.channels.iter().map(|c| c.n_bins).sum::<usize>(),
        "channels": model.channels.len(),
        "nll_value_seconds": value,
        "nll_gradient_seconds": gradient,
        "nll_hessian_seconds": hessian,
        "fit": {
            "seconds": fit_seconds,
            "iterations": best.iterations,
            "value_evaluations": best.value_evaluations,
            "hessian_evaluations": best.hessian_evaluations,
            "nll": best.nll,
            "parameters": by_name(&model, &best.parameters),
            "errors": by_name(&model, &best.errors),
        },
        "toys": {
            "count": toys,
            "seconds_per_toy": toys_seconds / toys.max(1) as f64,
            "sample_seconds_per_toy": sample_seconds / toys.max(1) as f64,
            "fit_seconds_per_toy": fit_total / toys.max(1) as f64,
            "failed": failed,
            "mean_iterations": iterations as f64 / (toys - failed).max(1) as f64,
        },
        "general": general,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
