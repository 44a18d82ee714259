//! NLL + gradient throughput and a full profile fit for 10⁶ events × 3 processes × 2 shape
//! systematics (code 4, on every process), one core, against a vectorised numpy
//! implementation of the same likelihood (`validation/bench_nll_numpy.py`) on the same events,
//! measured in the same run. The numpy NLL and gradient are also checked against the engine's.
//! Writes `target/criterion/nll_summary.json`.

use std::ffi::OsStr;
use std::path::PathBuf;

mod common;

use common::{criterion_mean_seconds, report_summary, root, run_python_baseline};
use criterion::{criterion_group, criterion_main, Criterion};
use nsbi::fit::{minimise, FitOptions};
use nsbi::likelihood::data::ShapeData;
use nsbi::likelihood::{ChannelData, Likelihood, Order, ProcessData};
use nsbi::model::interpolation::{InterpolationCode, ShapeVariations};
use nsbi::model::{Channel, Coefficient, Model, Parameter, Process, ShapeSystematic};
use nsbi::workspace::expr::Expr;

const N_EVENTS: usize = 1_000_000;
const NU0: [f64; 3] = [1.0e5, 6.0e5, 3.0e5];
const POINT: [f64; 3] = [1.1, 0.3, -0.4];

/// Deterministic pseudo-random numbers in (0, 1) (a 64-bit LCG; quality is irrelevant here).
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

