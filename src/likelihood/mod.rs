//! The extended unbinned negative log-likelihood (DESIGN.md §2), its analytic gradient and
//! Hessian:
//!
//! ```text
//! NLL = Σ_c ν_c(θ,α) − Σ_i w_i ln( Σ_c ν_c(θ,α) r_c(x_i) g_c(x_i|α) ) + ½ Σ_k (α_k − a_k)²
//! ```
//!
//! Event sums run over fixed blocks of events, in parallel, and the block results are added in
//! block order, so the value is the same to the last bit whatever the thread count.
//! A parameter point where some event's density Σ_c ν_c r_c g_c is ≤ 0 (possible with
//! interference and negative coefficients) has no likelihood: the evaluation says so and
//! returns +∞ instead of taking the log of a non-positive number.

pub mod data;
mod events;
mod vecmath;

pub use data::{ChannelData, ProcessData};

use rayon::prelude::*;

use crate::model::{process_yield, Model};
use events::{event_block, BlockInput, BlockSums, Layout};

/// Events per block of the parallel event sums (fixed: it defines the summation order).
const BLOCK: usize = 4096;

/// How much to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Order {
    Value,
    Gradient,
    Hessian,
}

/// The first event whose density is not positive at the evaluated point.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidDensity {
    pub channel: String,
    pub event: usize,
    pub density: f64,
}

impl std::fmt::Display for InvalidDensity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "per-event density Σ_c ν_c r_c g_c = {:.6e} ≤ 0 at event {} of channel {}",
            self.density, self.event, self.channel
        )
    }
}

/// NLL value and, as requested, gradient and dense row-major Hessian.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub nll: f64,
    pub gradient: Vec<f64>,
    pub hessian: Vec<f64>,
    pub invalid: Option<InvalidDensity>,
}

/// A model with its data: what fits minimise.
pub struct Likelihood<'m> {
    pub model: &'m Model,
    pub channels: Vec<ChannelData>,
    /// Global observables a_k of the Gaussian constraints (0 for observed data; randomised in toys).
    pub global_observables: Vec<f64>,
}

