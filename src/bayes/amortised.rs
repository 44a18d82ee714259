//! Amortised neural estimators as posteriors: an ensemble of ONNX networks of (x, θ), trained
//! elsewhere (sbi, swyft, a user's PyTorch), read here as a log density over θ for the
//! observations x.
//!
//! - `nre`: the network gives ln r(x, θ) = ln p(x|θ)/p(x) (or the classifier logit, the same
//!   number for balanced classes); posterior ∝ p(θ) Πⱼ r(xⱼ, θ).
//! - `nle`: ln q(x|θ), a likelihood; posterior ∝ p(θ) Πⱼ q(xⱼ|θ).
//! - `npe`: ln q(θ|x), the posterior itself for one observation; the prior then only bounds
//!   the support (zero density outside it) and gives the chains' starting points.
//!
//! Members are combined per observation by the mean of their log outputs (`mean_log`, seed
//! 001's mean of logits) or of their outputs (`mean`: mean of ratios or densities).
//!
//! Gradients with respect to θ come from central differences over θ, all in one batched
//! network call per member: the rows are the observations at θ and at θ ± hᵢ eᵢ for each
//! parameter i, with hᵢ = `step` · max(1, |θᵢ|). The networks take float32, so θ ± hᵢ are
//! rounded to float32 before the call and the difference quotient divides by the rounded
//! distance, not by 2hᵢ. With float32 outputs of size O(10) (rounding ~1e-6) the default step
//! 2⁻⁸ ≈ 3.9e-3 balances rounding (~1e-6/h) against truncation (~h² f‴/6).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

use crate::bayes::prior::Priors;
use crate::bayes::sampler::LogDensity;
use crate::error::{Error, Result};
use crate::ratio::convention::{self, OutputConvention};
use crate::ratio::ensemble::{check_matrix_input, check_output, open_session, output_column};

/// Default relative step of the central differences (see the module notes).
pub const GRADIENT_STEP: f64 = 1.0 / 256.0;

/// What the networks estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EstimatorKind {
    /// ln r(x, θ), likelihood-to-evidence ratio; its output convention says how to read it.
    Nre(OutputConvention),
    /// ln q(x|θ).
    Nle,
    /// ln q(θ|x).
    Npe,
}

/// How the members' outputs for one (x, θ) are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combination {
    /// Mean of the log outputs (geometric mean of ratios or densities).
    MeanLog,
    /// Mean of the ratios or densities, ln of it (log-sum-exp).
    Mean,
}

/// How x and θ reach the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkInputs {
    /// One float32 matrix [N, len(x) + len(θ)]: x first, then θ in prior order.
    Concatenated(String),
    /// Two float32 matrices [N, len(x)] and [N, len(θ)].
    Separate { x: String, theta: String },
}

/// Everything about the networks that is not in the model files.
#[derive(Clone, Debug)]
pub struct EstimatorSettings {
    pub kind: EstimatorKind,
    pub combination: Combination,
    pub inputs: NetworkInputs,
    /// Output tensor name; `None`: the model's first output.
    pub output: Option<String>,
    /// Column of a 2-D output.
    pub column: usize,
    /// Relative step hᵢ / max(1, |θᵢ|) of the central differences.
    pub gradient_step: f64,
}

/// The observations x the posterior conditions on: `rows` independent observations of
/// `width` numbers each, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Observations {
    pub values: Vec<f64>,
    pub rows: usize,
    pub width: usize,
    /// Where they came from, for messages (a file, or the workspace for inline values).
    pub source: PathBuf,
}

/// One network of the ensemble, with one session per worker thread.
struct Member {
    path: PathBuf,
    output: String,
    sessions: Vec<Mutex<Session>>,
}

/// Prior × amortised model: the posterior NUTS samples.
pub struct AmortisedPosterior {
    priors: Priors,
    observed: Observations,
    settings: EstimatorSettings,
    /// Shared by the posteriors of other observations ([`Self::with_observations`]): the
    /// sessions are opened once per run, not once per observation.
    members: Arc<Vec<Member>>,
}

impl AmortisedPosterior {
    /// Opens every model, one session per rayon thread, and checks its inputs against the
    /// widths of x and θ and its output against the settings.
    pub fn load(
        priors: Priors,
        observed: Observations,
        settings: EstimatorSettings,
        models: &[PathBuf],
    ) -> Result<AmortisedPosterior> {
        check_observation_count(&settings, &observed)?;
        let workers = rayon::current_num_threads().max(1);
        let mut members = Vec::with_capacity(models.len());
        for path in models {
            let first = open_session(path)?;
            let output = check_interface(path, &first, &settings, observed.width, priors.dim())?;
            let mut sessions = vec![Mutex::new(first)];
            for _ in 1..workers {
                sessions.push(Mutex::new(open_session(path)?));
            }
            members.push(Member {
                path: path.clone(),
                output,
                sessions,
            });
        }
        Ok(AmortisedPosterior {
            priors,
            observed,
            settings,
            members: Arc::new(members),
        })
    }

