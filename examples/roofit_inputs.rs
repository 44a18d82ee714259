//! Inputs of the toys-end-to-end benchmark against RooFit (`make bench-roofit`,
//! `validation/bench_toys_roofit.py`): the example model's toy pool at the generation point
//! `nsbi toys --mu-grid 1:1:1` uses, and a few of that command's own toys with nsbi's fits of
//! them, so that RooFit can draw toys of the same model and be checked on the same toys.
//!
//! Usage: `cargo run --release --example roofit_inputs -- WORKSPACE OUT.h5 SEED N_SHARED`
//! (the ratio cache is the CLI's default, `.nsbi-cache` beside the workspace).
//!
//! Writes, all per-event quantities as the engine stores them (δ± = 1 + the float32 deviation):
//! `theta_gen`, `mu_true`, `nominal_yields`, `yield_factors` (rows process, parameter, δ⁺, δ⁻
//! of every code-4 yield factor), `lower_bounds`, `upper_bounds`, `constrained`, `expected`
//! (ν of the channel at θ_gen, the toys' Poisson mean), B's shape inputs and weights on its own
//! MC (`mc2_shape0_up`, `mc2_shape0_down`, `mc2_weights`: what N_B(α) averages over), the pool
//! (`pool/r0..r2`, `pool/r2_shape0_up`, `pool/r2_shape0_down`, `pool/draw_weight`: the draw
//! weights w'_i of `infer::toys`), and groups `toy_NNNN` with a shared toy's per-event inputs,
//! global observables and nsbi's `t`, `mu_hat`, `converged`.

use std::path::PathBuf;

#[path = "../benches/common/example_model.rs"]
mod example_model;

use nsbi::analysis::Analysis;
use nsbi::channel::unbinned::toys::UnbinnedToys;
use nsbi::data::RatioCache;
use nsbi::infer::construction::observed_profile;
use nsbi::infer::toys::{fit_toy, ToyPlan, ToySource};
use nsbi::workspace::Workspace;

use example_model::{check_model, put, write_events, write_model_inputs};

const MU_TRUE: f64 = 1.0;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workspace, out, seed, n_shared] = &args[..] else {
        panic!("usage: roofit_inputs WORKSPACE OUT.h5 SEED N_SHARED");
    };
    let (seed, n_shared): (u64, usize) = (seed.parse().unwrap(), n_shared.parse().unwrap());
    let ws = Workspace::load(PathBuf::from(workspace)).expect("load the workspace");
    let cache = RatioCache::new(ws.dir().join(".nsbi-cache"));
    let analysis = Analysis::from_workspace(ws, &cache, false).expect("load the analysis");
    check_model(&analysis.model);
    let plan = ToyPlan {
        pois: vec![0],
        profiled: vec![],
        grid: nsbi::infer::poi_grid::PoiGrid::line(vec![MU_TRUE]),
        n_toys: n_shared,
        seed,
        systematics: true,
        statistic: nsbi::infer::test_stat::TestStatistic::Tmu,
    };
    // The generation point of `nsbi toys --mu-grid 1:1:1`: the conditional fit of the data.
    let profile = observed_profile(&analysis, &plan).expect("observed profile");
    let theta_gen = profile.generation_point(0).to_vec();
    let source = ToySource::asimov(&analysis, &theta_gen).expect("toy source");

    let file = hdf5::File::create(out).expect("create the output");
    let model = &analysis.model;
    let (pool, draw_weights) = source.kind_toys::<UnbinnedToys>().unwrap().pool(0);
    write_model_inputs(&file, model, pool, &theta_gen);
    put(&file, "mu_true", &[MU_TRUE]);
    put(&file, "expected", &[pool.weights.iter().sum::<f64>()]);
    let group = file.create_group("pool").unwrap();
    write_events(&group, pool);
    put(&group, "draw_weight", draw_weights);

    for t in 0..n_shared {
        let like = source.draw(seed, 0, t, true);
        let record = fit_toy(&like, &plan, &theta_gen, 0, t);
        let group = file.create_group(&format!("toy_{t:04}")).unwrap();
        write_events(&group, &like.unbinned()[0]);
        put(&group, "global_observables", &like.global_observables);
        put(&group, "nsbi_t", &[record.t]);
        put(&group, "nsbi_mu_hat", &record.poi_hat);
        let converged = record.converged_conditional && record.converged_free;
        put(&group, "nsbi_converged", &[f64::from(u8::from(converged))]);
    }
    println!(
        "wrote {out}: pool of {} events, {n_shared} shared toys",
        pool.weights.len()
    );
}
