//! Workspace → statistical model: parameters, process coefficients f_c(θ), yield and shape
//! systematics with their interpolation codes, constraints (DESIGN.md §2). The model knows
//! nothing about events; `likelihood` combines it with per-event ratios.

pub mod interpolation;

use crate::binned::combine;
use crate::channel::spec::KindsOfWorkspace;
use crate::channel::unbinned::UnbinnedChannels;
use crate::channel::ChannelKind;
use crate::error::{Error, Result};
use crate::workspace::expr::Expr;
use crate::workspace::schema::{ConstraintKind, ParameterSpec};
use crate::workspace::{default_init, Direction, Workspace};
use interpolation::{Interpolated, InterpolationCode, Variation};

/// Boundary α₀ of code4's polynomial region.
pub const CODE4_ALPHA0: f64 = 1.0;

#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub poi: bool,
    pub init: f64,
    pub bounds: (f64, f64),
    /// Gaussian-constrained nuisance parameter (unit width around its global observable).
    pub constrained: bool,
    pub fixed: bool,
}

/// f_c(θ) with its symbolic first and second derivatives (only the non-zero ones).
#[derive(Clone, Debug, PartialEq)]
pub struct Coefficient {
    pub text: String,
    pub expr: Expr,
    pub gradient: Vec<(usize, Expr)>,
    pub hessian: Vec<(usize, usize, Expr)>,
}

impl Coefficient {
    pub fn new(text: &str, expr: Expr) -> Coefficient {
        let params = expr.parameters();
        let gradient: Vec<(usize, Expr)> =
            params.iter().map(|&j| (j, expr.derivative(j))).collect();
        let mut hessian = Vec::new();
        for (j, dj) in &gradient {
            for &l in &params {
                let d = dj.derivative(l);
                if d != Expr::Const(0.0) {
                    hessian.push((*j, l, d));
                }
            }
        }
        Coefficient {
            text: text.to_string(),
            expr,
            gradient,
            hessian,
        }
    }

    /// What is not finite at `theta` — the value, a first or a second derivative — in words
    /// (parameters named by `name`), or `None` where all are finite.
    pub fn undefined_at<'n>(
        &self,
        theta: &[f64],
        name: impl Fn(usize) -> &'n str,
    ) -> Option<String> {
        let value = self.expr.eval(theta);
        if !value.is_finite() {
            return Some(format!("is {value}"));
        }
        if let Some((j, d)) = self
            .gradient
            .iter()
            .map(|(j, d)| (*j, d.eval(theta)))
            .find(|(_, d)| !d.is_finite())
        {
            return Some(format!("has derivative {d} with respect to {}", name(j)));
        }
        self.hessian
            .iter()
            .map(|(j, l, d)| (*j, *l, d.eval(theta)))
            .find(|(_, _, d)| !d.is_finite())
            .map(|(j, l, d)| {
                format!(
                    "has second derivative {d} with respect to {} and {}",
                    name(j),
                    name(l)
                )
            })
    }
}

/// A yield systematic: G(α) multiplying ν_c.
#[derive(Clone, Debug)]
pub struct YieldSystematic {
    pub parameter: usize,
    pub variation: Variation,
}

/// A per-event shape systematic: g(x|α) interpolating the ensembles' ratios r±(x).
#[derive(Clone, Debug)]
pub struct ShapeSystematic {
    pub parameter: usize,
    pub code: InterpolationCode,
    /// Ensemble labels of the +1σ and −1σ shape ratios.
    pub up: String,
    pub down: String,
}

#[derive(Clone, Debug)]
pub struct Process {
    pub name: String,
    pub coefficient: Coefficient,
    /// ν_c⁰ from the workspace, or `None` for the sum of the MC weights.
    pub nominal_yield: Option<f64>,
    /// Ensemble label of r_c(x).
    pub ratio: String,
    pub yield_systematics: Vec<YieldSystematic>,
    pub shape_systematics: Vec<ShapeSystematic>,
}

#[derive(Clone, Debug)]
pub struct Channel {
    pub name: String,
    pub processes: Vec<Process>,
}

