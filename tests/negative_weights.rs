//! Bootstrap toys from MC with negative generator weights (NLO samples): the weights are cell
//! resampled to non-negative ones (src/infer/resample.rs), the toys' mean histograms and fits
//! are unbiased against the signed-weight Asimov set, the same whatever the thread count, and
//! samples that cannot be resampled are refused by process and file.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use nsbi::analysis::Analysis;
use nsbi::fit::{minimise, FitOptions};
use nsbi::infer::toys::{fit_toy, ToyPlan, ToySource};
use nsbi::likelihood::{data, ChannelData, Likelihood};

const PROCESSES: [&str; 3] = ["S", "SBI", "B"];
const THETA: [f64; 3] = [1.0, 0.0, 0.0];

/// Copies example MC file `mc_{process}.h5` to `dir` with its weights `w` remade as an NLO
/// sample's, by `weights(w, m4l)`.
fn reweighted_copy(
    dir: &Path,
    process: &str,
    weights: impl Fn(&[f64], &[f64]) -> Vec<f64>,
) -> PathBuf {
    let source = hdf5::File::open(example().join(format!("data/mc_{process}.h5"))).unwrap();
    let events = source.group("events").unwrap();
    let column = |name: &str| events.dataset(name).unwrap().read_raw::<f64>().unwrap();
    let path = dir.join(format!("mc_{process}.h5"));
    let file = hdf5::File::create(&path).unwrap();
    let group = file.create_group("events").unwrap();
    for name in ["m4l", "cos_theta1", "cos_theta2"] {
        let data = column(name);
        group
            .new_dataset_builder()
            .with_data(&data)
            .create(name)
            .unwrap();
    }
    let w = weights(&column("weight"), &column("m4l"));
    group
        .new_dataset_builder()
        .with_data(&w)
        .create("weight")
        .unwrap();
    path
}

/// NLO-like weights with the same expectation: in the region of the lowest 30 % of m4l, the
/// events split by index parity into two halves that each sample the region; one half gets
/// 3w, the other −w (2w(1 + λ) and −2wλ, λ = ½). 15 % of the events are negative, all in that
/// region, where drawing ∝ |w| would double the density.
fn nlo_weights(w: &[f64], m4l: &[f64]) -> Vec<f64> {
    let mut sorted = m4l.to_vec();
    sorted.sort_by(f64::total_cmp);
    let edge = sorted[sorted.len() * 3 / 10];
    (0..w.len())
        .map(|i| match (m4l[i] < edge, i % 2) {
            (false, _) => w[i],
            (true, 0) => 3.0 * w[i],
            (true, _) => -w[i],
        })
        .collect()
}

/// The exact-ratio example with the MC of `processes` replaced by `weights`' remake.
fn workspace_with(
    dir: &Path,
    processes: &[&str],
    weights: impl Fn(&[f64], &[f64]) -> Vec<f64> + Copy,
) -> PathBuf {
    let ex = example().display().to_string();
    let copies: Vec<(String, String)> = processes
        .iter()
        .map(|p| {
            let copy = reweighted_copy(dir, p, weights);
            (format!("{ex}/data/mc_{p}.h5"), copy.display().to_string())
        })
        .collect();
    let edits: Vec<(&str, &str)> = copies
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    example_with(dir, &edits)
}

fn load(workspace: &Path) -> Analysis {
    Analysis::load(workspace, &test_cache(), false).unwrap()
}

/// The signed-weight pool at [`THETA`] and, per pooled event, s(x)/Σ_c r_c(x): the factor that
/// turns an MC weight into a toy-drawing weight.
fn signed_pool(analysis: &Analysis) -> (ChannelData, Vec<f64>) {
    let pool = data::asimov(&analysis.model, &analysis.ratios, &THETA)
        .unwrap()
        .remove(0);
    let density = pool.model_density(&analysis.model.channels[0], &THETA);
    let factor = (0..pool.weights.len())
        .map(|i| density[i] / pool.processes.iter().map(|p| p.ratio[i]).sum::<f64>())
        .collect();
    (pool, factor)
}

