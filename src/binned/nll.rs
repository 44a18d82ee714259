//! The exact negative log-likelihood of a binned model, −ln L = −model.logpdf(pars, data) of
//! pyhf with every constant kept:
//!
//! ```text
//! NLL = Σ_bins [λ_b − n_b ln λ_b + ln Γ(n_b + 1)]
//!     + Σ_Gaussian [½ ((a − θ)/σ)² + ln σ + ½ ln 2π]
//!     + Σ_Poisson  [γτ − a ln(γτ) + ln Γ(a + 1)]
//! ```
//!
//! with λ_b = Σ_samples Π factors · (nominal + Σ histosys shifts), and its analytic gradient
//! and Hessian. Each sample-bin depends on a handful of parameters, so its derivatives are
//! computed on those few and added into the full gradient and Hessian.

use crate::error::{Error, Result};

use super::interpolation::Interpolated;
use super::model::{BinnedData, BinnedModel, BinnedSample, Constraint, Factor};

/// ½ ln 2π.
const HALF_LN_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// Value, gradient and (row-major, n × n) Hessian of the NLL in all parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct NllDerivatives {
    pub value: f64,
    pub gradient: Vec<f64>,
    pub hessian: Vec<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Order {
    Value,
    Gradient,
    Hessian,
}

impl BinnedModel {
    /// Expected counts per bin of each channel at `pars`.
    pub fn expected_counts(&self, pars: &[f64]) -> Vec<Vec<f64>> {
        self.channels
            .iter()
            .map(|channel| {
                let mut lambda = vec![0.0; channel.n_bins];
                for sample in &channel.samples {
                    let scale = sample_scale(sample, pars);
                    for (b, l) in lambda.iter_mut().enumerate() {
                        *l += sample_yield(sample, pars, scale, b, self);
                    }
                }
                lambda
            })
            .collect()
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
        Ok(self.evaluate(pars, data, Order::Value)?.value)
    }

    pub fn nll_gradient(&self, pars: &[f64], data: &BinnedData) -> Result<(f64, Vec<f64>)> {
        let d = self.evaluate(pars, data, Order::Gradient)?;
        Ok((d.value, d.gradient))
    }

    pub fn nll_hessian(&self, pars: &[f64], data: &BinnedData) -> Result<NllDerivatives> {
        self.evaluate(pars, data, Order::Hessian)
    }

