//! A standalone maximum-likelihood fit of a binned-only model: Newton steps on the analytic
//! Hessian, damped (Levenberg) where the Hessian is not positive definite, with a
//! backtracking line search and bounds kept by an active set (a parameter at a bound whose
//! gradient pushes outward is held there). For checks against pyhf until binned channels join
//! the general fit machinery of `fit/`.

use crate::error::{Error, Result};

use super::model::{BinnedData, BinnedModel};
use super::nll::{NllDerivatives, Order};

/// The best fit: parameter values, NLL, Hessian errors (0 for fixed or bound parameters),
/// the number of Newton iterations and of NLL evaluations (line-search values, and full
/// value + gradient + Hessian evaluations).
#[derive(Clone, Debug, PartialEq)]
pub struct BinnedFit {
    pub parameters: Vec<f64>,
    pub nll: f64,
    pub errors: Vec<f64>,
    pub iterations: usize,
    pub value_evaluations: usize,
    pub hessian_evaluations: usize,
}

const MAX_ITERATIONS: usize = 200;

/// The NLL of one model and data set, counting its evaluations and reusing one output.
struct Objective<'a> {
    model: &'a BinnedModel,
    data: &'a BinnedData,
    out: NllDerivatives,
    values: usize,
    hessians: usize,
}

impl Objective<'_> {
    fn value(&mut self, x: &[f64]) -> Result<f64> {
        self.values += 1;
        self.model
            .evaluate_into(x, self.data, Order::Value, &mut self.out)?;
        Ok(self.out.value)
    }

    /// Value, gradient and Hessian at `x` (in `self.out`).
    fn derivatives(&mut self, x: &[f64]) -> Result<&NllDerivatives> {
        self.hessians += 1;
        self.model
            .evaluate_into(x, self.data, Order::Hessian, &mut self.out)?;
        Ok(&self.out)
    }

    /// The free directions at `x` and the Hessian over them.
    fn active_hessian(&mut self, x: &[f64]) -> Result<(Vec<usize>, Vec<f64>, Vec<f64>)> {
        let model = self.model;
        let d = self.derivatives(x)?;
        let active = free_directions(model, x, &d.gradient);
        let g = active.iter().map(|&i| d.gradient[i]).collect();
        let h = submatrix(&d.hessian, x.len(), &active);
        Ok((active, g, h))
    }
}

/// Minimises the NLL over the parameters not fixed, from `init`, within the bounds.
pub fn fit(model: &BinnedModel, data: &BinnedData, init: &[f64]) -> Result<BinnedFit> {
    let mut objective = Objective {
        model,
        data,
        out: NllDerivatives::default(),
        values: 0,
        hessians: 0,
    };
    let mut x = init.to_vec();
    let mut trial = x.clone();
    let mut nll = objective.value(&x)?;
    for iteration in 0..MAX_ITERATIONS {
        let (active, g, h) = objective.active_hessian(&x)?;
        if g.iter().all(|gi| gi.abs() < 1e-10) {
            return Ok(finish(&objective, x, nll, &h, &active, iteration));
        }
        let step = damped_newton_step(&h, &g);
        // Backtracking on the NLL; a point where the likelihood is undefined counts as worse.
        let mut t = 1.0;
        let mut improved = false;
        while t > 1e-12 {
            trial.copy_from_slice(&x);
            for (k, &i) in active.iter().enumerate() {
                let (low, high) = model.parameters[i].bounds;
                trial[i] = (x[i] + t * step[k]).clamp(low, high);
            }
            if let Ok(value) = objective.value(&trial) {
                if value <= nll {
                    improved = value < nll || trial != x;
                    let converged = nll - value < 1e-14 * nll.abs().max(1.0);
                    x.copy_from_slice(&trial);
                    nll = value;
                    if converged {
                        let (active, _, h) = objective.active_hessian(&x)?;
                        return Ok(finish(&objective, x, nll, &h, &active, iteration + 1));
                    }
                    break;
                }
            }
            t *= 0.5;
        }
        if !improved {
            let (active, _, h) = objective.active_hessian(&x)?;
            return Ok(finish(&objective, x, nll, &h, &active, iteration + 1));
        }
    }
    Err(Error::Analysis(format!(
        "binned fit: no convergence in {MAX_ITERATIONS} Newton iterations"
    )))
}

