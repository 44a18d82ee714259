//! Maximum-likelihood fits: bounded Newton minimisation with the analytic Hessian, covariance
//! from the inverse Hessian, profile-likelihood (MINOS-like) intervals.
//!
//! The main minimiser is a projected, Levenberg-damped Newton method: the likelihoods here are
//! smooth, low-dimensional and come with exact second derivatives, so Newton steps converge in
//! a handful of evaluations (what toys need). Parameters at a bound whose gradient points
//! outward are held there (the active set), which is how μ̂ = 0 at the physical boundary is
//! found. Points where the density is not positive evaluate to +∞ and are rejected by the line
//! search, so the minimiser never steps into them. If Newton fails, argmin's L-BFGS (in
//! MINUIT's bound transformation) and then a strongly damped Newton start are tried.
//!
//! Every strategy treats a point without a finite NLL (a coefficient undefined there, like
//! `sqrt(mu)` at μ < 0, or an event density ≤ 0) as rejected, and all of them together spend at
//! most [`FitOptions::max_evaluations`] evaluations: a fit always ends, and one that ends on
//! such points says which expression was undefined, and where. Parameters may be unbounded on
//! either side (bounds ±∞).

pub mod contour;
pub mod lbfgs;
pub mod linalg;
pub mod scan;

use crate::likelihood::{Evaluation, Likelihood, Order};

/// Settings of one minimisation.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Starting point (all parameters).
    pub init: Vec<f64>,
    /// Parameters held constant (in addition to those the workspace marks `fixed`).
    pub fixed: Vec<bool>,
    /// Convergence: estimated distance to minimum ½ gᵀH⁻¹g below this.
    pub edm_tolerance: f64,
    pub max_iterations: usize,
    /// The likelihood's Hessian-order evaluation at `init`, when the caller already has it (a
    /// fit that starts where another ended, on the same likelihood: its `evaluation`, whose
    /// Hessian may be an estimate): the first Newton step then costs no evaluation.
    pub init_evaluation: Option<Evaluation>,
    /// Whether the fit must end on a Hessian evaluated at its last point (for the covariance,
    /// and for a fit started from its `evaluation`). When not, a Newton step taken from close
    /// to the minimum (EDM < [`CLOSE_EDM`]) is evaluated to gradient order only, and
    /// convergence there is judged with a Hessian estimated from the previous point's (as
    /// MINUIT judges it with its approximate one): one Hessian fewer per fit, which is what
    /// toys need. Where that does not converge, the point is evaluated again at Hessian order.
    /// On the example's toys the estimate gives errors within 3 % of the evaluated Hessian's
    /// and the NLL at the minimum within 10⁻⁶ (`tests/toys.rs`).
    pub final_hessian: bool,
    /// With `final_hessian` off: whether a point reached by a gradient-order step that has not
    /// converged steps on with its estimated Hessian (a quasi-Newton step, the estimate
    /// updated again at its end) while its EDM is below [`CLOSE_EDM`], instead of evaluating
    /// its own Hessian. MINOS's conditional fits start on the profile's tangent, within a few
    /// such steps of their minimum: at the target workspace this saves a Hessian per fit.
    pub reuse_estimated_hessian: bool,
    /// Likelihood evaluations all strategies of one [`minimise`] may spend together; a fit
    /// that runs out is not converged.
    pub max_evaluations: usize,
}

impl FitOptions {
    pub fn new(like: &Likelihood) -> FitOptions {
        FitOptions {
            init: like.model.init(),
            fixed: like.model.parameters.iter().map(|p| p.fixed).collect(),
            edm_tolerance: 1e-9,
            max_iterations: 200,
            init_evaluation: None,
            final_hessian: true,
            reuse_estimated_hessian: false,
            max_evaluations: DEFAULT_MAX_EVALUATIONS,
        }
    }
}

/// The default evaluation budget of a fit: 25 times what 200 Newton iterations cost without
/// line-search halvings, while the example's fits take 4 to 50 evaluations.
pub const DEFAULT_MAX_EVALUATIONS: usize = 5000;

/// Likelihood evaluations by order. The total alone does not say what a fit cost: at the
/// target workspace (3·10⁶ MC events, 10 shape systematics) a value takes ~0.12 s, a gradient
/// ~0.2 s and a Hessian ~0.4 s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct EvaluationCounts {
    pub value: usize,
    pub gradient: usize,
    pub hessian: usize,
}

impl EvaluationCounts {
    pub fn add(&mut self, order: Order) {
        match order {
            Order::Value => self.value += 1,
            Order::Gradient => self.gradient += 1,
            Order::Hessian => self.hessian += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.value + self.gradient + self.hessian
    }
}

impl std::ops::AddAssign for EvaluationCounts {
    fn add_assign(&mut self, other: EvaluationCounts) {
        self.value += other.value;
        self.gradient += other.gradient;
        self.hessian += other.hessian;
    }
}

/// The EDM below which a pure Newton step is expected to converge (EDM < 10⁻⁴) at the next
/// point: the likelihoods here converge quadratically, EDM_{k+1} ≈ C·EDM_k² with C up to ~0.25
/// in the example's toys, so 0.02 leaves a margin of 2.
pub const CLOSE_EDM: f64 = 0.02;

/// Whether the Hessian over the non-fixed parameters at the end of a fit could be inverted:
/// only then are there errors and correlations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HessianStatus {
    PositiveDefinite,
    /// Not positive definite (a flat or downward direction): the point is not a proper
    /// minimum in all free parameters, and there is no covariance.
    NotPositiveDefinite,
    /// The fit failed before a Hessian was available.
    NotComputed,
}