    fn evaluate(&self, pars: &[f64], data: &BinnedData, order: Order) -> Result<NllDerivatives> {
        let n = self.parameters.len();
        if pars.len() != n {
            return Err(Error::Analysis(format!(
                "binned model: {} parameter values given, the model has {n}",
                pars.len()
            )));
        }
        let mut out = NllDerivatives {
            value: 0.0,
            gradient: vec![0.0; if order >= Order::Gradient { n } else { 0 }],
            hessian: vec![0.0; if order >= Order::Hessian { n * n } else { 0 }],
        };
        let mut scratch = Scratch::default();
        for (channel, counts) in self.channels.iter().zip(&data.counts) {
            let scales: Vec<f64> = channel
                .samples
                .iter()
                .map(|s| sample_scale(s, pars))
                .collect();
            for (b, &observed) in counts.iter().enumerate() {
                let lambda: f64 = channel
                    .samples
                    .iter()
                    .zip(&scales)
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
                scratch.bin_gradient.clear();
                for sample in &channel.samples {
                    scratch.sample_bin(sample, pars, b, self, order);
                    for (k, &q) in scratch.local.iter().enumerate() {
                        out.gradient[q] += w1 * scratch.grad[k];
                        match scratch.bin_gradient.iter_mut().find(|(p, _)| *p == q) {
                            Some((_, g)) => *g += scratch.grad[k],
                            None => scratch.bin_gradient.push((q, scratch.grad[k])),
                        }
                        if order == Order::Hessian {
                            let k_n = scratch.local.len();
                            for (l, &r) in scratch.local.iter().enumerate() {
                                out.hessian[q * n + r] += w1 * scratch.hess[k * k_n + l];
                            }
                        }
                    }
                }
                if order == Order::Hessian && w2 != 0.0 {
                    for &(q, gq) in &scratch.bin_gradient {
                        for &(r, gr) in &scratch.bin_gradient {
                            out.hessian[q * n + r] += w2 * gq * gr;
                        }
                    }
                }
            }
        }
        self.add_constraints(pars, &data.auxdata, order, &mut out)?;
        if order == Order::Hessian {
            symmetrise(&mut out.hessian, n);
        }
        Ok(out)
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

/// The product of a sample's bin-independent factors (normfactor, lumi, normsys).
fn sample_scale(sample: &BinnedSample, pars: &[f64]) -> f64 {
    let mut value = 1.0;
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

/// Work space of one sample-bin's derivatives, reused across bins.
#[derive(Default)]
struct Scratch {
    /// The parameters this sample-bin depends on (distinct).
    local: Vec<usize>,
    /// dy/dθ and d²y/dθ² over `local` (row-major).
    grad: Vec<f64>,
    hess: Vec<f64>,
    /// Factors (local index, value, d1, d2) and shifts likewise.
    factors: Vec<(usize, Interpolated)>,
    shifts: Vec<(usize, Interpolated)>,
    /// dλ/dθ of the whole bin, summed over samples.
    bin_gradient: Vec<(usize, f64)>,
}

impl Scratch {
    fn slot(&mut self, parameter: usize) -> usize {
        match self.local.iter().position(|&p| p == parameter) {
            Some(k) => k,
            None => {
                self.local.push(parameter);
                self.local.len() - 1
            }
        }
    }

    /// Fills `local`, `grad` (and `hess`) with the derivatives of y = F · A, F the product of
    /// the factors f_j and A = nominal + Σ Δ_h:
    ///   ∂y/∂q    = A ∂F/∂q + F ∂A/∂q
    ///   ∂²y/∂q∂r = A ∂²F/∂q∂r + ∂F/∂q ∂A/∂r + ∂F/∂r ∂A/∂q + F ∂²A/∂q∂r,
    /// with ∂F/∂θ_j = f_j′ Π_{i≠j} f_i (products without division: a factor may be 0).
    fn sample_bin(
        &mut self,
        sample: &BinnedSample,
        pars: &[f64],
        b: usize,
        model: &BinnedModel,
        order: Order,
    ) {
        self.local.clear();
        self.factors.clear();
        self.shifts.clear();
        for factor in &sample.factors {
            let (parameter, value) = match factor {
                Factor::Linear { parameter } => (*parameter, linear(pars[*parameter])),
                Factor::Interpolated {
                    parameter,
                    variation,
                } => (*parameter, variation.eval(pars[*parameter])),
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
        let k_n = self.local.len();
        let m = self.factors.len();
        // Π_{i ∉ skip} f_i
        let product_without = |skip: &[usize], factors: &[(usize, Interpolated)]| -> f64 {
            (0..m)
                .filter(|i| !skip.contains(i))
                .map(|i| factors[i].1.value)
                .product()
        };
        let f_value = product_without(&[], &self.factors);
        let mut df = vec![0.0; k_n];
        for j in 0..m {
            let (k, fj) = self.factors[j];
            df[k] += fj.d1 * product_without(&[j], &self.factors);
        }
        let mut da = vec![0.0; k_n];
        let mut dda = vec![0.0; k_n];
        for &(k, shift) in &self.shifts {
            da[k] += shift.d1;
            dda[k] += shift.d2;
        }
        self.grad.clear();
        self.grad
            .extend((0..k_n).map(|k| additive * df[k] + f_value * da[k]));
        if order < Order::Hessian {
            return;
        }
        self.hess.clear();
        self.hess.resize(k_n * k_n, 0.0);
        for j in 0..m {
            let (kj, fj) = self.factors[j];
            for i in 0..m {
                let (ki, fi) = self.factors[i];
                let d2f = if i == j {
                    fj.d2 * product_without(&[j], &self.factors)
                } else {
                    fj.d1 * fi.d1 * product_without(&[i, j], &self.factors)
                };
                self.hess[kj * k_n + ki] += additive * d2f;
            }
        }
        for q in 0..k_n {
            for r in 0..k_n {
                self.hess[q * k_n + r] += df[q] * da[r] + df[r] * da[q];
            }
            self.hess[q * k_n + q] += f_value * dda[q];
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
