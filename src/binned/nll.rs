//! The exact negative log-likelihood of a binned model, −ln L = −model.logpdf(pars, data) of
//! pyhf with every constant kept:
//!
//! ```text
//! NLL = Σ_bins [λ_b − n_b ln λ_b + ln Γ(n_b + 1)]
//!     + Σ_Gaussian [½ ((a − θ)/σ)² + ln σ + ½ ln 2π]
//!     + Σ_Poisson  [γτ − a ln(γτ) + ln Γ(a + 1)]
//! ```
//!
//! with λ_b = Σ_samples f_c(θ) · Π factors · (nominal + Σ histosys shifts) (f_c = 1 for a
//! sample without coefficient, the only kind pyhf has), and its analytic gradient and
//! Hessian. Each sample-bin depends on a handful of parameters, so its derivatives are
//! computed on those few and added into the full gradient and Hessian.
//!
//! [`BinnedModel::evaluate_into`] is what loops call (fits, toys): it reuses the caller's
//! output and a per-thread work space, so that after the first call nothing is allocated; the
//! bin-independent factors (normfactor, lumi, normsys) are evaluated once per channel, and a
//! bin's gradient dλ/dθ is gathered in a dense per-parameter array (no search per entry).

use std::cell::Cell;

use crate::error::{Error, Result};
pub use crate::likelihood::Order;

use super::interpolation::Interpolated;
use super::model::{BinnedChannel, BinnedData, BinnedModel, BinnedSample, Constraint, Factor};

/// ½ ln 2π.
const HALF_LN_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// Value, gradient and (row-major, n × n) Hessian of the NLL in all parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NllDerivatives {
    pub value: f64,
    pub gradient: Vec<f64>,
    pub hessian: Vec<f64>,
}

