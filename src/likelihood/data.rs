//! Per-event inputs of the likelihood: weights, cached ratios, shape variations — for the
//! observed data or for an Asimov set built from the weighted MC.

use std::ops::Range;
use std::sync::Arc;

use super::normalisation::{ChannelNormalisation, ProcessNormalisation};
use crate::error::{Error, Result};
use crate::model::interpolation::{InterpolationCode, ShapeKernel, ShapeVariations};
use crate::model::{process_yield, Channel, Model, Process};
use crate::ratio::ChannelRatios;
use crate::workspace::EventRole;

/// One process's per-event inputs on a dataset.
#[derive(Clone, Debug)]
pub struct ProcessData {
    /// ν_c⁰: the workspace's yield, or the sum of the process's MC weights.
    pub nominal_yield: f64,
    /// r_c(x_i) for every event of the dataset. Kept in f64, unlike the shape inputs
    /// ([`ShapeVariations`], f32): r_c is the density itself, not a deviation from 1, so f32
    /// would round every event's density by up to 6·10⁻⁸ — shifting an Asimov NLL of 10⁶
    /// events by up to ~10⁻⁴ and changing every result bit-wise — to save 4 bytes per event
    /// and process (2 % of the pool at 10 shape systematics per process).
    pub ratio: Vec<f64>,
    pub shapes: Vec<ShapeData>,
}

impl ProcessData {
    /// The process's shape interpolations prepared at θ (one per shape systematic).
    pub fn shape_kernels(&self, theta: &[f64]) -> Vec<ShapeKernel> {
        let mut kernels = Vec::new();
        self.shape_kernels_into(theta, &mut kernels);
        kernels
    }

    /// [`ProcessData::shape_kernels`] into `kernels`, reusing its array.
    pub fn shape_kernels_into(&self, theta: &[f64], kernels: &mut Vec<ShapeKernel>) {
        kernels.clear();
        kernels.extend(
            self.shapes
                .iter()
                .map(|s| ShapeKernel::new(s.code, theta[s.parameter])),
        );
    }

    /// g_c(x_i|α) of every event: the product of its interpolated shape factors at θ.
    pub fn shape_factors(&self, theta: &[f64]) -> Vec<f64> {
        shape_factors(&self.shapes, self.ratio.len(), theta)
    }
}

/// g(x_i|α) of `n` events with shape inputs `shapes`: the product of their interpolated
/// factors at θ (1 without shape systematics).
fn shape_factors(shapes: &[ShapeData], n: usize, theta: &[f64]) -> Vec<f64> {
    let kernels: Vec<ShapeKernel> = shapes
        .iter()
        .map(|s| ShapeKernel::new(s.code, theta[s.parameter]))
        .collect();
    (0..n)
        .map(|i| {
            shapes
                .iter()
                .zip(&kernels)
                .map(|(s, k)| k.eval(&s.variations.event(i)).value)
                .product()
        })
        .collect()
}

/// Per-event inputs of one shape systematic: the ±1σ shape ratios r±(x).
#[derive(Clone, Debug)]
pub struct ShapeData {
    pub parameter: usize,
    pub code: InterpolationCode,
    /// Per event: δ⁺(x), δ⁻(x) and their logarithms.
    pub variations: ShapeVariations,
}

/// A dataset of one unbinned channel, ready for the likelihood.
#[derive(Clone, Debug)]
pub struct ChannelData {
    pub name: String,
    pub weights: Vec<f64>,
    pub processes: Vec<ProcessData>,
    /// For a pooled MC (Asimov) set: each event's own MC weight normalised within its process
    /// (b_i, summing to 1 per process), which toys are drawn from. `None` for data.
    pub mc_weights: Option<Vec<f64>>,
    /// N_c(α) of every process, from its own MC (see `likelihood::normalisation`): one per
    /// analysis, shared by the observed data, the Asimov sets and the toys drawn from them.
    pub normalisation: Arc<ChannelNormalisation>,
}

