//! The extended unbinned negative log-likelihood (DESIGN.md §2), its analytic gradient and
//! Hessian:
//!
//! ```text
//! NLL = Σ_c ν_c(θ,α) − Σ_i w_i ln( Σ_c ν̃_c(θ,α) r_c(x_i) g_c(x_i|α) ) + ½ Σ_k (α_k − a_k)²
//! ```
//!
//! with ν̃_c = ν_c / N_c(α), N_c the average of the shape factor g_c over process c's own MC
//! ([`normalisation`]): each process's density is normalised at every α.
//!
//! Event sums run over fixed blocks of events, in parallel, and the block results are added in
//! block order, so the value is the same to the last bit whatever the thread count.
//! A parameter point where some event's density Σ_c ν_c r_c g_c is ≤ 0 (possible with
//! interference and negative coefficients) has no likelihood: the evaluation says so and
//! returns +∞ instead of taking the log of a non-positive number.

pub mod closure;
mod constraint;
pub mod data;
mod events;
pub mod normalisation;

pub use data::{ChannelData, ProcessData};

use std::cell::Cell;

use rayon::prelude::*;

use crate::channel::unbinned::UnbinnedData;
use crate::channel::{ChannelReport, Observed};
use crate::error::Result;
use crate::model::interpolation::ShapeKernel;
use crate::model::{Channel, Model, YieldTerms};
use events::{event_block, BlockInput, InvalidEvent, Layout};
use normalisation::{add_normalisation_curvature, normalised_yield, ShapeIntegral};

/// Events per block of the parallel event sums (fixed: it defines the summation order).
const BLOCK: usize = 4096;

/// How much to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Order {
    Value,
    Gradient,
    Hessian,
}

impl Order {
    /// Makes `gradient` (n) and `hessian` (n × n, row-major) the zeroed arrays this order
    /// fills, and empty where it fills none, keeping their allocations: the start of every
    /// evaluation into reused outputs.
    pub fn zero_derivatives(self, n: usize, gradient: &mut Vec<f64>, hessian: &mut Vec<f64>) {
        gradient.clear();
        gradient.resize(if self >= Order::Gradient { n } else { 0 }, 0.0);
        hessian.clear();
        hessian.resize(if self >= Order::Hessian { n * n } else { 0 }, 0.0);
    }
}

/// The first event whose density is not positive at the evaluated point — or, where
/// `process` is given, the process whose shape normalisation N_c (then `density`) is not; or,
/// where `bin`, the bin `event` of a binned channel whose expected count `density` cannot
/// carry its observed count.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidDensity {
    pub channel: String,
    pub event: usize,
    pub density: f64,
    pub process: Option<usize>,
    pub bin: bool,
}

impl std::fmt::Display for InvalidDensity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.bin {
            return write!(
                f,
                "expected count λ = {:.6e} of bin {} of binned channel {} is not positive \
                 where counts were observed",
                self.density, self.event, self.channel
            );
        }
        match self.process {
            Some(c) => write!(
                f,
                "shape normalisation N = {:.6e} ≤ 0 of process {c} of channel {}",
                self.density, self.channel
            ),
            None => write!(
                f,
                "per-event density Σ_c ν̃_c r_c g_c = {:.6e} ≤ 0 at event {} of channel {}",
                self.density, self.event, self.channel
            ),
        }
    }
}

/// NLL value and, as requested, gradient and dense row-major Hessian.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub nll: f64,
    pub gradient: Vec<f64>,
    pub hessian: Vec<f64>,
    pub invalid: Option<InvalidDensity>,
}