/// The statistical model of a workspace: one parameter vector shared by every channel, the
/// unbinned channels (`channels`, a channel kind), the channels of other kinds (`kinds`: the
/// binned ones), and one constraint term per constrained parameter however many channels use
/// it.
#[derive(Clone, Debug)]
pub struct Model {
    pub parameters: Vec<Parameter>,
    /// The unbinned channels: the first of [`Model::all_kinds`].
    pub channels: UnbinnedChannels,
    /// The other channel kinds ([`crate::channel`]), each with all its channels; the
    /// likelihood's `observed` holds their data in this order.
    pub kinds: Vec<Box<dyn ChannelKind>>,
    /// Sorted by parameter.
    pub constraints: Vec<ConstraintTerm>,
}

/// A constraint term p(a | θ_k) of one parameter, with its global observable `auxdata`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConstraintTerm {
    pub parameter: usize,
    pub pdf: ConstraintPdf,
    /// The nominal global observable a (randomised in toys).
    pub auxdata: f64,
    /// Whether the NLL keeps the pdf's normalisation (ln σ + ½ ln 2π, ln Γ(a + 1)), as pyhf
    /// does for HistFactory constraints, so that a binned workspace's NLL is pyhf's
    /// −logpdf; nsbi's own `gaussian` constraints are ½ ((θ − a)/σ)² (DESIGN.md §2).
    pub normalised: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConstraintPdf {
    /// Gauss(a | θ, σ).
    Gaussian { sigma: f64 },
    /// Pois(a | θ τ) (shapesys).
    Poisson { factor: f64 },
}

impl ConstraintTerm {
    /// The global observable's expectation at the parameter value `theta`: θ for a Gaussian,
    /// θτ for a Poisson. Toys draw around it; the hypothesis tests' Asimov datasets set it.
    pub fn expected_auxdata(&self, theta: f64) -> f64 {
        match self.pdf {
            ConstraintPdf::Gaussian { .. } => theta,
            ConstraintPdf::Poisson { factor } => theta * factor,
        }
    }

    /// (centre, width) of the constraint in the parameter: Gauss(a | θ, σ) is centred at a
    /// with width σ; a Poisson Pois(a | θτ) is read as a Gaussian of width 1/√τ around a/τ.
    /// Pulls are (θ̂ − centre)/width.
    pub fn centre_and_width(&self) -> (f64, f64) {
        match self.pdf {
            ConstraintPdf::Gaussian { sigma } => (self.auxdata, sigma),
            ConstraintPdf::Poisson { factor } => (self.auxdata / factor, factor.sqrt().recip()),
        }
    }
}

impl Model {
    /// A model of unbinned channels whose `constrained` parameters carry nsbi's unit
    /// Gaussian constraint around 0 (for models built in code: tests, benchmarks).
    pub fn unbinned(parameters: Vec<Parameter>, channels: Vec<Channel>) -> Model {
        let constraints = parameters
            .iter()
            .enumerate()
            .filter(|(_, p)| p.constrained)
            .map(|(parameter, _)| ConstraintTerm {
                parameter,
                pdf: ConstraintPdf::Gaussian { sigma: 1.0 },
                auxdata: 0.0,
                normalised: false,
            })
            .collect();
        Model {
            parameters,
            channels: channels.into(),
            kinds: Vec::new(),
            constraints,
        }
    }