/// Per-event expected toy counts ν · u_i / Σ u for drawing weights u.
fn expected_counts(nu: f64, draw: &[f64]) -> Vec<f64> {
    let total: f64 = draw.iter().sum();
    draw.iter().map(|u| nu * u / total).collect()
}

/// The 0.999 quantile of χ² with `ndf` degrees of freedom (Wilson–Hilferty).
fn chi2_quantile_999(ndf: usize) -> f64 {
    let k = ndf as f64;
    let h = 2.0 / (9.0 * k);
    k * (1.0 - h + 3.0902 * h.sqrt()).powi(3)
}

/// A 5 × 4 histogram in the likelihood's features: quantile bins of r_S and of B's δ⁺.
struct Binning {
    r_s: Vec<f64>,
    delta: Vec<f64>,
}

impl Binning {
    fn new(pool: &ChannelData) -> Binning {
        let quantiles = |v: Vec<f64>, n: usize| {
            let mut v = v;
            v.sort_by(f64::total_cmp);
            (1..n).map(|q| v[q * v.len() / n]).collect::<Vec<f64>>()
        };
        Binning {
            r_s: quantiles(pool.processes[0].ratio.clone(), 5),
            delta: quantiles(delta_up(pool), 4),
        }
    }

    fn n_bins(&self) -> usize {
        (self.r_s.len() + 1) * (self.delta.len() + 1)
    }

    fn histogram(&self, set: &ChannelData, weights: &[f64]) -> Vec<f64> {
        let delta = delta_up(set);
        let mut h = vec![0.0; self.n_bins()];
        for (i, w) in weights.iter().enumerate() {
            let a = self
                .r_s
                .partition_point(|&e| e <= set.processes[0].ratio[i]);
            let b = self.delta.partition_point(|&e| e <= delta[i]);
            h[a * (self.delta.len() + 1) + b] += w;
        }
        h
    }
}

/// ln δ⁺ of B's shape systematic, per event.
fn delta_up(set: &ChannelData) -> Vec<f64> {
    let v = &set.processes[2].shapes[0].variations;
    (0..v.len()).map(|i| v.event(i)[2]).collect()
}

