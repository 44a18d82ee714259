//! Toys of a binned model, as pyhf's `model.make_pdf(pars).sample()`: every bin's count
//! Poisson at its expected count λ_b(θ), and every global observable fluctuated by its
//! constraint — a ~ N(θ, σ) for the Gaussian constraints (normsys, histosys, lumi,
//! staterror), a ~ Pois(γ τ) for the Poisson ones (shapesys). pyhf returns the Poisson
//! constraint's draw as the count itself (in units of τ, as its nominal auxdata τ), and so
//! does this: the toy's auxdata goes straight into [`BinnedModel::nll`].
//!
//! The draws come from `rand_distr` in a fixed order (channels, bins, then constraints), so a
//! toy is a function of the RNG state only; nothing is allocated once `out` has the model's
//! shape.

use rand_distr::{Distribution, Poisson, StandardNormal};

use crate::error::{Error, Result};

use super::model::{BinnedData, BinnedModel, Constraint};

impl BinnedModel {
    /// Draws one toy at `pars` into `out`, resized to the model's shape where it differs.
    /// Errors where an expected count or a Poisson constraint's rate is negative, not finite
    /// or beyond what a Poisson sampler can draw.
    pub fn sample_into(
        &self,
        pars: &[f64],
        rng: &mut impl rand::Rng,
        out: &mut BinnedData,
    ) -> Result<()> {
        self.shape_data(out);
        self.expected_counts_into(pars, &mut out.counts)?;
        for (channel, counts) in self.channels.iter().zip(&mut out.counts) {
            for (b, count) in counts.iter_mut().enumerate() {
                *count = poisson(*count, rng).ok_or_else(|| {
                    Error::Analysis(format!(
                        "binned channel '{}' bin {b}: cannot draw a Poisson count at the expected count {count}",
                        channel.name
                    ))
                })?;
            }
        }
        for (constraint, aux) in self.constraints.iter().zip(&mut out.auxdata) {
            *aux = match *constraint {
                Constraint::Gaussian { parameter, sigma } => {
                    let unit: f64 = StandardNormal.sample(rng);
                    pars[parameter] + sigma * unit
                }
                Constraint::Poisson { parameter, factor } => {
                    let rate = pars[parameter] * factor;
                    poisson(rate, rng).ok_or_else(|| {
                        Error::Analysis(format!(
                            "binned model: cannot draw the Poisson constraint of '{}' at rate γτ = {rate}",
                            self.parameters[parameter].name
                        ))
                    })?
                }
            };
        }
        Ok(())
    }

    /// Gives `data` one count per bin of each channel and one global observable per
    /// constraint, reusing its vectors (allocating only where a length differs).
    fn shape_data(&self, data: &mut BinnedData) {
        data.counts.resize_with(self.channels.len(), Vec::new);
        for (channel, counts) in self.channels.iter().zip(&mut data.counts) {
            counts.resize(channel.n_bins, 0.0);
        }
        data.auxdata.resize(self.constraints.len(), 0.0);
    }
}

/// A Poisson draw at `rate` as a count; 0 at rate 0, None for a negative, non-finite or too
/// large rate.
fn poisson(rate: f64, rng: &mut impl rand::Rng) -> Option<f64> {
    if rate == 0.0 {
        return Some(0.0);
    }
    Poisson::new(rate).ok().map(|p| p.sample(rng))
}
