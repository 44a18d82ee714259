//! Prior densities of the parameters of a Bayesian fit.
//!
//! Four families cover what the amortised-inference users of the project ask for: a flat prior
//! between bounds, a normal, a log-uniform (flat in ln θ, for scales spanning decades) and a
//! normal truncated to an interval. Each gives its log density (−∞ outside its support, so the
//! posterior is zero there), the derivative of that log density for the Hamiltonian sampler,
//! and independent draws (initial points of chains, and the θ* of coverage tests).
//!
//! Priors are read from a YAML block, one entry per parameter:
//!
//! ```yaml
//! priors:
//!   - {parameter: mu, kind: uniform, low: 0, high: 5}
//!   - {parameter: theta, kind: normal, mean: 0, sigma: 1}
//!   - {parameter: scale, kind: log_uniform, low: 0.01, high: 100}
//!   - {parameter: kappa, kind: truncated_normal, mean: 1, sigma: 0.5, low: 0}
//! ```
//!
//! Every mistake is reported with the file, line and column of the value at fault.

use std::path::Path;

use rand::Rng;
use rand_distr::StandardNormal;
use serde::Deserialize;
use serde_saphyr::Spanned;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::error::{Diagnostic, Error, Result, SourceLocation};

/// ln √(2π), the normal density's constant.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// The prior of one parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Prior {
    /// Flat on `[low, high]`.
    Uniform { low: f64, high: f64 },
    /// Normal with mean and standard deviation, on the whole real line.
    Normal { mean: f64, sigma: f64 },
    /// Flat in ln θ on `[low, high]`, 0 < low < high: density 1 / (θ ln(high/low)).
    LogUniform { low: f64, high: f64 },
    /// Normal(mean, sigma) restricted to `[low, high]` (one bound may be infinite) and
    /// renormalised.
    TruncatedNormal {
        mean: f64,
        sigma: f64,
        low: f64,
        high: f64,
    },
}

impl Prior {
    /// The interval outside which the density is zero.
    pub fn support(&self) -> (f64, f64) {
        match *self {
            Prior::Uniform { low, high }
            | Prior::LogUniform { low, high }
            | Prior::TruncatedNormal { low, high, .. } => (low, high),
            Prior::Normal { .. } => (f64::NEG_INFINITY, f64::INFINITY),
        }
    }

    fn contains(&self, x: f64) -> bool {
        let (low, high) = self.support();
        low <= x && x <= high
    }

    /// ln p(x), normalised; −∞ outside the support.
    pub fn log_density(&self, x: f64) -> f64 {
        if !self.contains(x) {
            return f64::NEG_INFINITY;
        }
        match *self {
            Prior::Uniform { low, high } => -(high - low).ln(),
            Prior::Normal { mean, sigma } => normal_log_kernel(x, mean, sigma),
            Prior::LogUniform { low, high } => -x.ln() - (high / low).ln().ln(),
            Prior::TruncatedNormal {
                mean,
                sigma,
                low,
                high,
            } => normal_log_kernel(x, mean, sigma) - normal_mass(mean, sigma, low, high).ln(),
        }
    }

    /// d ln p / dx inside the support; 0 outside, where the density is flat at zero.
    pub fn grad_log_density(&self, x: f64) -> f64 {
        if !self.contains(x) {
            return 0.0;
        }
        match *self {
            Prior::Uniform { .. } => 0.0,
            Prior::LogUniform { .. } => -1.0 / x,
            Prior::Normal { mean, sigma } | Prior::TruncatedNormal { mean, sigma, .. } => {
                -(x - mean) / (sigma * sigma)
            }
        }
    }

    /// One independent draw.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            Prior::Uniform { low, high } => low + (high - low) * rng.random::<f64>(),
            Prior::Normal { mean, sigma } => mean + sigma * rng.sample::<f64, _>(StandardNormal),
            Prior::LogUniform { low, high } => {
                (low.ln() + (high / low).ln() * rng.random::<f64>()).exp()
            }
            Prior::TruncatedNormal {
                mean,
                sigma,
                low,
                high,
            } => sample_truncated_normal(rng, mean, sigma, low, high),
        }
    }
}

/// ln of the N(mean, sigma) density at x.
fn normal_log_kernel(x: f64, mean: f64, sigma: f64) -> f64 {
    let z = (x - mean) / sigma;
    -0.5 * z * z - sigma.ln() - LN_SQRT_2PI
}

fn standard_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("N(0, 1) is a valid distribution")
}