/// What one evaluation needs besides its results: yields and their derivatives, shape
/// interpolations, the layout and values of the event sums.
#[derive(Debug, Default)]
struct Workspace {
    layout: Layout,
    nu: Vec<f64>,
    /// ∂ν_c/∂θ_j (c × n); ν_c's derivatives in the parameters it depends on (per process).
    nu_grad: Vec<f64>,
    yields: Vec<YieldTerms>,
    /// ν̃_c = ν_c/N_c and its gradient (c × n): what the event sums see.
    nu_norm: Vec<f64>,
    nu_norm_grad: Vec<f64>,
    /// N_c with its derivatives in the process's shape parameters, per process.
    integrals: Vec<ShapeIntegral>,
    kernels: Vec<Vec<ShapeKernel>>,
    sums: Vec<f64>,
    /// L[j][a] = ∂(ν-coefficient of q_a)/∂θ_j (see `channel_nll`).
    l: Vec<f64>,
    /// M = Σ w q qᵀ/s² unpacked (dim × dim), and M Lᵀ (dim × n).
    outer: Vec<f64>,
    ml: Vec<f64>,
}

thread_local! {
    /// Each thread's [`Workspace`], kept between evaluations so that they allocate nothing
    /// (and an [`Evaluation`] is only its results, cheap to clone). It is taken out while in
    /// use: an evaluation whose event sums run in parallel may have this thread evaluate
    /// another likelihood meanwhile, which then starts from fresh arrays.
    static WORKSPACE: Cell<Workspace> = Cell::new(Workspace::default());
}

/// A model with its data: what fits minimise.
pub struct Likelihood<'m> {
    pub model: &'m Model,
    /// The data of each of the model's channel kinds ([`Model::all_kinds`], in order): the
    /// unbinned channels' events, the binned channels' counts per bin, ... (their global
    /// observables are `global_observables`).
    pub observed: Vec<Observed>,
    /// Global observable a_k of parameter k's constraint term, by parameter (the model's
    /// nominal ones for observed data; randomised in toys; unused for unconstrained ones).
    pub global_observables: Vec<f64>,
}

