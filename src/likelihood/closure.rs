//! Closure of the Asimov set: a fit of the Asimov set at θ_gen returns θ_gen exactly.
//!
//! The weighted MC mixture at θ_gen (event i of process c weighted by ν_c b_i g_c(x_i)/N_c)
//! is the model's distribution only up to MC error. Its NLL's score at θ_gen,
//!
//! ```text
//! ∂_j NLL = Σ_c ∂_j ν_c (1 − A_c/N_c) + Σ_c ν̃_c (A_c ∂_j N_c/N_c − B_cj),
//! A_c = Σ_i w_i r_c(x_i) g_c(x_i) / s(x_i),   B_cj = Σ_i w_i r_c(x_i) ∂_j g_c(x_i) / s(x_i),
//! ```
//!
//! vanishes only when the pooled events' estimate of each process's integral (A_c, an
//! importance-sampling estimate of ∫ p_c g_c over all processes' events) equals the
//! normalisation N_c from the process's own MC, and likewise for the shape derivatives. Both
//! are MC estimates of the same integral, and they differ by its MC error: with 3 000 MC events
//! per process the example-like workspace's A_S/N_S − 1 = +1.2 %, A_B/N_B − 1 = −1.3 %, and its
//! Asimov fit at μ = 1 returned μ̂ = 1.136 (1.8σ off).
//!
//! The Asimov weights are therefore calibrated: w_i = w⁰_i + |w⁰_i| λ·u(x_i), with the
//! per-event functions
//!
//! ```text
//! u_c(x)  = r_c(x) g_c(x) / s(x)                 (one per process)
//! u_ck(x) = r_c(x) ∂g_c(x)/∂α_k / s(x)           (one per shape systematic k of c)
//! ```
//!
//! and λ solving Σ_i w_i u_c(x_i) = N_c and Σ_i w_i u_ck(x_i) = ∂N_c/∂α_k, i.e. A_c = N_c
//! and B_ck = ∂_k N_c: the score above is then zero at θ_gen in every parameter, whatever the
//! yields' parametrisation. (The functions are not scaled by ν̃_c: at μ = 1 in the (S, SBI, B)
//! basis ν_S = ν_B = 0, yet ∂_μ ν_S ≠ 0, so A_S = N_S is still needed.) λ is the smallest
//! correction in Σ (w − w⁰)²/|w⁰| (a linear calibration, as survey weights are calibrated to
//! known totals); it is of the size of the MC error, so it vanishes as the MC grows. Since
//! Σ_c ν̃_c u_c = 1, the weights still sum to Σ_c ν̃_c N_c = ν(θ_gen). The observed data, the
//! normalisation and the toys' draw weights do not change.
//!
//! Constraints whose functions are linearly dependent on the pool (a process or systematic
//! with no effect there) are dropped by a pivoted Cholesky solve; if what remains cannot be met,
//! the Asimov set is refused rather than returned off its generating point.

use rayon::prelude::*;

use super::data::ChannelData;
use super::normalisation::ShapeIntegral;
use super::Order;
use crate::error::{Error, Result};
use crate::model::interpolation::{Interpolated, ShapeKernel};
use crate::model::{process_yield, Channel};

/// Events per block of the calibration's sums (fixed: it defines the summation order, so the
/// weights are the same bits whatever the thread count).
const BLOCK: usize = 4096;

/// Pivots below this (on the constraints' Gram matrix scaled to unit diagonal) mark a
/// constraint as a combination of the others.
const PIVOT_TOLERANCE: f64 = 1e-10;

/// Largest residual of a calibration constraint after the solve, in units of its function's
/// weighted norm √(Σ |w⁰| u²) (roughly its statistical error): above it the set is refused.
const RESIDUAL_TOLERANCE: f64 = 1e-7;