/// The N(mean, sigma) probability of `[low, high]`, computed on the side of the mean where it
/// does not cancel (an interval far in the upper tail is a difference of survival functions).
fn normal_mass(mean: f64, sigma: f64, low: f64, high: f64) -> f64 {
    let (a, b) = ((low - mean) / sigma, (high - mean) / sigma);
    let n = standard_normal();
    if a > 0.0 {
        n.sf(a) - n.sf(b)
    } else {
        n.cdf(b) - n.cdf(a)
    }
}

/// A draw of N(mean, sigma) restricted to `[low, high]` by the inverse CDF. An interval above
/// the mean is mirrored below it first, where the CDF keeps its relative precision.
fn sample_truncated_normal<R: Rng + ?Sized>(
    rng: &mut R,
    mean: f64,
    sigma: f64,
    low: f64,
    high: f64,
) -> f64 {
    let (a, b) = ((low - mean) / sigma, (high - mean) / sigma);
    let mirrored = a > 0.0;
    let (a, b) = if mirrored { (-b, -a) } else { (a, b) };
    let n = standard_normal();
    let (fa, fb) = (n.cdf(a), n.cdf(b));
    let u = fa + (fb - fa) * rng.random::<f64>();
    let z = n.inverse_cdf(u).clamp(a, b);
    mean + sigma * if mirrored { -z } else { z }
}

/// The priors of all parameters of a posterior, in parameter order.
#[derive(Clone, Debug, PartialEq)]
pub struct Priors {
    pub names: Vec<String>,
    pub priors: Vec<Prior>,
}

impl Priors {
    pub fn dim(&self) -> usize {
        self.priors.len()
    }

    /// ln p(θ) = Σ ln p_i(θ_i), with its gradient written to `grad`.
    pub fn log_density_and_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let mut total = 0.0;
        for ((prior, &x), g) in self.priors.iter().zip(theta).zip(grad.iter_mut()) {
            total += prior.log_density(x);
            *g = prior.grad_log_density(x);
        }
        total
    }

    /// One independent draw of θ.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        self.priors.iter().map(|p| p.sample(rng)).collect()
    }
}

/// The prior alone as a posterior (no data): a check of the sampler on bounded supports.
impl crate::bayes::sampler::LogDensity for Priors {
    fn dim(&self) -> usize {
        self.priors.len()
    }

    fn logp_and_grad(&self, theta: &[f64], grad: &mut [f64]) -> Result<f64> {
        Ok(self.log_density_and_grad(theta, grad))
    }

    fn support(&self) -> Vec<(f64, f64)> {
        self.priors.iter().map(Prior::support).collect()
    }
}

/// A YAML document holding a `priors:` list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorsSpec {
    pub priors: Vec<PriorSpec>,
}

/// One `priors:` entry as written; [`Prior`] after validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorSpec {
    pub parameter: Spanned<String>,
    /// `uniform`, `normal`, `log_uniform` or `truncated_normal`.
    pub kind: Spanned<String>,
    #[serde(default)]
    pub low: Option<Spanned<f64>>,
    #[serde(default)]
    pub high: Option<Spanned<f64>>,
    #[serde(default)]
    pub mean: Option<Spanned<f64>>,
    #[serde(default)]
    pub sigma: Option<Spanned<f64>>,
}

const KINDS: &str = "uniform, normal, log_uniform or truncated_normal";

/// Reads and validates the `priors:` list of a YAML file.
pub fn read_priors(path: &Path) -> Result<Priors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading priors from {}", path.display()), e))?;
    parse_priors(path, &text)
}