    pub fn from_workspace(ws: &Workspace) -> Result<Model> {
        let kinds = KindsOfWorkspace::read(ws)?;
        let (mut parameters, binned_globals) = global_parameters(ws, kinds.binned.as_ref())?;
        let mut constraints = unbinned_constraints(ws, &parameters);
        let kinds = kinds.place(&binned_globals, &parameters, &mut constraints);
        constraints.sort_by_key(|c| c.parameter);
        for c in &constraints {
            parameters[c.parameter].constrained = true;
        }
        let names: Vec<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
        let index = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .expect("validated parameter")
        };
        let mut channels = Vec::new();
        for channel in ws.spec.unbinned_channels() {
            let mut processes = Vec::new();
            for p in &channel.processes {
                let expr = Expr::parse(&p.coefficient.value, &names).map_err(|e| {
                    Error::Workspace(vec![ws.diagnostic(&p.coefficient, e.to_string())])
                })?;
                let label = format!("{}/{}", channel.name.value, p.name.value);
                let mut yield_systematics = Vec::new();
                let mut shape_systematics = Vec::new();
                for s in &p.systematics {
                    let code = s
                        .interpolation
                        .as_ref()
                        .map(|c| c.value)
                        .unwrap_or_default();
                    let parameter = index(&s.name.value);
                    if let Some(y) = &s.yield_factors {
                        yield_systematics.push(YieldSystematic {
                            parameter,
                            variation: Variation::new(code, y.value.up, y.value.down, CODE4_ALPHA0),
                        });
                    }
                    if s.shape.is_some() {
                        let variant = |d: Direction| format!("{label}/{}:{d}", s.name.value);
                        shape_systematics.push(ShapeSystematic {
                            parameter,
                            code,
                            up: variant(Direction::Up),
                            down: variant(Direction::Down),
                        });
                    }
                }
                processes.push(Process {
                    name: p.name.value.clone(),
                    coefficient: Coefficient::new(&p.coefficient.value, expr),
                    nominal_yield: p.nominal_yield.as_ref().map(|y| y.value),
                    ratio: label,
                    yield_systematics,
                    shape_systematics,
                });
            }
            channels.push(Channel {
                name: channel.name.value.clone(),
                processes,
            });
        }
        Ok(Model {
            parameters,
            channels: channels.into(),
            kinds,
            constraints,
        })
    }

    pub fn n_parameters(&self) -> usize {
        self.parameters.len()
    }

    pub fn parameter_index(&self, name: &str) -> Option<usize> {
        self.parameters.iter().position(|p| p.name == name)
    }

    /// The starting point of fits: every parameter's `init`.
    pub fn init(&self) -> Vec<f64> {
        self.parameters.iter().map(|p| p.init).collect()
    }

    pub fn pois(&self) -> Vec<usize> {
        (0..self.parameters.len())
            .filter(|&i| self.parameters[i].poi)
            .collect()
    }

    /// Whether any parameter other than the POIs is free: without one every fit is stat-only,
    /// however it is asked for.
    pub fn has_free_nuisances(&self) -> bool {
        self.parameters.iter().any(|p| !p.poi && !p.fixed)
    }

    /// Every channel kind of the model: the unbinned channels, then `kinds`. Likelihoods hold
    /// one data set per kind, in this order.
    pub fn all_kinds(&self) -> impl Iterator<Item = &dyn ChannelKind> + '_ {
        std::iter::once(&self.channels as &dyn ChannelKind)
            .chain(self.kinds.iter().map(|kind| kind.as_ref()))
    }

    /// The model's channel kind of type `K`, where it has one (the binned channels:
    /// [`crate::binned::combine::BinnedPart`]).
    pub fn kind<K: ChannelKind + 'static>(&self) -> Option<&K> {
        self.all_kinds()
            .find_map(|kind| kind.as_any().downcast_ref::<K>())
    }

    /// `name = value` for every parameter, for messages about a point.
    pub fn describe_point(&self, theta: &[f64]) -> String {
        let values: Vec<String> = self
            .parameters
            .iter()
            .zip(theta)
            .map(|(p, v)| format!("{} = {v}", p.name))
            .collect();
        values.join(", ")
    }

    /// The first process coefficient that is not finite at `theta`, or one of whose first
    /// or second derivatives is not: named by its expression, process and channel.
    pub fn undefined_coefficient(&self, theta: &[f64]) -> Option<String> {
        self.all_kinds()
            .find_map(|kind| kind.undefined_coefficient(theta, &self.parameters))
    }

    /// The first place, over every channel kind, where the model toys are drawn from is not
    /// a density at `theta_gen` ([`ChannelKind::generation_invalid`]).
    pub fn generation_invalid(
        &self,
        theta_gen: &[f64],
    ) -> crate::error::Result<Option<crate::likelihood::InvalidDensity>> {
        for kind in self.all_kinds() {
            if let Some(invalid) = kind.generation_invalid(theta_gen)? {
                return Ok(Some(invalid));
            }
        }
        Ok(None)
    }
}

