//! The binned kind: a workspace's HistFactory channels ([`BinnedPart`], built by
//! `binned::combine` on the model's parameters, evaluated by the binned engine of `binned/`),
//! with their counts per bin ([`BinnedData`]) as data.
//!
//! The channels are one [`ChannelKind`] together, not one each: the engine evaluates them in
//! one pass over shared buffers, and their terms are summed there in pyhf's order. Their
//! constraint terms and global observables are the model's (`auxdata` of the data stays empty).

use std::any::Any;
use std::cell::Cell;

use rand_chacha::ChaCha8Rng;

use super::{ChannelKind, ChannelReport, KindToys, Observed, ObservedData, ToyKey};
use crate::binned::combine::BinnedPart;
use crate::binned::{BinnedData, BinnedModel, BinnedParameter, Constraint, NllDerivatives};
use crate::error::{Error, Result};
use crate::likelihood::{Evaluation, InvalidDensity, Order};
use crate::model::{ConstraintPdf, ConstraintTerm, Parameter};

thread_local! {
    /// Each thread's binned-terms buffers, kept between evaluations so that they allocate
    /// nothing (taken out while in use, as the likelihood's own workspace).
    static TERMS: Cell<NllDerivatives> = Cell::new(NllDerivatives::default());
}

/// The binned channels of `local` (the workspace's binned model on its own parameters) placed
/// on the model's `parameters` (`global[i]` is local parameter i's index there), their
/// constraint terms moved to the model's `constraints` with pyhf's normalisation.
pub fn place(
    local: &BinnedModel,
    global: &[usize],
    parameters: &[Parameter],
    constraints: &mut Vec<ConstraintTerm>,
) -> BinnedPart {
    for (c, &auxdata) in local.constraints.iter().zip(&local.observed.auxdata) {
        let parameter = global[c.parameter()];
        let pdf = match *c {
            Constraint::Gaussian { sigma, .. } => ConstraintPdf::Gaussian { sigma },
            Constraint::Poisson { factor, .. } => ConstraintPdf::Poisson { factor },
        };
        constraints.push(ConstraintTerm {
            parameter,
            pdf,
            auxdata,
            normalised: true,
        });
    }
    let on_global = parameters
        .iter()
        .map(|p| BinnedParameter {
            name: p.name.clone(),
            init: p.init,
            bounds: p.bounds,
            fixed: p.fixed,
        })
        .collect();
    BinnedPart::on_global(local, global, on_global)
}