impl HessianStatus {
    /// The name used in `nsbi fit --json` (`status.hessian`).
    pub fn as_str(self) -> &'static str {
        match self {
            HessianStatus::PositiveDefinite => "positive_definite",
            HessianStatus::NotPositiveDefinite => "not_positive_definite",
            HessianStatus::NotComputed => "not_computed",
        }
    }
}

/// Outcome of a minimisation.
#[derive(Clone, Debug)]
pub struct FitResult {
    pub theta: Vec<f64>,
    pub nll: f64,
    pub converged: bool,
    pub message: String,
    /// Likelihood evaluations spent, all strategies together (`evaluations.total()`).
    pub n_eval: usize,
    /// The same by order: a Hessian costs several values (3–4 at the target workspace).
    pub evaluations: EvaluationCounts,
    pub iterations: usize,
    /// Estimated distance to the minimum at the end.
    pub edm: f64,
    /// Parameters that ended at a bound with the gradient pointing outward.
    pub at_bound: Vec<bool>,
    /// Inverse of `evaluation`'s Hessian over the free parameters (zeros for fixed ones),
    /// row-major.
    pub covariance: Vec<f64>,
    /// Whether `covariance` exists: errors and correlations mean something only when the
    /// Hessian is positive definite.
    pub hessian: HessianStatus,
    pub fixed: Vec<bool>,
    /// The last evaluation, at `theta`, with a Hessian: what a fit continuing from here starts
    /// with. The Hessian is the one evaluated there, or, when the fit ended on a
    /// gradient-order step (`FitOptions::final_hessian` off), the estimate from the previous
    /// point's (then `hessian_estimated`).
    pub evaluation: Evaluation,
    pub hessian_estimated: bool,
}

impl FitResult {
    /// The Hessian error of parameter `i` (0 when the Hessian could not be inverted: see
    /// [`FitResult::hesse_error`]).
    pub fn error(&self, i: usize) -> f64 {
        let n = self.theta.len();
        self.covariance[i * n + i].max(0.0).sqrt()
    }

    /// The Hessian error of parameter `i`, or None when there is none to give: the Hessian
    /// is not positive definite, or was never computed, or the parameter ended at a bound
    /// (the minimum is not a stationary point in it, and a symmetric error would reach past
    /// the bound). Fixed parameters have error 0.
    pub fn hesse_error(&self, i: usize) -> Option<f64> {
        let defined = self.hessian == HessianStatus::PositiveDefinite && !self.at_bound[i];
        (self.fixed[i] || defined).then(|| self.error(i))
    }

    /// One word for the outcome, for reports: `converged`, `converged_at_bound` (a minimum
    /// on a bound of some parameter: no error for it),
    /// `hessian_not_positive_definite` (no errors at all) or `not_converged` (including an
    /// exhausted evaluation budget).
    pub fn verdict(&self) -> &'static str {
        if !self.converged {
            "not_converged"
        } else if self.hessian != HessianStatus::PositiveDefinite {
            "hessian_not_positive_definite"
        } else if self.at_bound.iter().any(|&b| b) {
            "converged_at_bound"
        } else {
            "converged"
        }
    }
}

/// A tiny margin kept from each finite bound: coefficients like √μ have infinite derivatives
/// exactly at μ = 0, so the minimiser approaches a bound to within 1e-10 (relative) but never
/// sits on it. An infinite bound stays infinite.
pub fn inner_bounds(bounds: (f64, f64)) -> (f64, f64) {
    let margin = |b: f64| {
        if b.is_finite() {
            1e-10 * b.abs().max(1.0)
        } else {
            0.0
        }
    };
    (bounds.0 + margin(bounds.0), bounds.1 - margin(bounds.1))
}

/// Why the likelihood has no finite value or derivatives at `theta` (evaluated into `at`): a
/// process coefficient undefined there, named by its expression, or an event whose density is
/// not positive; with the parameter values.
pub fn why_undefined(like: &Likelihood, theta: &[f64], at: &Evaluation) -> String {
    let point = like.model.describe_point(theta);
    if let Some(coefficient) = like.model.undefined_coefficient(theta) {
        return format!("{coefficient} at {point}");
    }
    match &at.invalid {
        Some(invalid) => format!("{invalid} at {point}"),
        None => format!("the NLL or its derivatives are not finite at {point}"),
    }
}

/// The note a failed fit adds about the last point it rejected for having no likelihood.
fn rejected_note(like: &Likelihood, rejected: Option<&[f64]>) -> String {
    rejected.map_or_else(String::new, |theta| {
        let at = like.evaluate(theta, Order::Value);
        format!(
            "; rejected points without likelihood, the last: {}",
            why_undefined(like, theta, &at)
        )
    })
}

/// A minimisation strategy; [`minimise`] tries them in this order until one converges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Newton steps with the analytic Hessian, barely damped: the fast path.
    Newton,
    /// argmin's L-BFGS in MINUIT's bound transformation, then a Newton polish.
    QuasiNewton,
    /// Newton with strong initial Levenberg damping (starts like gradient descent).
    DampedNewton,
}

