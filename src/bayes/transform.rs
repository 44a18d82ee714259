//! Maps from a parameter's support onto the whole real line, so that the Hamiltonian sampler
//! never meets the edge of a prior.
//!
//! A trajectory that crosses a bound where the density drops to zero is rejected and counted as
//! divergent: sampling a half-normal in θ directly gives about one divergence per two draws and
//! misses the mass near the bound. Stan's answer, used here, is to sample u ∈ ℝ with θ = T(u):
//!
//! | support    | θ = T(u)                 | ln |dθ/du|                         |
//! |------------|--------------------------|------------------------------------|
//! | (−∞, ∞)    | u                        | 0                                  |
//! | (a, ∞)     | a + eᵘ                   | u                                  |
//! | (−∞, b)    | b − eᵘ                   | u                                  |
//! | (a, b)     | a + (b − a) σ(u)         | ln(b − a) + ln σ(u) + ln σ(−u)     |
//!
//! The density of u is p(T(u)) |dθ/du|, so the log-Jacobian is added to the log density and
//! its derivative to the gradient; draws are mapped back to θ before anyone sees them.

use crate::bayes::sampler::LogDensity;
use crate::error::Result;

/// How one parameter's support is unfolded onto the real line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transform {
    /// Unbounded: θ = u.
    Identity,
    /// θ > low: θ = low + eᵘ.
    LowerBound(f64),
    /// θ < high: θ = high − eᵘ.
    UpperBound(f64),
    /// low < θ < high: θ = low + (high − low) σ(u), σ the logistic function.
    Interval(f64, f64),
}

/// Where the map meets θ = T(u): dθ/du and the log-Jacobian with its derivative.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jacobian {
    pub theta: f64,
    pub dtheta_du: f64,
    /// ln |dθ/du|.
    pub log_jacobian: f64,
    /// d ln |dθ/du| / du.
    pub dlog_jacobian: f64,
}

impl Transform {
    /// The map for the support `[low, high]` (either end may be infinite).
    pub fn for_support(low: f64, high: f64) -> Transform {
        match (low.is_finite(), high.is_finite()) {
            (false, false) => Transform::Identity,
            (true, false) => Transform::LowerBound(low),
            (false, true) => Transform::UpperBound(high),
            (true, true) => Transform::Interval(low, high),
        }
    }

    /// θ = T(u) with the Jacobian terms.
    pub fn at(&self, u: f64) -> Jacobian {
        match *self {
            Transform::Identity => Jacobian {
                theta: u,
                dtheta_du: 1.0,
                log_jacobian: 0.0,
                dlog_jacobian: 0.0,
            },
            Transform::LowerBound(low) => Jacobian {
                theta: low + u.exp(),
                dtheta_du: u.exp(),
                log_jacobian: u,
                dlog_jacobian: 1.0,
            },
            Transform::UpperBound(high) => Jacobian {
                theta: high - u.exp(),
                dtheta_du: -u.exp(),
                log_jacobian: u,
                dlog_jacobian: 1.0,
            },
            Transform::Interval(low, high) => {
                let width = high - low;
                let (s, s_minus) = (logistic(u), logistic(-u));
                Jacobian {
                    theta: (low + width * s).clamp(low, high),
                    dtheta_du: width * s * s_minus,
                    log_jacobian: width.ln() - softplus(-u) - softplus(u),
                    dlog_jacobian: s_minus - s,
                }
            }
        }
    }

    /// u = T⁻¹(θ); `None` unless θ is strictly inside the support (the map reaches the bounds
    /// only at u = ±∞).
    pub fn to_unconstrained(&self, theta: f64) -> Option<f64> {
        let u = match *self {
            Transform::Identity => theta,
            Transform::LowerBound(low) => (theta - low).ln(),
            Transform::UpperBound(high) => (high - theta).ln(),
            Transform::Interval(low, high) => {
                let p = (theta - low) / (high - low);
                (p / (1.0 - p)).ln()
            }
        };
        u.is_finite().then_some(u)
    }
}

/// σ(u) = 1 / (1 + e⁻ᵘ), without overflow for large |u|.
fn logistic(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

/// ln(1 + eˣ), without overflow: −ln σ(−x).
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// A posterior seen in the unconstrained coordinates u: what the sampler explores.
pub struct Unconstrained<'a, D> {
    pub density: &'a D,
    pub transforms: Vec<Transform>,
}

impl<'a, D: LogDensity> Unconstrained<'a, D> {
    /// The transforms of `density`'s supports.
    pub fn new(density: &'a D) -> Self {
        let transforms = density
            .support()
            .into_iter()
            .map(|(low, high)| Transform::for_support(low, high))
            .collect();
        Unconstrained {
            density,
            transforms,
        }
    }

    /// θ of the unconstrained point u.
    pub fn to_constrained(&self, u: &[f64]) -> Vec<f64> {
        self.transforms
            .iter()
            .zip(u)
            .map(|(t, &u)| t.at(u).theta)
            .collect()
    }
}

impl<D: LogDensity> LogDensity for Unconstrained<'_, D> {
    fn dim(&self) -> usize {
        self.density.dim()
    }

    /// ln p(T(u)) + Σ ln |dθᵢ/duᵢ|, gradient by the chain rule.
    fn logp_and_grad(&self, u: &[f64], grad: &mut [f64]) -> Result<f64> {
        let jacobians: Vec<Jacobian> = self
            .transforms
            .iter()
            .zip(u)
            .map(|(t, &u)| t.at(u))
            .collect();
        let theta: Vec<f64> = jacobians.iter().map(|j| j.theta).collect();
        let logp = self.density.logp_and_grad(&theta, grad)?;
        let mut log_jacobian = 0.0;
        for (g, j) in grad.iter_mut().zip(&jacobians) {
            *g = *g * j.dtheta_du + j.dlog_jacobian;
            log_jacobian += j.log_jacobian;
        }
        Ok(logp + log_jacobian)
    }
}