/// The calibration functions u(x) of one channel at θ_gen: per process, u_c, then u_ck.
struct Functions<'a> {
    data: &'a ChannelData,
    kernels: Vec<Vec<ShapeKernel>>,
    /// ν̃_c = ν_c / N_c at θ_gen.
    nu_norm: Vec<f64>,
    /// Index of u_c0 (the first of process c's shape functions) in u.
    offsets: Vec<usize>,
    len: usize,
}

impl Functions<'_> {
    /// u(x_i) into `u`; false where the model density s(x_i) is not positive and finite
    /// (such an event is left as it is).
    fn at(&self, i: usize, u: &mut [f64], factors: &mut Vec<Interpolated>) -> bool {
        let mut density = 0.0;
        for (c, process) in self.data.processes.iter().enumerate() {
            let ratio = process.ratio[i];
            factors.clear();
            factors.extend(
                process
                    .shapes
                    .iter()
                    .zip(&self.kernels[c])
                    .map(|(s, k)| k.eval(&s.variations.event(i))),
            );
            // ∂g/∂α_k = f_k' Π_{l≠k} f_l, as prefix × suffix products (no division: a factor
            // may be 0).
            let mut prefix = 1.0;
            for (k, f) in factors.iter().enumerate() {
                let suffix: f64 = factors[k + 1..].iter().map(|f| f.value).product();
                u[self.offsets[c] + k] = ratio * prefix * f.d1 * suffix;
                prefix *= f.value;
            }
            u[c] = ratio * prefix;
            density += self.nu_norm[c] * u[c];
        }
        if !(density > 0.0 && density.is_finite()) {
            return false;
        }
        for x in u.iter_mut() {
            *x /= density;
        }
        true
    }
}

/// Calibrates `weights` (the MC mixture's, on `data`'s pooled events) so that the Asimov set
/// closes at `theta`: see the module documentation.
pub fn close_asimov_weights(
    channel: &Channel,
    data: &ChannelData,
    theta: &[f64],
    weights: &mut [f64],
) -> Result<()> {
    let n_events = weights.len();
    if n_events == 0 {
        return Ok(());
    }
    let n = theta.len();
    let (mut grad, mut hess) = (vec![0.0; n], vec![0.0; n * n]);
    let mut targets = Vec::new();
    let mut shape_targets = Vec::new();
    let mut nu_norm = Vec::new();
    let mut offsets = Vec::new();
    let mut next = data.processes.len();
    for (c, (process, pdata)) in channel.processes.iter().zip(&data.processes).enumerate() {
        let nu = process_yield(process, pdata.nominal_yield, theta, &mut grad, &mut hess);
        let mut integral = ShapeIntegral::default();
        data.normalisation
            .evaluate(c, theta, Order::Gradient, &mut integral);
        let k_shapes = pdata.shapes.len();
        // The normalisation holds one derivative per shape systematic (none for data without MC).
        let d1 = |k: usize| integral.d1.get(k).copied().unwrap_or(0.0);
        nu_norm.push(nu / integral.value);
        targets.push(integral.value);
        shape_targets.extend((0..k_shapes).map(d1));
        offsets.push(next);
        next += k_shapes;
    }
    targets.extend(shape_targets);
    let functions = Functions {
        data,
        kernels: data.shape_kernels(theta),
        nu_norm,
        offsets,
        len: next,
    };
    let (sums, gram) = calibration_sums(&functions, weights);
    let m = functions.len;
    let residual: Vec<f64> = targets.iter().zip(&sums).map(|(t, s)| t - s).collect();
    let lambda = pivoted_solve(&gram, &residual, m);
    check_consistent(channel, &gram, &residual, &lambda, m)?;
    apply(&functions, &lambda, weights);
    Ok(())
}