/// Minimises `like` from `options.init`, retrying with the other strategies before reporting
/// non-convergence (then the lowest point found is returned, flagged as not converged).
/// All strategies together spend at most `options.max_evaluations` evaluations; a start
/// without likelihood ends the fit at once (every strategy starts there).
pub fn minimise(like: &Likelihood, options: &FitOptions) -> FitResult {
    let mut tried: Vec<String> = Vec::new();
    let mut n_eval = 0;
    let mut evaluations = EvaluationCounts::default();
    let mut best: Option<FitResult> = None;
    for strategy in [
        Strategy::Newton,
        Strategy::QuasiNewton,
        Strategy::DampedNewton,
    ] {
        let budget = options.max_evaluations.saturating_sub(n_eval);
        if budget == 0 && best.is_some() {
            tried.push(format!(
                "evaluation budget of {} exhausted",
                options.max_evaluations
            ));
            break;
        }
        let mut result = with_bound_note(like, minimise_within(like, options, strategy, budget));
        n_eval += result.n_eval;
        result.n_eval = n_eval;
        evaluations += result.evaluations;
        result.evaluations = evaluations;
        if result.iterations == 0 && !result.nll.is_finite() {
            // The start has no likelihood: so it has for every strategy.
            return result;
        }
        if result.converged {
            if !tried.is_empty() {
                result.message = format!(
                    "{} with {strategy:?} after: {}",
                    result.message,
                    tried.join("; ")
                );
            }
            return result;
        }
        tried.push(format!("{strategy:?}: {}", result.message));
        if best
            .as_ref()
            .is_none_or(|b| result.nll < b.nll || b.nll.is_nan())
        {
            best = Some(result);
        }
    }
    let mut best = best.expect("at least one strategy ran");
    best.message = format!("did not converge: {}", tried.join("; "));
    best.n_eval = n_eval;
    best.evaluations = evaluations;
    best
}

/// One minimisation with one strategy, within `options.max_evaluations`.
pub fn minimise_with(like: &Likelihood, options: &FitOptions, strategy: Strategy) -> FitResult {
    with_bound_note(
        like,
        minimise_within(like, options, strategy, options.max_evaluations),
    )
}

/// A result's message with the parameters that ended at a bound named: a minimum on a bound
/// is not an interior one, and its errors say so only if one reads them.
fn with_bound_note(like: &Likelihood, mut result: FitResult) -> FitResult {
    let at_bound: Vec<String> = (0..result.theta.len())
        .filter(|&i| result.at_bound[i])
        .map(|i| {
            let p = &like.model.parameters[i];
            let side = if result.theta[i] <= inner_bounds(p.bounds).0 {
                "lower"
            } else {
                "upper"
            };
            format!("{} = {} ({side} bound)", p.name, result.theta[i])
        })
        .collect();
    if !at_bound.is_empty() {
        result.message = format!("{}; at bound: {}", result.message, at_bound.join(", "));
    }
    result
}

/// One minimisation with one strategy, spending at most `budget` evaluations.
fn minimise_within(
    like: &Likelihood,
    options: &FitOptions,
    strategy: Strategy,
    budget: usize,
) -> FitResult {
    match strategy {
        Strategy::Newton => newton(like, options, 1e-8, budget),
        Strategy::DampedNewton => newton(like, options, 1.0, budget),
        Strategy::QuasiNewton => {
            let (bounds, start) = bounded_start(like, options);
            // One evaluation kept for the Newton polish's start (or the failed start's).
            let run = lbfgs::lbfgs(
                like,
                &start,
                &options.fixed,
                &bounds,
                options.max_iterations as u64,
                budget.saturating_sub(1),
            );
            let stopped = run
                .stopped
                .map_or_else(String::new, |why| format!("; {why}"));
            match run.best {
                Some(point) => {
                    let polish = FitOptions {
                        init: point,
                        init_evaluation: None,
                        ..options.clone()
                    };
                    let mut result = newton(like, &polish, 1e-8, budget.saturating_sub(run.n_eval));
                    result.n_eval += run.n_eval;
                    result.evaluations += run.evaluations;
                    if !result.converged {
                        result.message.push_str(&stopped);
                    }
                    result
                }
                None => {
                    let at = like.evaluate(&start, Order::Hessian);
                    let why = format!("L-BFGS found no point with a likelihood{stopped}");
                    let mut evaluations = run.evaluations;
                    evaluations.add(Order::Hessian);
                    failed(start, at, evaluations, why, options)
                }
            }
        }
    }
}

/// The parameters' bounds pulled in by the boundary margin, and the starting point clamped
/// into them.
fn bounded_start(like: &Likelihood, options: &FitOptions) -> (Vec<(f64, f64)>, Vec<f64>) {
    let bounds: Vec<(f64, f64)> = like
        .model
        .parameters
        .iter()
        .map(|p| inner_bounds(p.bounds))
        .collect();
    let start = options
        .init
        .iter()
        .zip(&bounds)
        .map(|(v, b)| v.clamp(b.0, b.1))
        .collect();
    (bounds, start)
}