fn source_index(ratios: &ChannelRatios, role: &EventRole) -> Result<usize> {
    ratios
        .sources
        .iter()
        .position(|(r, _)| r == role)
        .ok_or_else(|| {
            Error::Analysis(format!(
                "channel {}: no {role} among its event files",
                ratios.channel
            ))
        })
}

/// ν_c⁰ of every process of `channel`.
pub fn nominal_yields(channel: &Channel, ratios: &ChannelRatios) -> Result<Vec<f64>> {
    channel
        .processes
        .iter()
        .map(|p| match p.nominal_yield {
            Some(y) => Ok(y),
            None => {
                let idx = source_index(ratios, &EventRole::Process(p.name.clone()))?;
                weights_yield(&p.name, &ratios.sources[idx].1)
            }
        })
        .collect()
}

/// ν_c⁰ = Σ w of a process's MC sample, refused unless positive (as an explicit `yield:` is):
/// a non-positive sum would enter the likelihood as a negative expected count.
fn weights_yield(process: &str, events: &crate::data::Events) -> Result<f64> {
    let sum = events.total_weight();
    if sum > 0.0 {
        return Ok(sum);
    }
    Err(Error::event_file(
        &events.file,
        format!(
            "the weights of process '{process}' sum to {sum} over {} events: its yield (the \
             sum of the MC weights when the workspace gives no `yield:`) must be positive; \
             fix the weights or give the process a positive `yield:`",
            events.len()
        ),
    ))
}

/// N_c(α) of every process of `channel`, from each process's shape systematics on its own MC
/// (only these ratios are read: an observed-data fit needs nothing else of the MC).
pub fn normalisation(channel: &Channel, ratios: &ChannelRatios) -> Result<ChannelNormalisation> {
    normalisation_from(channel, ratios, |_, p, source| shapes_on(p, ratios, source))
}

/// N_c(α) of every process of `channel`, with process c's shape inputs on its own MC (source
/// index `source`) given by `own_shapes(c, process, source)`.
fn normalisation_from(
    channel: &Channel,
    ratios: &ChannelRatios,
    mut own_shapes: impl FnMut(usize, &Process, usize) -> Result<Vec<ShapeData>>,
) -> Result<ChannelNormalisation> {
    let mut processes = Vec::new();
    for (c, p) in channel.processes.iter().enumerate() {
        if p.shape_systematics.is_empty() {
            processes.push(ProcessNormalisation::default());
            continue;
        }
        let source = source_index(ratios, &EventRole::Process(p.name.clone()))?;
        let events = &ratios.sources[source].1;
        let total = events.total_weight();
        if !(total > 0.0 && total.is_finite()) {
            return Err(Error::event_file(
                &events.file,
                format!(
                    "the weights of process '{}' sum to {total} over {} events: a process with \
                     shape systematics is normalised by N(α) = Σ b g(α) / Σ b over its MC, which \
                     needs a positive sum; fix the weights",
                    p.name,
                    events.len()
                ),
            ));
        }
        processes.push(
            ProcessNormalisation::new(own_shapes(c, p, source)?, &events.weights)
                .map_err(|e| Error::Analysis(format!("process '{}': {e}", p.name)))?,
        );
    }
    Ok(ChannelNormalisation { processes })
}

/// The pooled MC of a channel, the events of its Asimov sets and toys: every process's MC
/// sample in process order, with every process's ratio and shape inputs on all of them. It
/// does not depend on θ: an analysis builds it once, and the Asimov set at each θ only weights
/// its events.
#[derive(Clone, Debug)]
pub struct ChannelPool {
    /// Per process, its inputs on every pooled event.
    pub processes: Vec<ProcessData>,
    /// Per process, the pooled events that are its own MC.
    pub ranges: Vec<Range<usize>>,
    /// Per process, the index of its MC among the channel's event files.
    sources: Vec<usize>,
}