/// Parses and validates the `priors:` list of a YAML text; `path` names it in errors.
pub fn parse_priors(path: &Path, text: &str) -> Result<Priors> {
    let spec: PriorsSpec = serde_saphyr::from_str(text).map_err(|e| Error::YamlSyntax {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    validate_priors(path, &spec.priors)
}

/// Validates the entries of a `priors:` list read from `path` (named in the errors): every
/// mistake is reported, each at its line and column.
pub fn validate_priors(path: &Path, entries: &[PriorSpec]) -> Result<Priors> {
    let locate = Locator { path };
    let mut problems = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut priors = Vec::new();
    for entry in entries {
        let name = &entry.parameter.value;
        if names.contains(name) {
            problems.push(locate.at(
                &entry.parameter,
                format!("parameter `{name}` has a second prior; expected one prior per parameter"),
            ));
        }
        names.push(name.clone());
        match prior_from_spec(entry, &locate) {
            Ok(prior) => priors.push(prior),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if problems.is_empty() {
        Ok(Priors { names, priors })
    } else {
        Err(Error::Workspace(problems))
    }
}

/// Turns spans into diagnostics of one file.
pub(crate) struct Locator<'a> {
    pub(crate) path: &'a Path,
}

impl Locator<'_> {
    /// Where `value` was written; None for a default that was not.
    pub(crate) fn location<T>(&self, value: &Spanned<T>) -> Option<SourceLocation> {
        let loc = value.referenced;
        (loc != serde_saphyr::Location::UNKNOWN).then(|| SourceLocation {
            file: self.path.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
        })
    }

    pub(crate) fn at<T>(&self, value: &Spanned<T>, message: String) -> Diagnostic {
        Diagnostic {
            location: self.location(value),
            message,
        }
    }
}

/// Validates one entry: the fields its kind needs are there, no others, and their values make a
/// proper (normalisable) density.
fn prior_from_spec(
    entry: &PriorSpec,
    locate: &Locator,
) -> std::result::Result<Prior, Vec<Diagnostic>> {
    let name = &entry.parameter.value;
    let kind = entry.kind.value.as_str();
    let fields = [
        ("low", &entry.low),
        ("high", &entry.high),
        ("mean", &entry.mean),
        ("sigma", &entry.sigma),
    ];
    let (needed, optional): (&[&str], &[&str]) = match kind {
        "uniform" | "log_uniform" => (&["low", "high"], &[]),
        "normal" => (&["mean", "sigma"], &[]),
        "truncated_normal" => (&["mean", "sigma"], &["low", "high"]),
        other => {
            return Err(vec![locate.at(
                &entry.kind,
                format!("prior of `{name}`: unknown kind `{other}`; expected {KINDS}"),
            )])
        }
    };
    let mut problems = Vec::new();
    for (field, value) in fields {
        match value {
            Some(v) if !needed.contains(&field) && !optional.contains(&field) => {
                problems.push(locate.at(
                    v,
                    format!("prior of `{name}`: `{field}` does not apply to a {kind} prior"),
                ))
            }
            None if needed.contains(&field) => problems.push(locate.at(
                &entry.kind,
                format!("prior of `{name}`: a {kind} prior needs `{field}`"),
            )),
            Some(v) if v.value.is_nan() => problems.push(locate.at(
                v,
                format!("prior of `{name}`: `{field}` is NaN; expected a number"),
            )),
            _ => {}
        }
    }
    if kind == "truncated_normal" && entry.low.is_none() && entry.high.is_none() {
        problems.push(locate.at(
            &entry.kind,
            format!("prior of `{name}`: a truncated_normal prior needs `low`, `high` or both (without them it is `normal`)"),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let value = |f: &Option<Spanned<f64>>, default: f64| f.as_ref().map_or(default, |s| s.value);
    let (low, high) = (
        value(&entry.low, f64::NEG_INFINITY),
        value(&entry.high, f64::INFINITY),
    );
    let (mean, sigma) = (value(&entry.mean, 0.0), value(&entry.sigma, 1.0));
    let at_low = || {
        entry
            .low
            .as_ref()
            .map_or(entry.kind.referenced, |l| l.referenced)
    };
    let fail = |message: String| {
        let span = Spanned::new((), at_low(), at_low());
        Err(vec![
            locate.at(&span, format!("prior of `{name}`: {message}"))
        ])
    };
    match kind {
        "uniform" | "log_uniform" if !(low.is_finite() && high.is_finite() && low < high) => {
            fail(format!("a {kind} prior needs finite bounds with low < high; got low = {low}, high = {high}"))
        }
        "log_uniform" if low <= 0.0 => fail(format!(
            "a log_uniform prior needs 0 < low; got low = {low}"
        )),
        "truncated_normal" if low >= high => fail(format!(
            "a truncated_normal prior needs low < high; got low = {low}, high = {high}"
        )),
        "normal" | "truncated_normal" if !(mean.is_finite() && sigma.is_finite() && sigma > 0.0) => {
            let span = entry.sigma.as_ref().expect("checked above");
            Err(vec![locate.at(
                span,
                format!("prior of `{name}`: a {kind} prior needs a finite mean and 0 < sigma < ∞; got mean = {mean}, sigma = {sigma}"),
            )])
        }
        "truncated_normal" if normal_mass(mean, sigma, low, high) <= 0.0 => fail(format!(
            "the interval [{low}, {high}] has no N({mean}, {sigma}) probability in double precision"
        )),
        "uniform" => Ok(Prior::Uniform { low, high }),
        "log_uniform" => Ok(Prior::LogUniform { low, high }),
        "normal" => Ok(Prior::Normal { mean, sigma }),
        _ => Ok(Prior::TruncatedNormal {
            mean,
            sigma,
            low,
            high,
        }),
    }
}