thread_local! {
    /// Each thread's work space of [`BinnedModel::evaluate_into`], kept between calls so
    /// that a fit's or a toy's evaluations allocate nothing after the first.
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

impl BinnedModel {
    /// Expected counts per bin of each channel at `pars`.
    pub fn expected_counts(&self, pars: &[f64]) -> Vec<Vec<f64>> {
        let mut counts = Vec::new();
        self.fill_expected_counts(pars, &mut counts);
        counts
    }

    /// [`BinnedModel::expected_counts`] into `out`, reusing its vectors (resized to the
    /// model's channels and bins where they differ).
    pub fn expected_counts_into(&self, pars: &[f64], out: &mut Vec<Vec<f64>>) -> Result<()> {
        self.check_parameters(pars)?;
        self.fill_expected_counts(pars, out);
        Ok(())
    }

    fn fill_expected_counts(&self, pars: &[f64], out: &mut Vec<Vec<f64>>) {
        out.resize_with(self.channels.len(), Vec::new);
        for (channel, lambda) in self.channels.iter().zip(out.iter_mut()) {
            lambda.clear();
            lambda.resize(channel.n_bins, 0.0);
            for sample in &channel.samples {
                let scale = sample_scale(sample, pars);
                for (b, l) in lambda.iter_mut().enumerate() {
                    *l += sample_yield(sample, pars, scale, b, self);
                }
            }
        }
    }

    /// The expected global observables at `pars` (the Asimov auxdata): θ for Gaussians, γτ
    /// for Poissons.
    pub fn expected_auxdata(&self, pars: &[f64]) -> Vec<f64> {
        self.constraints
            .iter()
            .map(|c| match *c {
                Constraint::Gaussian { parameter, .. } => pars[parameter],
                Constraint::Poisson { parameter, factor } => pars[parameter] * factor,
            })
            .collect()
    }

    pub fn nll(&self, pars: &[f64], data: &BinnedData) -> Result<f64> {
        let mut out = NllDerivatives::default();
        self.evaluate_into(pars, data, Order::Value, &mut out)?;
        Ok(out.value)
    }

    pub fn nll_gradient(&self, pars: &[f64], data: &BinnedData) -> Result<(f64, Vec<f64>)> {
        let mut out = NllDerivatives::default();
        self.evaluate_into(pars, data, Order::Gradient, &mut out)?;
        Ok((out.value, out.gradient))
    }

    pub fn nll_hessian(&self, pars: &[f64], data: &BinnedData) -> Result<NllDerivatives> {
        let mut out = NllDerivatives::default();
        self.evaluate_into(pars, data, Order::Hessian, &mut out)?;
        Ok(out)
    }

    /// The NLL and, by `order`, its gradient and Hessian at `pars` into `out`, reusing its
    /// vectors: once `out` and this thread have been through one evaluation of this model,
    /// the next allocates nothing. The gradient is empty below `Order::Gradient`, the
    /// Hessian below `Order::Hessian`.
    pub fn evaluate_into(
        &self,
        pars: &[f64],
        data: &BinnedData,
        order: Order,
        out: &mut NllDerivatives,
    ) -> Result<()> {
        self.check_parameters(pars)?;
        self.check_data(data)?;
        let n = pars.len();
        out.value = 0.0;
        order.zero_derivatives(n, &mut out.gradient, &mut out.hessian);
        let mut scratch = SCRATCH.take();
        scratch.size(n);
        let mut result = Ok(());
        for (channel, counts) in self.channels.iter().zip(&data.counts) {
            result = self.add_channel(channel, counts, pars, order, &mut scratch, out);
            if result.is_err() {
                break;
            }
        }
        SCRATCH.set(scratch);
        result?;
        self.add_constraints(pars, &data.auxdata, order, out)?;
        if order == Order::Hessian {
            symmetrise(&mut out.hessian, n);
        }
        Ok(())
    }

    fn check_parameters(&self, pars: &[f64]) -> Result<()> {
        let n = self.parameters.len();
        if pars.len() != n {
            return Err(Error::Analysis(format!(
                "binned model: {} parameter values given, the model has {n}",
                pars.len()
            )));
        }
        Ok(())
    }

    /// One count per bin of each channel and one global observable per constraint.
    fn check_data(&self, data: &BinnedData) -> Result<()> {
        let shape_ok = data.counts.len() == self.channels.len()
            && self
                .channels
                .iter()
                .zip(&data.counts)
                .all(|(c, counts)| counts.len() == c.n_bins);
        if !shape_ok || data.auxdata.len() != self.constraints.len() {
            return Err(Error::Analysis(format!(
                "binned model: the data have {} channels of {:?} bins and {} global observables, the model {} channels of {:?} bins and {} constraints",
                data.counts.len(),
                data.counts.iter().map(Vec::len).collect::<Vec<_>>(),
                data.auxdata.len(),
                self.channels.len(),
                self.channels.iter().map(|c| c.n_bins).collect::<Vec<_>>(),
                self.constraints.len()
            )));
        }
        Ok(())
    }

    /// The Poisson terms of one channel's bins and their derivatives, added into `out`.
    fn add_channel(
        &self,
        channel: &BinnedChannel,
        counts: &[f64],
        pars: &[f64],
        order: Order,
        scratch: &mut Scratch,
        out: &mut NllDerivatives,
    ) -> Result<()> {
        let n = pars.len();
        scratch.prepare_channel(channel, pars);
        for (b, &observed) in counts.iter().enumerate() {
            let lambda: f64 = channel
                .samples
                .iter()
                .zip(&scratch.scales)
                .map(|(s, &scale)| sample_yield(s, pars, scale, b, self))
                .sum();
            if lambda < 0.0 || (lambda == 0.0 && observed > 0.0) || lambda.is_nan() {
                return Err(Error::Analysis(format!(
                    "binned channel '{}' bin {b}: expected count {lambda} with {observed} observed; the likelihood is undefined there",
                    channel.name
                )));
            }
            out.value += lambda - xlogy(observed, lambda) + libm::lgamma(observed + 1.0);
            if order == Order::Value {
                continue;
            }
            // d NLL / dλ = 1 − n/λ, d² NLL / dλ² = n/λ².
            let w1 = if observed == 0.0 {
                1.0
            } else {
                1.0 - observed / lambda
            };
            let w2 = if observed == 0.0 {
                0.0
            } else {
                observed / (lambda * lambda)
            };
            for (s, sample) in channel.samples.iter().enumerate() {
                scratch.sample_bin(sample, s, pars, b, self, order);
                let k_n = scratch.local.len();
                for (k, &q) in scratch.local.iter().enumerate() {
                    let dy = scratch.grad[k];
                    out.gradient[q] += w1 * dy;
                    if !scratch.in_bin[q] {
                        scratch.in_bin[q] = true;
                        scratch.bin_parameters.push(q);
                    }
                    scratch.bin_gradient[q] += dy;
                    if order == Order::Hessian {
                        let row = &mut out.hessian[q * n..(q + 1) * n];
                        for (&r, &h) in scratch.local.iter().zip(&scratch.hess[k * k_n..]) {
                            row[r] += w1 * h;
                        }
                    }
                }
            }
            if order == Order::Hessian && w2 != 0.0 {
                for &q in &scratch.bin_parameters {
                    let gq = w2 * scratch.bin_gradient[q];
                    let row = &mut out.hessian[q * n..(q + 1) * n];
                    for &r in &scratch.bin_parameters {
                        row[r] += gq * scratch.bin_gradient[r];
                    }
                }
            }
            scratch.clear_bin();
        }
        Ok(())
    }

    fn add_constraints(
        &self,
        pars: &[f64],
        auxdata: &[f64],
        order: Order,
        out: &mut NllDerivatives,
    ) -> Result<()> {
        let n = self.parameters.len();
        for (constraint, &aux) in self.constraints.iter().zip(auxdata) {
            let p = constraint.parameter();
            let theta = pars[p];
            let (value, d1, d2) = match *constraint {
                Constraint::Gaussian { sigma, .. } => {
                    let z = (aux - theta) / sigma;
                    (
                        0.5 * z * z + sigma.ln() + HALF_LN_TWO_PI,
                        (theta - aux) / (sigma * sigma),
                        1.0 / (sigma * sigma),
                    )
                }
                Constraint::Poisson { factor, .. } => {
                    let rate = theta * factor;
                    if rate < 0.0 || (rate == 0.0 && aux > 0.0) || rate.is_nan() {
                        return Err(Error::Analysis(format!(
                            "binned model: parameter '{}' = {theta} gives its Poisson constraint a rate {rate} ≤ 0",
                            self.parameters[p].name
                        )));
                    }
                    let value = rate - xlogy(aux, rate) + libm::lgamma(aux + 1.0);
                    let d1 = if aux == 0.0 {
                        factor
                    } else {
                        factor - aux / theta
                    };
                    let d2 = if aux == 0.0 {
                        0.0
                    } else {
                        aux / (theta * theta)
                    };
                    (value, d1, d2)
                }
            };
            out.value += value;
            if order >= Order::Gradient {
                out.gradient[p] += d1;
            }
            if order == Order::Hessian {
                out.hessian[p * n + p] += d2;
            }
        }
        Ok(())
    }
}

/// (H + Hᵀ)/2: the two triangles are summed in different orders, so they differ in the last
/// bits; Newton and the covariance want an exactly symmetric matrix.
fn symmetrise(hessian: &mut [f64], n: usize) {
    for i in 0..n {
        for j in 0..i {
            let mean = 0.5 * (hessian[i * n + j] + hessian[j * n + i]);
            hessian[i * n + j] = mean;
            hessian[j * n + i] = mean;
        }
    }
}

/// x ln y with 0 ln 0 = 0 (scipy's `xlogy`, which pyhf uses).
fn xlogy(x: f64, y: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x * y.ln()
    }
}