impl ChannelPool {
    /// Reads each process's ratio and shape entries on every process's MC into one array per
    /// quantity (of exactly the pool's size: one entry of the cache in memory at a time).
    pub fn new(channel: &Channel, ratios: &ChannelRatios) -> Result<ChannelPool> {
        let yields = nominal_yields(channel, ratios)?;
        let sources = channel
            .processes
            .iter()
            .map(|p| source_index(ratios, &EventRole::Process(p.name.clone())))
            .collect::<Result<Vec<usize>>>()?;
        let mut ranges = Vec::with_capacity(sources.len());
        let mut n_pool = 0;
        for &source in &sources {
            let n = ratios.sources[source].1.len();
            ranges.push(n_pool..n_pool + n);
            n_pool += n;
        }
        let mut processes = Vec::with_capacity(sources.len());
        for (p, &nominal_yield) in channel.processes.iter().zip(&yields) {
            let mut ratio = Vec::with_capacity(n_pool);
            for &source in &sources {
                ratio.extend(ratios.ratio(&p.ratio, source)?);
            }
            let shapes = p
                .shape_systematics
                .iter()
                .map(|s| {
                    let parts = sources
                        .iter()
                        .map(|&source| {
                            Ok((ratios.ratio(&s.up, source)?, ratios.ratio(&s.down, source)?))
                        })
                        .collect::<Result<Vec<(Vec<f64>, Vec<f64>)>>>()?;
                    Ok(ShapeData {
                        parameter: s.parameter,
                        code: s.code,
                        variations: ShapeVariations::from_ratio_parts(
                            parts
                                .iter()
                                .map(|(up, down)| (up.as_slice(), down.as_slice())),
                        ),
                    })
                })
                .collect::<Result<Vec<ShapeData>>>()?;
            processes.push(ProcessData {
                nominal_yield,
                ratio,
                shapes,
            });
        }
        Ok(ChannelPool {
            processes,
            ranges,
            sources,
        })
    }

    /// Process c's shape inputs on its own MC: views of the pool's arrays, not a copy.
    pub fn own_shapes(&self, c: usize) -> Vec<ShapeData> {
        self.processes[c]
            .shapes
            .iter()
            .map(|s| ShapeData {
                parameter: s.parameter,
                code: s.code,
                variations: s.variations.events(self.ranges[c].clone()),
            })
            .collect()
    }

    /// N_c(α) of every process of `channel` ([`normalisation`]) on the pool's own copy of the
    /// shape inputs: the normalisation and the Asimov sets share one allocation.
    pub fn normalisation(
        &self,
        channel: &Channel,
        ratios: &ChannelRatios,
    ) -> Result<ChannelNormalisation> {
        normalisation_from(channel, ratios, |c, _, _| Ok(self.own_shapes(c)))
    }
}

/// Per-process inputs for the events of source `source` (in order).
fn processes_on(
    channel: &Channel,
    ratios: &ChannelRatios,
    source: usize,
    yields: &[f64],
) -> Result<Vec<ProcessData>> {
    let mut out = Vec::new();
    for (p, &nominal_yield) in channel.processes.iter().zip(yields) {
        out.push(ProcessData {
            nominal_yield,
            ratio: ratios.ratio(&p.ratio, source)?,
            shapes: shapes_on(p, ratios, source)?,
        });
    }
    Ok(out)
}

/// Process `p`'s shape systematics on the events of source `source`: their ±1σ shape ratios.
fn shapes_on(p: &Process, ratios: &ChannelRatios, source: usize) -> Result<Vec<ShapeData>> {
    p.shape_systematics
        .iter()
        .map(|s| {
            Ok(ShapeData {
                parameter: s.parameter,
                code: s.code,
                variations: ShapeVariations::from_ratios(
                    &ratios.ratio(&s.up, source)?,
                    &ratios.ratio(&s.down, source)?,
                ),
            })
        })
        .collect()
}

impl ChannelData {
    /// The observed events of a channel, each with its weight (1 unless the file gives one).
    pub fn observed(channel: &Channel, ratios: &ChannelRatios) -> Result<ChannelData> {
        ChannelData::observed_with(channel, ratios, Arc::new(normalisation(channel, ratios)?))
    }