/// Σ_i w⁰_i u(x_i) and the Gram matrix Σ_i |w⁰_i| u(x_i) u(x_i)ᵀ (m × m, full), over fixed
/// blocks of events added in block order.
fn calibration_sums(functions: &Functions, weights: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let m = functions.len;
    let n_blocks = weights.len().div_ceil(BLOCK);
    let blocks: Vec<(Vec<f64>, Vec<f64>)> = (0..n_blocks)
        .into_par_iter()
        .map(|b| {
            let (mut sums, mut gram) = (vec![0.0; m], vec![0.0; m * m]);
            let (mut u, mut factors) = (vec![0.0; m], Vec::new());
            let end = ((b + 1) * BLOCK).min(weights.len());
            for (i, &w) in weights.iter().enumerate().take(end).skip(b * BLOCK) {
                if w == 0.0 || !functions.at(i, &mut u, &mut factors) {
                    continue;
                }
                let a = w.abs();
                for j in 0..m {
                    sums[j] += w * u[j];
                    let au = a * u[j];
                    for l in j..m {
                        gram[j * m + l] += au * u[l];
                    }
                }
            }
            (sums, gram)
        })
        .collect();
    let (mut sums, mut gram) = (vec![0.0; m], vec![0.0; m * m]);
    for (s, g) in &blocks {
        for (x, y) in sums.iter_mut().zip(s) {
            *x += y;
        }
        for (x, y) in gram.iter_mut().zip(g) {
            *x += y;
        }
    }
    for j in 0..m {
        for l in 0..j {
            gram[j * m + l] = gram[l * m + j];
        }
    }
    (sums, gram)
}

/// w_i += |w⁰_i| λ·u(x_i).
fn apply(functions: &Functions, lambda: &[f64], weights: &mut [f64]) {
    weights
        .par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(b, chunk)| {
            let (mut u, mut factors) = (vec![0.0; functions.len], Vec::new());
            for (j, w) in chunk.iter_mut().enumerate() {
                if *w == 0.0 || !functions.at(b * BLOCK + j, &mut u, &mut factors) {
                    continue;
                }
                let shift: f64 = lambda.iter().zip(&u).map(|(l, x)| l * x).sum();
                *w += w.abs() * shift;
            }
        });
}

/// A solution of G λ = r for a symmetric positive semi-definite G (m × m): Cholesky with
/// diagonal pivoting on G scaled to unit diagonal, stopped where the remaining pivots fall
/// below [`PIVOT_TOLERANCE`] (those constraints are combinations of the chosen ones; their λ
/// is 0). Constraints whose function vanishes on every event (zero diagonal) are left out.
fn pivoted_solve(gram: &[f64], r: &[f64], m: usize) -> Vec<f64> {
    let scale: Vec<f64> = (0..m)
        .map(|j| {
            let d = gram[j * m + j];
            if d > 0.0 {
                1.0 / d.sqrt()
            } else {
                0.0
            }
        })
        .collect();
    let mut a: Vec<f64> = (0..m * m)
        .map(|x| gram[x] * scale[x / m] * scale[x % m])
        .collect();
    let mut order: Vec<usize> = (0..m).collect();
    let mut rank = 0;
    while rank < m {
        let j = rank;
        let pivot = (j..m)
            .max_by(|&p, &q| a[p * m + p].total_cmp(&a[q * m + q]))
            .expect("j < m");
        let d = a[pivot * m + pivot];
        if d.is_nan() || d <= PIVOT_TOLERANCE {
            break;
        }
        swap_symmetric(&mut a, m, j, pivot);
        order.swap(j, pivot);
        let l = d.sqrt();
        a[j * m + j] = l;
        for i in j + 1..m {
            a[i * m + j] /= l;
        }
        for i in j + 1..m {
            for k in j + 1..m {
                a[i * m + k] -= a[i * m + j] * a[k * m + j];
            }
        }
        rank += 1;
    }
    // L y = (D r)_chosen, Lᵀ x = y; λ = D x on the chosen constraints.
    let mut x: Vec<f64> = order[..rank].iter().map(|&j| r[j] * scale[j]).collect();
    for i in 0..rank {
        for k in 0..i {
            x[i] -= a[i * m + k] * x[k];
        }
        x[i] /= a[i * m + i];
    }
    for i in (0..rank).rev() {
        for k in i + 1..rank {
            x[i] -= a[k * m + i] * x[k];
        }
        x[i] /= a[i * m + i];
    }
    let mut lambda = vec![0.0; m];
    for (i, &j) in order[..rank].iter().enumerate() {
        lambda[j] = x[i] * scale[j];
    }
    lambda
}