fn newton(
    like: &Likelihood,
    options: &FitOptions,
    initial_damping: f64,
    budget: usize,
) -> FitResult {
    let n = like.n_parameters();
    let (bounds, mut x) = bounded_start(like, options);
    let mut evaluations = EvaluationCounts::default();
    // The caller's evaluation at the start, if it is at this very point.
    let mut at = match &options.init_evaluation {
        Some(known) if x == options.init && known.hessian.len() == n * n => known.clone(),
        _ => {
            evaluations.add(Order::Hessian);
            like.evaluate(&x, Order::Hessian)
        }
    };
    // Line-search trials are evaluated into `next` (whose arrays are reused, swapped with
    // `at` when a trial is accepted): no allocation per evaluation.
    let mut next = at.clone();
    let mut trial = x.clone();
    if !at.nll.is_finite() {
        let why = why_undefined(like, &x, &at);
        return failed(
            x,
            at,
            evaluations,
            format!("the starting point has no likelihood: {why}"),
            options,
        );
    }
    // Whether `at.hessian` is an estimate (after a gradient-order step, `final_hessian` off:
    // from the previous point's Hessian and the step, `StepWork::newton_endpoint_hessian`).
    let mut hessian_estimated = false;
    let mut damping = initial_damping;
    let mut edm = f64::INFINITY;
    let mut work = StepWork::default();
    // The last line-search trial without likelihood (for the message of a failed fit).
    let mut rejected: Option<Vec<f64>> = None;
    let mut iteration = 0;
    while iteration < options.max_iterations {
        if evaluations.total() >= budget {
            let message = format!(
                "evaluation budget of {} exhausted{}",
                options.max_evaluations,
                rejected_note(like, rejected.as_deref())
            );
            return finish(
                x,
                at,
                hessian_estimated,
                evaluations,
                iteration,
                edm,
                false,
                message,
                options,
                &bounds,
            );
        }
        work.free.clear();
        work.free.extend((0..n).filter(|&i| {
            !(options.fixed[i]
                || (x[i] <= bounds[i].0 && at.gradient[i] > 0.0)
                || (x[i] >= bounds[i].1 && at.gradient[i] < 0.0))
        }));
        if work.free.is_empty() {
            return finish(
                x,
                at,
                hessian_estimated,
                evaluations,
                iteration,
                0.0,
                true,
                "all parameters fixed or at bounds".into(),
                options,
                &bounds,
            );
        }
        let Some(step_edm) = work.damped_step(&at.gradient, &at.hessian, n, damping) else {
            let why = why_undefined(like, &x, &at);
            return failed(x, at, evaluations, why, options);
        };
        edm = step_edm;
        if edm < options.edm_tolerance && damping <= 1e-6 {
            return finish(
                x,
                at,
                hessian_estimated,
                evaluations,
                iteration,
                edm,
                true,
                "converged".into(),
                options,
                &bounds,
            );
        }
        if hessian_estimated && !(options.reuse_estimated_hessian && edm < CLOSE_EDM) {
            // Not converged after a gradient-order step: the next step takes this point's
            // own Hessian.
            like.evaluate_into(&x, Order::Hessian, &mut at);
            evaluations.add(Order::Hessian);
            hessian_estimated = false;
            continue;
        }
        let step = &work.step;
        let order = if !options.final_hessian && edm < CLOSE_EDM && damping <= 1e-6 {
            Order::Gradient
        } else {
            Order::Hessian
        };
        // Backtracking line search on the projected step, within the budget (a gradient-order
        // trial keeps one evaluation for the Hessian its point may need). The full step is
        // evaluated at `order`; the shorter trials after it only at value order, which is all
        // the test reads, and the one accepted again at `order` (the same iterates: with an
        // indefinite Hessian a toy fit of the target workspace halves its step up to 7 times,
        // each trial at Hessian order was a normalisation pass at O(N_MC K²)).
        let mut trial_order = order;
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            let reserve = usize::from(order == Order::Gradient) + usize::from(trial_order != order);
            if evaluations.total() + reserve >= budget {
                break;
            }
            for (i, v) in trial.iter_mut().enumerate() {
                *v = (x[i] + t * step[i]).clamp(bounds[i].0, bounds[i].1);
            }
            like.evaluate_into(&trial, trial_order, &mut next);
            evaluations.add(trial_order);
            if !next.nll.is_finite() {
                rejected.get_or_insert_with(Vec::new).clone_from(&trial);
            } else if next.nll <= at.nll + 1e-4 * t * dot(&at.gradient, step).min(0.0) {
                accepted = true;
                break;
            }
            t *= 0.5;
            trial_order = Order::Value;
        }
        if accepted && trial_order != order {
            like.evaluate_into(&trial, order, &mut next);
            evaluations.add(order);
        }
        iteration += 1;
        if accepted {
            let decrease = at.nll - next.nll;
            let full_step = t == 1.0 && (0..n).all(|i| trial[i] == x[i] + step[i]);
            std::mem::swap(&mut x, &mut trial);
            std::mem::swap(&mut at, &mut next);
            hessian_estimated = false;
            if order == Order::Gradient {
                // `next` holds the previous point now, with its Hessian.
                let estimate = full_step
                    .then(|| work.newton_endpoint_hessian(&next.hessian, &at.gradient))
                    .flatten();
                match estimate {
                    Some(estimate) => {
                        at.hessian = estimate;
                        hessian_estimated = true;
                    }
                    None => {
                        like.evaluate_into(&x, Order::Hessian, &mut at);
                        evaluations.add(Order::Hessian);
                    }
                }
            }
            damping = if t == 1.0 {
                (damping * 0.1).max(1e-8)
            } else {
                damping
            };
            if decrease.abs() < 1e-13 * (1.0 + at.nll.abs()) && edm < 1e3 * options.edm_tolerance {
                return finish(
                    x,
                    at,
                    hessian_estimated,
                    evaluations,
                    iteration,
                    edm,
                    true,
                    "converged (no further decrease)".into(),
                    options,
                    &bounds,
                );
            }
        } else {
            damping = (damping * 100.0).max(1e-4);
            if damping > 1e12 {
                let converged = edm < 1e3 * options.edm_tolerance;
                let mut message = "line search failed".to_string();
                if !converged {
                    message.push_str(&rejected_note(like, rejected.as_deref()));
                }
                return finish(
                    x,
                    at,
                    hessian_estimated,
                    evaluations,
                    iteration,
                    edm,
                    converged,
                    message,
                    options,
                    &bounds,
                );
            }
        }
    }
    let message = format!(
        "no convergence in {} iterations{}",
        options.max_iterations,
        rejected_note(like, rejected.as_deref())
    );
    finish(
        x,
        at,
        hessian_estimated,
        evaluations,
        options.max_iterations,
        edm,
        false,
        message,
        options,
        &bounds,
    )
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Working arrays of the Newton steps, allocated once per fit (none per iteration).
#[derive(Default)]
struct StepWork {
    /// The parameters the step moves: not fixed, not held at a bound.
    free: Vec<usize>,
    /// The step, over all parameters (zero for those not free).
    step: Vec<f64>,
    /// Gradient and Hessian restricted to the free parameters, the factor of the damped
    /// Hessian, and the solution of the Newton system.
    g: Vec<f64>,
    h: Vec<f64>,
    factor: Vec<f64>,
    solution: Vec<f64>,
}

