//! Pseudo-experiments by bootstrap from the pooled MC (DESIGN.md §4), and their fits.
//!
//! # Why the toys are drawn with positive weights
//!
//! The Asimov weights of the pooled MC, w_i = ν_c(θ) g_c(x_i|α) b_i (b_i = the MC weight of event
//! i normalised within its process c), are negative wherever a coefficient f_c(θ) is (the
//! interference basis). Drawing events with probability ∝ |w_i| and carrying the sign would
//! give the right mean but toys with signed weights, whose fluctuations are not those of real
//! data (the variance is Σ|w| instead of Σw) — the test statistic's distribution, which is all a
//! Neyman construction uses, would come out wrong.
//!
//! Instead every pooled event gets the importance weight of the *model* density with respect to
//! the density the pool was sampled from. The pool with weights b_i samples
//! Q(x) = Σ_c p_c(x) = p_ref(x) Σ_c r_c(x); the model is ν p(x|θ) = p_ref(x) s(x|θ) with
//! s = Σ_c ν_c r_c g_c, the per-event density of the likelihood. So
//!
//! ```text
//! w'_i = b_i s(x_i|θ) / Σ_c r_c(x_i)   ≥ 0,      Σ_i w'_i h(x_i) → ∫ ν p(x|θ) h(x) dx
//! ```
//!
//! for any h: the same expectation as the Asimov set (unbiased), every weight non-negative
//! (s > 0 wherever the model is a density), and toys are unweighted events drawn from the
//! model the fits use — the parametric bootstrap. N ~ Poisson(ν(θ)), then N events with
//! replacement with probability w'_i / Σ w' (alias table). `tests/toys.rs` checks that the mean
//! of per-event histograms over toys equals the Asimov expectation, negative-weight regions
//! included.
//!
//! # Negative generator weights
//!
//! The argument needs b_i ≥ 0: with NLO generator weights b_i < 0 the weights w'_i are signed
//! too, and drawing ∝ |w'_i| would sample the |b|-density. Each process's weights are
//! therefore cell resampled once, before pooling, to non-negative b̃_i with the same sum over
//! every small cell of the likelihood's feature space ([`super::resample`]); the draw uses
//! b̃, the Asimov sets and fits keep the signed b (they are right in expectation as they are).
//! `tests/negative_weights.rs` checks the toys' mean histograms and fitted μ̂ against the
//! signed-weight Asimov set.
//!
//! # Reproducibility
//!
//! Toy (grid point g, toy t) draws from its own ChaCha8 stream, keyed by a hash of
//! (seed, g, t): the same toy whatever the thread, process or shard that makes it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};
use rayon::prelude::*;

use super::poi_grid::PoiGrid;
use super::resample::toy_mc_weights;
use super::test_stat::TestStatistic;
use super::toy_pool::{AliasTable, PoolRows};
use crate::analysis::{Analysis, Dataset};
use crate::channel::ToyKey;
use crate::error::{Error, Result};
use crate::fit::{minimise, FitOptions, FitResult};
use crate::likelihood::{ChannelData, Likelihood};
use crate::model::{ConstraintPdf, Model};

/// What to generate: `n_toys` toys at each point of `grid`, a point fixing the POIs `pois`.
#[derive(Clone, Debug)]
pub struct ToyPlan {
    /// The POIs a grid point fixes (indices of model parameters), in the order of its values.
    pub pois: Vec<usize>,
    /// POIs profiled by the statistic: free in the conditional fit as in the free one
    /// (`--profile`). The model's other POIs are held at their initial values in every fit.
    pub profiled: Vec<usize>,
    pub grid: PoiGrid,
    pub n_toys: usize,
    pub seed: u64,
    /// Whether nuisance parameters float (false: `--no-syst`, frozen at their generation values
    /// in generation and in every fit, global observables not randomised).
    pub systematics: bool,
    /// The statistic the toys' `t` holds (a two-sided one for the Neyman construction: t_μ or
    /// t̃_μ; the model's POI bounds are the statistic's, [`TestStatistic::poi_bounds`]).
    pub statistic: TestStatistic,
}

impl ToyPlan {
    /// Number of (grid point, toy) jobs.
    pub fn n_jobs(&self) -> usize {
        self.grid.len() * self.n_toys
    }

    /// The jobs shard `index` of `count` owns (see [`shard_range`]).
    pub fn shard(&self, index: usize, count: usize) -> std::ops::Range<usize> {
        shard_range(self.n_jobs(), index, count)
    }

    /// Options of fits on `like` with the model's POIs that are neither on the grid nor
    /// profiled held at their initial values (a joint region of the grid's POIs says nothing
    /// about them): the observed data's free fit.
    pub fn fit_options(&self, like: &Likelihood) -> FitOptions {
        let mut options = FitOptions::new(like);
        for (k, p) in like.model.parameters.iter().enumerate() {
            if p.poi && !self.pois.contains(&k) && !self.profiled.contains(&k) {
                options.fixed[k] = true;
            }
        }
        options
    }