/// The product of a sample's bin-independent factors (its coefficient f_c, normfactor, lumi,
/// normsys).
fn sample_scale(sample: &BinnedSample, pars: &[f64]) -> f64 {
    let mut value = sample
        .coefficient
        .as_ref()
        .map_or(1.0, |c| c.expr.eval(pars));
    for factor in &sample.factors {
        match factor {
            Factor::Linear { parameter } => value *= pars[*parameter],
            Factor::Interpolated {
                parameter,
                variation,
            } => value *= variation.eval(pars[*parameter]).value,
            Factor::PerBin { .. } => {}
        }
    }
    value
}

/// A sample's expected yield in bin `b`, given the product of its bin-independent factors.
fn sample_yield(
    sample: &BinnedSample,
    pars: &[f64],
    scale: f64,
    b: usize,
    model: &BinnedModel,
) -> f64 {
    let mut factor = scale;
    for f in &sample.factors {
        if let Factor::PerBin { parameters } = f {
            factor *= pars[parameters[b]];
        }
    }
    let mut total = sample.nominal[b];
    for shift in &sample.shifts {
        let code = model.interpolation.histosys;
        total += code
            .shift(
                pars[shift.parameter],
                shift.delta_up[b],
                shift.delta_down[b],
            )
            .value;
    }
    factor * total
}