impl StepWork {
    /// Newton step on the free parameters with Levenberg damping (H + λ diag(H)), into
    /// `self.step`, and the EDM ½ gᵀ H⁻¹ g; the damping grows until the system is positive
    /// definite. None if the gradient or Hessian is not finite, or no damping helps.
    fn damped_step(
        &mut self,
        gradient: &[f64],
        hessian: &[f64],
        n: usize,
        damping: f64,
    ) -> Option<f64> {
        let Self {
            free,
            step,
            g,
            h,
            factor,
            solution,
        } = self;
        let m = free.len();
        g.clear();
        g.extend(free.iter().map(|&i| gradient[i]));
        if g.iter().any(|v| !v.is_finite()) {
            return None;
        }
        h.clear();
        h.extend(
            free.iter()
                .flat_map(|&i| free.iter().map(move |&j| hessian[i * n + j])),
        );
        if h.iter().any(|v| !v.is_finite()) {
            return None;
        }
        factor.clone_from(h);
        solution.clone_from(g);
        let edm = if linalg::cholesky_in_place(factor, m) {
            linalg::cholesky_solve_in_place(factor, m, solution);
            0.5 * dot(g, solution)
        } else {
            f64::INFINITY
        };
        let mut lambda = damping;
        for _ in 0..60 {
            factor.clone_from(h);
            for i in 0..m {
                factor[i * m + i] += lambda * h[i * m + i].abs().max(1e-12);
            }
            if linalg::cholesky_in_place(factor, m) {
                solution.clone_from(g);
                linalg::cholesky_solve_in_place(factor, m, solution);
                step.clear();
                step.resize(n, 0.0);
                for (k, &i) in free.iter().enumerate() {
                    step[i] = -solution[k];
                }
                return Some(edm);
            }
            lambda = (lambda * 10.0).max(1e-6);
        }
        None
    }

