//! The unbinned channels' toys: pseudo-experiments by bootstrap from the pooled MC
//! (DESIGN.md §4).
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
//! every small cell of the likelihood's feature space ([`crate::infer::resample`]); the draw uses
//! b̃, the Asimov sets and fits keep the signed b (they are right in expectation as they are).
//! `tests/negative_weights.rs` checks the toys' mean histograms and fitted μ̂ against the
//! signed-weight Asimov set.
//!
//! # Same toys
//!
//! Each channel's N ~ Poisson(ν) and its N events are drawn from the toy's shared stream
//! ([`KindToys::draw`]), channel after channel, as they were before there were channel kinds.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use std::any::Any;

use super::UnbinnedData;
use crate::channel::{KindToys, Observed, ToyKey};
use crate::error::{Error, Result};
use crate::infer::toy_pool::{AliasTable, PoolRows};
use crate::likelihood::{ChannelData, InvalidDensity};
use crate::model::Channel;

/// The unbinned channels' pooled MC with their toy-drawing weights at one generation point.
#[derive(Default)]
pub struct UnbinnedToys {
    channels: Vec<Channel>,
    pools: Vec<ChannelData>,
    /// Each pool's events as rows, which the toys are gathered from
    /// ([`crate::infer::toy_pool`]), where a row is narrow ([`PoolRows::worth_keeping`]);
    /// else toys gather the pool's columns.
    rows: Vec<Option<PoolRows>>,
    samplers: Vec<Option<AliasTable>>,
    /// The draw weights w'_i of each channel's pool.
    draw_weights: Vec<Vec<f64>>,
    /// ν of each channel at the generation point.
    expected: Vec<f64>,
}

impl UnbinnedToys {
    /// `pools` are the channels' Asimov sets at `theta_gen`
    /// ([`crate::likelihood::data::asimov`]): pooled events with the signed weights w_i, and
    /// as `mc_weights` the non-negative toy MC weights b̃_i
    /// ([`crate::infer::resample::toy_mc_weights`]).
    pub fn new(channels: &[Channel], pools: Vec<ChannelData>, theta_gen: &[f64]) -> Result<Self> {
        let mut samplers = Vec::new();
        let mut draw_weights = Vec::new();
        let mut expected = Vec::new();
        for (channel, pool) in channels.iter().zip(&pools) {
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
        Ok(UnbinnedToys {
            channels: channels.to_vec(),
            rows: pools
                .iter()
                .map(|pool| PoolRows::worth_keeping(pool).then(|| PoolRows::new(pool)))
                .collect(),
            pools,
            samplers,
            draw_weights,
            expected,
        })
    }

    /// The pooled events of channel `c` (with their signed Asimov weights) and their
    /// non-negative draw weights w'_i.
    pub fn pool(&self, c: usize) -> (&ChannelData, &[f64]) {
        (&self.pools[c], &self.draw_weights[c])
    }
}

impl KindToys for UnbinnedToys {
    /// Per channel N ~ Poisson(ν) events, drawn from the pool with the draw weights, from
    /// the toy's shared stream.
    fn draw(&self, _key: ToyKey, shared: &mut ChaCha8Rng) -> Observed {
        let mut channels = Vec::with_capacity(self.pools.len());
        let mut indices = Vec::new();
        let sources = self.rows.iter().zip(&self.pools);
        for (((rows, pool), sampler), &nu) in sources.zip(&self.samplers).zip(&self.expected) {
            let n = match (sampler, Poisson::new(nu)) {
                (Some(_), Ok(poisson)) => poisson.sample(shared) as usize,
                _ => 0,
            };
            // In drawn order: sorting the indices for a monotonic gather cost more (a quarter
            // of the generation time) than the gather gained from it.
            indices.clear();
            if let Some(s) = sampler {
                s.draw_into(shared, n, &mut indices);
            }
            channels.push(match rows {
                Some(rows) => rows.select(&indices),
                None => pool.select(&indices),
            });
        }
        Box::new(UnbinnedData { channels })
    }

    /// The first pooled event whose density is negative (or not finite) at θ.
    fn invalid_at(&self, theta: &[f64]) -> Option<InvalidDensity> {
        for (channel, pool) in self.channels.iter().zip(&self.pools) {
            let density = pool.model_density(channel, theta);
            if let Some(event) = density.iter().position(|s| !(*s >= 0.0 && s.is_finite())) {
                return Some(InvalidDensity {
                    channel: channel.name.clone(),
                    event,
                    density: density[event],
                    process: None,
                    bin: false,
                });
            }
        }
        None
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// w'_i = b_i s(x_i|θ) / Σ_c r_c(x_i) from the pool's Asimov weights w_i: see the module
/// documentation. Events of density 0 get weight 0; a negative or non-finite density is an
/// error (the model is not a density at θ: drawing without those events would be a toy of
/// another model).
fn positive_weights(channel: &Channel, pool: &ChannelData, theta: &[f64]) -> Result<Vec<f64>> {
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
        let s = density[i];
        if !(s >= 0.0 && s.is_finite()) {
            return Err(Error::Analysis(format!(
                "channel {}: the model density Σ_c ν̃_c r_c g_c is {s:e} at pooled MC event {i} \
                 at the toys' generation point: the model is not a density there, so no toy \
                 can be drawn from it (a Neyman construction excludes such grid points; \
                 generate where the model is positive)",
                channel.name
            )));
        }
        let ratio_sum: f64 = pool.processes.iter().map(|p| p.ratio[i]).sum();
        out.push(if s > 0.0 && ratio_sum > 0.0 {
            b * s / ratio_sum
        } else {
            0.0
        });
    }
    Ok(out)
}