    /// [`ToyPlan::fit_options`] with the nuisance parameters fixed too for a stat-only plan:
    /// the toys' free fits.
    pub fn free_fit_options(&self, like: &Likelihood) -> FitOptions {
        let mut options = self.fit_options(like);
        if !self.systematics {
            for (k, p) in like.model.parameters.iter().enumerate() {
                options.fixed[k] |= !p.poi;
            }
        }
        options
    }

    /// [`ToyPlan::free_fit_options`] with the grid's POIs fixed too: the conditional fit at
    /// a point (its values are the caller's to put into `init`).
    pub fn conditional_fit_options(&self, like: &Likelihood) -> FitOptions {
        let mut options = self.free_fit_options(like);
        for &k in &self.pois {
            options.fixed[k] = true;
        }
        options
    }
}

/// The jobs of `n_jobs` that shard `index` of `count` owns: a contiguous range of the
/// (grid, toy) list, so the shards together make every toy exactly once.
pub fn shard_range(n_jobs: usize, index: usize, count: usize) -> std::ops::Range<usize> {
    index * n_jobs / count..(index + 1) * n_jobs / count
}

/// One toy's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct ToyRecord {
    pub grid_index: usize,
    pub toy_index: usize,
    /// The grid point's POI values (the plan's `pois`).
    pub poi_true: Vec<f64>,
    /// t = 2(NLL(θ_true, α̂̂) − NLL(θ̂, α̂)) ≥ 0, θ the grid's POIs.
    pub t: f64,
    /// The grid's POIs at the unconditional best fit.
    pub poi_hat: Vec<f64>,
    /// The two fits' NLLs at their minima ([`nll_at_minimum`]).
    pub nll_conditional: f64,
    pub nll_free: f64,
    pub converged_conditional: bool,
    pub converged_free: bool,
    pub n_events: usize,
    /// All parameters at the unconditional best fit.
    pub theta_hat: Vec<f64>,
}

/// The pooled MC of every channel with its toy-drawing weights at one generation point.
pub struct ToySource<'m> {
    model: &'m Model,
    pools: Vec<ChannelData>,
    /// Each pool's events as rows, which the toys are gathered from ([`super::toy_pool`]),
    /// where a row is narrow ([`PoolRows::worth_keeping`]); else toys gather the pool's columns.
    rows: Vec<Option<PoolRows>>,
    samplers: Vec<Option<AliasTable>>,
    /// The draw weights w'_i of each channel's pool.
    draw_weights: Vec<Vec<f64>>,
    /// ν of each channel at the generation point.
    expected: Vec<f64>,
    /// Full parameter point of generation (μ_true, α_gen).
    pub theta_gen: Vec<f64>,
}

impl<'m> ToySource<'m> {
    /// The toy source of `analysis` at `theta_gen`: its channels' Asimov sets there
    /// ([`crate::likelihood::data::asimov`]) as pools.
    /// Negative generator weights are cell resampled first ([`super::resample`]).
    pub fn asimov(analysis: &'m Analysis, theta_gen: &[f64]) -> Result<Self> {
        ToySource::asimov_reusing(analysis, theta_gen, &mut None)
    }

    /// [`ToySource::asimov`], with the resampled toy MC weights taken from `toy_mc` (and put
    /// there when it is empty): they do not depend on the generation point, so a run over a
    /// grid resamples once.
    pub fn asimov_reusing(
        analysis: &'m Analysis,
        theta_gen: &[f64],
        toy_mc: &mut Option<Vec<Vec<f64>>>,
    ) -> Result<Self> {
        let mut pools = analysis.datasets(&Dataset::Asimov(theta_gen.to_vec()))?;
        let weights = match toy_mc {
            Some(w) => w,
            None => toy_mc.insert(toy_mc_weights(analysis, &pools)?),
        };
        for (pool, w) in pools.iter_mut().zip(weights.iter()) {
            pool.mc_weights = Some(w.clone());
        }
        ToySource::new(&analysis.model, pools, theta_gen)
    }