/// Swaps rows and columns `p` and `q` of the m × m matrix `a`.
fn swap_symmetric(a: &mut [f64], m: usize, p: usize, q: usize) {
    if p == q {
        return;
    }
    for k in 0..m {
        a.swap(p * m + k, q * m + k);
    }
    for k in 0..m {
        a.swap(k * m + p, k * m + q);
    }
}

/// After the update the constraints' residuals are r − G λ exactly (the update is linear):
/// refused where one stays above [`RESIDUAL_TOLERANCE`] of its function's weighted norm.
fn check_consistent(
    channel: &Channel,
    gram: &[f64],
    residual: &[f64],
    lambda: &[f64],
    m: usize,
) -> Result<()> {
    for j in 0..m {
        let left = residual[j] - (0..m).map(|l| gram[j * m + l] * lambda[l]).sum::<f64>();
        let norm = gram[j * m + j].sqrt();
        if left.abs() > RESIDUAL_TOLERANCE * norm.max(f64::MIN_POSITIVE) {
            return Err(Error::Analysis(format!(
                "channel {}: cannot make the Asimov set close at the requested point: its \
                 calibration constraint {} ({}) keeps a residual {left:e} (its weighted norm is \
                 {norm:e}); the pooled MC gives the model no handle on it there",
                channel.name,
                j,
                constraint_name(channel, j),
            )));
        }
    }
    Ok(())
}

/// "process P" or "process P, shape systematic k" for constraint index `j`.
fn constraint_name(channel: &Channel, j: usize) -> String {
    let n = channel.processes.len();
    if j < n {
        return format!("expected count of process '{}'", channel.processes[j].name);
    }
    let mut k = j - n;
    for p in &channel.processes {
        if k < p.shape_systematics.len() {
            return format!(
                "normalisation slope of process '{}' in shape systematic {}",
                p.name, k
            );
        }
        k -= p.shape_systematics.len();
    }
    format!("constraint {j}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// G = Σ u uᵀ over five "events" of three functions, the third the sum of the first two
    /// (a process with the same ratio as two others together): the solve drops it and still
    /// meets every constraint when the targets are consistent.
    #[test]
    fn dependent_constraints_are_dropped_and_still_met() {
        let events = [[1.0, 0.5], [0.2, 1.1], [0.7, 0.3], [1.4, 0.9], [0.1, 0.6]];
        let m = 3;
        let mut gram = vec![0.0; m * m];
        for e in events {
            let u = [e[0], e[1], e[0] + e[1]];
            for j in 0..m {
                for l in 0..m {
                    gram[j * m + l] += u[j] * u[l];
                }
            }
        }
        let r = [0.3, -0.2, 0.1];
        let lambda = pivoted_solve(&gram, &r, m);
        assert_eq!(
            lambda.iter().filter(|l| **l == 0.0).count(),
            1,
            "{lambda:?}"
        );
        for j in 0..m {
            let met: f64 = (0..m).map(|l| gram[j * m + l] * lambda[l]).sum();
            assert!((met - r[j]).abs() < 1e-12, "{j}: {met} vs {}", r[j]);
        }
        // Inconsistent targets (the third is not the sum of the others): one constraint
        // stays unmet, which check_consistent refuses.
        let bad = [0.3, -0.2, 0.5];
        let lambda = pivoted_solve(&gram, &bad, m);
        let worst = (0..m)
            .map(|j| (bad[j] - (0..m).map(|l| gram[j * m + l] * lambda[l]).sum::<f64>()).abs())
            .fold(0.0, f64::max);
        assert!(worst > 0.1, "{worst}");
    }
}