    /// The Hessian at the end of a full Newton step `s` (H₀s = −g₀), estimated from the previous
    /// Hessian H₀ and the gradient g₁ there: with the third derivatives T, g₁ = ½T[s,s] and
    /// H₁ = H₀ + T[s] to that order, so H₁s = H₀s + 2g₁, which the symmetric rank-one update
    /// H₀ + 2g₁g₁ᵀ/(g₁ᵀs) meets (and which is H₁ exactly for a one-dimensional cubic). On the
    /// example's toys this takes the EDM, and the NLL at the quadratic model's minimum, ten
    /// times closer to those of the Hessian evaluated there than H₀ alone. `None` when the update
    /// would change ½g₁ᵀH⁻¹g₁ by more than a factor 2: the quadratic model is then not trusted.
    ///
    /// Called after [`StepWork::damped_step`] made `self.step` from H₀ (`hessian`, all
    /// parameters), whose restriction to the free parameters it left in `self.h`.
    fn newton_endpoint_hessian(&mut self, hessian: &[f64], gradient: &[f64]) -> Option<Vec<f64>> {
        let Self {
            free,
            step,
            g,
            h,
            factor,
            solution,
        } = self;
        let n = gradient.len();
        let m = free.len();
        g.clear();
        g.extend(free.iter().map(|&i| gradient[i]));
        let curvature: f64 = free.iter().map(|&i| gradient[i] * step[i]).sum();
        factor.clone_from(h);
        if !linalg::cholesky_in_place(factor, m) {
            return None;
        }
        solution.clone_from(g);
        linalg::cholesky_solve_in_place(factor, m, solution);
        let metric = dot(g, solution);
        // Sherman–Morrison: gᵀ(H₀ + βggᵀ)⁻¹g = gᵀH₀⁻¹g / (1 + β gᵀH₀⁻¹g).
        let shrink = 1.0 + 2.0 * metric / curvature;
        if !(0.5..=2.0).contains(&shrink) {
            return None;
        }
        let mut estimate = hessian.to_vec();
        for &i in free.iter() {
            for &j in free.iter() {
                estimate[i * n + j] += 2.0 * gradient[i] * gradient[j] / curvature;
            }
        }
        Some(estimate)
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    theta: Vec<f64>,
    at: Evaluation,
    hessian_estimated: bool,
    evaluations: EvaluationCounts,
    iterations: usize,
    edm: f64,
    converged: bool,
    message: String,
    options: &FitOptions,
    bounds: &[(f64, f64)],
) -> FitResult {
    let n = theta.len();
    let at_bound: Vec<bool> = (0..n)
        .map(|i| {
            (theta[i] <= bounds[i].0 && at.gradient[i] > 0.0)
                || (theta[i] >= bounds[i].1 && at.gradient[i] < 0.0)
        })
        .collect();
    let free: Vec<usize> = (0..n).filter(|&i| !options.fixed[i]).collect();
    let m = free.len();
    let hessian = &at.hessian;
    let h: Vec<f64> = free
        .iter()
        .flat_map(|&i| free.iter().map(move |&j| hessian[i * n + j]))
        .collect();
    let mut covariance = vec![0.0; n * n];
    let mut message = message;
    let hessian_status = match linalg::spd_inverse(&h, m) {
        Some(inv) => {
            for (a, &i) in free.iter().enumerate() {
                for (b, &j) in free.iter().enumerate() {
                    covariance[i * n + j] = inv[a * m + b];
                }
            }
            HessianStatus::PositiveDefinite
        }
        None if m > 0 => {
            message.push_str("; Hessian not positive definite, no covariance");
            HessianStatus::NotPositiveDefinite
        }
        None => HessianStatus::PositiveDefinite,
    };
    FitResult {
        theta,
        nll: at.nll,
        converged,
        message,
        n_eval: evaluations.total(),
        evaluations,
        iterations,
        edm,
        at_bound,
        covariance,
        hessian: hessian_status,
        fixed: options.fixed.clone(),
        evaluation: at,
        hessian_estimated,
    }
}

fn failed(
    theta: Vec<f64>,
    at: Evaluation,
    evaluations: EvaluationCounts,
    message: String,
    options: &FitOptions,
) -> FitResult {
    let n = theta.len();
    FitResult {
        theta,
        nll: at.nll,
        converged: false,
        message,
        n_eval: evaluations.total(),
        evaluations,
        iterations: 0,
        edm: f64::INFINITY,
        at_bound: vec![false; n],
        covariance: vec![0.0; n * n],
        hessian: HessianStatus::NotComputed,
        fixed: options.fixed.clone(),
        evaluation: at,
        hessian_estimated: false,
    }
}

/// A fit with parameter `index` fixed at `value`, warm-started from `start`.
pub fn conditional(like: &Likelihood, start: &[f64], index: usize, value: f64) -> FitResult {
    let mut options = FitOptions::new(like);
    options.init = start.to_vec();
    options.init[index] = value;
    options.fixed[index] = true;
    minimise(like, &options)
}

/// A profile-likelihood (MINOS) interval and what finding it cost.
#[derive(Clone, Debug)]
pub struct ProfileInterval {
    pub parameter: usize,
    /// The ends (the bound where the curve stays below ΔNLL up to it); None where an end was
    /// not found (a conditional fit without likelihood, or the budget spent), with a note.
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub conditional_fits: usize,
    pub n_eval: usize,
    /// The same by order.
    pub evaluations: EvaluationCounts,
    pub notes: Vec<String>,
}

/// Each end of a MINOS interval is found to this fraction of the Hessian error: 10⁻³σ moves
/// ΔNLL = ½ by 10⁻³ — far below what any quoted digit shows.
pub const MINOS_TOLERANCE: f64 = 1e-3;

/// The EDM MINOS's conditional fits stop at. The profiled NLL is read at the minimum of the
/// fit's quadratic model (see [`ProfilePoint`]), and even without that correction an NLL off
/// by 10⁻⁵ moves an end by 10⁻⁵σ (ΔNLL rises with slope ≈ 1/σ there): the global fit's 10⁻⁹
/// would cost a Newton step more per conditional fit for nothing.
pub const MINOS_EDM_TOLERANCE: f64 = 1e-5;

/// The evaluations one MINOS interval (both ends, all conditional fits) may spend, in units of
/// one fit's budget: a conditional fit warm-started near the minimum takes a few evaluations,
/// and each end a handful of fits.
pub const MINOS_BUDGET_FITS: usize = 4;

/// The conditional fits one end may take. The root finder converges quadratically (two or
/// three fits per end on the example and the target workspace); bisection, where the profile
/// has no quadratic model, needs ~12 to go from σ to 10⁻³σ.
const MINOS_MAX_FITS_PER_END: usize = 30;

/// Profile-likelihood interval of parameter `index` at ΔNLL = `delta` (½ for 68.27 %): solves
/// NLL(θ_i, profiled) − NLL_min = delta on each side by Newton steps on the profile, whose
/// value, slope and curvature every conditional fit gives with its Hessian (see
/// [`ProfilePoint`]), with the third derivative estimated from the curvatures of the last two
/// points (the second end starts with the first's); the first step is the quadratic estimate
/// centre ± σ√(2·delta). A step that leaves the bracket known so far (the minimum, or a point
/// below, and the nearest point above) is replaced by doubling outwards or by bisection. An end
/// is the next step's end once that step is below [`MINOS_TOLERANCE`] of the Hessian error, or
/// once the error its model can make there, counting the curvature and the third derivative
/// as uncertain as they are large, is ([`ProfilePoint::step_error`]): one or two conditional
/// fits per end. Each conditional fit starts on the profile's tangent from the last one,
/// θ(v) ≈ θ_last + (dθ/dθ_i)(v − v_last). An end that reaches the bound before crossing is the
/// bound. All conditional fits together spend at most `budget` evaluations.
pub fn profile_interval(
    like: &Likelihood,
    best: &FitResult,
    index: usize,
    delta: f64,
    budget: usize,
) -> ProfileInterval {
    let (lo_bound, hi_bound) = inner_bounds(like.model.parameters[index].bounds);
    let centre = best.theta[index];
    let mut search = ProfileSearch {
        like,
        best,
        index,
        delta,
        sigma: best.error(index).max(1e-3 * (1.0 + centre.abs())),
        budget,
        third: f64::NAN,
        conditional_fits: 0,
        evaluations: EvaluationCounts::default(),
        notes: Vec::new(),
    };
    let low = search.end(-1.0, lo_bound);
    let high = search.end(1.0, hi_bound);
    ProfileInterval {
        parameter: index,
        low,
        high,
        conditional_fits: search.conditional_fits,
        n_eval: search.evaluations.total(),
        evaluations: search.evaluations,
        notes: search.notes,
    }
}

/// The profile of parameter `index` at one conditional minimum, to second order in it: what
/// the root finder steps with and what the next conditional fit starts from.
struct ProfilePoint {
    value: f64,
    /// Profiled NLL − NLL_min − delta, at the minimum of the fit's quadratic model in the
    /// profiled parameters (the fit stops within its EDM of it).
    excess: f64,
    /// First and second derivatives of `excess` along the profile; NaN where the profiled
    /// parameters' Hessian is not positive definite (no model: the root finder bisects).
    slope: f64,
    curvature: f64,
    /// The conditional minimum, and dθ/dθ_index along the profile (1 at `index`, 0 for the
    /// parameters held fixed or at a bound).
    theta: Vec<f64>,
    tangent: Vec<f64>,
}

impl ProfilePoint {
    /// From a fit's last evaluation with parameter `index` held there (the global fit
    /// included: the profile passes through its minimum), `reference` = NLL_min + delta.
    /// With F the profiled parameters, g and H the gradient and Hessian, a = H_FF⁻¹g_F and
    /// b = H_FF⁻¹H_F,index: the profiled minimum lies a step −a away, lower by ½g_F·a; along the
    /// profile θ_F moves by −b per unit of θ_index, and the NLL rises with slope
    /// g_index − H_index,F·a and curvature H_index,index − H_index,F·b (the Schur complement:
    /// 1/σ² at the global minimum).
    fn new(fit: &FitResult, index: usize, reference: f64) -> ProfilePoint {
        let (at, n) = (&fit.evaluation, fit.theta.len());
        let mut point = ProfilePoint {
            value: fit.theta[index],
            excess: fit.nll - reference,
            slope: f64::NAN,
            curvature: f64::NAN,
            theta: fit.theta.clone(),
            tangent: vec![0.0; n],
        };
        point.tangent[index] = 1.0;
        if at.gradient.len() != n || at.hessian.len() != n * n {
            return point;
        }
        let profiled: Vec<usize> = (0..n)
            .filter(|&i| i != index && !fit.fixed[i] && !fit.at_bound[i])
            .collect();
        let m = profiled.len();
        let mut factor: Vec<f64> = profiled
            .iter()
            .flat_map(|&i| profiled.iter().map(move |&j| at.hessian[i * n + j]))
            .collect();
        if !linalg::cholesky_in_place(&mut factor, m) {
            return point;
        }
        let g: Vec<f64> = profiled.iter().map(|&i| at.gradient[i]).collect();
        let coupling: Vec<f64> = profiled
            .iter()
            .map(|&i| at.hessian[i * n + index])
            .collect();
        let mut a = g.clone();
        linalg::cholesky_solve_in_place(&factor, m, &mut a);
        let mut b = coupling.clone();
        linalg::cholesky_solve_in_place(&factor, m, &mut b);
        point.excess -= 0.5 * dot(&g, &a);
        point.slope = at.gradient[index] - dot(&coupling, &a);
        point.curvature = at.hessian[index * n + index] - dot(&coupling, &b);
        for (k, &i) in profiled.iter().enumerate() {
            point.tangent[i] = -b[k];
        }
        point
    }