fn model() -> Model {
    let names = ["mu", "alpha_0", "alpha_1"];
    let parameters = vec![
        Parameter {
            name: "mu".into(),
            poi: true,
            init: 1.0,
            bounds: (0.0, 20.0),
            constrained: false,
            fixed: false,
        },
        Parameter {
            name: "alpha_0".into(),
            poi: false,
            init: 0.0,
            bounds: (-5.0, 5.0),
            constrained: true,
            fixed: false,
        },
        Parameter {
            name: "alpha_1".into(),
            poi: false,
            init: 0.0,
            bounds: (-5.0, 5.0),
            constrained: true,
            fixed: false,
        },
    ];
    let processes = ["mu", "1", "1"]
        .iter()
        .enumerate()
        .map(|(c, text)| Process {
            name: format!("p{c}"),
            coefficient: Coefficient::new(text, Expr::parse(text, &names).unwrap()),
            nominal_yield: Some(NU0[c]),
            ratio: format!("p{c}"),
            yield_systematics: vec![],
            shape_systematics: (0..2)
                .map(|k| ShapeSystematic {
                    parameter: 1 + k,
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

/// Events and their ratios; also written to HDF5 for the numpy baseline.
fn data(path: &PathBuf) -> ChannelData {
    let mut rng = Lcg(20261123);
    let file = hdf5::File::create(path).unwrap();
    let weights = vec![1.0; N_EVENTS];
    let mut processes = Vec::new();
    for (c, &nu0) in NU0.iter().enumerate() {
        let ratio: Vec<f64> = (0..N_EVENTS).map(|_| 0.2 + 1.6 * rng.next()).collect();
        file.new_dataset_builder()
            .with_data(ratio.as_slice())
            .create(format!("r{c}").as_str())
            .unwrap();
        let mut shapes = Vec::new();
        for k in 0..2 {
            let up: Vec<f64> = (0..N_EVENTS)
                .map(|_| 1.0 + 0.2 * (rng.next() - 0.3))
                .collect();
            let down: Vec<f64> = (0..N_EVENTS)
                .map(|_| 1.0 - 0.2 * (rng.next() - 0.3))
                .collect();
            file.new_dataset_builder()
                .with_data(up.as_slice())
                .create(format!("r{c}_{k}_up").as_str())
                .unwrap();
            file.new_dataset_builder()
                .with_data(down.as_slice())
                .create(format!("r{c}_{k}_down").as_str())
                .unwrap();
            let variations = ShapeVariations::from_ratios(&up, &down);
            shapes.push(ShapeData {
                parameter: 1 + k,
                code: InterpolationCode::Code4,
                variations,
            });
        }
        processes.push(ProcessData {
            nominal_yield: nu0,
            ratio,
            shapes,
        });
    }
    file.new_dataset_builder()
        .with_data(weights.as_slice())
        .create("weight")
        .unwrap();
    file.new_dataset_builder()
        .with_data(&NU0[..])
        .create("nu0")
        .unwrap();
    file.new_dataset_builder()
        .with_data(&POINT[..])
        .create("point")
        .unwrap();
    ChannelData {
        name: "bench".into(),
        weights,
        processes,
        mc_weights: None,
        normalisation: Default::default(),
    }
}

fn bench(c: &mut Criterion) {
    let path = root().join("target/bench-nll-events.h5");
    let model = model();
    let like = Likelihood::new(&model, vec![data(&path)]).unwrap();
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();

    // Correctness first: the numpy implementation and the engine agree at the bench point.
    let numpy = run_python_baseline(
        "bench_nll_numpy.py",
        [OsStr::new("--data"), path.as_os_str()],
        true,
    );
    let engine = single.install(|| like.evaluate(&POINT, Order::Gradient));
    let np_nll = numpy["nll"].as_f64().unwrap();
    assert!(
        (engine.nll - np_nll).abs() < 1e-9 * np_nll.abs(),
        "engine {} vs numpy {np_nll}",
        engine.nll
    );
    for (k, g) in engine.gradient.iter().enumerate() {
        let ng = numpy["gradient"][k].as_f64().unwrap();
        assert!(
            (g - ng).abs() < 1e-6 * (1.0 + ng.abs()),
            "gradient {k}: engine {g} vs numpy {ng}"
        );
    }

    let mut group = c.benchmark_group("nll");
    group.sample_size(10);
    group.bench_function("nll_value_1_thread", |b| {
        b.iter(|| single.install(|| like.evaluate(&POINT, Order::Value)))
    });
    group.bench_function("nll_gradient_1_thread", |b| {
        b.iter(|| single.install(|| like.evaluate(&POINT, Order::Gradient)))
    });
    group.bench_function("nll_gradient_hessian_1_thread", |b| {
        b.iter(|| single.install(|| like.evaluate(&POINT, Order::Hessian)))
    });
    group.bench_function("profile_fit_1_thread", |b| {
        b.iter(|| single.install(|| minimise(&like, &FitOptions::new(&like))))
    });
    group.finish();

    let fit = single.install(|| minimise(&like, &FitOptions::new(&like)));
    let per_s = |id: &str| criterion_mean_seconds("nll", id).map(|s| 1.0 / s);
    let numpy_rate = numpy["evals_per_s"].as_f64().unwrap();
    let engine_rate = per_s("nll_gradient_1_thread");
    let fit_seconds = criterion_mean_seconds("nll", "profile_fit_1_thread");
    let numpy_fit = numpy["fit_seconds"].as_f64().unwrap();
    let summary = serde_json::json!({
        "events": N_EVENTS, "processes": 3, "shape_systematics": 2, "threads": 1,
        "nll_gradient_evals_per_s": {"engine": engine_rate, "numpy": numpy_rate, "ratio": engine_rate.map(|r| r / numpy_rate)},
        "nll_gradient_hessian_evals_per_s": {"engine": per_s("nll_gradient_hessian_1_thread")},
        "profile_fit_seconds": {"engine": fit_seconds, "engine_evaluations": fit.n_eval, "numpy_scipy_lbfgsb": numpy_fit,
                                "numpy_evaluations": numpy["fit_nfev"], "ratio": fit_seconds.map(|s| numpy_fit / s)},
        "fit_mu": {"engine": fit.theta[0], "numpy_scipy": numpy["fit_x"][0]},
    });
    report_summary("nll", &summary);
}

criterion_group!(benches, bench);
criterion_main!(benches);
