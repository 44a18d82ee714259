//! Posteriors known in closed form, on which the sampler and the diagnostics are validated.

use crate::bayes::prior::Prior;
use crate::bayes::sampler::LogDensity;
use crate::error::{Error, Result};

/// A multivariate normal N(mean, Σ), given by its mean and precision matrix Σ⁻¹ (row-major):
/// the posterior of a linear-Gaussian model with a Gaussian prior.
#[derive(Clone, Debug)]
pub struct GaussianPosterior {
    mean: Vec<f64>,
    precision: Vec<f64>,
}

impl GaussianPosterior {
    /// The normal with this mean and covariance (row-major, symmetric positive definite).
    pub fn from_covariance(mean: Vec<f64>, covariance: &[f64]) -> Result<Self> {
        let dim = mean.len();
        if covariance.len() != dim * dim {
            return Err(Error::Analysis(format!(
                "Gaussian posterior: covariance has {} entries for {dim} parameters; expected {}",
                covariance.len(),
                dim * dim
            )));
        }
        let precision = invert_spd(covariance, dim).ok_or_else(|| {
            Error::Analysis("Gaussian posterior: covariance is not positive definite".into())
        })?;
        Ok(GaussianPosterior { mean, precision })
    }
}

impl LogDensity for GaussianPosterior {
    fn dim(&self) -> usize {
        self.mean.len()
    }

    /// −½ (θ−μ)ᵀ Σ⁻¹ (θ−μ), gradient −Σ⁻¹ (θ−μ).
    fn logp_and_grad(&self, theta: &[f64], grad: &mut [f64]) -> Result<f64> {
        let dim = self.dim();
        let delta: Vec<f64> = theta.iter().zip(&self.mean).map(|(t, m)| t - m).collect();
        let mut logp = 0.0;
        for (i, g) in grad.iter_mut().enumerate() {
            let row = &self.precision[i * dim..(i + 1) * dim];
            let p_delta: f64 = row.iter().zip(&delta).map(|(p, d)| p * d).sum();
            *g = -p_delta;
            logp -= 0.5 * delta[i] * p_delta;
        }
        Ok(logp)
    }
}

/// Inverse of a symmetric positive-definite matrix by Gauss–Jordan elimination (small
/// matrices only); None if a pivot is not positive.
fn invert_spd(matrix: &[f64], dim: usize) -> Option<Vec<f64>> {
    let mut a = matrix.to_vec();
    let mut inverse: Vec<f64> = (0..dim * dim)
        .map(|k| f64::from(u8::from(k / dim == k % dim)))
        .collect();
    for col in 0..dim {
        let pivot = a[col * dim + col];
        if pivot.is_nan() || pivot <= 0.0 {
            return None;
        }
        for k in 0..dim {
            a[col * dim + k] /= pivot;
            inverse[col * dim + k] /= pivot;
        }
        for row in (0..dim).filter(|&r| r != col) {
            let factor = a[row * dim + col];
            for k in 0..dim {
                a[row * dim + k] -= factor * a[col * dim + k];
                inverse[row * dim + k] -= factor * inverse[col * dim + k];
            }
        }
    }
    Some(inverse)
}

/// The 1-D toy of seed 004: p(x|θ) = (N(x; 0, 1.22) + θ² N(x; α, 0.71)) / (1 + θ²), with 1.22
/// and 0.71 read as standard deviations. Its posterior over θ given a few observed x is
/// symmetric under θ → −θ, hence bimodal: a non-Gaussian test of the sampler.
#[derive(Clone, Debug)]
pub struct MixturePosterior {
    pub observed: Vec<f64>,
    pub alpha: f64,
    pub prior: Prior,
}

const BACKGROUND_SIGMA: f64 = 1.22;
const SIGNAL_SIGMA: f64 = 0.71;

fn normal_density(x: f64, mean: f64, sigma: f64) -> f64 {
    let z = (x - mean) / sigma;
    (-0.5 * z * z).exp() / (sigma * (2.0 * std::f64::consts::PI).sqrt())
}

impl MixturePosterior {
    /// ln p(x|θ) summed over the observations, with its derivative in θ.
    fn log_likelihood_and_grad(&self, theta: f64) -> (f64, f64) {
        let t2 = theta * theta;
        let mut logl = 0.0;
        let mut grad = 0.0;
        for &x in &self.observed {
            let a = normal_density(x, 0.0, BACKGROUND_SIGMA);
            let b = normal_density(x, self.alpha, SIGNAL_SIGMA);
            logl += (a + t2 * b).ln() - (1.0 + t2).ln();
            grad += 2.0 * theta * b / (a + t2 * b) - 2.0 * theta / (1.0 + t2);
        }
        (logl, grad)
    }

    /// The unnormalised log posterior at θ (for quadrature references).
    pub fn log_posterior(&self, theta: f64) -> f64 {
        self.prior.log_density(theta) + self.log_likelihood_and_grad(theta).0
    }
}

impl LogDensity for MixturePosterior {
    fn dim(&self) -> usize {
        1
    }

    fn logp_and_grad(&self, theta: &[f64], grad: &mut [f64]) -> Result<f64> {
        let log_prior = self.prior.log_density(theta[0]);
        if log_prior == f64::NEG_INFINITY {
            grad[0] = 0.0;
            return Ok(f64::NEG_INFINITY);
        }
        let (logl, dlogl) = self.log_likelihood_and_grad(theta[0]);
        grad[0] = dlogl + self.prior.grad_log_density(theta[0]);
        Ok(log_prior + logl)
    }

    fn support(&self) -> Vec<(f64, f64)> {
        vec![self.prior.support()]
    }
}