    /// The crossing of this point's model of the profile nearest to it strictly inside the
    /// bracket (beyond `inside` in `direction`, and short of `outside` where one is known):
    /// the quadratic model's, refined by Newton iterations on the cubic one where the third
    /// derivative `third` is known; or, where there is no quadratic model, the tangent's.
    fn root_in(
        &self,
        inside: f64,
        outside: Option<f64>,
        direction: f64,
        third: f64,
    ) -> Option<f64> {
        let in_bracket = |v: f64| {
            (v - inside) * direction > 0.0 && outside.is_none_or(|o| (o - v) * direction > 0.0)
        };
        let (e, g, c) = (self.excess, self.slope, self.curvature);
        // ½c·s² + g·s + e = 0, both roots without cancellation.
        let discriminant = g * g - 2.0 * c * e;
        let mut steps = Vec::new();
        if discriminant >= 0.0 {
            let q = -0.5 * (g + g.signum() * discriminant.sqrt());
            if q != 0.0 {
                steps.extend([q / (0.5 * c), e / q]);
            }
        }
        let nearest = |steps: &[f64]| {
            steps
                .iter()
                .map(|s| self.value + s)
                .filter(|&v| v.is_finite() && in_bracket(v))
                .min_by(|a, b| (a - self.value).abs().total_cmp(&(b - self.value).abs()))
        };
        let quadratic = nearest(&steps).or_else(|| nearest(&[-e / g]))?;
        let mut s = quadratic - self.value;
        for _ in 0..8 {
            let model = e + s * (g + s * (0.5 * c + s * third / 6.0));
            s -= model / (g + s * (c + 0.5 * s * third));
        }
        let cubic = self.value + s;
        Some(if cubic.is_finite() && in_bracket(cubic) {
            cubic
        } else {
            quadratic
        })
    }