    /// `pools` are the channels' Asimov sets at `theta_gen` ([`crate::likelihood::data::asimov`]):
    /// pooled events with the signed weights w_i, and as `mc_weights` the non-negative toy MC
    /// weights b̃_i ([`super::resample::toy_mc_weights`]).
    pub fn new(model: &'m Model, pools: Vec<ChannelData>, theta_gen: &[f64]) -> Result<Self> {
        let mut samplers = Vec::new();
        let mut draw_weights = Vec::new();
        let mut expected = Vec::new();
        for (channel, pool) in model.channels.iter().zip(&pools) {
            let weights = positive_weights(channel, pool, theta_gen)?;
            expected.push(pool.weights.iter().sum::<f64>());
            let total: f64 = weights.iter().sum();
            samplers.push(if total > 0.0 {
                Some(AliasTable::new(&weights).ok_or_else(|| {
                    Error::Analysis(format!(
                        "channel {}: cannot build the toy sampler: draw weights summing to \
                         {total} are not finite",
                        channel.name
                    ))
                })?)
            } else {
                None
            });
            draw_weights.push(weights);
        }
        for kind in &model.kinds {
            kind.check_toy_point(theta_gen)?;
        }
        Ok(ToySource {
            model,
            rows: pools
                .iter()
                .map(|pool| PoolRows::worth_keeping(pool).then(|| PoolRows::new(pool)))
                .collect(),
            pools,
            samplers,
            draw_weights,
            expected,
            theta_gen: theta_gen.to_vec(),
        })
    }

    /// The pooled events of channel `c` (with their signed Asimov weights) and their
    /// non-negative draw weights w'_i.
    pub fn pool(&self, c: usize) -> (&ChannelData, &[f64]) {
        (&self.pools[c], &self.draw_weights[c])
    }

    /// Toy `(grid_index, toy_index)` of a run with `seed`: per channel N ~ Poisson(ν) events,
    /// and global observables a_k ~ N(α_gen,k, 1) when `randomise_constraints`.
    pub fn draw(
        &self,
        seed: u64,
        grid_index: usize,
        toy_index: usize,
        randomise_constraints: bool,
    ) -> Likelihood<'m> {
        let mut rng = toy_stream(seed, grid_index, toy_index);
        let mut channels = Vec::with_capacity(self.pools.len());
        let mut indices = Vec::new();
        let sources = self.rows.iter().zip(&self.pools);
        for (((rows, pool), sampler), &nu) in sources.zip(&self.samplers).zip(&self.expected) {
            let n = match (sampler, Poisson::new(nu)) {
                (Some(_), Ok(poisson)) => poisson.sample(&mut rng) as usize,
                _ => 0,
            };
            // In drawn order: sorting the indices for a monotonic gather cost more (a quarter
            // of the generation time) than the gather gained from it.
            indices.clear();
            if let Some(s) = sampler {
                s.draw_into(&mut rng, n, &mut indices);
            }
            channels.push(match rows {
                Some(rows) => rows.select(&indices),
                None => pool.select(&indices),
            });
        }
        // The other kinds draw from streams of their own, so that the unbinned channels'
        // toys do not depend on whether they exist.
        let key = ToyKey {
            seed,
            grid_index,
            toy_index,
        };
        let mut like = Likelihood::with_toy(self.model, channels, &self.theta_gen, key);
        for term in &self.model.constraints {
            let k = term.parameter;
            let expected = term.expected_auxdata(self.theta_gen[k]);
            like.global_observables[k] = match term.pdf {
                _ if !randomise_constraints => expected,
                ConstraintPdf::Gaussian { sigma } => {
                    let unit = Normal::new(0.0, 1.0).expect("unit normal");
                    expected + sigma * unit.sample(&mut rng)
                }
                ConstraintPdf::Poisson { .. } => match Poisson::new(expected) {
                    Ok(poisson) => poisson.sample(&mut rng),
                    _ => expected,
                },
            };
        }
        like
    }
}

/// ChaCha8 stream of one toy, keyed by (seed, grid point, toy).
fn toy_stream(seed: u64, grid_index: usize, toy_index: usize) -> ChaCha8Rng {
    stream(b"nsbi toy stream v1", seed, grid_index, toy_index)
}

/// ChaCha8 stream keyed by a domain and (seed, grid point, toy).
pub(crate) fn stream(domain: &[u8], seed: u64, grid_index: usize, toy_index: usize) -> ChaCha8Rng {
    let mut hasher = blake3::Hasher::new();
    hasher.update(domain);
    for x in [seed, grid_index as u64, toy_index as u64] {
        hasher.update(&x.to_le_bytes());
    }
    ChaCha8Rng::from_seed(*hasher.finalize().as_bytes())
}

/// w'_i = b_i s(x_i|θ) / Σ_c r_c(x_i) from the pool's Asimov weights w_i: see the module
/// documentation. Events where the model density is not positive get weight 0.
fn positive_weights(
    channel: &crate::model::Channel,
    pool: &ChannelData,
    theta: &[f64],
) -> Result<Vec<f64>> {
    let density = pool.model_density(channel, theta);
    let base = pool.mc_weights.as_ref().ok_or_else(|| {
        Error::Analysis(format!(
            "channel {}: toys need the pooled MC's own weights",
            channel.name
        ))
    })?;
    let mut out = Vec::with_capacity(pool.weights.len());
    for (i, &b) in base.iter().enumerate() {
        if b < 0.0 {
            return Err(Error::Analysis(format!(
                "channel {}: pooled MC event {i} has a negative toy weight ({b}); the toys \
                 draw from generator weights resampled to non-negative ones \
                 (resample::toy_mc_weights)",
                channel.name
            )));
        }
        let ratio_sum: f64 = pool.processes.iter().map(|p| p.ratio[i]).sum();
        let s = density[i];
        let valid = s > 0.0 && s.is_finite() && ratio_sum > 0.0;
        out.push(if valid { b * s / ratio_sum } else { 0.0 });
    }
    Ok(out)
}