/// Toys are accepted; the resampled weights are non-negative and keep every process's total;
/// the mean over toys of a histogram in the likelihood's features equals the signed-weight
/// Asimov expectation (χ² test, fixed seed), where drawing ∝ |w| would not.
#[test]
fn toys_from_negative_weights_match_the_signed_asimov_set() {
    let dir = tempfile::tempdir().unwrap();
    let analysis = load(&workspace_with(dir.path(), &PROCESSES, nlo_weights));
    let (signed, factor) = signed_pool(&analysis);
    let b = signed.mc_weights.clone().unwrap();
    let negative = b.iter().filter(|&&w| w < 0.0).count() as f64 / b.len() as f64;
    assert!(
        (negative - 0.15).abs() < 0.01,
        "negative fraction {negative}"
    );

    let source = ToySource::asimov(&analysis, &THETA).unwrap();
    let (pool, draw) = source.pool(0);
    let resampled = pool.mc_weights.as_ref().unwrap();
    assert!(resampled.iter().all(|&w| w >= 0.0));
    assert!(draw.iter().all(|&w| w >= 0.0));
    for (c, events) in b.chunks(100_000).zip(resampled.chunks(100_000)) {
        let (before, after): (f64, f64) = (c.iter().sum(), events.iter().sum());
        assert!((before - 1.0).abs() < 1e-9 && (after - 1.0).abs() < 1e-9);
    }

    let nu: f64 = signed.weights.iter().sum();
    let binning = Binning::new(&signed);
    let asimov = binning.histogram(&signed, &signed.weights);
    let expected = expected_counts(nu, draw);
    let per_event_diff: Vec<f64> = (0..b.len())
        .map(|i| (expected[i] - signed.weights[i]).powi(2))
        .collect();
    let mc_var = binning.histogram(&signed, &per_event_diff);

    let n_toys = 2000;
    let (mut sum, mut sum2) = (vec![0.0; binning.n_bins()], vec![0.0; binning.n_bins()]);
    for t in 0..n_toys {
        let toy = source.draw(17, 0, t, true);
        let h = binning.histogram(&toy.channels[0], &toy.channels[0].weights);
        for k in 0..h.len() {
            sum[k] += h[k];
            sum2[k] += h[k] * h[k];
        }
    }
    let bins: Vec<usize> = (0..asimov.len()).filter(|&k| asimov[k] > 5.0).collect();
    let sigma2: Vec<f64> = (0..asimov.len())
        .map(|k| {
            let mean = sum[k] / n_toys as f64;
            (sum2[k] / n_toys as f64 - mean * mean) / n_toys as f64 + mc_var[k]
        })
        .collect();
    let chi2 = |toy_mean: &dyn Fn(usize) -> f64| -> f64 {
        bins.iter()
            .map(|&k| (toy_mean(k) - asimov[k]).powi(2) / sigma2[k])
            .sum()
    };
    let limit = chi2_quantile_999(bins.len());
    let observed = chi2(&|k| sum[k] / n_toys as f64);
    assert!(
        bins.len() >= 15 && observed < limit,
        "χ² = {observed:.1} over {} bins (limit {limit:.1})",
        bins.len()
    );
    // The same test sees the bias of a draw ∝ |w|.
    let absolute: Vec<f64> = (0..b.len()).map(|i| b[i].abs() * factor[i]).collect();
    let absolute = binning.histogram(&signed, &expected_counts(nu, &absolute));
    let biased = chi2(&|k| absolute[k]);
    assert!(biased > 10.0 * limit, "χ² of the |w| draw only {biased:.1}");
}

/// The resampled weights, and so the toys, are the same with 1 and 4 threads.
#[test]
fn resampled_toys_do_not_depend_on_threads() {
    let dir = tempfile::tempdir().unwrap();
    let analysis = load(&workspace_with(dir.path(), &PROCESSES, nlo_weights));
    let toys = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let source = ToySource::asimov(&analysis, &THETA).unwrap();
            let resampled = source.pool(0).0.mc_weights.clone().unwrap();
            let ratios: Vec<Vec<f64>> = (0..3)
                .map(|t| {
                    source.draw(5, 0, t, true).channels[0].processes[1]
                        .ratio
                        .clone()
                })
                .collect();
            (resampled, ratios)
        })
    };
    let (one, many) = (toys(1), toys(4));
    assert!(one
        .0
        .iter()
        .zip(&many.0)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    assert_eq!(one.1, many.1);
}

