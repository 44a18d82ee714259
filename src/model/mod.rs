//! Workspace → statistical model: parameters, process coefficients f_c(θ), yield and shape
//! systematics with their interpolation codes, constraints (DESIGN.md §2). The model knows
//! nothing about events; `likelihood` combines it with per-event ratios.

pub mod interpolation;

use crate::error::{Error, Result};
use crate::workspace::expr::Expr;
use crate::workspace::schema::ConstraintKind;
use crate::workspace::{default_init, Direction, Workspace};
use interpolation::{InterpolationCode, Variation};

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
#[derive(Clone, Debug)]
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

#[derive(Clone, Debug)]
pub struct Model {
    pub parameters: Vec<Parameter>,
    pub channels: Vec<Channel>,
}

impl Model {
    pub fn from_workspace(ws: &Workspace) -> Result<Model> {
        let names = ws.parameter_names();
        let parameters = ws
            .spec
            .parameters
            .iter()
            .map(|p| Parameter {
                name: p.name.value.clone(),
                poi: p.poi,
                init: p.init.as_ref().map_or_else(|| default_init(p), |i| i.value),
                bounds: p
                    .bounds
                    .as_ref()
                    .map_or((f64::NEG_INFINITY, f64::INFINITY), |b| {
                        (b.value[0], b.value[1])
                    }),
                constrained: !p.poi
                    && p.constraint
                        .as_ref()
                        .is_none_or(|c| c.value == ConstraintKind::Gaussian),
                fixed: p.fixed,
            })
            .collect();
        let index = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .expect("validated parameter")
        };
        let mut channels = Vec::new();
        for channel in &ws.spec.channels {
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
            channels,
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
        let name = |j: usize| self.parameters[j].name.as_str();
        for channel in &self.channels {
            for process in &channel.processes {
                let coefficient = &process.coefficient;
                let value = coefficient.expr.eval(theta);
                let what = if !value.is_finite() {
                    Some(format!("is {value}"))
                } else if let Some((j, d)) = coefficient
                    .gradient
                    .iter()
                    .map(|(j, d)| (*j, d.eval(theta)))
                    .find(|(_, d)| !d.is_finite())
                {
                    Some(format!("has derivative {d} with respect to {}", name(j)))
                } else {
                    coefficient
                        .hessian
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
                };
                if let Some(what) = what {
                    return Some(format!(
                        "coefficient '{}' of process {} in channel {} {what}",
                        coefficient.text, process.name, channel.name
                    ));
                }
            }
        }
        None
    }
}

/// ν_c(θ) = f_c(θ) ν_c⁰ Π_k G_ck(α_k) with its gradient and (dense, row-major) Hessian,
/// written to `grad` and `hess` (which also serve as the working space: no allocation, as
/// every NLL evaluation calls this).
pub fn process_yield(
    process: &Process,
    nominal: f64,
    theta: &[f64],
    grad: &mut [f64],
    hess: &mut [f64],
) -> f64 {
    let n = theta.len();
    // First G = Π_k G_k and its derivatives, in grad and hess.
    let g = yield_factors(process, theta, grad, hess);
    // Then (ν⁰ f G)'' = ν⁰ (f'' G + f' G'ᵀ + G' f'ᵀ + f G'') and (ν⁰ f G)' = ν⁰ (f' G + f G'),
    // f' and f'' sparse (the coefficient's symbolic derivatives).
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
    nominal * f * g
}

/// G = Π_k G_k(α_k), the product of a process's yield factors; its gradient and Hessian are
/// written to `grad` and `hess` (factors of different parameters multiply; several factors
/// may share one parameter).
fn yield_factors(process: &Process, theta: &[f64], grad: &mut [f64], hess: &mut [f64]) -> f64 {
    let n = theta.len();
    grad.fill(0.0);
    hess.fill(0.0);
    let mut g = 1.0;
    for s in &process.yield_systematics {
        let k = s.parameter;
        let i = s.variation.eval(theta[k]);
        // (g·I)' = g' I + g I'; (g·I)'' = g'' I + g' I' + I' g' + g I''
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
    g
}