/// The model's parameters: the workspace's `parameters` in order (per-bin sets of binned
/// modifiers as their components `name[i]`), then the binned modifiers' parameters the
/// workspace does not list, in pyhf's order; and the index of each binned-model parameter
/// among them. A listed parameter of binned modifiers takes its settings from the binned
/// model, which applied them with pyhf's rules.
fn global_parameters(
    ws: &Workspace,
    local: Option<&crate::binned::BinnedModel>,
) -> Result<(Vec<Parameter>, Vec<usize>)> {
    let mut parameters = Vec::new();
    let mut global = vec![usize::MAX; local.map_or(0, |m| m.parameters.len())];
    let binned_names = ws.binned_parameter_names();
    for p in &ws.spec.parameters {
        let name = p.name.value.as_str();
        let Some(local) = local.filter(|_| binned_names.contains(name)) else {
            // A parameter binned coefficients name without a modifier is the listed one.
            if let Some(i) = local.and_then(|m| m.parameter_index(name)) {
                global[i] = parameters.len();
            }
            parameters.push(unbinned_parameter(p));
            continue;
        };
        let components = local.parameters.iter().enumerate().filter(|(_, q)| {
            q.name == name
                || q.name
                    .strip_prefix(name)
                    .is_some_and(|r| r.starts_with('['))
        });
        for (i, _) in components {
            combine::check_declared_constraint(ws, p, combine::constraint_of(local, i))?;
            global[i] = parameters.len();
            parameters.push(binned_parameter(local, i, p.poi));
        }
    }
    if let Some(local) = local {
        for (i, place) in global.iter_mut().enumerate() {
            if *place == usize::MAX {
                *place = parameters.len();
                parameters.push(binned_parameter(local, i, local.poi == Some(i)));
            }
        }
    }
    Ok((parameters, global))
}

fn unbinned_parameter(p: &ParameterSpec) -> Parameter {
    Parameter {
        name: p.name.value.clone(),
        poi: p.poi,
        init: p.init.as_ref().map_or_else(|| default_init(p), |i| i.value),
        bounds: p
            .bounds
            .as_ref()
            .and_then(|b| b.value.single())
            .unwrap_or((f64::NEG_INFINITY, f64::INFINITY)),
        constrained: false,
        fixed: p.fixed,
    }
}

fn binned_parameter(local: &crate::binned::BinnedModel, i: usize, poi: bool) -> Parameter {
    let q = &local.parameters[i];
    Parameter {
        name: q.name.clone(),
        poi,
        init: q.init,
        bounds: q.bounds,
        constrained: false,
        fixed: q.fixed,
    }
}

/// Gaussian constraints of the parameters only unbinned channels use: unit width around 0
/// unless `sigmas` / `auxdata` say otherwise.
fn unbinned_constraints(ws: &Workspace, parameters: &[Parameter]) -> Vec<ConstraintTerm> {
    let binned_names = ws.binned_parameter_names();
    let mut out = Vec::new();
    for p in &ws.spec.parameters {
        let name = p.name.value.as_str();
        let gaussian = !p.poi
            && p.constraint
                .as_ref()
                .is_none_or(|c| c.value == ConstraintKind::Gaussian);
        if binned_names.contains(name) || !gaussian {
            continue;
        }
        let first = |v: &Option<serde_saphyr::Spanned<Vec<f64>>>, default: f64| {
            v.as_ref()
                .and_then(|v| v.value.first().copied())
                .unwrap_or(default)
        };
        out.push(ConstraintTerm {
            parameter: parameters
                .iter()
                .position(|q| q.name == name)
                .expect("every listed parameter is a model parameter"),
            pdf: ConstraintPdf::Gaussian {
                sigma: first(&p.sigmas, 1.0),
            },
            auxdata: first(&p.auxdata, 0.0),
            normalised: false,
        });
    }
    out
}

/// ν_c(θ) = f_c(θ) ν_c⁰ Π_k G_ck(α_k) with its gradient and (dense, row-major) Hessian over
/// all parameters, written to `grad` and `hess`: [`YieldTerms`] scattered (for callers
/// outside the NLL's evaluation loop, which uses the sparse form).
pub fn process_yield(
    process: &Process,
    nominal: f64,
    theta: &[f64],
    grad: &mut [f64],
    hess: &mut [f64],
) -> f64 {
    let mut terms = YieldTerms::default();
    let nu = terms.fill(process, nominal, theta);
    grad.fill(0.0);
    hess.fill(0.0);
    terms.add_gradient(1.0, grad);
    terms.add_hessian(1.0, hess);
    nu
}

