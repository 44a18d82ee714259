//! The unbinned kind: the workspace's unbinned channels ([`UnbinnedChannels`], the model's
//! `channels`), with their events ([`UnbinnedData`]: one [`ChannelData`] per channel) as data.
//!
//! Their NLL terms are the event sums of `likelihood/`; their data come from the cached ratios
//! an analysis attaches ([`UnbinnedChannels::attach`]): the observed events, the Asimov sets
//! (the weighted MC pool at θ) and the toys (bootstrap from the pool, [`toys`]). The pools and
//! the shape normalisations are built once, on first use, and shared by every clone of the
//! model.

pub mod toys;

use std::any::Any;
use std::fmt::Debug;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use super::{ChannelKind, ChannelReport, KindToys, Observed, ObservedData};
use crate::error::{Error, Result};
use crate::infer::resample::toy_mc_weights;
use crate::likelihood::data::{self, ChannelPool};
use crate::likelihood::normalisation::ChannelNormalisation;
use crate::likelihood::{add_unbinned_nll, ChannelData, Evaluation, InvalidDensity, Order};
use crate::model::{Channel, Parameter};
use crate::ratio::ChannelRatios;
use toys::UnbinnedToys;

/// The unbinned channels of a model: their processes, coefficients and systematics (a list of
/// [`Channel`], which it dereferences to), and, once an analysis has attached them, the
/// ratios their datasets are made from. Printed (`{:?}`) as the list of channels alone: the
/// model's fingerprint in derived files is its printed form.
#[derive(Clone, Default)]
pub struct UnbinnedChannels {
    channels: Vec<Channel>,
    sources: Option<Arc<Sources>>,
}

/// What the datasets of unbinned channels are made from.
struct Sources {
    ratios: Arc<Vec<ChannelRatios>>,
    /// Each channel's shape normalisation, built on first use and shared by every dataset
    /// (it depends on the MC only).
    normalisations: OnceLock<Vec<Arc<ChannelNormalisation>>>,
    /// Each channel's pooled MC (the Asimov sets' and toys' events), built on first use: a
    /// command on the observed data never builds it.
    pools: OnceLock<Vec<ChannelPool>>,
    /// The resampled toy MC weights of each pool ([`toy_mc_weights`]): they do not depend on
    /// the generation point, so a run over many points resamples once.
    toy_mc: OnceLock<Vec<Vec<f64>>>,
}

impl From<Vec<Channel>> for UnbinnedChannels {
    fn from(channels: Vec<Channel>) -> Self {
        UnbinnedChannels {
            channels,
            sources: None,
        }
    }
}

impl Debug for UnbinnedChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.channels.fmt(f)
    }
}

impl Deref for UnbinnedChannels {
    type Target = Vec<Channel>;
    fn deref(&self) -> &Vec<Channel> {
        &self.channels
    }
}

impl DerefMut for UnbinnedChannels {
    fn deref_mut(&mut self) -> &mut Vec<Channel> {
        &mut self.channels
    }
}

impl<'a> IntoIterator for &'a UnbinnedChannels {
    type Item = &'a Channel;
    type IntoIter = std::slice::Iter<'a, Channel>;
    fn into_iter(self) -> Self::IntoIter {
        self.channels.iter()
    }
}

/// The unbinned channels' data: one dataset per channel, in the model's order.
#[derive(Clone, Debug, Default)]
pub struct UnbinnedData {
    pub channels: Vec<ChannelData>,
}

impl ObservedData for UnbinnedData {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn n_events(&self) -> usize {
        self.channels.iter().map(|c| c.weights.len()).sum()
    }
}

/// `data` as the unbinned kind's: a likelihood gives each kind the data it made.
fn unbinned_data(data: &dyn ObservedData) -> &UnbinnedData {
    data.as_any()
        .downcast_ref()
        .expect("a likelihood gives the unbinned kind the events it made")
}

impl UnbinnedChannels {
    /// Gives the channels the ratios of their events (one [`ChannelRatios`] per channel, in
    /// order): their observed data, Asimov sets and toys are made from them.
    pub fn attach(&mut self, ratios: Arc<Vec<ChannelRatios>>) {
        self.sources = Some(Arc::new(Sources {
            ratios,
            normalisations: OnceLock::new(),
            pools: OnceLock::new(),
            toy_mc: OnceLock::new(),
        }));
    }

    fn sources(&self) -> Result<&Sources> {
        self.sources.as_deref().ok_or_else(|| {
            Error::Analysis(
                "the unbinned channels have no events attached (a model built in code: give \
                 their datasets to Likelihood::new)"
                    .into(),
            )
        })
    }

    /// Every channel's shape normalisation, built once: on the pools' shape inputs when the
    /// pools are built ([`ChannelPool::normalisation`], no second copy), otherwise from each
    /// process's own-MC entries alone ([`data::normalisation`]).
    pub fn normalisations(&self) -> Result<&[Arc<ChannelNormalisation>]> {
        let sources = self.sources()?;
        if sources.normalisations.get().is_none() {
            let channels = self.channels.iter().zip(sources.ratios.iter());
            let built = match sources.pools.get() {
                Some(pools) => channels
                    .zip(pools)
                    .map(|((c, r), pool)| pool.normalisation(c, r).map(Arc::new))
                    .collect::<Result<Vec<_>>>()?,
                None => channels
                    .map(|(c, r)| data::normalisation(c, r).map(Arc::new))
                    .collect::<Result<Vec<_>>>()?,
            };
            let _ = sources.normalisations.set(built);
        }
        Ok(sources.normalisations.get().expect("set above"))
    }

