//! Posterior sampling with the No-U-Turn Sampler.
//!
//! The Hamiltonian dynamics, the multinomial NUTS trajectory, the dual-averaging step size and
//! the diagonal mass-matrix adaptation come from `nuts-rs` (the PyMC team's sampler behind
//! nutpie, which follows Stan's NUTS). This module runs several chains of it in parallel and
//! keeps the result independent of the thread count: chain `c` draws all its randomness from a
//! ChaCha8 stream keyed by (seed, c), and the chains are collected in index order.

use std::collections::HashMap;

use nuts_rs::rand::rngs::ChaCha8Rng;
use nuts_rs::rand::SeedableRng;
use nuts_rs::{Chain, CpuLogpFunc, CpuMath, CpuMathError, DiagNutsSettings, HasDims, Settings};
use rayon::prelude::*;

use crate::bayes::transform::Unconstrained;
use crate::error::{Error, Result};

/// An unnormalised log posterior with its gradient: what the sampler needs of a model.
///
/// Closed-form densities implement it for tests; the amortised (ONNX) models implement it
/// with one batched network call per gradient. `Sync` because chains share it across threads.
pub trait LogDensity: Sync {
    /// The number of parameters θ.
    fn dim(&self) -> usize;

    /// ln p(θ) up to a constant, and its gradient written to `grad` (length [`Self::dim`]).
    /// Returns −∞ where the density is zero (outside the prior's support); an `Err` only for
    /// failures that must stop the sampling (a model that cannot be evaluated).
    fn logp_and_grad(&self, theta: &[f64], grad: &mut [f64]) -> Result<f64>;

    /// The interval `[low, high]` of each parameter outside which the density is zero (either
    /// end may be infinite). The sampler unfolds bounded parameters onto the real line
    /// ([`crate::bayes::transform`]); the default is unbounded.
    fn support(&self) -> Vec<(f64, f64)> {
        vec![(f64::NEG_INFINITY, f64::INFINITY); self.dim()]
    }
}

/// How long and how many chains to run.
#[derive(Clone, Debug)]
pub struct SamplerSettings {
    pub chains: usize,
    /// Warm-up (adaptation) iterations per chain; their draws are discarded.
    pub warmup: u64,
    /// Kept draws per chain.
    pub draws: u64,
    pub seed: u64,
    /// Acceptance rate the dual-averaging step size aims at.
    pub target_accept: f64,
    /// Largest tree depth: at most 2^max_depth leapfrog steps per draw.
    pub max_depth: u64,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        SamplerSettings {
            chains: 4,
            warmup: 1000,
            draws: 1000,
            seed: 0,
            target_accept: 0.8,
            max_depth: 10,
        }
    }
}

/// The kept draws of all chains, with the sampler's per-chain statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct Samples {
    pub chains: usize,
    pub draws: usize,
    pub dim: usize,
    /// Draws in `[chain][draw][parameter]` order.
    pub values: Vec<f64>,
    /// Divergent transitions after warm-up, per chain.
    pub divergences: Vec<u64>,
    /// The adapted step size, per chain.
    pub step_sizes: Vec<f64>,
}

impl Samples {
    /// θ of one draw.
    pub fn draw(&self, chain: usize, draw: usize) -> &[f64] {
        let start = (chain * self.draws + draw) * self.dim;
        &self.values[start..start + self.dim]
    }

    /// The draws of one parameter as `[chain][draw]`, the layout of the diagnostics.
    pub fn parameter(&self, index: usize) -> Vec<Vec<f64>> {
        (0..self.chains)
            .map(|c| (0..self.draws).map(|d| self.draw(c, d)[index]).collect())
            .collect()
    }

    pub fn total_divergences(&self) -> u64 {
        self.divergences.iter().sum()
    }
}

/// Runs `settings.chains` NUTS chains from the given starting points (one per chain, strictly
/// inside the density's support).
///
/// The chains move in unconstrained coordinates ([`Unconstrained`]); the draws are returned
/// in the original ones. The result depends only on the density, the starting points and the
/// settings — not on how many threads rayon has.
pub fn sample<D: LogDensity>(
    density: &D,
    inits: &[Vec<f64>],
    settings: &SamplerSettings,
) -> Result<Samples> {
    check_settings(density, inits, settings)?;
    let unconstrained = Unconstrained::new(density);
    let starts = unconstrained_starts(&unconstrained, inits)?;
    let chains: Vec<ChainResult> = (0..settings.chains)
        .into_par_iter()
        .map(|c| run_chain(&unconstrained, &starts[c], settings, c as u64))
        .collect::<Result<_>>()?;
    let mut values = Vec::with_capacity(settings.chains * settings.draws as usize * density.dim());
    for chain in &chains {
        values.extend_from_slice(&chain.values);
    }
    Ok(Samples {
        chains: settings.chains,
        draws: settings.draws as usize,
        dim: density.dim(),
        values,
        divergences: chains.iter().map(|c| c.divergences).collect(),
        step_sizes: chains.iter().map(|c| c.step_size).collect(),
    })
}

/// The starting points in unconstrained coordinates; a point on or outside a bound is refused,
/// naming the chain and the parameter.
fn unconstrained_starts<D: LogDensity>(
    unconstrained: &Unconstrained<D>,
    inits: &[Vec<f64>],
) -> Result<Vec<Vec<f64>>> {
    let support = unconstrained.density.support();
    inits
        .iter()
        .enumerate()
        .map(|(c, init)| {
            init.iter()
                .zip(&unconstrained.transforms)
                .zip(&support)
                .enumerate()
                .map(|(i, ((&theta, t), (low, high)))| {
                    t.to_unconstrained(theta).ok_or_else(|| {
                        Error::Analysis(format!(
                            "posterior sampling: starting point of chain {c}: parameter {i} = {theta} \
                             is not strictly inside its support [{low}, {high}]"
                        ))
                    })
                })
                .collect()
        })
        .collect()
}

