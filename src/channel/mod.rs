//! Channel kinds behind one interface.
//!
//! A model's channels come in kinds: the unbinned channels ([`unbinned`]: events, ratio
//! models, MC pools and the event sums of `likelihood/`, DESIGN.md §2), the binned HistFactory
//! channels ([`binned`]), and any other. Each kind is a [`ChannelKind`]: a type that holds its
//! channels on the model's one parameter vector and says, for the data of its own type
//! ([`Observed`]), what the likelihood, the fits, the toys, the Asimov sets and the fit report
//! need. [`crate::model::Model::all_kinds`] lists them (the unbinned kind first); the
//! likelihood, the datasets of an analysis, the toys and the reports iterate over that list
//! without knowing what is in it, so fits, scans, toys, Neyman, coverage and batch work on any
//! mix of channels.
//!
//! # Adding a kind
//!
//! 1. Write its model type and its data type in a file of this folder, and implement
//!    [`ChannelKind`] for the model type, [`ObservedData`] for the data type and [`KindToys`]
//!    for its toy generator: its NLL terms with their gradient and Hessian, the observed,
//!    Asimov and toy data, the per-channel report. Its parameters are the model's; its
//!    constraint terms are the model's `constraints` (counted once however many kinds use a
//!    parameter), not its own.
//! 2. To read it from the workspace YAML, add it to [`spec`]: its variant of
//!    [`spec::ChannelSpec`] with its `type` name, which parameters it uses, and its
//!    construction in [`spec::KindsOfWorkspace`]. The schema, the workspace checks and
//!    `Model::from_workspace` go through those and need no change. (A kind built in code
//!    instead is pushed onto [`crate::model::Model::kinds`].)
//!
//! `tests/channel_kind.rs` does step 1 with a one-bin counting channel, outside the crate,
//! and fits it.

pub mod binned;
pub mod spec;
pub mod unbinned;

use std::any::Any;
use std::fmt::Debug;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::likelihood::{Evaluation, InvalidDensity, Order};
use crate::model::Parameter;

/// One kind's channels on the model's parameters: everything the likelihood, the toys, the
/// Asimov sets and the fit report ask of them.
pub trait ChannelKind: Send + Sync + Debug {
    /// The data the workspace observed in these channels.
    fn observed(&self) -> Result<Observed>;

    /// The Asimov data at θ: each observation at its expected value.
    fn asimov(&self, theta: &[f64]) -> Result<Observed>;

    /// Adds these channels' NLL terms at θ (and their gradient and Hessian, as `order` asks)
    /// for `data` (this kind's, from one of the methods above) to `out`. A point where the
    /// data have no likelihood sets `out.invalid` (the likelihood then returns +∞).
    fn add_nll(&self, data: &dyn ObservedData, theta: &[f64], order: Order, out: &mut Evaluation);

    /// The generator of these channels' toys at θ_gen (whatever a kind prepares once per
    /// generation point: the unbinned kind's weighted pools and samplers), or an error naming
    /// the channel where no toy can be drawn there.
    fn toys(&self, theta_gen: &[f64]) -> Result<Box<dyn KindToys>>;

    /// Where the model these channels generate from is not a density at θ_gen: the first
    /// pooled MC event of an unbinned channel with a negative per-event density, or bin of a
    /// binned channel with a negative expected count. A Neyman construction excludes such a
    /// grid point rather than draw its toys from a truncated model. None by default.
    fn generation_invalid(&self, _theta_gen: &[f64]) -> Result<Option<InvalidDensity>> {
        Ok(None)
    }

    /// Builds what this kind's Asimov sets and toys are made from, before a command also fits
    /// the observed data (the unbinned pools, whose shape inputs the observed data's
    /// normalisation then shares). Nothing by default.
    fn prepare_generation(&self) -> Result<()> {
        Ok(())
    }

    /// Each channel's observed against expected data at θ, for the fit report.
    fn reports(&self, data: &dyn ObservedData, theta: &[f64]) -> Vec<ChannelReport>;

