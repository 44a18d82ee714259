//! Bayesian inference: priors, posterior sampling with NUTS, and convergence diagnostics.
//!
//! The posterior is prior × model; the sampler sees it only through [`LogDensity`], which
//! closed-form densities implement for validation and amortised neural models
//! ([`amortised::AmortisedPosterior`], read from a workspace by [`workspace`]) for real use.
//! [`run`] is what `nsbi posterior` calls, [`coverage`] what `nsbi coverage-bayes` calls.

pub mod amortised;
pub mod closed_form;
pub mod coverage;
pub mod diagnostics;
pub mod prior;
pub mod run;
pub mod sampler;
pub mod summary;
pub mod transform;
pub mod workspace;

pub use prior::{Prior, Priors};
pub use sampler::{sample, LogDensity, SamplerSettings, Samples};