impl ObservedData for BinnedData {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Counts per bin of each channel, without global observables (those are the likelihood's).
fn counts(counts: Vec<Vec<f64>>) -> Observed {
    Box::new(BinnedData {
        counts,
        auxdata: Vec::new(),
    })
}

/// `data` as the binned kind's: a likelihood gives each kind the data it made.
fn binned_data(data: &dyn ObservedData) -> &BinnedData {
    data.as_any()
        .downcast_ref()
        .expect("a likelihood gives the binned kind the counts it made")
}

impl ChannelKind for BinnedPart {
    fn observed(&self) -> Result<Observed> {
        Ok(counts(self.observed.clone()))
    }

    fn asimov(&self, theta: &[f64]) -> Result<Observed> {
        Ok(counts(self.expected(theta)))
    }

    /// The Poisson terms Σ_b [λ_b − n_b ln λ_b + ln Γ(n_b + 1)] of every binned channel. Where
    /// some λ_b is not positive with n_b > 0 the point has no likelihood: `out.invalid` names
    /// the bin.
    fn add_nll(&self, data: &dyn ObservedData, theta: &[f64], order: Order, out: &mut Evaluation) {
        let data = binned_data(data);
        let mut terms = TERMS.take();
        match self.model.evaluate_into(theta, data, order, &mut terms) {
            Ok(()) => {
                out.nll += terms.value;
                for (o, g) in out.gradient.iter_mut().zip(&terms.gradient) {
                    *o += g;
                }
                for (o, h) in out.hessian.iter_mut().zip(&terms.hessian) {
                    *o += h;
                }
            }
            Err(_) => {
                if out.invalid.is_none() {
                    out.invalid = Some(self.invalid_bin(theta, &data.counts));
                }
            }
        }
        TERMS.set(terms);
    }

    /// Toys at θ_gen: refused, naming the bin, where an expected count is negative or not
    /// finite (no Poisson distribution has it as its mean).
    fn toys(&self, theta_gen: &[f64]) -> Result<Box<dyn KindToys>> {
        let expected = self.expected(theta_gen);
        for (channel, lambda) in self.model.channels.iter().zip(&expected) {
            if let Some(b) = lambda.iter().position(|l| !(l.is_finite() && *l >= 0.0)) {
                return Err(Error::Analysis(format!(
                    "binned channel '{}' bin {b}: expected count {} at the generation point; \
                     toys cannot be drawn there",
                    channel.name, lambda[b]
                )));
            }
        }
        Ok(Box::new(BinnedToys {
            part: self.clone(),
            theta_gen: theta_gen.to_vec(),
        }))
    }

    /// The first bin whose expected count is negative (or not finite) at θ_gen: no Poisson
    /// count has that mean.
    fn generation_invalid(&self, theta_gen: &[f64]) -> Result<Option<InvalidDensity>> {
        let expected = self.expected(theta_gen);
        for (channel, lambda) in self.model.channels.iter().zip(&expected) {
            if let Some(b) = lambda.iter().position(|l| !(l.is_finite() && *l >= 0.0)) {
                return Ok(Some(InvalidDensity {
                    channel: channel.name.clone(),
                    event: b,
                    density: lambda[b],
                    process: None,
                    bin: true,
                }));
            }
        }
        Ok(None)
    }

    fn reports(&self, data: &dyn ObservedData, theta: &[f64]) -> Vec<ChannelReport> {
        let expected = self.expected(theta);
        self.model
            .channels
            .iter()
            .zip(&binned_data(data).counts)
            .zip(expected)
            .map(|((channel, observed), expected)| ChannelReport {
                channel: channel.name.clone(),
                observed: observed.clone(),
                expected,
            })
            .collect()
    }

    fn undefined_coefficient(&self, theta: &[f64], parameters: &[Parameter]) -> Option<String> {
        let name = |j: usize| parameters[j].name.as_str();
        for channel in &self.model.channels {
            for sample in &channel.samples {
                let Some(coefficient) = &sample.coefficient else {
                    continue;
                };
                if let Some(what) = coefficient.undefined_at(theta, name) {
                    return Some(format!(
                        "coefficient '{}' of sample {} in binned channel {} {what}",
                        coefficient.text, sample.name, channel.name
                    ));
                }
            }
        }
        None
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn clone_box(&self) -> Box<dyn ChannelKind> {
        Box::new(self.clone())
    }
}

/// The binned channels' toys at one generation point.
struct BinnedToys {
    part: BinnedPart,
    theta_gen: Vec<f64>,
}

impl KindToys for BinnedToys {
    fn invalid_at(&self, theta: &[f64]) -> Option<InvalidDensity> {
        self.part.generation_invalid(theta).ok().flatten()
    }

    /// n_b ~ Poisson(λ_b(θ_gen)), drawn as the binned engine draws them
    /// ([`crate::binned::BinnedModel::sample_into`]) from the kind's own stream. The placed
    /// binned model has no constraints: the global observables are the likelihood's, drawn
    /// with the toy.
    fn draw(&self, key: ToyKey, _shared: &mut ChaCha8Rng) -> Observed {
        let mut rng = key.stream(b"nsbi binned toy stream v1");
        let mut data = BinnedData::default();
        self.part
            .model
            .sample_into(&self.theta_gen, &mut rng, &mut data)
            .expect("the expected counts at θ_gen were checked when the toys were set up");
        counts(data.counts)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl BinnedPart {
    /// The first bin whose expected count cannot carry its observed count.
    fn invalid_bin(&self, theta: &[f64], counts: &[Vec<f64>]) -> InvalidDensity {
        let expected = self.expected(theta);
        for (c, (lambda, observed)) in expected.iter().zip(counts).enumerate() {
            for (b, (&l, &n)) in lambda.iter().zip(observed).enumerate() {
                if l < 0.0 || (l == 0.0 && n > 0.0) || !l.is_finite() {
                    return InvalidDensity {
                        channel: self.model.channels[c].name.clone(),
                        event: b,
                        density: l,
                        process: None,
                        bin: true,
                    };
                }
            }
        }
        InvalidDensity {
            channel: self.model.channels[0].name.clone(),
            event: 0,
            density: f64::NAN,
            process: None,
            bin: true,
        }
    }
}