    /// A bound on the error of the model's crossing at `root`: the terms of second and third
    /// order of the step, as if the curvature and the third derivative (0 where not known)
    /// could be off by as much as they are, over the slope there. Where the step is small this
    /// is far below the step itself (quadratic convergence), and the crossing needs no further
    /// conditional fit.
    fn step_error(&self, root: f64, third: f64) -> f64 {
        let s = (root - self.value).abs();
        let third = if third.is_finite() { third.abs() } else { 0.0 };
        let slope = (self.slope + self.curvature * (root - self.value)).abs();
        (0.5 * self.curvature.abs() * s * s + third * s * s * s / 6.0) / slope
    }
}

/// One MINOS interval being searched: the fits so far and what they cost.
struct ProfileSearch<'a> {
    like: &'a Likelihood<'a>,
    best: &'a FitResult,
    index: usize,
    delta: f64,
    sigma: f64,
    budget: usize,
    /// The profile's third derivative, from the curvatures of the last two points (NaN until
    /// two have one).
    third: f64,
    conditional_fits: usize,
    evaluations: EvaluationCounts,
    notes: Vec<String>,
}

impl ProfileSearch<'_> {
    /// The end in `direction` (±1), up to `bound`; None, with a note, where it was not found.
    fn end(&mut self, direction: f64, bound: f64) -> Option<f64> {
        let tolerance = MINOS_TOLERANCE * self.sigma;
        let mut last = ProfilePoint::new(self.best, self.index, self.best.nll + self.delta);
        let centre = last.value;
        // The bracket: a value below the threshold, and the nearest one known above it.
        let mut inside = (centre, last.excess);
        let mut outside: Option<(f64, f64)> = None;
        for _ in 0..MINOS_MAX_FITS_PER_END {
            let candidate = last
                .root_in(inside.0, outside.map(|o| o.0), direction, self.third)
                .unwrap_or_else(|| match outside {
                    Some((o, _)) => 0.5 * (inside.0 + o),
                    None => {
                        let width = (2.0 * (inside.0 - centre).abs())
                            .max(self.sigma * (2.0 * self.delta).sqrt());
                        inside.0 + direction * width
                    }
                });
            let value = if (candidate - bound) * direction > 0.0 {
                bound
            } else {
                candidate
            };
            if value == inside.0 {
                // The bound, and the profile is below the threshold there.
                return Some(value);
            }
            let point = self.fit_at(&last, value, direction)?;
            let third = (point.curvature - last.curvature) / (point.value - last.value);
            if third.is_finite() {
                self.third = third;
            }
            if point.excess == 0.0 {
                return Some(value);
            }
            if point.excess > 0.0 {
                outside = Some((value, point.excess));
            } else if value == bound || (value - centre).abs() > 1e3 * self.sigma {
                return Some(value);
            } else {
                inside = (value, point.excess);
            }
            if let Some(root) = point.root_in(inside.0, outside.map(|o| o.0), direction, self.third)
            {
                if (root - value).abs() <= tolerance
                    || point.step_error(root, self.third) <= tolerance
                {
                    return Some(root);
                }
            }
            if let Some((o, f_outside)) = outside {
                if (o - inside.0).abs() <= tolerance {
                    // Linear interpolation inside a bracket narrower than the tolerance.
                    return Some(inside.0 + (o - inside.0) * -inside.1 / (f_outside - inside.1));
                }
            }
            last = point;
        }
        let name = &self.like.model.parameters[self.index].name;
        self.notes.push(format!(
            "the {} end of {name}'s interval was not found in {MINOS_MAX_FITS_PER_END} \
             conditional fits",
            side_name(direction)
        ));
        None
    }

    /// The profile at θ_index = `value`: a fit with the parameter held there, started on the
    /// profile's tangent from `from` (or at `from` itself where that start has no likelihood).
    /// None, with a note, when it does not converge or the budget is spent.
    fn fit_at(&mut self, from: &ProfilePoint, value: f64, direction: f64) -> Option<ProfilePoint> {
        let on_tangent: Vec<f64> = (from.theta.iter().zip(&from.tangent))
            .map(|(theta, slope)| theta + slope * (value - from.value))
            .collect();
        let mut fit = self.conditional_fit(on_tangent, value);
        if fit
            .as_ref()
            .is_some_and(|f| f.iterations == 0 && !f.nll.is_finite())
        {
            fit = self.conditional_fit(from.theta.clone(), value);
        }
        match fit {
            Some(fit) if fit.converged => Some(ProfilePoint::new(
                &fit,
                self.index,
                self.best.nll + self.delta,
            )),
            _ => {
                let name = &self.like.model.parameters[self.index].name;
                self.notes.push(format!(
                    "the {} end of {name}'s interval was not found: the conditional fit at \
                     {name} = {value} did not converge or the MINOS budget of {} evaluations \
                     was spent",
                    side_name(direction),
                    self.budget
                ));
                None
            }
        }
    }

    /// A fit from `init` with parameter `index` held at `value` and the global fit's fixed
    /// parameters held too, within what is left of the budget (None when nothing is left).
    fn conditional_fit(&mut self, init: Vec<f64>, value: f64) -> Option<FitResult> {
        let left = self.budget.saturating_sub(self.evaluations.total());
        if left == 0 {
            return None;
        }
        let mut options = FitOptions::new(self.like);
        options.init = init;
        options.init[self.index] = value;
        options.fixed.clone_from(&self.best.fixed);
        options.fixed[self.index] = true;
        options.edm_tolerance = MINOS_EDM_TOLERANCE;
        options.final_hessian = false;
        options.reuse_estimated_hessian = true;
        options.max_evaluations = left.min(options.max_evaluations);
        let fit = minimise(self.like, &options);
        self.conditional_fits += 1;
        self.evaluations += fit.evaluations;
        Some(fit)
    }
}

fn side_name(direction: f64) -> &'static str {
    if direction > 0.0 {
        "upper"
    } else {
        "lower"
    }
}
