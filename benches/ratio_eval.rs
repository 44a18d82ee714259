//! Ratio evaluation throughput (events/s) for the example's trained ensemble (5 MLP members,
//! standardised inputs, `score` convention, `mean_ratio`), against the ONNX Runtime Python API
//! on the same models and events, measured in the same run by
//! `validation/bench_ratio_python.py`. Reports both, single-threaded and on all cores, and
//! writes the comparison to `target/criterion/ratio_eval_summary.json`.

use std::path::PathBuf;

mod common;

use common::{criterion_mean_seconds, report_summary, root, run_python_baseline};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nsbi::data::Events;
use nsbi::ratio::{OutputSpec, RatioEnsemble, Standardisation};
use nsbi::workspace::schema::{Aggregation, OutputConvention};

const N_EVENTS: usize = 20_000;

fn features() -> Vec<String> {
    ["m4l", "cos_theta1", "cos_theta2"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn models() -> Vec<PathBuf> {
    (0..5)
        .map(|i| root().join(format!("workspaces/offshell_toy/models/S/member_{i}.onnx")))
        .collect()
}

fn standardisation_path() -> PathBuf {
    root().join("workspaces/offshell_toy/models/S/standardisation.json")
}

fn events_path() -> PathBuf {
    root().join("workspaces/offshell_toy/data/mc_S.h5")
}

fn load_ensemble() -> RatioEnsemble {
    let spec = OutputSpec {
        name: Some("probabilities".into()),
        column: 1,
        convention: OutputConvention::Score,
        aggregation: Aggregation::MeanRatio,
    };
    let standardisation = Standardisation::read(&standardisation_path(), &features()).unwrap();
    RatioEnsemble::load("S", &models(), spec, Some(standardisation), 3).unwrap()
}

/// events/s of the Python baseline with `threads` ORT intra-op threads (0 = all cores).
fn python_baseline(threads: usize) -> f64 {
    let mut args: Vec<std::ffi::OsString> = vec!["--models".into()];
    args.extend(models().into_iter().map(Into::into));
    args.extend([
        "--standardisation".into(),
        standardisation_path().into(),
        "--events".into(),
        events_path().into(),
        "--n".into(),
        N_EVENTS.to_string().into(),
        "--threads".into(),
        threads.to_string().into(),
    ]);
    let report = run_python_baseline("bench_ratio_python.py", args, false);
    report["events_per_s"].as_f64().unwrap()
}

fn bench(c: &mut Criterion) {
    let events = Events::read(&events_path(), "events", &features(), Some("weight"))
        .unwrap()
        .head(N_EVENTS);
    let threads_all = rayon::current_num_threads();
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();

    let mut group = c.benchmark_group("ratio_eval");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    let ensemble_1 = single.install(load_ensemble);
    group.bench_function("rust_1_thread", |b| {
        b.iter(|| single.install(|| ensemble_1.evaluate(&events, None).unwrap()))
    });
    let ensemble_all = load_ensemble();
    group.bench_function("rust_all_threads", |b| {
        b.iter(|| ensemble_all.evaluate(&events, None).unwrap())
    });
    group.finish();

    let python_1 = python_baseline(1);
    let python_all = python_baseline(0);
    let rate = |id: &str| criterion_mean_seconds("ratio_eval", id).map(|s| events.len() as f64 / s);
    let (rust_1, rust_all) = (rate("rust_1_thread"), rate("rust_all_threads"));
    let summary = serde_json::json!({
        "ensemble": "offshell_toy S (5 MLP members)",
        "n_events": events.len(),
        "threads_all": threads_all,
        "events_per_s": {
            "rust_1_thread": rust_1, "python_onnxruntime_1_thread": python_1,
            "rust_all_threads": rust_all, "python_onnxruntime_all_threads": python_all,
        },
        "speedup_vs_python": {
            "1_thread": rust_1.map(|r| r / python_1),
            "all_threads": rust_all.map(|r| r / python_all),
        }
    });
    report_summary("ratio_eval", &summary);
}

criterion_group!(benches, bench);
criterion_main!(benches);