/// Work space of the derivatives, reused across bins, channels and calls.
#[derive(Default)]
struct Scratch {
    /// Per sample of the channel: the product of its bin-independent factors.
    scales: Vec<f64>,
    /// Per factor of the channel's samples (sample by sample, `factor_start[s]` on): the
    /// bin-independent factors' values and derivatives, evaluated once per channel.
    factor_values: Vec<Interpolated>,
    factor_start: Vec<usize>,
    /// The parameters one sample-bin depends on (distinct).
    local: Vec<usize>,
    /// dy/dθ and d²y/dθ² over `local` (row-major).
    grad: Vec<f64>,
    hess: Vec<f64>,
    /// Factors (local index, value, d1, d2) and shifts likewise.
    factors: Vec<(usize, Interpolated)>,
    shifts: Vec<(usize, Interpolated)>,
    /// ∂F/∂θ, ∂A/∂θ and ∂²A/∂θ² over `local`.
    df: Vec<f64>,
    da: Vec<f64>,
    dda: Vec<f64>,
    /// Products of the factors before (`prefix[j] = Π_{i<j} f_i`) and from
    /// (`suffix[j] = Π_{i≥j} f_i`) factor j.
    prefix: Vec<f64>,
    suffix: Vec<f64>,
    /// Per sample of the channel: f_c (1 without coefficient), and its non-zero first and
    /// second derivatives `(parameter, value)` / `(parameter, parameter, value)`, those of
    /// sample s from `coefficient_grad_start[s]` / `coefficient_hess_start[s]` (one past
    /// the last sample closes the list).
    coefficient_values: Vec<f64>,
    coefficient_grad: Vec<(usize, f64)>,
    coefficient_grad_start: Vec<usize>,
    coefficient_hess: Vec<(usize, usize, f64)>,
    coefficient_hess_start: Vec<usize>,
    /// The sample-bin's yield without its coefficient, Y = F · A, and ∂f_c/∂θ over `local`.
    histfactory_yield: f64,
    dc: Vec<f64>,
    /// dλ/dθ of the whole bin, summed over samples (dense over all parameters, zero outside
    /// `bin_parameters`), and which parameters it has.
    bin_gradient: Vec<f64>,
    in_bin: Vec<bool>,
    bin_parameters: Vec<usize>,
}

impl Scratch {
    /// Sizes the dense per-parameter arrays for `n` parameters (all zero / false).
    fn size(&mut self, n: usize) {
        if self.bin_gradient.len() != n {
            self.bin_gradient.clear();
            self.bin_gradient.resize(n, 0.0);
            self.in_bin.clear();
            self.in_bin.resize(n, false);
        }
        self.bin_parameters.clear();
    }

    /// Resets the bin's gradient on the parameters it touched.
    fn clear_bin(&mut self) {
        for &q in &self.bin_parameters {
            self.bin_gradient[q] = 0.0;
            self.in_bin[q] = false;
        }
        self.bin_parameters.clear();
    }

    /// Evaluates the bin-independent factors and coefficients of the channel's samples once.
    fn prepare_channel(&mut self, channel: &BinnedChannel, pars: &[f64]) {
        self.scales.clear();
        self.factor_values.clear();
        self.factor_start.clear();
        self.prepare_coefficients(channel, pars);
        for sample in &channel.samples {
            self.scales.push(sample_scale(sample, pars));
            self.factor_start.push(self.factor_values.len());
            for factor in &sample.factors {
                self.factor_values.push(match factor {
                    Factor::Linear { parameter } => linear(pars[*parameter]),
                    Factor::Interpolated {
                        parameter,
                        variation,
                    } => variation.eval(pars[*parameter]),
                    // Per bin: filled in `sample_bin`.
                    Factor::PerBin { .. } => linear(0.0),
                });
            }
        }
    }