fn check_settings<D: LogDensity>(
    density: &D,
    inits: &[Vec<f64>],
    settings: &SamplerSettings,
) -> Result<()> {
    let fail = |m: String| Err(Error::Analysis(format!("posterior sampling: {m}")));
    if settings.chains == 0 || settings.draws == 0 {
        return fail(format!(
            "needs at least one chain and one draw; got {} chains of {} draws",
            settings.chains, settings.draws
        ));
    }
    if inits.len() != settings.chains {
        return fail(format!(
            "{} starting points for {} chains; expected one per chain",
            inits.len(),
            settings.chains
        ));
    }
    if let Some((c, init)) = inits
        .iter()
        .enumerate()
        .find(|(_, i)| i.len() != density.dim())
    {
        return fail(format!(
            "starting point of chain {c} has {} parameters; the posterior has {}",
            init.len(),
            density.dim()
        ));
    }
    if !(settings.target_accept > 0.0 && settings.target_accept < 1.0) {
        return fail(format!(
            "target acceptance rate {} is not in (0, 1)",
            settings.target_accept
        ));
    }
    Ok(())
}

/// The random stream of chain `chain`: ChaCha8 keyed by the seed and the chain index, so
/// chains are independent of each other and of the order in which threads run them.
pub fn chain_rng(seed: u64, chain: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&chain.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

struct ChainResult {
    values: Vec<f64>,
    divergences: u64,
    step_size: f64,
}

fn nuts_settings(settings: &SamplerSettings) -> DiagNutsSettings {
    let mut nuts = DiagNutsSettings {
        num_tune: settings.warmup,
        num_draws: settings.draws,
        maxdepth: settings.max_depth,
        num_chains: settings.chains,
        seed: settings.seed,
        ..DiagNutsSettings::default()
    };
    nuts.adapt_options.step_size_settings.target_accept = settings.target_accept;
    nuts
}

fn run_chain<D: LogDensity>(
    density: &Unconstrained<D>,
    init: &[f64],
    settings: &SamplerSettings,
    chain: u64,
) -> Result<ChainResult> {
    let fail = |what: &str, e: anyhow::Error| {
        // nuts-rs folds a backtrace into some messages: keep the words only.
        let message = format!("{e:#}");
        let message = message
            .split("\n\nStack backtrace")
            .next()
            .unwrap_or_default();
        Error::Analysis(format!(
            "posterior sampling, chain {chain}: {what}: {message}"
        ))
    };
    let mut rng = chain_rng(settings.seed, chain);
    let math = CpuMath::new(NutsDensity { density });
    let mut sampler = nuts_settings(settings)
        .new_chain(chain, math, &mut rng)
        .map_err(|e| Error::Analysis(format!("posterior sampling: invalid settings: {e}")))?;
    sampler
        .set_position(init)
        .map_err(|e| fail("the starting point", e))?;
    let dim = density.dim();
    let mut values = Vec::with_capacity(settings.draws as usize * dim);
    let mut divergences = 0;
    let mut step_size = f64::NAN;
    for _ in 0..settings.warmup + settings.draws {
        let (draw, progress) = sampler.draw().map_err(|e| fail("a draw", e))?;
        if progress.tuning {
            continue;
        }
        values.extend(density.to_constrained(&draw));
        divergences += u64::from(progress.diverging);
        step_size = progress.step_size;
    }
    Ok(ChainResult {
        values,
        divergences,
        step_size,
    })
}

/// Adapts a [`LogDensity`] to nuts-rs's `CpuLogpFunc`.
struct NutsDensity<'a, D> {
    density: &'a D,
}

/// Why a log density could not be used at a point.
#[derive(thiserror::Error)]
enum LogpFailure {
    /// Zero density (outside the prior's support) or a non-finite value: the trajectory is
    /// rejected there and counted as divergent, as Stan does.
    #[error("log density is {0} at this point")]
    NotFinite(f64),
    /// The model itself failed: sampling stops.
    #[error("{0}")]
    Model(String),
}

/// nuts-rs reports a failed log density with `{:?}`: show the message, not the variant, so a
/// model's error reads as it was written (file, θ, what was expected).
impl std::fmt::Debug for LogpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl nuts_rs::LogpError for LogpFailure {
    fn is_recoverable(&self) -> bool {
        matches!(self, LogpFailure::NotFinite(_))
    }
}

impl<D: LogDensity> HasDims for NutsDensity<'_, D> {
    fn dim_sizes(&self) -> HashMap<String, u64> {
        HashMap::from([("parameter".to_string(), self.density.dim() as u64)])
    }
}

impl<D: LogDensity> CpuLogpFunc for NutsDensity<'_, D> {
    type LogpError = LogpFailure;
    type FlowParameters = ();
    type ExpandedVector = Vec<f64>;

    fn dim(&self) -> usize {
        self.density.dim()
    }

    fn logp(&mut self, position: &[f64], gradient: &mut [f64]) -> Result<f64, LogpFailure> {
        let logp = self
            .density
            .logp_and_grad(position, gradient)
            .map_err(|e| LogpFailure::Model(e.to_string()))?;
        if logp.is_finite() && gradient.iter().all(|g| g.is_finite()) {
            Ok(logp)
        } else {
            Err(LogpFailure::NotFinite(logp))
        }
    }

    fn expand_vector<R: nuts_rs::rand::Rng + ?Sized>(
        &mut self,
        _rng: &mut R,
        position: &[f64],
    ) -> Result<Vec<f64>, CpuMathError> {
        Ok(position.to_vec())
    }
}