    /// [`ChannelData::observed`] with the channel's normalisation already built (it depends
    /// on the MC only, so an analysis builds it once for all its datasets).
    pub fn observed_with(
        channel: &Channel,
        ratios: &ChannelRatios,
        normalisation: Arc<ChannelNormalisation>,
    ) -> Result<ChannelData> {
        let source = source_index(ratios, &EventRole::Observed)?;
        let yields = nominal_yields(channel, ratios)?;
        Ok(ChannelData {
            name: channel.name.clone(),
            weights: ratios.sources[source].1.weights.clone(),
            processes: processes_on(channel, ratios, source, &yields)?,
            mc_weights: None,
            normalisation,
        })
    }

    /// The Asimov set at `theta`: the MC mixture there ([`ChannelData::mc_mixture_on`]) with
    /// its weights calibrated by the MC error so that a fit of it returns `theta` exactly
    /// ([`super::closure`]). The weights sum to ν(θ,α); they are negative where a coefficient
    /// is (interference), and the likelihood sums them as they are.
    pub fn asimov(channel: &Channel, ratios: &ChannelRatios, theta: &[f64]) -> Result<ChannelData> {
        let pool = ChannelPool::new(channel, ratios)?;
        let norm = Arc::new(pool.normalisation(channel, ratios)?);
        ChannelData::asimov_on(channel, ratios, &pool, theta, norm)
    }

    /// [`ChannelData::asimov`] from the channel's pool and normalisation already built: the
    /// Asimov sets of every grid point of a construction share them (the shape inputs are
    /// views of the pool's arrays, the normalisation's tables are built once).
    pub fn asimov_on(
        channel: &Channel,
        ratios: &ChannelRatios,
        pool: &ChannelPool,
        theta: &[f64],
        norm: Arc<ChannelNormalisation>,
    ) -> Result<ChannelData> {
        let mut data = ChannelData::mc_mixture_on(channel, ratios, pool, theta, norm)?;
        let mut weights = std::mem::take(&mut data.weights);
        super::closure::close_asimov_weights(channel, &data, theta, &mut weights)?;
        data.weights = weights;
        Ok(data)
    }

    /// The weighted MC mixture at `theta`: every process's MC events pooled, event i of process
    /// c weighted by w_i ν_c(θ,α)/Σ_i w_i · g_c(x_i|α)/N_c(α), so the weights sum to ν(θ,α) and
    /// their distribution is the model's at θ up to MC error (what the reweighting closure
    /// diagnostics compare; the Asimov set is this calibrated to close exactly).
    pub fn mc_mixture(
        channel: &Channel,
        ratios: &ChannelRatios,
        theta: &[f64],
    ) -> Result<ChannelData> {
        let pool = ChannelPool::new(channel, ratios)?;
        let norm = Arc::new(pool.normalisation(channel, ratios)?);
        ChannelData::mc_mixture_on(channel, ratios, &pool, theta, norm)
    }

    /// [`ChannelData::mc_mixture`] from the channel's pool and normalisation already built.
    pub fn mc_mixture_on(
        channel: &Channel,
        ratios: &ChannelRatios,
        pool: &ChannelPool,
        theta: &[f64],
        norm: Arc<ChannelNormalisation>,
    ) -> Result<ChannelData> {
        let n = theta.len();
        let (mut grad, mut hess) = (vec![0.0; n], vec![0.0; n * n]);
        let n_pool = pool.ranges.last().map_or(0, |r| r.end);
        let mut weights = Vec::with_capacity(n_pool);
        let mut mc_weights = Vec::with_capacity(n_pool);
        for (c, process) in channel.processes.iter().enumerate() {
            let events = &ratios.sources[pool.sources[c]].1;
            let nu_c = process_yield(
                process,
                pool.processes[c].nominal_yield,
                theta,
                &mut grad,
                &mut hess,
            );
            let total = events.total_weight();
            let n_c = norm.value(c, theta);
            if !(n_c > 0.0 && n_c.is_finite()) {
                return Err(Error::Analysis(format!(
                    "channel {}: the shape normalisation of process '{}' is N = {n_c:e} at the \
                     Asimov point: its shape systematics give no density there",
                    channel.name, process.name
                )));
            }
            let scale = nu_c / (total * n_c);
            mc_weights.extend(events.weights.iter().map(|w| w / total));
            let shape = shape_factors(&pool.own_shapes(c), events.len(), theta);
            weights.extend(
                events
                    .weights
                    .iter()
                    .zip(&shape)
                    .map(|(w, g)| w * scale * g),
            );
        }
        Ok(ChannelData {
            name: channel.name.clone(),
            weights,
            processes: pool.processes.clone(),
            mc_weights: Some(mc_weights),
            normalisation: norm,
        })
    }