    /// The first coefficient of these channels that is not finite at θ (or one of whose
    /// derivatives is not), described for a message naming the model's `parameters`.
    fn undefined_coefficient(&self, theta: &[f64], parameters: &[Parameter]) -> Option<String>;

    /// This kind as `Any`, for callers that know which kind they hold (tests, the pyhf export).
    fn as_any(&self) -> &dyn Any;

    /// A boxed copy (the model is `Clone`).
    fn clone_box(&self) -> Box<dyn ChannelKind>;
}

impl Clone for Box<dyn ChannelKind> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// One kind's data in a likelihood, of the kind's own type (counts per bin, events with
/// weights, ...); the kind that made it reads it back through [`ObservedData::as_any`].
pub trait ObservedData: Send + Sync + Debug {
    /// `self` as `Any` (implement it as `self`), to be downcast to the kind's data type.
    fn as_any(&self) -> &dyn Any;

    /// The number of individual events the data hold (a toy record's `n_events`): none for
    /// counts per bin, the default.
    fn n_events(&self) -> usize {
        0
    }
}

/// A kind's data, boxed: the likelihood holds one per kind of the model.
pub type Observed = Box<dyn ObservedData>;

/// One kind's toys at one generation point ([`ChannelKind::toys`]).
pub trait KindToys: Send + Sync {
    /// Toy `key`'s data. A kind draws from random streams of its own keyed by `key` (see
    /// [`ToyKey::stream`]), so that other kinds' toys do not depend on whether it is there.
    /// `shared` is the toy's common stream, from which the global observables are drawn after
    /// every kind's data: only the unbinned kind draws from it (its toys did before there
    /// were kinds, and a seed keeps giving the toys it gave); a kind that drew from it would
    /// change every other toy's global observables.
    fn draw(&self, key: ToyKey, shared: &mut ChaCha8Rng) -> Observed;

    /// Where the model these toys are drawn from is not a density at θ (another point than
    /// the generation point: a toy's best fit), as [`ChannelKind::generation_invalid`] says,
    /// from what the toys already hold. None by default.
    fn invalid_at(&self, _theta: &[f64]) -> Option<InvalidDensity> {
        None
    }

    /// `self` as `Any`, for callers that know which kind's toys they hold (tests).
    fn as_any(&self) -> &dyn Any;
}

/// Which toy: (seed, grid point, toy). Every random stream of a toy is keyed by it, so a toy is
/// the same whatever the threads or shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToyKey {
    pub seed: u64,
    pub grid_index: usize,
    pub toy_index: usize,
}

impl ToyKey {
    /// The ChaCha8 stream of this toy in `domain` (a kind's own name for its draws).
    pub fn stream(&self, domain: &[u8]) -> ChaCha8Rng {
        crate::infer::toys::stream(domain, self.seed, self.grid_index, self.toy_index)
    }
}

/// A channel at the best fit: what was fitted against what the model expects, per bin (one
/// bin for a counting channel).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChannelReport {
    pub channel: String,
    pub observed: Vec<f64>,
    pub expected: Vec<f64>,
}

impl ChannelReport {
    /// One line: totals, and the largest per-bin Poisson pull (n − λ)/√λ.
    pub fn summary(&self) -> String {
        let (n, lambda): (f64, f64) = (self.observed.iter().sum(), self.expected.iter().sum());
        let (bin, pull) = self
            .observed
            .iter()
            .zip(&self.expected)
            .map(|(n, l)| (n - l) / l.sqrt())
            .enumerate()
            .fold((0, 0.0f64), |best, (b, p)| {
                if p.abs() > best.1.abs() {
                    (b, p)
                } else {
                    best
                }
            });
        format!(
            "{}: {} bins, observed {n} vs expected {lambda:.2}; largest pull {pull:+.2} (bin {bin})",
            self.channel,
            self.observed.len()
        )
    }
}
