//! Pseudo-experiments and their fits. Each channel kind draws its own data
//! ([`crate::channel::KindToys`]: the unbinned channels by bootstrap from the pooled MC,
//! DESIGN.md §4, [`crate::channel::unbinned::toys`]; the binned ones Poisson per bin); the
//! global observables are drawn here.
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
use super::test_stat::TestStatistic;
use crate::analysis::Analysis;
use crate::channel::{KindToys, ToyKey};
use crate::error::Result;
use crate::fit::{minimise, FitOptions, FitResult};
use crate::likelihood::Likelihood;
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

/// Every channel kind's toys at one generation point, and the model's global observables.
pub struct ToySource<'m> {
    model: &'m Model,
    /// One per kind of the model ([`Model::all_kinds`], in order).
    kinds: Vec<Box<dyn KindToys>>,
    /// Full parameter point of generation (μ_true, α_gen).
    pub theta_gen: Vec<f64>,
}

impl<'m> ToySource<'m> {
    /// The toy source of `analysis` at `theta_gen` ([`ToySource::new`] on its model).
    pub fn asimov(analysis: &'m Analysis, theta_gen: &[f64]) -> Result<Self> {
        ToySource::new(&analysis.model, theta_gen)
    }

    /// The toys of every kind of `model` at `theta_gen` ([`crate::channel::ChannelKind::toys`]):
    /// an error where some kind cannot draw there.
    pub fn new(model: &'m Model, theta_gen: &[f64]) -> Result<Self> {
        let kinds = model
            .all_kinds()
            .map(|kind| kind.toys(theta_gen))
            .collect::<Result<Vec<_>>>()?;
        Ok(ToySource {
            model,
            kinds,
            theta_gen: theta_gen.to_vec(),
        })
    }

    /// Where the model the toys are drawn from is not a density at `theta`
    /// ([`KindToys::invalid_at`], kind by kind).
    pub fn invalid_at(&self, theta: &[f64]) -> Option<crate::likelihood::InvalidDensity> {
        self.kinds.iter().find_map(|kind| kind.invalid_at(theta))
    }

    /// The toys of the kind whose toys are of type `T` (the unbinned pools:
    /// [`crate::channel::unbinned::toys::UnbinnedToys`]), where the model has it.
    pub fn kind_toys<T: 'static>(&self) -> Option<&T> {
        self.kinds
            .iter()
            .find_map(|toys| toys.as_any().downcast_ref::<T>())
    }

    /// Toy `(grid_index, toy_index)` of a run with `seed`: every kind's data, then global
    /// observables a_k drawn around their expectation at θ_gen when `randomise_constraints`.
    pub fn draw(
        &self,
        seed: u64,
        grid_index: usize,
        toy_index: usize,
        randomise_constraints: bool,
    ) -> Likelihood<'m> {
        let mut rng = toy_stream(seed, grid_index, toy_index);
        let key = ToyKey {
            seed,
            grid_index,
            toy_index,
        };
        let observed = self.kinds.iter().map(|k| k.draw(key, &mut rng)).collect();
        let mut like = Likelihood::with_observed(self.model, observed);
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
        n_events: like.observed.iter().map(|data| data.n_events()).sum(),
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