impl<'m> Likelihood<'m> {
    /// The likelihood of the unbinned channels' datasets `channels` and the other kinds'
    /// observed data (for models built in code; an analysis makes every kind's data itself).
    pub fn new(model: &'m Model, channels: Vec<ChannelData>) -> Result<Likelihood<'m>> {
        let mut observed: Vec<Observed> = vec![Box::new(UnbinnedData { channels })];
        for kind in &model.kinds {
            observed.push(kind.observed()?);
        }
        Ok(Likelihood::with_observed(model, observed))
    }

    /// The likelihood of `observed`, one entry per model kind (made by that kind), with the
    /// nominal global observables.
    pub fn with_observed(model: &'m Model, observed: Vec<Observed>) -> Likelihood<'m> {
        assert_eq!(
            observed.len(),
            model.all_kinds().count(),
            "data for every kind"
        );
        let mut global_observables = vec![0.0; model.n_parameters()];
        for c in &model.constraints {
            global_observables[c.parameter] = c.auxdata;
        }
        Likelihood {
            model,
            observed,
            global_observables,
        }
    }

    /// The data of this likelihood's kind whose data are of type `T` (the binned counts:
    /// [`crate::binned::BinnedData`]), where it has one.
    pub fn observed_as<T: 'static>(&self) -> Option<&T> {
        self.observed
            .iter()
            .find_map(|data| data.as_any().downcast_ref::<T>())
    }

    /// The unbinned channels' datasets (none where the model has no unbinned channel).
    pub fn unbinned(&self) -> &[ChannelData] {
        self.observed_as::<UnbinnedData>()
            .map_or(&[], |data| data.channels.as_slice())
    }

    /// Every channel's observed against expected data at θ, from every kind that reports
    /// per channel (the fit report).
    pub fn channel_reports(&self, theta: &[f64]) -> Vec<ChannelReport> {
        let kinds = self.model.all_kinds().zip(&self.observed);
        kinds
            .flat_map(|(kind, data)| kind.reports(data.as_ref(), theta))
            .collect()
    }

    /// Sets every constraint's global observable to its expected value at `theta` (a = θ_k
    /// for a Gaussian, θ_k τ for a Poisson constraint), as an Asimov set's (pyhf's and
    /// RooStats' Asimov data do the same): the constraint terms are then minimal at `theta`
    /// too, so an Asimov fit returns its nuisance parameters as well as its POIs.
    pub fn set_expected_global_observables(&mut self, theta: &[f64]) {
        for term in &self.model.constraints {
            let k = term.parameter;
            self.global_observables[k] = term.expected_auxdata(theta[k]);
        }
    }

    pub fn n_parameters(&self) -> usize {
        self.model.n_parameters()
    }

    pub fn nll(&self, theta: &[f64]) -> Evaluation {
        self.evaluate(theta, Order::Value)
    }

    pub fn evaluate(&self, theta: &[f64], order: Order) -> Evaluation {
        let mut out = Evaluation::default();
        self.evaluate_into(theta, order, &mut out);
        out
    }

    /// [`Likelihood::evaluate`] into `out`, reusing its arrays: once `out` has been through
    /// one evaluation of this likelihood (and this thread through one of its size), the next
    /// allocates nothing (for channels of up to 4096 events, evaluated on the calling thread —
    /// every toy). Fits call this in their loops.
    pub fn evaluate_into(&self, theta: &[f64], order: Order, out: &mut Evaluation) {
        let n = theta.len();
        out.nll = 0.0;
        out.invalid = None;
        order.zero_derivatives(n, &mut out.gradient, &mut out.hessian);
        for (kind, data) in self.model.all_kinds().zip(&self.observed) {
            kind.add_nll(data.as_ref(), theta, order, out);
        }
        for term in &self.model.constraints {
            let k = term.parameter;
            let a = self.global_observables[k];
            match constraint::nll_terms(term, theta[k], a) {
                Some((value, d1, d2)) => {
                    out.nll += value;
                    if order >= Order::Gradient {
                        out.gradient[k] += d1;
                    }
                    if order >= Order::Hessian {
                        out.hessian[k * n + k] += d2;
                    }
                }
                None => out.nll = f64::INFINITY,
            }
        }
        if out.invalid.is_some() {
            out.nll = f64::INFINITY;
        }
    }
}

/// Adds the NLL terms of the unbinned `channels` on their datasets `data` (and derivatives,
/// as `order` asks) to `out`: the unbinned kind's terms
/// ([`crate::channel::unbinned::UnbinnedChannels`]).
pub(crate) fn add_unbinned_nll(
    channels: &[Channel],
    data: &[ChannelData],
    theta: &[f64],
    order: Order,
    out: &mut Evaluation,
) {
    let mut work = WORKSPACE.take();
    for (channel, data) in channels.iter().zip(data) {
        channel_nll(channel, data, theta, order, &mut work, out);
    }
    WORKSPACE.set(work);
}

/// Adds one channel's NLL terms (and derivatives, as `order` asks) to `out`.
fn channel_nll(
    channel: &Channel,
    data: &ChannelData,
    theta: &[f64],
    order: Order,
    work: &mut Workspace,
    out: &mut Evaluation,
) {
    let n = theta.len();
    let Workspace {
        layout,
        nu,
        nu_grad,
        yields,
        nu_norm,
        nu_norm_grad,
        integrals,
        kernels,
        sums,
        l,
        outer,
        ml,
    } = work;
    layout.fill(data);
    // Yields and their derivatives.
    let c = layout.n_processes;
    nu.resize(c, 0.0);
    nu_grad.clear();
    nu_grad.resize(c * n, 0.0);
    yields.resize_with(c, YieldTerms::default);
    for (i, (process, pdata)) in channel.processes.iter().zip(&data.processes).enumerate() {
        nu[i] = yields[i].fill(process, pdata.nominal_yield, theta);
        yields[i].add_gradient(1.0, &mut nu_grad[i * n..(i + 1) * n]);
    }
    // ν̃ = ν/N: the event sums see each process's normalised density.
    nu_norm.resize(c, 0.0);
    nu_norm_grad.clear();
    nu_norm_grad.resize(c * n, 0.0);
    integrals.resize_with(c, ShapeIntegral::default);
    for (i, integral) in integrals.iter_mut().enumerate() {
        data.normalisation.evaluate(i, theta, order, integral);
        if !(integral.value > 0.0 && integral.value.is_finite()) && out.invalid.is_none() {
            out.invalid = Some(InvalidDensity {
                channel: data.name.clone(),
                event: 0,
                density: integral.value,
                process: Some(i),
                bin: false,
            });
        }
        nu_norm[i] = normalised_yield(
            integral,
            data.normalisation.parameters(i),
            order,
            nu[i],
            &nu_grad[i * n..(i + 1) * n],
            &mut nu_norm_grad[i * n..(i + 1) * n],
        );
    }
    // Shape interpolations prepared once per evaluation, at this α.
    data.shape_kernels_into(theta, kernels);
    sums.clear();
    sums.resize(layout.size(order), 0.0);
    let input = BlockInput {
        data,
        layout,
        nu: nu_norm,
        kernels,
        order,
    };
    let invalid = event_sums(&input, sums);
    if out.invalid.is_none() {
        out.invalid = invalid.map(|(event, density)| InvalidDensity {
            channel: data.name.clone(),
            event,
            density,
            process: None,
            bin: false,
        });
    }
    out.nll += nu.iter().sum::<f64>() - sums[0];
    if order == Order::Value {
        return;
    }
    // L[j][a] = ∂(Σ_c ν̃_c q-coefficient)/∂θ_j: ∂s/∂θ_j = Σ_a L[j][a] q_a.
    let dim = layout.dim;
    l.clear();
    l.resize(n * dim, 0.0);
    for (ci, pdata) in data.processes.iter().enumerate() {
        for j in 0..n {
            l[j * dim + ci] = nu_norm_grad[ci * n + j];
        }
        for (k, shape) in pdata.shapes.iter().enumerate() {
            l[shape.parameter * dim + layout.shape_offset[ci] + k] += nu_norm[ci];
        }
    }
    let first = &sums[1..1 + dim];
    for j in 0..n {
        let total: f64 = (0..c).map(|ci| nu_grad[ci * n + j]).sum();
        let events: f64 = (0..dim).map(|a| l[j * dim + a] * first[a]).sum();
        out.gradient[j] += total - events;
    }
    if order == Order::Hessian {
        let hessian = &mut out.hessian;
        for (ci, pdata) in data.processes.iter().enumerate() {
            // ∂²ν_c − ∂²ν̃_c Σ w t_c/s, sparse: ν_c's terms over the parameters it depends
            // on, N_c's over the process's shape parameters.
            let in_events = first[ci];
            let integral = &integrals[ci];
            yields[ci].add_hessian(1.0 - in_events / integral.value, hessian);
            add_normalisation_curvature(
                integral,
                data.normalisation.parameters(ci),
                nu[ci],
                &nu_grad[ci * n..(ci + 1) * n],
                in_events,
                hessian,
            );
            // − ∂ν̃_c ⊗ Σ w ∂t_c/∂α_k/s, both ways round
            for (s, shape) in pdata.shapes.iter().enumerate() {
                let (k, b) = (shape.parameter, first[layout.shape_offset[ci] + s]);
                for j in 0..n {
                    let term = nu_norm_grad[ci * n + j] * b;
                    hessian[j * n + k] -= term;
                    hessian[k * n + j] -= term;
                }
            }
        }
        let matrices = (&mut *l, &mut *outer, &mut *ml);
        add_event_curvature(
            layout,
            (n, nu_norm_grad),
            &sums[1 + dim..],
            matrices,
            hessian,
        );
    }
}

/// Adds the event sums' Hessian terms in u = (t_c; ∂s/∂α_p) (see `events::Layout`), from
/// `sums` = [Σ w ∂²s/∂α_p∂α_p'/s | Σ w u uᵀ/s² (upper triangle)]:
///
/// ```text
/// − Σ (w/s) ∂²s/∂α_p∂α_p'   + L M Lᵀ,   M = Σ (w/s²) u uᵀ,   ∂s/∂θ_j = Σ_a L[j][a] u_a
/// ```
///
/// with L[j][c] = ∂ν̃_c/∂θ_j (`nu_norm_grad`, c × n) and L[j][p] = 1 where θ_j is shape
/// parameter p; `hessian` is n × n. `l`, `outer` and `ml` are working arrays (L, M unpacked,
/// M Lᵀ).
fn add_event_curvature(
    layout: &Layout,
    (n, nu_norm_grad): (usize, &[f64]),
    sums: &[f64],
    (l, outer, ml): (&mut Vec<f64>, &mut Vec<f64>, &mut Vec<f64>),
    hessian: &mut [f64],
) {
    let (second, upper) = sums.split_at(layout.n_second);
    let parameters = &layout.shape_parameters;
    for (p, &k) in parameters.iter().enumerate() {
        for (p2, &k2) in parameters.iter().enumerate().skip(p) {
            let d2 = second[layout.second_index(p, p2)];
            hessian[k * n + k2] -= d2;
            if k2 != k {
                hessian[k2 * n + k] -= d2;
            }
        }
    }
    let (c, dim) = (layout.n_processes, layout.u_dim);
    l.clear();
    l.resize(n * dim, 0.0);
    for j in 0..n {
        for ci in 0..c {
            l[j * dim + ci] = nu_norm_grad[ci * n + j];
        }
    }
    for (p, &k) in parameters.iter().enumerate() {
        l[k * dim + c + p] = 1.0;
    }
    // + L M Lᵀ through ML = M Lᵀ (dim × n).
    outer.clear();
    outer.resize(dim * dim, 0.0);
    let mut u = upper.iter();
    for a in 0..dim {
        for b in a..dim {
            let m_ab = *u.next().expect("Layout::size has the upper triangle");
            outer[a * dim + b] = m_ab;
            outer[b * dim + a] = m_ab;
        }
    }
    ml.clear();
    ml.resize(dim * n, 0.0);
    for a in 0..dim {
        for k in 0..n {
            ml[a * n + k] = (0..dim).map(|b| outer[a * dim + b] * l[k * dim + b]).sum();
        }
    }
    for j in 0..n {
        for k in 0..n {
            let lml: f64 = (0..dim).map(|a| l[j * dim + a] * ml[a * n + k]).sum();
            hessian[j * n + k] += lml;
        }
    }
}

/// The channel's event sums into `sums`: one block on the calling thread (no allocation), or
/// fixed blocks in parallel whose sums are added in block order.
fn event_sums(input: &BlockInput<'_>, sums: &mut [f64]) -> InvalidEvent {
    let n_events = input.data.weights.len();
    let n_blocks = n_events.div_ceil(BLOCK);
    if n_blocks <= 1 {
        return event_block(input, (0, n_events), sums);
    }
    let blocks: Vec<(Vec<f64>, InvalidEvent)> = (0..n_blocks)
        .into_par_iter()
        .map(|b| {
            let mut block_sums = vec![0.0; sums.len()];
            let range = (b * BLOCK, ((b + 1) * BLOCK).min(n_events));
            let invalid = event_block(input, range, &mut block_sums);
            (block_sums, invalid)
        })
        .collect();
    let mut invalid = None;
    for (block_sums, block_invalid) in &blocks {
        for (s, x) in sums.iter_mut().zip(block_sums) {
            *s += x;
        }
        invalid = invalid.or(*block_invalid);
    }
    invalid
}
