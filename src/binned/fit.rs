//! A standalone maximum-likelihood fit of a binned-only model: Newton steps on the analytic
//! Hessian, damped (Levenberg) where the Hessian is not positive definite, with a
//! backtracking line search and bounds kept by an active set (a parameter at a bound whose
//! gradient pushes outward is held there). For checks against pyhf until binned channels join
//! the general fit machinery of `fit/`.

use crate::error::{Error, Result};

use super::model::{BinnedData, BinnedModel};

/// The best fit: parameter values, NLL, Hessian errors (0 for fixed or bound parameters)
/// and the number of Newton iterations.
#[derive(Clone, Debug, PartialEq)]
pub struct BinnedFit {
    pub parameters: Vec<f64>,
    pub nll: f64,
    pub errors: Vec<f64>,
    pub iterations: usize,
}

const MAX_ITERATIONS: usize = 200;

/// Minimises the NLL over the parameters not fixed, from `init`, within the bounds.
pub fn fit(model: &BinnedModel, data: &BinnedData, init: &[f64]) -> Result<BinnedFit> {
    let mut x = init.to_vec();
    let n = x.len();
    let mut nll = model.nll(&x, data)?;
    for iteration in 0..MAX_ITERATIONS {
        let d = model.nll_hessian(&x, data)?;
        let active = free_directions(model, &x, &d.gradient);
        let g: Vec<f64> = active.iter().map(|&i| d.gradient[i]).collect();
        let h = submatrix(&d.hessian, n, &active);
        if g.iter().all(|gi| gi.abs() < 1e-10) {
            return Ok(finish(model, x, nll, &h, &active, iteration));
        }
        let step = damped_newton_step(&h, &g);
        // Backtracking on the NLL; a point where the likelihood is undefined counts as worse.
        let mut t = 1.0;
        let mut improved = false;
        while t > 1e-12 {
            let mut trial = x.clone();
            for (k, &i) in active.iter().enumerate() {
                let (low, high) = model.parameters[i].bounds;
                trial[i] = (x[i] + t * step[k]).clamp(low, high);
            }
            if let Ok(value) = model.nll(&trial, data) {
                if value <= nll {
                    improved = value < nll || trial != x;
                    let converged = nll - value < 1e-14 * nll.abs().max(1.0);
                    x = trial;
                    nll = value;
                    if converged {
                        let d = model.nll_hessian(&x, data)?;
                        let active = free_directions(model, &x, &d.gradient);
                        let h = submatrix(&d.hessian, n, &active);
                        return Ok(finish(model, x, nll, &h, &active, iteration + 1));
                    }
                    break;
                }
            }
            t *= 0.5;
        }
        if !improved {
            let d = model.nll_hessian(&x, data)?;
            let active = free_directions(model, &x, &d.gradient);
            let h = submatrix(&d.hessian, n, &active);
            return Ok(finish(model, x, nll, &h, &active, iteration + 1));
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
            let sum: f64 = (0..j).map(|k| l[i * m + k] * l[j * m + k]).sum();
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
        let sum: f64 = (0..i).map(|k| l[i * m + k] * y[k]).sum();
        y[i] = (b[i] - sum) / l[i * m + i];
    }
    let mut x = vec![0.0; m];
    for i in (0..m).rev() {
        let sum: f64 = (i + 1..m).map(|k| l[k * m + i] * x[k]).sum();
        x[i] = (y[i] - sum) / l[i * m + i];
    }
    x
}

/// Errors from the diagonal of H⁻¹ over the free parameters.
fn finish(
    model: &BinnedModel,
    x: Vec<f64>,
    nll: f64,
    h: &[f64],
    active: &[usize],
    iterations: usize,
) -> BinnedFit {
    let m = active.len();
    let mut errors = vec![0.0; model.parameters.len()];
    if let Some(l) = cholesky(h, m) {
        for (k, &i) in active.iter().enumerate() {
            let mut unit = vec![0.0; m];
            unit[k] = 1.0;
            errors[i] = cholesky_solve(&l, m, &unit)[k].sqrt();
        }
    }
    BinnedFit {
        parameters: x,
        nll,
        errors,
        iterations,
    }
}