    /// The same priors and networks conditioned on other observations (a coverage test's
    /// held-out x), of the width the networks were checked against.
    pub fn with_observations(&self, observed: Observations) -> Result<AmortisedPosterior> {
        check_observation_count(&self.settings, &observed)?;
        if observed.width != self.observed.width {
            return Err(Error::event_file(
                &observed.source,
                format!(
                    "observations of {} values; expected {} (the width the models were \
                     checked against)",
                    observed.width, self.observed.width
                ),
            ));
        }
        Ok(AmortisedPosterior {
            priors: self.priors.clone(),
            observed,
            settings: self.settings.clone(),
            members: Arc::clone(&self.members),
        })
    }

    pub fn priors(&self) -> &Priors {
        &self.priors
    }

    /// Σⱼ (combined log output at (xⱼ, θₖ)) for each θₖ of `thetas`, from one network call
    /// per member.
    pub fn log_model(&self, thetas: &[Vec<f32>]) -> Result<Vec<f64>> {
        let rows = thetas.len() * self.observed.rows;
        let mut per_member = Vec::with_capacity(self.members.len());
        for member in self.members.iter() {
            per_member.push(self.run_member(member, thetas, rows)?);
        }
        let n_members = self.members.len() as f64;
        let mut totals = vec![0.0; thetas.len()];
        for (row, total) in (0..rows).map(|r| (r, r / self.observed.rows)) {
            let combined = match self.settings.combination {
                Combination::MeanLog => per_member.iter().map(|m| m[row]).sum::<f64>() / n_members,
                Combination::Mean => {
                    let peak = per_member
                        .iter()
                        .map(|m| m[row])
                        .fold(f64::NEG_INFINITY, f64::max);
                    peak + (per_member
                        .iter()
                        .map(|m| (m[row] - peak).exp())
                        .sum::<f64>()
                        / n_members)
                        .ln()
                }
            };
            totals[total] += combined;
        }
        Ok(totals)
    }

    /// The log outputs of one member at every (θₖ, xⱼ) row, row k·n_obs + j.
    fn run_member(&self, member: &Member, thetas: &[Vec<f32>], rows: usize) -> Result<Vec<f64>> {
        let fail = |message: String| Error::model(&member.path, message);
        let x: Vec<f32> = self.observed.values.iter().map(|&v| v as f32).collect();
        let (x_width, theta_width) = (self.observed.width, self.priors.dim());
        let slot = rayon::current_thread_index().unwrap_or(0) % member.sessions.len();
        let mut session = member.sessions[slot]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tensor_error = |e: ort::Error| fail(format!("cannot build input tensor: {e}"));
        let outputs = match &self.settings.inputs {
            NetworkInputs::Concatenated(name) => {
                let mut input = Vec::with_capacity(rows * (x_width + theta_width));
                for theta in thetas {
                    for row in x.chunks(x_width) {
                        input.extend_from_slice(row);
                        input.extend_from_slice(theta);
                    }
                }
                let tensor =
                    TensorRef::from_array_view(([rows, x_width + theta_width], &input[..]))
                        .map_err(tensor_error)?;
                let inputs: Vec<(Cow<str>, SessionInputValue)> =
                    vec![(Cow::from(name.as_str()), tensor.into())];
                session.run(inputs)
            }
            NetworkInputs::Separate {
                x: x_name,
                theta: theta_name,
            } => {
                let xs: Vec<f32> = (0..thetas.len()).flat_map(|_| x.iter().copied()).collect();
                let ts: Vec<f32> = thetas
                    .iter()
                    .flat_map(|t| (0..self.observed.rows).flat_map(move |_| t.iter().copied()))
                    .collect();
                let x_tensor =
                    TensorRef::from_array_view(([rows, x_width], &xs[..])).map_err(tensor_error)?;
                let t_tensor = TensorRef::from_array_view(([rows, theta_width], &ts[..]))
                    .map_err(tensor_error)?;
                let inputs: Vec<(Cow<str>, SessionInputValue)> = vec![
                    (Cow::from(x_name.as_str()), x_tensor.into()),
                    (Cow::from(theta_name.as_str()), t_tensor.into()),
                ];
                session.run(inputs)
            }
        }
        .map_err(|e| fail(format!("failed at θ = {:?}: {e}", thetas[0])))?;
        let raw = output_column(&outputs[member.output.as_str()], self.settings.column, rows)
            .map_err(fail)?;
        raw.into_iter()
            .enumerate()
            .map(|(row, y)| {
                let log_value = match self.settings.kind {
                    EstimatorKind::Nre(c) => convention::to_log_ratio(c, y),
                    EstimatorKind::Nle | EstimatorKind::Npe => y,
                };
                if log_value.is_finite() {
                    Ok(log_value)
                } else {
                    let (k, j) = (row / self.observed.rows, row % self.observed.rows);
                    Err(fail(format!(
                        "output {y} (log value {log_value}) at θ = {:?} and observation {j} of {}: \
                         expected a finite {}",
                        thetas[k],
                        self.observed.source.display(),
                        self.expected_output()
                    )))
                }
            })
            .collect()
    }