    /// f_c and its derivatives of every sample of the channel (they do not depend on the bin).
    fn prepare_coefficients(&mut self, channel: &BinnedChannel, pars: &[f64]) {
        self.coefficient_values.clear();
        self.coefficient_grad.clear();
        self.coefficient_grad_start.clear();
        self.coefficient_hess.clear();
        self.coefficient_hess_start.clear();
        for sample in &channel.samples {
            self.coefficient_grad_start
                .push(self.coefficient_grad.len());
            self.coefficient_hess_start
                .push(self.coefficient_hess.len());
            let Some(c) = &sample.coefficient else {
                self.coefficient_values.push(1.0);
                continue;
            };
            self.coefficient_values.push(c.expr.eval(pars));
            self.coefficient_grad
                .extend(c.gradient.iter().map(|(j, d)| (*j, d.eval(pars))));
            self.coefficient_hess
                .extend(c.hessian.iter().map(|(j, l, d)| (*j, *l, d.eval(pars))));
        }
        self.coefficient_grad_start
            .push(self.coefficient_grad.len());
        self.coefficient_hess_start
            .push(self.coefficient_hess.len());
    }

    fn slot(&mut self, parameter: usize) -> usize {
        match self.local.iter().position(|&p| p == parameter) {
            Some(k) => k,
            None => {
                self.local.push(parameter);
                self.local.len() - 1
            }
        }
    }

    /// Fills `local`, `grad` (and `hess`) with the derivatives of the sample's yield
    /// y = f_c · Y in bin `b`: those of Y = F · A ([`Scratch::histfactory_bin`]), then
    /// f_c's product rule ([`Scratch::apply_coefficient`]).
    fn sample_bin(
        &mut self,
        sample: &BinnedSample,
        s: usize,
        pars: &[f64],
        b: usize,
        model: &BinnedModel,
        order: Order,
    ) {
        self.histfactory_bin(sample, s, pars, b, model, order);
        if sample.coefficient.is_some() {
            self.apply_coefficient(s, order);
        }
    }

    /// From the derivatives of Y over `local` (which includes f_c's parameters) to those of
    /// y = f_c · Y:
    ///   ∂y/∂q    = f_c ∂Y/∂q + Y ∂f_c/∂q
    ///   ∂²y/∂q∂r = f_c ∂²Y/∂q∂r + ∂f_c/∂q ∂Y/∂r + ∂f_c/∂r ∂Y/∂q + Y ∂²f_c/∂q∂r.
    fn apply_coefficient(&mut self, s: usize, order: Order) {
        let k_n = self.local.len();
        let c = self.coefficient_values[s];
        let y = self.histfactory_yield;
        let local_of = |local: &[usize], p: usize| {
            local
                .iter()
                .position(|&q| q == p)
                .expect("the coefficient's parameters have slots")
        };
        self.dc.clear();
        self.dc.resize(k_n, 0.0);
        let grads = self.coefficient_grad_start[s]..self.coefficient_grad_start[s + 1];
        for &(p, d) in &self.coefficient_grad[grads] {
            self.dc[local_of(&self.local, p)] = d;
        }
        if order == Order::Hessian {
            let (dc, grad) = (&self.dc, &self.grad);
            for (q, row) in self.hess.chunks_exact_mut(k_n).enumerate() {
                for (r, h) in row.iter_mut().enumerate() {
                    *h = c * *h + dc[q] * grad[r] + dc[r] * grad[q];
                }
            }
            let hessians = self.coefficient_hess_start[s]..self.coefficient_hess_start[s + 1];
            for &(p, l, d) in &self.coefficient_hess[hessians] {
                let (kp, kl) = (local_of(&self.local, p), local_of(&self.local, l));
                self.hess[kp * k_n + kl] += y * d;
            }
        }
        for (g, &d) in self.grad.iter_mut().zip(&self.dc) {
            *g = c * *g + y * d;
        }
    }

