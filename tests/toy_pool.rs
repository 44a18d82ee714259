//! The fast toy draw (`infer::toy_pool`) makes the toys the `rand_distr` alias sampler and the
//! column-wise gather made before it: the same indices from the same random numbers, the same
//! per-event inputs bit for bit — so a seed gives the toys it gave before the speed-up.

mod common;

use common::*;
use nsbi::channel::unbinned::toys::UnbinnedToys;
use nsbi::infer::toy_pool::{AliasTable, PoolRows};
use nsbi::infer::toys::ToySource;
use nsbi::likelihood::data::ChannelData;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::weighted::WeightedAliasIndex;
use rand_distr::Distribution;

/// Weights of every kind the pools have: zeros, a few heavy events, many light ones, spread
/// over twelve orders of magnitude.
fn weights(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| match i % 97 {
            0 => 0.0,
            1 => 1e3,
            k => (k as f64 * 0.37).sin().abs() * 10f64.powi(-((i % 13) as i32)),
        })
        .collect()
}

#[test]
fn alias_table_draws_the_indices_of_rand_distrs_sampler() {
    for n in [1, 2, 33, 1000, 100_003] {
        let w = weights(n);
        if w.iter().sum::<f64>() == 0.0 {
            continue;
        }
        let reference = WeightedAliasIndex::new(w.clone()).unwrap();
        let table = AliasTable::new(&w).unwrap();
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(7), ChaCha8Rng::seed_from_u64(7));
        let mut drawn = Vec::new();
        for toy in 0..5 {
            let size = 1 + toy * 997;
            table.draw_into(&mut a, size, &mut drawn);
            let expected: Vec<usize> = (0..size).map(|_| reference.sample(&mut b)).collect();
            assert_eq!(drawn, expected, "n = {n}, toy {toy}");
        }
    }
    assert!(AliasTable::new(&[0.0, 0.0]).is_none());
    assert!(AliasTable::new(&[]).is_none());
    assert!(AliasTable::new(&[1.0, f64::INFINITY]).is_none());
}

fn assert_same_events(fast: &ChannelData, slow: &ChannelData) {
    assert_eq!(fast.weights, slow.weights);
    assert_eq!(fast.name, slow.name);
    assert!(fast.mc_weights.is_none() && slow.mc_weights.is_none());
    for (p, q) in fast.processes.iter().zip(&slow.processes) {
        assert_eq!(p.nominal_yield, q.nominal_yield);
        assert_eq!(p.ratio, q.ratio);
        assert_eq!(p.shapes.len(), q.shapes.len());
        for (s, t) in p.shapes.iter().zip(&q.shapes) {
            assert_eq!((s.parameter, s.code), (t.parameter, t.code));
            assert_eq!(s.variations.len(), t.variations.len());
            for i in 0..s.variations.len() {
                let (x, y) = (s.variations.event(i), t.variations.event(i));
                assert_eq!(x.map(f64::to_bits), y.map(f64::to_bits), "event {i}");
            }
        }
    }
}

/// On the example's pool (three processes, B with a shape systematic): rows gathered at drawn
/// indices, repeats and the pool's first and last events included, give the column-wise
/// selection exactly.
#[test]
fn pool_rows_select_the_events_column_wise_selection_gives() {
    let analysis = example_analysis("workspace_exact.yaml");
    let source = ToySource::asimov(&analysis, &[1.0, 0.2, -0.4]).unwrap();
    let (pool, draw) = source.kind_toys::<UnbinnedToys>().unwrap().pool(0);
    assert_eq!(pool.processes[2].shapes.len(), 1);
    let rows = PoolRows::new(pool);
    let table = AliasTable::new(draw).unwrap();
    let mut indices = Vec::new();
    table.draw_into(&mut ChaCha8Rng::seed_from_u64(3), 2500, &mut indices);
    let last = pool.weights.len() - 1;
    indices.extend([0, last, last, 0, indices[5]]);
    assert_same_events(&rows.select(&indices), &pool.select(&indices));
    assert_same_events(&rows.select(&[]), &pool.select(&[]));
}

/// Rows are a second copy of the pool: kept for narrow rows (the example's is one cache line),
/// not for a pool with many shape systematics per process, whose toys gather the columns.
#[test]
fn rows_are_kept_only_where_they_are_narrow() {
    let analysis = example_analysis("workspace_exact.yaml");
    let source = ToySource::asimov(&analysis, &[1.0, 0.0, 0.0]).unwrap();
    let (pool, _) = source.kind_toys::<UnbinnedToys>().unwrap().pool(0);
    assert!(PoolRows::worth_keeping(pool));
    // B with ten shape systematics: 2 + 4 × 10 words for B alone, three lines with S and SBI.
    let mut wide = pool.select(&[0, 1, 2]);
    let b = wide.processes.len() - 1;
    let shape = wide.processes[b].shapes[0].clone();
    wide.processes[b].shapes = vec![shape; 10];
    assert!(!PoolRows::worth_keeping(&wide));
}