    fn expected_output(&self) -> String {
        match self.settings.kind {
            EstimatorKind::Nre(c) => format!("ratio > 0 under convention {c:?}"),
            EstimatorKind::Nle => "log likelihood ln q(x|θ)".into(),
            EstimatorKind::Npe => "log posterior density ln q(θ|x)".into(),
        }
    }

    /// θ and θ ± hᵢ eᵢ in float32, with the rounded distances 2hᵢ actually taken.
    fn difference_points(&self, theta: &[f64]) -> (Vec<Vec<f32>>, Vec<f64>) {
        let centre: Vec<f32> = theta.iter().map(|&t| t as f32).collect();
        let mut points = vec![centre.clone()];
        let mut distances = Vec::with_capacity(theta.len());
        for (i, &t) in theta.iter().enumerate() {
            let h = self.settings.gradient_step * t.abs().max(1.0);
            let (mut plus, mut minus) = (centre.clone(), centre.clone());
            plus[i] = (t + h) as f32;
            minus[i] = (t - h) as f32;
            distances.push(plus[i] as f64 - minus[i] as f64);
            points.push(plus);
            points.push(minus);
        }
        (points, distances)
    }
}

impl LogDensity for AmortisedPosterior {
    fn dim(&self) -> usize {
        self.priors.dim()
    }

    fn logp_and_grad(&self, theta: &[f64], grad: &mut [f64]) -> Result<f64> {
        let log_prior = self.priors.log_density_and_grad(theta, grad);
        if log_prior == f64::NEG_INFINITY {
            return Ok(f64::NEG_INFINITY);
        }
        let (points, distances) = self.difference_points(theta);
        let model = self.log_model(&points)?;
        // An NPE network is the posterior itself: the prior only bounds it.
        let (base, prior_weight) = match self.settings.kind {
            EstimatorKind::Npe => (0.0, 0.0),
            _ => (log_prior, 1.0),
        };
        for (i, g) in grad.iter_mut().enumerate() {
            *g = prior_weight * *g + (model[1 + 2 * i] - model[2 + 2 * i]) / distances[i];
        }
        Ok(base + model[0])
    }

    fn support(&self) -> Vec<(f64, f64)> {
        self.priors.support()
    }
}

/// An `npe` network gives q(θ|x) for one x: several observations are refused.
fn check_observation_count(settings: &EstimatorSettings, observed: &Observations) -> Result<()> {
    if matches!(settings.kind, EstimatorKind::Npe) && observed.rows != 1 {
        return Err(Error::event_file(
            &observed.source,
            format!(
                "holds {} observations, but an `npe` estimator gives q(θ|x) for one x; \
                 expected a single observation (use `nle` or `nre` for several)",
                observed.rows
            ),
        ));
    }
    Ok(())
}

/// Checks a member's inputs (names, float32, widths of x and θ) and output; returns the
/// output's name.
fn check_interface(
    path: &Path,
    session: &Session,
    settings: &EstimatorSettings,
    x_width: usize,
    theta_width: usize,
) -> Result<String> {
    let find = |name: &str| {
        session
            .inputs()
            .iter()
            .find(|i| i.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
                Error::model(
                    path,
                    format!(
                        "has no input '{name}' (inputs: {}); expected the inputs the workspace declares",
                        names.join(", ")
                    ),
                )
            })
    };
    let declared = match &settings.inputs {
        NetworkInputs::Concatenated(name) => {
            let why = format!(
                "x has {x_width} and θ has {theta_width} components (one concatenated input, x then θ)"
            );
            check_matrix_input(path, find(name)?, x_width + theta_width, &why)?;
            1
        }
        NetworkInputs::Separate { x, theta } => {
            let why = format!("the observations have {x_width} components");
            check_matrix_input(path, find(x)?, x_width, &why)?;
            let why = format!("the priors have {theta_width} parameters");
            check_matrix_input(path, find(theta)?, theta_width, &why)?;
            2
        }
    };
    if session.inputs().len() != declared {
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        return Err(Error::model(
            path,
            format!(
                "has {} inputs ({}) but the workspace declares {declared}",
                names.len(),
                names.join(", ")
            ),
        ));
    }
    check_output(path, session, settings.output.as_deref(), settings.column)
}