/// Convergence of a toy's fits: MINUIT's default, estimated distance to the minimum (EDM)
/// below 1e-4 (the iminuit baseline of `benches/toys.rs` stops at 2e-4). The toy's NLLs are
/// then taken at the minimum of the fit's quadratic model ([`nll_at_minimum`]), which leaves
/// them off by the model's third-order remainder, ~EDM^{3/2} ≈ 10⁻⁶, instead of by the EDM:
/// t to a few 10⁻⁶, four orders of magnitude below the statistical error of any critical
/// value a construction can estimate, at one Newton evaluation fewer per toy than a 10⁻⁶ stop.
pub const TOY_EDM_TOLERANCE: f64 = 1e-4;

/// The NLL at a fit's minimum as the fit's quadratic model at its last point predicts it: the
/// last evaluated NLL less the EDM, the decrease one more Newton step would bring. Unchanged
/// for a fit that did not converge.
pub fn nll_at_minimum(fit: &FitResult) -> f64 {
    if fit.converged && fit.edm.is_finite() {
        fit.nll - fit.edm
    } else {
        fit.nll
    }
}

/// The two fits of a toy — conditional at the grid point (`theta_gen`'s POIs), then free —
/// with the toy settings: [`TOY_EDM_TOLERANCE`], the plan's fixed parameters
/// ([`ToyPlan::free_fit_options`]), each fit free to end on a gradient-order step
/// (`FitOptions::final_hessian` off), the free fit started from the conditional one's end and
/// its last evaluation.
pub fn toy_fits(like: &Likelihood, plan: &ToyPlan, theta_gen: &[f64]) -> (FitResult, FitResult) {
    let toy_settings = |mut options: FitOptions| {
        options.init = theta_gen.to_vec();
        options.edm_tolerance = TOY_EDM_TOLERANCE;
        options.final_hessian = false;
        options
    };
    let mut options = toy_settings(plan.free_fit_options(like));
    let conditional = minimise(like, &toy_settings(plan.conditional_fit_options(like)));
    options.init = conditional.theta.clone();
    options.init_evaluation = Some(conditional.evaluation.clone());
    let free = minimise(like, &options);
    (conditional, free)
}

/// Fits one toy: conditional at the grid point warm-started from the generation point, then free from
/// where the conditional fit ended.
pub fn fit_toy(
    like: &Likelihood,
    plan: &ToyPlan,
    theta_gen: &[f64],
    grid_index: usize,
    toy_index: usize,
) -> ToyRecord {
    let (conditional, free) = toy_fits(like, plan, theta_gen);
    let (nll_conditional, nll_free) = (nll_at_minimum(&conditional), nll_at_minimum(&free));
    // The free fit can only be better than the conditional one; a worse end is a convergence
    // failure, and the conditional point then stands for the best fit.
    let (nll_free, theta_hat) = if nll_free <= nll_conditional {
        (nll_free, free.theta.clone())
    } else {
        (nll_conditional, conditional.theta.clone())
    };
    ToyRecord {
        grid_index,
        toy_index,
        poi_true: plan.grid.points[grid_index].clone(),
        t: 2.0 * (nll_conditional - nll_free),
        poi_hat: plan.pois.iter().map(|&k| theta_hat[k]).collect(),
        nll_conditional,
        nll_free,
        converged_conditional: conditional.converged,
        converged_free: free.converged,
        n_events: like.channels.iter().map(|c| c.weights.len()).sum(),
        theta_hat,
    }
}

/// Makes and fits the toys `jobs` (indices into the plan's (grid, toy) list, all of the grid
/// point `source` generates) in parallel. Records come back in job order.
pub fn run_toys(
    plan: &ToyPlan,
    source: &ToySource,
    jobs: std::ops::Range<usize>,
    progress: &(dyn Fn() + Sync),
) -> Vec<ToyRecord> {
    jobs.into_par_iter()
        .map(|job| {
            let (g, t) = (job / plan.n_toys, job % plan.n_toys);
            let like = source.draw(plan.seed, g, t, plan.systematics);
            let record = fit_toy(&like, plan, &source.theta_gen, g, t);
            progress();
            record
        })
        .collect()
}