impl<'m> Likelihood<'m> {
    pub fn new(model: &'m Model, channels: Vec<ChannelData>) -> Likelihood<'m> {
        Likelihood {
            model,
            channels,
            global_observables: vec![0.0; model.n_parameters()],
        }
    }

    pub fn n_parameters(&self) -> usize {
        self.model.n_parameters()
    }

    pub fn nll(&self, theta: &[f64]) -> Evaluation {
        self.evaluate(theta, Order::Value)
    }

    pub fn evaluate(&self, theta: &[f64], order: Order) -> Evaluation {
        let n = theta.len();
        let mut out = Evaluation {
            nll: 0.0,
            gradient: vec![0.0; if order >= Order::Gradient { n } else { 0 }],
            hessian: vec![0.0; if order >= Order::Hessian { n * n } else { 0 }],
            invalid: None,
        };
        for (channel, data) in self.model.channels.iter().zip(&self.channels) {
            let part = channel_nll(channel, data, theta, order);
            out.nll += part.nll;
            for (g, p) in out.gradient.iter_mut().zip(&part.gradient) {
                *g += p;
            }
            for (h, p) in out.hessian.iter_mut().zip(&part.hessian) {
                *h += p;
            }
            if out.invalid.is_none() {
                out.invalid = part.invalid;
            }
        }
        for (k, p) in self.model.parameters.iter().enumerate() {
            if p.constrained {
                let pull = theta[k] - self.global_observables[k];
                out.nll += 0.5 * pull * pull;
                if order >= Order::Gradient {
                    out.gradient[k] += pull;
                }
                if order >= Order::Hessian {
                    out.hessian[k * n + k] += 1.0;
                }
            }
        }
        if out.invalid.is_some() {
            out.nll = f64::INFINITY;
        }
        out
    }
}

fn channel_nll(
    channel: &crate::model::Channel,
    data: &ChannelData,
    theta: &[f64],
    order: Order,
) -> Evaluation {
    let n = theta.len();
    let layout = Layout::new(data);
    // Yields and their derivatives.
    let c = layout.n_processes;
    let mut nu = vec![0.0; c];
    let mut nu_grad = vec![0.0; c * n];
    let mut nu_hess = vec![0.0; c * n * n];
    for (i, (process, pdata)) in channel.processes.iter().zip(&data.processes).enumerate() {
        nu[i] = process_yield(
            process,
            pdata.nominal_yield,
            theta,
            &mut nu_grad[i * n..(i + 1) * n],
            &mut nu_hess[i * n * n..(i + 1) * n * n],
        );
    }
    // Shape interpolations prepared once per evaluation, at this α.
    let kernels = data.shape_kernels(theta);
    let n_events = data.weights.len();
    let n_blocks = n_events.div_ceil(BLOCK);
    let input = BlockInput {
        data,
        layout: &layout,
        nu: &nu,
        kernels: &kernels,
        order,
    };
    let block = |b: usize| event_block(&input, (b * BLOCK, ((b + 1) * BLOCK).min(n_events)));
    let blocks: Vec<BlockSums> = if n_blocks <= 1 {
        (0..n_blocks).map(block).collect()
    } else {
        (0..n_blocks).into_par_iter().map(block).collect()
    };
    let mut sums = vec![0.0; layout.size(order)];
    let mut invalid = None;
    for b in &blocks {
        for (s, x) in sums.iter_mut().zip(&b.sums) {
            *s += x;
        }
        if invalid.is_none() {
            invalid = b
                .invalid
                .map(|(event, density)| crate::likelihood::InvalidDensity {
                    channel: data.name.clone(),
                    event,
                    density,
                });
        }
    }
    let mut out = Evaluation {
        nll: nu.iter().sum::<f64>() - sums[0],
        gradient: vec![0.0; if order >= Order::Gradient { n } else { 0 }],
        hessian: vec![0.0; if order >= Order::Hessian { n * n } else { 0 }],
        invalid,
    };
    if order == Order::Value {
        return out;
    }
    // L[j][a] = ∂(Σ_c ν_c q-coefficient)/∂θ_j: ∂s/∂θ_j = Σ_a L[j][a] q_a.
    let dim = layout.dim;
    let mut l = vec![0.0; n * dim];
    for (ci, pdata) in data.processes.iter().enumerate() {
        for j in 0..n {
            l[j * dim + ci] = nu_grad[ci * n + j];
        }
        for (k, shape) in pdata.shapes.iter().enumerate() {
            l[shape.parameter * dim + layout.shape_offset[ci] + k] += nu[ci];
        }
    }
    let first = &sums[1..1 + dim];
    for j in 0..n {
        let total: f64 = (0..c).map(|ci| nu_grad[ci * n + j]).sum();
        let events: f64 = (0..dim).map(|a| l[j * dim + a] * first[a]).sum();
        out.gradient[j] = total - events;
    }
    if order == Order::Hessian {
        let second = &sums[1 + dim..1 + dim + layout.n_second];
        let m = &sums[1 + dim + layout.n_second..];
        for j in 0..n {
            for k in 0..n {
                let mut h = 0.0;
                for ci in 0..c {
                    let a_c = first[ci];
                    h += nu_hess[ci * n * n + j * n + k] * (1.0 - a_c);
                    let shapes = &data.processes[ci].shapes;
                    for (s, shape) in shapes.iter().enumerate() {
                        let b = first[layout.shape_offset[ci] + s];
                        if shape.parameter == k {
                            h -= nu_grad[ci * n + j] * b;
                        }
                        if shape.parameter == j {
                            h -= nu_grad[ci * n + k] * b;
                        }
                        for (s2, shape2) in shapes.iter().enumerate() {
                            if shape.parameter == j && shape2.parameter == k {
                                h -= nu[ci]
                                    * second[layout.second_offset[ci] + s * shapes.len() + s2];
                            }
                        }
                    }
                }
                for a in 0..dim {
                    let lja = l[j * dim + a];
                    if lja == 0.0 {
                        continue;
                    }
                    for b in 0..dim {
                        h += lja * m[layout.outer_index(a, b)] * l[k * dim + b];
                    }
                }
                out.hessian[j * n + k] = h;
            }
        }
    }
    out
}