    /// Every channel's pooled MC ([`ChannelPool`]), built once.
    pub fn pools(&self) -> Result<&[ChannelPool]> {
        let sources = self.sources()?;
        if sources.pools.get().is_none() {
            let built = self
                .channels
                .iter()
                .zip(sources.ratios.iter())
                .map(|(c, r)| ChannelPool::new(c, r))
                .collect::<Result<Vec<_>>>()?;
            let _ = sources.pools.set(built);
        }
        Ok(sources.pools.get().expect("set above"))
    }

    /// Every channel's observed events.
    pub fn observed_sets(&self) -> Result<Vec<ChannelData>> {
        if self.channels.is_empty() {
            return Ok(Vec::new());
        }
        let ratios = self.sources()?.ratios.iter();
        self.channels
            .iter()
            .zip(ratios)
            .zip(self.normalisations()?.iter().cloned())
            .map(|((c, r), n)| ChannelData::observed_with(c, r, n))
            .collect()
    }

    /// Every channel's Asimov set at θ: its weighted MC pool ([`ChannelData::asimov_on`]).
    pub fn asimov_sets(&self, theta: &[f64]) -> Result<Vec<ChannelData>> {
        if self.channels.is_empty() {
            return Ok(Vec::new());
        }
        let ratios = self.sources()?.ratios.iter();
        let pools = self.pools()?;
        self.channels
            .iter()
            .zip(ratios)
            .zip(pools)
            .zip(self.normalisations()?.iter().cloned())
            .map(|(((c, r), pool), n)| ChannelData::asimov_on(c, r, pool, theta, n))
            .collect()
    }

    /// The toy MC weights of `pools` (the channels' Asimov sets at any θ), resampled once.
    fn toy_mc(&self, pools: &[ChannelData]) -> Result<&[Vec<f64>]> {
        let sources = self.sources()?;
        if sources.toy_mc.get().is_none() {
            let weights = toy_mc_weights(&self.channels, &sources.ratios, pools)?;
            let _ = sources.toy_mc.set(weights);
        }
        Ok(sources.toy_mc.get().expect("set above"))
    }
}

fn events(channels: Vec<ChannelData>) -> Observed {
    Box::new(UnbinnedData { channels })
}

impl ChannelKind for UnbinnedChannels {
    fn observed(&self) -> Result<Observed> {
        self.observed_sets().map(events)
    }

    fn asimov(&self, theta: &[f64]) -> Result<Observed> {
        self.asimov_sets(theta).map(events)
    }

    fn add_nll(&self, data: &dyn ObservedData, theta: &[f64], order: Order, out: &mut Evaluation) {
        add_unbinned_nll(
            &self.channels,
            &unbinned_data(data).channels,
            theta,
            order,
            out,
        );
    }

    /// The toys' pools are the Asimov sets at θ_gen, with the resampled toy MC weights
    /// (negative generator weights cell resampled first, [`crate::infer::resample`]).
    fn toys(&self, theta_gen: &[f64]) -> Result<Box<dyn KindToys>> {
        let mut pools = self.asimov_sets(theta_gen)?;
        if !pools.is_empty() {
            let weights = self.toy_mc(&pools)?;
            for (pool, w) in pools.iter_mut().zip(weights) {
                pool.mc_weights = Some(w.clone());
            }
        }
        Ok(Box::new(UnbinnedToys::new(
            &self.channels,
            pools,
            theta_gen,
        )?))
    }

    /// The first pooled MC event whose density s(x|θ) = Σ_c ν̃_c r_c g_c is negative (or not
    /// finite) at θ_gen: the pool samples the whole feature space the model covers, so the
    /// model is a density there exactly when it is at every pooled event. (A zero density
    /// is a density: such events are never drawn.)
    fn generation_invalid(&self, theta_gen: &[f64]) -> Result<Option<InvalidDensity>> {
        let pools = self.asimov_sets(theta_gen)?;
        let first = self
            .channels
            .iter()
            .zip(&pools)
            .find_map(|(channel, pool)| {
                let density = pool.model_density(channel, theta_gen);
                let event = density.iter().position(|s| !(*s >= 0.0 && s.is_finite()))?;
                Some(InvalidDensity {
                    channel: channel.name.clone(),
                    event,
                    density: density[event],
                    process: None,
                    bin: false,
                })
            });
        Ok(first)
    }

    fn prepare_generation(&self) -> Result<()> {
        if !self.channels.is_empty() {
            self.pools()?;
        }
        Ok(())
    }

    /// None: the unbinned channels are reported through their shape normalisation
    /// ([`crate::likelihood::normalisation::report`]).
    fn reports(&self, _data: &dyn ObservedData, _theta: &[f64]) -> Vec<ChannelReport> {
        Vec::new()
    }

    fn undefined_coefficient(&self, theta: &[f64], parameters: &[Parameter]) -> Option<String> {
        let name = |j: usize| parameters[j].name.as_str();
        for channel in &self.channels {
            for process in &channel.processes {
                let coefficient = &process.coefficient;
                if let Some(what) = coefficient.undefined_at(theta, name) {
                    return Some(format!(
                        "coefficient '{}' of process {} in channel {} {what}",
                        coefficient.text, process.name, channel.name
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