/// Fits to toys at μ = 1 from the resampled pool: the mean μ̂ equals the signed-weight Asimov
/// fit's μ̂ within its statistical error, and 1 within that and the MC's — where toys drawn
/// ∝ |w| would be off by many errors (μ̂ ≈ 0.67 against 0.98).
#[test]
fn fits_to_toys_from_negative_weights_are_unbiased() {
    let dir = tempfile::tempdir().unwrap();
    let analysis = load(&workspace_with(dir.path(), &PROCESSES, nlo_weights));
    let (signed, factor) = signed_pool(&analysis);
    let nu: f64 = signed.weights.iter().sum();
    let mu_hat_of = |weights: Vec<f64>| {
        let mut set = signed.clone();
        set.weights = weights;
        let like = Likelihood::new(&analysis.model, vec![set]);
        let mut options = FitOptions::new(&like);
        options.init = THETA.to_vec();
        let fit = minimise(&like, &options);
        assert!(fit.converged);
        fit.theta[0]
    };
    let asimov = mu_hat_of(signed.weights.clone());
    let b = signed.mc_weights.clone().unwrap();
    let absolute = (0..b.len())
        .map(|i| b[i].abs() * factor[i])
        .collect::<Vec<_>>();
    let absolute = mu_hat_of(expected_counts(nu, &absolute));

    let source = ToySource::asimov(&analysis, &THETA).unwrap();
    let plan = ToyPlan {
        pois: vec![0],
        profiled: vec![],
        grid: nsbi::infer::poi_grid::PoiGrid::line(vec![1.0]),
        n_toys: 400,
        seed: 23,
        systematics: true,
        statistic: nsbi::infer::test_stat::TestStatistic::Tmu,
    };
    let mu_hat: Vec<f64> = (0..plan.n_toys)
        .map(|t| fit_toy(&source.draw(plan.seed, 0, t, true), &plan, &THETA, 0, t).poi_hat[0])
        .collect();
    let n = mu_hat.len() as f64;
    let mean = mu_hat.iter().sum::<f64>() / n;
    let error = (mu_hat.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
    assert!(
        (mean - asimov).abs() < 3.0 * error,
        "mean μ̂ {mean:.4} ± {error:.4} vs the Asimov fit's {asimov:.4}"
    );
    // μ̂ of the Asimov set itself is off 1 by the MC's statistical error: the toys' spread
    // scaled by √(ν / N_eff), N_eff = (Σw)²/Σw² the effective size of the signed MC.
    let n_eff = nu.powi(2) / signed.weights.iter().map(|w| w * w).sum::<f64>();
    let mc_error = error * n.sqrt() * (nu / n_eff).sqrt();
    assert!(
        (mean - 1.0).abs() < 3.0 * error.hypot(mc_error),
        "mean μ̂ {mean:.4} ± {error:.4} (MC ± {mc_error:.4})"
    );
    assert!(
        (absolute - 1.0).abs() > 10.0 * error,
        "the |w| draw's μ̂ {absolute} is not told apart"
    );
}

/// `nsbi toys` on a sample whose negative weights outweigh the positive ones in a region, or
/// whose weights sum negative, refuses by process and file.
#[test]
fn samples_that_cannot_be_resampled_are_refused() {
    let toys = |workspace: &Path| {
        let cache = test_cache();
        let out = workspace.with_file_name("toys.h5");
        nsbi(&[
            "toys",
            workspace.to_str().unwrap(),
            "--mu-grid",
            "1:1:1",
            "--toys",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--cache-dir",
            cache.dir().to_str().unwrap(),
        ])
    };
    // Every event of the lowest 5 % of m4l at −3 times its weight.
    let dir = tempfile::tempdir().unwrap();
    let hole = |w: &[f64], m4l: &[f64]| {
        let mut sorted = m4l.to_vec();
        sorted.sort_by(f64::total_cmp);
        let edge = sorted[sorted.len() / 20];
        (0..w.len())
            .map(|i| if m4l[i] < edge { -3.0 * w[i] } else { w[i] })
            .collect()
    };
    let o = toys(&workspace_with(dir.path(), &["S"], hole));
    let text = assert_refused(&o, &["process 'S'", "mc_S.h5", "not compensated"]);
    assert!(
        text.contains("its cell needs more than 1000 of the 100000 events"),
        "{text}"
    );

    // Weights summing negative, with an explicit yield (the fits would run).
    let dir = tempfile::tempdir().unwrap();
    let flipped = |w: &[f64], _: &[f64]| w.iter().map(|w| -w).collect();
    let workspace = workspace_with(dir.path(), &["S"], flipped);
    let text = std::fs::read_to_string(&workspace).unwrap().replacen(
        "coefficient: mu - sqrt(mu)\n",
        "coefficient: mu - sqrt(mu)\n        yield: 310\n",
        1,
    );
    std::fs::write(&workspace, text).unwrap();
    let o = toys(&workspace);
    assert_refused(&o, &["process 'S'", "mc_S.h5", "sum to -309.8"]);
}