    /// Fills `local`, `grad` (and `hess`) with the derivatives of Y = F · A, F the product of
    /// the factors f_j and A = nominal + Σ Δ_h:
    ///   ∂y/∂q    = A ∂F/∂q + F ∂A/∂q
    ///   ∂²y/∂q∂r = A ∂²F/∂q∂r + ∂F/∂q ∂A/∂r + ∂F/∂r ∂A/∂q + F ∂²A/∂q∂r,
    /// with ∂F/∂θ_j = f_j′ Π_{i≠j} f_i from prefix and suffix products (no division: a
    /// factor may be 0). `s` is the sample's index in its channel; its coefficient's
    /// parameters get slots too (Y's derivatives in them are 0 unless a modifier shares one).
    fn histfactory_bin(
        &mut self,
        sample: &BinnedSample,
        s: usize,
        pars: &[f64],
        b: usize,
        model: &BinnedModel,
        order: Order,
    ) {
        self.local.clear();
        self.factors.clear();
        self.shifts.clear();
        let first = self.factor_start[s];
        for (j, factor) in sample.factors.iter().enumerate() {
            let (parameter, value) = match factor {
                Factor::Linear { parameter } | Factor::Interpolated { parameter, .. } => {
                    (*parameter, self.factor_values[first + j])
                }
                Factor::PerBin { parameters } => (parameters[b], linear(pars[parameters[b]])),
            };
            let k = self.slot(parameter);
            self.factors.push((k, value));
        }
        let mut additive = sample.nominal[b];
        for shift in &sample.shifts {
            let value = model.interpolation.histosys.shift(
                pars[shift.parameter],
                shift.delta_up[b],
                shift.delta_down[b],
            );
            additive += value.value;
            let k = self.slot(shift.parameter);
            self.shifts.push((k, value));
        }
        for g in self.coefficient_grad_start[s]..self.coefficient_grad_start[s + 1] {
            self.slot(self.coefficient_grad[g].0);
        }
        let k_n = self.local.len();
        let m = self.factors.len();
        self.prefix.clear();
        self.prefix.push(1.0);
        for j in 0..m {
            let next = self.prefix[j] * self.factors[j].1.value;
            self.prefix.push(next);
        }
        self.suffix.clear();
        self.suffix.resize(m + 1, 1.0);
        for j in (0..m).rev() {
            self.suffix[j] = self.suffix[j + 1] * self.factors[j].1.value;
        }
        let f_value = self.prefix[m];
        self.histfactory_yield = f_value * additive;
        for v in [&mut self.df, &mut self.da, &mut self.dda] {
            v.clear();
            v.resize(k_n, 0.0);
        }
        for (j, &(k, fj)) in self.factors.iter().enumerate() {
            self.df[k] += fj.d1 * self.prefix[j] * self.suffix[j + 1];
        }
        for &(k, shift) in &self.shifts {
            self.da[k] += shift.d1;
            self.dda[k] += shift.d2;
        }
        self.grad.clear();
        for k in 0..k_n {
            self.grad.push(additive * self.df[k] + f_value * self.da[k]);
        }
        if order < Order::Hessian {
            return;
        }
        self.hess.clear();
        self.hess.resize(k_n * k_n, 0.0);
        for j in 0..m {
            let (kj, fj) = self.factors[j];
            let others = self.prefix[j] * self.suffix[j + 1];
            self.hess[kj * k_n + kj] += additive * fj.d2 * others;
            // ∂²F/∂θ_j∂θ_i = f_j′ f_i′ Π_{l≠i,j} f_l, for i > j and its mirror.
            let mut between = 1.0;
            for i in j + 1..m {
                let (ki, fi) = self.factors[i];
                let d2f = fj.d1 * fi.d1 * self.prefix[j] * between * self.suffix[i + 1];
                self.hess[kj * k_n + ki] += additive * d2f;
                self.hess[ki * k_n + kj] += additive * d2f;
                between *= fi.value;
            }
        }
        if self.shifts.is_empty() {
            return;
        }
        let (df, da) = (&self.df, &self.da);
        for (q, row) in self.hess.chunks_exact_mut(k_n).enumerate() {
            let (dfq, daq) = (df[q], da[q]);
            for ((h, &dfr), &dar) in row.iter_mut().zip(df).zip(da) {
                *h += dfq * dar + dfr * daq;
            }
            row[q] += f_value * self.dda[q];
        }
    }
}

fn linear(x: f64) -> Interpolated {
    Interpolated {
        value: x,
        d1: 1.0,
        d2: 0.0,
    }
}
