//! The quasi-Newton fallback: argmin's L-BFGS (Moré–Thuente line search) in MINUIT's
//! bound-removing transformation of the free parameters. It needs only gradients, so it can
//! walk through regions where the Hessian is indefinite and the Newton step is poor; the
//! Newton method then polishes its result (and provides the covariance).
//!
//! Its Moré–Thuente line search cannot step back from a point without a finite NLL (it spun
//! for ever on NaN): such a point, or running out of the evaluation budget, stops the run,
//! which then returns the lowest point it had found, and why it stopped.

use std::cell::{Cell, RefCell};

use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

use super::EvaluationCounts;
use crate::likelihood::{Evaluation, Likelihood, Order};

/// The NLL as a function of unbounded internal coordinates of the free parameters, counting
/// its evaluations and keeping the lowest point seen.
struct Internal<'l, 'm> {
    like: &'l Likelihood<'m>,
    free: Vec<usize>,
    base: Vec<f64>,
    bounds: Vec<(f64, f64)>,
    evaluations: &'l Cell<EvaluationCounts>,
    budget: usize,
    /// The lowest finite NLL evaluated, with its external point.
    best: &'l RefCell<Option<(f64, Vec<f64>)>>,
}

/// External value and dx/du of internal coordinate `u` for bounds (lo, hi) (MINUIT's choice:
/// sine for two bounds, square roots for one).
fn external(u: f64, (lo, hi): (f64, f64)) -> (f64, f64) {
    match (lo.is_finite(), hi.is_finite()) {
        (true, true) => (
            lo + 0.5 * (hi - lo) * (u.sin() + 1.0),
            0.5 * (hi - lo) * u.cos(),
        ),
        (true, false) => (lo - 1.0 + (u * u + 1.0).sqrt(), u / (u * u + 1.0).sqrt()),
        (false, true) => (hi + 1.0 - (u * u + 1.0).sqrt(), -u / (u * u + 1.0).sqrt()),
        (false, false) => (u, 1.0),
    }
}

fn internal(x: f64, (lo, hi): (f64, f64)) -> f64 {
    match (lo.is_finite(), hi.is_finite()) {
        (true, true) => (2.0 * (x - lo) / (hi - lo) - 1.0).clamp(-1.0, 1.0).asin(),
        (true, false) => ((x - lo + 1.0).powi(2) - 1.0).max(0.0).sqrt(),
        (false, true) => ((hi - x + 1.0).powi(2) - 1.0).max(0.0).sqrt(),
        (false, false) => x,
    }
}

impl Internal<'_, '_> {
    fn point(&self, u: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut x = self.base.clone();
        let mut jacobian = vec![0.0; u.len()];
        for (k, (&i, &ui)) in self.free.iter().zip(u).enumerate() {
            let (xi, dx) = external(ui, self.bounds[i]);
            x[i] = xi;
            jacobian[k] = dx;
        }
        (x, jacobian)
    }
}

impl Internal<'_, '_> {
    /// Evaluates at external point `x`: an error (which stops the run) once the budget is
    /// spent, or where the NLL or its gradient is not finite.
    fn evaluate(&self, x: &[f64], order: Order) -> Result<Evaluation, ArgminError> {
        if self.evaluations.get().total() >= self.budget {
            return Err(ArgminError::msg(format!(
                "L-BFGS stopped: evaluation budget of {} exhausted",
                self.budget
            )));
        }
        let mut counts = self.evaluations.get();
        counts.add(order);
        self.evaluations.set(counts);
        let ev = self.like.evaluate(x, order);
        if !(ev.nll.is_finite() && ev.gradient.iter().all(|g| g.is_finite())) {
            return Err(ArgminError::msg(format!(
                "L-BFGS stopped at a point without likelihood: {}",
                super::why_undefined(self.like, x, &ev)
            )));
        }
        let mut best = self.best.borrow_mut();
        if best.as_ref().is_none_or(|(nll, _)| ev.nll < *nll) {
            *best = Some((ev.nll, x.to_vec()));
        }
        Ok(ev)
    }
}

impl CostFunction for Internal<'_, '_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, u: &Vec<f64>) -> Result<f64, ArgminError> {
        Ok(self.evaluate(&self.point(u).0, Order::Value)?.nll)
    }
}

impl Gradient for Internal<'_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, u: &Vec<f64>) -> Result<Vec<f64>, ArgminError> {
        let (x, jacobian) = self.point(u);
        let ev = self.evaluate(&x, Order::Gradient)?;
        Ok(self
            .free
            .iter()
            .zip(&jacobian)
            .map(|(&i, dx)| ev.gradient[i] * dx)
            .collect())
    }
}

/// How an L-BFGS run ended.
pub struct Outcome {
    /// The lowest point with a finite NLL it evaluated (external coordinates), if any.
    pub best: Option<Vec<f64>>,
    pub n_eval: usize,
    /// The same by order.
    pub evaluations: EvaluationCounts,
    /// Why it stopped before converging: a point without likelihood, the budget, or a
    /// solver error.
    pub stopped: Option<String>,
}

/// Minimises with L-BFGS from `init` over the parameters not in `fixed`, spending at most
/// `budget` NLL evaluations.
pub fn lbfgs(
    like: &Likelihood,
    init: &[f64],
    fixed: &[bool],
    bounds: &[(f64, f64)],
    max_iterations: u64,
    budget: usize,
) -> Outcome {
    let free: Vec<usize> = (0..init.len()).filter(|&i| !fixed[i]).collect();
    let count = Cell::new(EvaluationCounts::default());
    let best = RefCell::new(None);
    let problem = Internal {
        like,
        free: free.clone(),
        base: init.to_vec(),
        bounds: bounds.to_vec(),
        evaluations: &count,
        budget,
        best: &best,
    };
    let start: Vec<f64> = free.iter().map(|&i| internal(init[i], bounds[i])).collect();
    let stopped = match LBFGS::new(MoreThuenteLineSearch::new(), 7)
        .with_tolerance_grad(1e-9)
        .and_then(|s| s.with_tolerance_cost(1e-14))
    {
        Ok(solver) => Executor::new(problem, solver)
            .configure(|state| state.param(start).max_iters(max_iterations))
            .run()
            .err()
            .map(|e| e.to_string()),
        Err(e) => Some(format!("L-BFGS could not start: {e}")),
    };
    Outcome {
        best: best.into_inner().map(|(_, x)| x),
        n_eval: count.get().total(),
        evaluations: count.get(),
        stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformations_invert_and_differentiate() {
        for bounds in [
            (0.0, 20.0),
            (0.0, f64::INFINITY),
            (f64::NEG_INFINITY, 3.0),
            (f64::NEG_INFINITY, f64::INFINITY),
        ] {
            for x in [0.3, 1.0, 2.5] {
                let u = internal(x, bounds);
                let (back, dx) = external(u, bounds);
                assert!((back - x).abs() < 1e-12, "{bounds:?} {x}");
                let h = 1e-6;
                let numeric = (external(u + h, bounds).0 - external(u - h, bounds).0) / (2.0 * h);
                assert!((numeric - dx).abs() < 1e-6);
            }
        }
    }
}