/// Parameters the step may move: not fixed, and not at a bound with the gradient pushing out.
fn free_directions(model: &BinnedModel, x: &[f64], gradient: &[f64]) -> Vec<usize> {
    (0..x.len())
        .filter(|&i| {
            let p = &model.parameters[i];
            let at_low = x[i] <= p.bounds.0 && gradient[i] > 0.0;
            let at_high = x[i] >= p.bounds.1 && gradient[i] < 0.0;
            !p.fixed && !at_low && !at_high
        })
        .collect()
}

fn submatrix(h: &[f64], n: usize, index: &[usize]) -> Vec<f64> {
    index
        .iter()
        .flat_map(|&i| index.iter().map(move |&j| h[i * n + j]))
        .collect()
}

/// −(H + λ I)⁻¹ g with the smallest λ ∈ {0, 1e-8, 1e-6, …} (relative to the diagonal) that
/// makes the matrix positive definite.
fn damped_newton_step(h: &[f64], g: &[f64]) -> Vec<f64> {
    let m = g.len();
    let scale = (0..m).map(|i| h[i * m + i].abs()).fold(1e-12, f64::max);
    let mut lambda = 0.0;
    loop {
        let mut a = h.to_vec();
        for i in 0..m {
            a[i * m + i] += lambda * scale;
        }
        if let Some(l) = cholesky(&a, m) {
            let minus_g: Vec<f64> = g.iter().map(|x| -x).collect();
            return cholesky_solve(&l, m, &minus_g);
        }
        lambda = if lambda == 0.0 { 1e-8 } else { lambda * 100.0 };
    }
}

/// Lower-triangular L with L Lᵀ = a, or None when a is not positive definite.
fn cholesky(a: &[f64], m: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..=i {
            let sum = dot(&l[i * m..i * m + j], &l[j * m..j * m + j]);
            if i == j {
                let d = a[i * m + i] - sum;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * m + i] = d.sqrt();
            } else {
                l[i * m + j] = (a[i * m + j] - sum) / l[j * m + j];
            }
        }
    }
    Some(l)
}

fn cholesky_solve(l: &[f64], m: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; m];
    for i in 0..m {
        let sum = dot(&l[i * m..i * m + i], &y[..i]);
        y[i] = (b[i] - sum) / l[i * m + i];
    }
    let mut x = vec![0.0; m];
    for i in (0..m).rev() {
        let sum: f64 = (i + 1..m).map(|k| l[k * m + i] * x[k]).sum();
        x[i] = (y[i] - sum) / l[i * m + i];
    }
    x
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Errors from the diagonal of H⁻¹ over the free parameters: with H = L Lᵀ,
/// (H⁻¹)_kk = Σ_i (L⁻¹)_ik², L⁻¹ by forward substitution (m³/6, not m solves).
fn finish(
    objective: &Objective,
    x: Vec<f64>,
    nll: f64,
    h: &[f64],
    active: &[usize],
    iterations: usize,
) -> BinnedFit {
    let m = active.len();
    let mut errors = vec![0.0; x.len()];
    if let Some(l) = cholesky(h, m) {
        // Row i of L⁻¹ (lower triangular): L⁻¹_ik = (δ_ik − Σ_{k≤j<i} L_ij L⁻¹_jk) / L_ii.
        let mut inverse = vec![0.0; m * m];
        for i in 0..m {
            for k in 0..=i {
                let sum: f64 = (k..i).map(|j| l[i * m + j] * inverse[j * m + k]).sum();
                let unit = if i == k { 1.0 } else { 0.0 };
                inverse[i * m + k] = (unit - sum) / l[i * m + i];
            }
        }
        for (k, &i) in active.iter().enumerate() {
            let variance: f64 = (k..m).map(|r| inverse[r * m + k].powi(2)).sum();
            errors[i] = variance.sqrt();
        }
    }
    BinnedFit {
        parameters: x,
        nll,
        errors,
        iterations,
        value_evaluations: objective.values,
        hessian_evaluations: objective.hessians,
    }
}