/// ν_c(θ) and its derivatives in the few parameters it depends on (its coefficient's and its
/// yield systematics'): with ~100 yield-only nuisance parameters each process depends on
/// m of the n parameters, and a dense n-vector and n×n matrix per process and evaluation
/// would cost O(n²) to clear alone (the dense product over factors cost O(m n²)). Here the
/// value and gradient cost O(m log m), the Hessian O(m²).
#[derive(Clone, Debug, Default)]
pub struct YieldTerms {
    /// The parameters ν_c depends on, ascending, each once.
    pub parameters: Vec<usize>,
    /// ∂ν/∂θ_p for p in `parameters`.
    pub gradient: Vec<f64>,
    /// ∂²ν/∂θ_p∂θ_q, row-major over `parameters` × `parameters`.
    pub hessian: Vec<f64>,
    /// G_p(θ_p) = Π over the factors of parameter p, and its two derivatives.
    factors: Vec<Interpolated>,
    /// Products of the factors before and after each parameter's (prefix and suffix).
    before: Vec<f64>,
    after: Vec<f64>,
}

impl YieldTerms {
    /// ν_c(θ) = f_c ν_c⁰ Π_p G_p with its gradient and Hessian over the parameters it depends
    /// on, reusing this struct's arrays.
    pub fn fill(&mut self, process: &Process, nominal: f64, theta: &[f64]) -> f64 {
        let coefficient = &process.coefficient;
        self.parameters.clear();
        self.parameters
            .extend(process.yield_systematics.iter().map(|s| s.parameter));
        self.parameters
            .extend(coefficient.gradient.iter().map(|(j, _)| *j));
        self.parameters.sort_unstable();
        self.parameters.dedup();
        let g = self.yield_factors(process, theta);
        // (ν⁰ f G)' = ν⁰ (f' G + f G'), (ν⁰ f G)'' = ν⁰ (f'' G + f' G'ᵀ + G' f'ᵀ + f G''),
        // f' and f'' sparse (the coefficient's symbolic derivatives).
        let t = self.parameters.len();
        let f = coefficient.expr.eval(theta);
        for h in self.hessian.iter_mut() {
            *h *= nominal * f;
        }
        for (j, l, d) in &coefficient.hessian {
            let (a, b) = (self.local(*j), self.local(*l));
            self.hessian[a * t + b] += nominal * d.eval(theta) * g;
        }
        for (j, d) in &coefficient.gradient {
            let (a, f_j) = (self.local(*j), nominal * d.eval(theta));
            for b in 0..t {
                let term = f_j * self.gradient[b];
                self.hessian[a * t + b] += term;
                self.hessian[b * t + a] += term;
            }
        }
        for x in self.gradient.iter_mut() {
            *x *= nominal * f;
        }
        for (j, d) in &coefficient.gradient {
            let a = self.local(*j);
            self.gradient[a] += nominal * d.eval(theta) * g;
        }
        nominal * f * g
    }

    /// out[θ_p] += scale ∂ν/∂θ_p (`out` over all parameters).
    pub fn add_gradient(&self, scale: f64, out: &mut [f64]) {
        for (&p, d) in self.parameters.iter().zip(&self.gradient) {
            out[p] += scale * d;
        }
    }

    /// out[θ_p, θ_q] += scale ∂²ν/∂θ_p∂θ_q (`out` dense, row-major over all parameters).
    pub fn add_hessian(&self, scale: f64, out: &mut [f64]) {
        let n = out.len().isqrt();
        let t = self.parameters.len();
        for (a, &p) in self.parameters.iter().enumerate() {
            for (b, &q) in self.parameters.iter().enumerate() {
                out[p * n + q] += scale * self.hessian[a * t + b];
            }
        }
    }

    /// The position of parameter `j` in `parameters` (which holds it).
    fn local(&self, j: usize) -> usize {
        self.parameters
            .binary_search(&j)
            .expect("every parameter of the process is listed")
    }