    /// Every process's shape interpolations prepared at θ (`[c][k]`).
    pub fn shape_kernels(&self, theta: &[f64]) -> Vec<Vec<ShapeKernel>> {
        let mut kernels = Vec::new();
        self.shape_kernels_into(theta, &mut kernels);
        kernels
    }

    /// [`ChannelData::shape_kernels`] into `kernels`, reusing its arrays (no allocation once
    /// they have the right sizes: what each NLL evaluation does).
    pub fn shape_kernels_into(&self, theta: &[f64], kernels: &mut Vec<Vec<ShapeKernel>>) {
        kernels.resize_with(self.processes.len(), Vec::new);
        for (p, k) in self.processes.iter().zip(kernels.iter_mut()) {
            p.shape_kernels_into(theta, k);
        }
    }

    /// Per event: s(x|θ) = Σ_c ν̃_c(θ) r_c(x) g_c(x|α) with ν̃_c = ν_c/N_c(α), the model's
    /// unnormalised density over p_ref — the quantity the likelihood takes the logarithm of.
    pub fn model_density(&self, channel: &Channel, theta: &[f64]) -> Vec<f64> {
        let n = theta.len();
        let (mut grad, mut hess) = (vec![0.0; n], vec![0.0; n * n]);
        let mut density = vec![0.0; self.weights.len()];
        for (c, (process, data)) in channel.processes.iter().zip(&self.processes).enumerate() {
            let nu = process_yield(process, data.nominal_yield, theta, &mut grad, &mut hess)
                / self.normalisation.value(c, theta);
            let shape = data.shape_factors(theta);
            for ((d, r), g) in density.iter_mut().zip(&data.ratio).zip(&shape) {
                *d += nu * r * g;
            }
        }
        density
    }

    /// The events at `indices` (repeats allowed), in that order, each with weight 1: a toy
    /// dataset drawn from this pool.
    pub fn select(&self, indices: &[usize]) -> ChannelData {
        let pick = |v: &[f64]| indices.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        ChannelData {
            name: self.name.clone(),
            weights: vec![1.0; indices.len()],
            processes: self
                .processes
                .iter()
                .map(|p| ProcessData {
                    nominal_yield: p.nominal_yield,
                    ratio: pick(&p.ratio),
                    shapes: p
                        .shapes
                        .iter()
                        .map(|s| ShapeData {
                            parameter: s.parameter,
                            code: s.code,
                            variations: s.variations.select(indices),
                        })
                        .collect(),
                })
                .collect(),
            mc_weights: None,
            normalisation: Arc::clone(&self.normalisation),
        }
    }
}

/// Observed datasets of every channel of `model`.
pub fn observed(model: &Model, ratios: &[ChannelRatios]) -> Result<Vec<ChannelData>> {
    model
        .channels
        .iter()
        .zip(ratios)
        .map(|(c, r)| ChannelData::observed(c, r))
        .collect()
}

/// Asimov datasets of every channel at `theta`.
pub fn asimov(model: &Model, ratios: &[ChannelRatios], theta: &[f64]) -> Result<Vec<ChannelData>> {
    model
        .channels
        .iter()
        .zip(ratios)
        .map(|(c, r)| ChannelData::asimov(c, r, theta))
        .collect()
}