    /// G = Π_k G_k(α_k), the product of the process's yield factors, into `gradient` and
    /// `hessian` (over `parameters`). Factors of one parameter are first multiplied into
    /// G_p (several factors may share a parameter); then ∂G/∂θ_p = G'_p Π_{q≠p} G_q and
    /// ∂²G/∂θ_p∂θ_q = G'_p G'_q Π_{r≠p,q} G_r (G''_p Π_{r≠p} G_r on the diagonal), the
    /// products of the other factors from prefix and suffix products (no division: a factor
    /// may be zero).
    fn yield_factors(&mut self, process: &Process, theta: &[f64]) -> f64 {
        let t = self.parameters.len();
        let one = Interpolated {
            value: 1.0,
            d1: 0.0,
            d2: 0.0,
        };
        self.factors.clear();
        self.factors.resize(t, one);
        for s in &process.yield_systematics {
            let p = self.local(s.parameter);
            let i = s.variation.eval(theta[s.parameter]);
            let g = &mut self.factors[p];
            // (g·I)' = g' I + g I'; (g·I)'' = g'' I + 2 g' I' + g I''
            *g = Interpolated {
                value: g.value * i.value,
                d1: g.d1 * i.value + g.value * i.d1,
                d2: g.d2 * i.value + 2.0 * g.d1 * i.d1 + g.value * i.d2,
            };
        }
        let factors = &self.factors;
        self.before.clear();
        self.before.push(1.0);
        for f in factors {
            let last = *self.before.last().expect("starts with 1");
            self.before.push(last * f.value);
        }
        self.after.clear();
        self.after.resize(t + 1, 1.0);
        for p in (0..t).rev() {
            self.after[p] = self.after[p + 1] * factors[p].value;
        }
        let (before, after) = (&self.before, &self.after);
        self.gradient.clear();
        self.gradient
            .extend((0..t).map(|p| factors[p].d1 * before[p] * after[p + 1]));
        self.hessian.clear();
        self.hessian.resize(t * t, 0.0);
        for p in 0..t {
            self.hessian[p * t + p] = factors[p].d2 * before[p] * after[p + 1];
            // Π_{p<r<q} G_r, grown as q moves right.
            let mut between = 1.0;
            for q in p + 1..t {
                let h = factors[p].d1 * factors[q].d1 * before[p] * between * after[q + 1];
                self.hessian[p * t + q] = h;
                self.hessian[q * t + p] = h;
                between *= factors[q].value;
            }
        }
        before[t]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense product over factors that `YieldTerms` replaced (O(m n²) per process): the
    /// reference its results must reproduce.
    fn dense_yield(process: &Process, nominal: f64, theta: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let n = theta.len();
        let (mut grad, mut hess) = (vec![0.0; n], vec![0.0; n * n]);
        let mut g = 1.0;
        for s in &process.yield_systematics {
            let k = s.parameter;
            let i = s.variation.eval(theta[k]);
            for a in 0..n {
                for b in 0..n {
                    let mut h = hess[a * n + b] * i.value;
                    if b == k {
                        h += grad[a] * i.d1;
                    }
                    if a == k {
                        h += grad[b] * i.d1;
                    }
                    if a == k && b == k {
                        h += g * i.d2;
                    }
                    hess[a * n + b] = h;
                }
            }
            for (a, ga) in grad.iter_mut().enumerate() {
                *ga *= i.value;
                if a == k {
                    *ga += g * i.d1;
                }
            }
            g *= i.value;
        }
        let f = process.coefficient.expr.eval(theta);
        for h in hess.iter_mut() {
            *h *= nominal * f;
        }
        for (j, l, d) in &process.coefficient.hessian {
            hess[j * n + l] += nominal * d.eval(theta) * g;
        }
        for (j, d) in &process.coefficient.gradient {
            let f_j = nominal * d.eval(theta);
            for b in 0..n {
                hess[j * n + b] += f_j * grad[b];
                hess[b * n + j] += grad[b] * f_j;
            }
        }
        for x in grad.iter_mut() {
            *x *= nominal * f;
        }
        for (j, d) in &process.coefficient.gradient {
            grad[*j] += nominal * d.eval(theta) * g;
        }
        (nominal * f * g, grad, hess)
    }

    const CODES: [InterpolationCode; 5] = [
        InterpolationCode::Code0,
        InterpolationCode::Code1,
        InterpolationCode::Code2,
        InterpolationCode::Code4,
        InterpolationCode::Code4p,
    ];

    /// 120 parameters (μ and 119 α); a process whose coefficient depends on μ and α_1 and
    /// which has 100 yield systematics on 80 of the α (every fifth α carries two factors, of
    /// different codes), at a point with α on both sides of ±1.
    fn many_yields() -> (Process, Vec<f64>) {
        let names: Vec<String> = std::iter::once("mu".to_string())
            .chain((1..120).map(|k| format!("alpha_{k}")))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let text = "mu * mu * (1 + 0.1 * alpha_1)";
        let mut yield_systematics = Vec::new();
        for s in 0..100 {
            let parameter = if s < 80 { 1 + s } else { 1 + 5 * (s - 80) };
            let (up, down) = (
                1.0 + 0.01 * (1 + s % 7) as f64,
                1.0 - 0.008 * (1 + s % 5) as f64,
            );
            yield_systematics.push(YieldSystematic {
                parameter,
                variation: Variation::new(CODES[s % 5], up, down, CODE4_ALPHA0),
            });
        }
        let process = Process {
            name: "p".into(),
            coefficient: Coefficient::new(text, Expr::parse(text, &names).unwrap()),
            nominal_yield: None,
            ratio: "p".into(),
            yield_systematics,
            shape_systematics: vec![],
        };
        let theta = (0..120)
            .map(|k| {
                if k == 0 {
                    1.3
                } else {
                    1.7 * ((k as f64) * 0.37).sin()
                }
            })
            .collect();
        (process, theta)
    }

    fn relative(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(1e-300)
    }

    #[test]
    fn sparse_yield_terms_reproduce_the_dense_product() {
        let (process, theta) = many_yields();
        let n = theta.len();
        let (nu, grad, hess) = dense_yield(&process, 250.0, &theta);
        let (mut g, mut h) = (vec![0.0; n], vec![0.0; n * n]);
        let value = process_yield(&process, 250.0, &theta, &mut g, &mut h);
        assert!(relative(value, nu) < 1e-12, "{value} vs {nu}");
        let scale = grad.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
        for j in 0..n {
            assert!((g[j] - grad[j]).abs() <= 1e-12 * scale, "∂ν/∂θ_{j}");
        }
        let scale = hess.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
        for a in 0..n * n {
            assert!((h[a] - hess[a]).abs() <= 1e-12 * scale, "Hessian entry {a}");
        }
        // And not trivially: shared parameters have second derivatives off the diagonal.
        // And not trivially: α_6 and α_11 carry two factors each (codes 0 and 1, 1 and 2).
        assert!(hess[6 * n + 11] != 0.0 && hess[6 * n + 6] != 0.0);
    }

    #[test]
    fn sparse_yield_terms_match_finite_differences() {
        let (process, theta) = many_yields();
        let n = theta.len();
        let (mut g, mut h) = (vec![0.0; n], vec![0.0; n * n]);
        process_yield(&process, 250.0, &theta, &mut g, &mut h);
        let (mut g2, mut h2) = (vec![0.0; n], vec![0.0; n * n]);
        let step = 1e-6;
        for j in [0, 1, 5, 6, 11, 80, 96, 119] {
            let mut at = |x: f64, grad: &mut [f64]| {
                let mut shifted = theta.clone();
                shifted[j] = x;
                process_yield(&process, 250.0, &shifted, grad, &mut h2)
            };
            let (plus, minus) = (at(theta[j] + step, &mut g2), at(theta[j] - step, &mut g2));
            let slope = (plus - minus) / (2.0 * step);
            assert!(
                (slope - g[j]).abs() <= 1e-6 * g[j].abs().max(1.0),
                "∂ν/∂θ_{j}"
            );
            // Column j of the Hessian from the gradient's differences.
            let mut up = vec![0.0; n];
            at(theta[j] + step, &mut up);
            at(theta[j] - step, &mut g2);
            for l in 0..n {
                let d2 = (up[l] - g2[l]) / (2.0 * step);
                assert!(
                    (d2 - h[l * n + j]).abs() <= 1e-5 * h[l * n + j].abs().max(1.0),
                    "∂²ν/∂θ_{l}∂θ_{j}"
                );
            }
        }
    }
}
