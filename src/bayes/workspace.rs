//! The `posterior:` section of a workspace: priors, the amortised estimator and the
//! observations.
//!
//! ```yaml
//! name: linear-Gaussian toy
//! posterior:
//!   priors:
//!     - {parameter: theta0, kind: normal, mean: 0, sigma: 2}
//!     - {parameter: theta1, kind: uniform, low: -3, high: 3}
//!   estimator:
//!     kind: nre                      # nre | nle | npe
//!     convention: log_ratio          # nre only: log_ratio | logit | ratio | score
//!     models: models/member_*.onnx   # a path, a glob or a list, relative to this file
//!     inputs: {concatenated: z}      # or {x: x, theta: theta}
//!     output: log_ratio              # default: the first output
//!     column: 0                      # of a 2-D output
//!     aggregation: mean_log          # mean_log (alias mean_logit) | mean (alias mean_ratio)
//!     gradient_step: 0.00390625      # relative step of the central differences
//!   observed:
//!     file: data/observed.h5         # dataset [n, len(x)] or [len(x)]
//!     dataset: x
//!     # or inline: values: [0.3, -1.2, 0.8]  (one x) or [[...], [...]] (several)
//! ```
//!
//! Every mistake is reported at its file, line and column, with what was expected.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::bayes::amortised::{
    AmortisedPosterior, Combination, EstimatorKind, EstimatorSettings, NetworkInputs, Observations,
    GRADIENT_STEP,
};
use crate::bayes::prior::{validate_priors, Locator, PriorSpec, Priors};
use crate::error::{Diagnostic, Error, Result};
use crate::ratio::convention::OutputConvention;
use crate::workspace::schema::ModelList;

/// A workspace file as far as the posterior is concerned.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosteriorFileSpec {
    #[serde(default)]
    pub name: Option<String>,
    pub posterior: PosteriorSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosteriorSpec {
    pub priors: Vec<PriorSpec>,
    pub estimator: EstimatorSpec,
    pub observed: Spanned<ObservedSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimatorSpec {
    pub kind: Spanned<String>,
    #[serde(default)]
    pub convention: Option<Spanned<String>>,
    pub models: Spanned<ModelList>,
    pub inputs: Spanned<InputsSpec>,
    #[serde(default)]
    pub output: Option<Spanned<String>>,
    #[serde(default)]
    pub column: Option<Spanned<usize>>,
    #[serde(default)]
    pub aggregation: Option<Spanned<String>>,
    #[serde(default)]
    pub gradient_step: Option<Spanned<f64>>,
}

/// `{concatenated: NAME}` or `{x: NAME, theta: NAME}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputsSpec {
    #[serde(default)]
    pub concatenated: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub theta: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedSpec {
    #[serde(default)]
    pub values: Option<Spanned<ObservedValues>>,
    #[serde(default)]
    pub file: Option<Spanned<String>>,
    #[serde(default)]
    pub dataset: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ObservedValues {
    One(Vec<f64>),
    Many(Vec<Vec<f64>>),
}

/// The dataset read when the workspace names none.
pub const DEFAULT_DATASET: &str = "x";

/// A validated `posterior:` section, with its file's text (for fingerprints).
pub struct PosteriorWorkspace {
    pub path: PathBuf,
    pub name: Option<String>,
    pub priors: Priors,
    pub settings: EstimatorSettings,
    pub models: Vec<PathBuf>,
    observed: Spanned<ObservedSpec>,
    text: String,
}

impl PosteriorWorkspace {
    /// Reads and checks the file: every problem of the priors and the estimator at once, each
    /// at its position. Model files are found here; they are opened by [`Self::posterior`].
    pub fn load(path: &Path) -> Result<PosteriorWorkspace> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading workspace {}", path.display()), e))?;
        let spec: PosteriorFileSpec =
            serde_saphyr::from_str(&text).map_err(|e| Error::YamlSyntax {
                file: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let locate = Locator { path };
        let mut problems = Vec::new();
        let priors = match validate_priors(path, &spec.posterior.priors) {
            Ok(p) => Some(p),
            Err(Error::Workspace(mut found)) => {
                problems.append(&mut found);
                None
            }
            Err(other) => return Err(other),
        };
        if spec.posterior.priors.is_empty() {
            problems.push(Diagnostic {
                location: None,
                message: format!(
                    "{}: `posterior.priors` is empty; expected one prior per parameter",
                    path.display()
                ),
            });
        }
        let estimator = &spec.posterior.estimator;
        let settings = estimator_settings(estimator, &locate);
        let models = model_paths(path, &estimator.models, &locate);
        let observed_problems = observed_spec_problems(&spec.posterior.observed, &locate);
        match (priors, settings, models) {
            (Some(priors), Ok(settings), Ok(models))
                if problems.is_empty() && observed_problems.is_empty() =>
            {
                Ok(PosteriorWorkspace {
                    path: path.to_path_buf(),
                    name: spec.name,
                    priors,
                    settings,
                    models,
                    observed: spec.posterior.observed,
                    text,
                })
            }
            (_, settings, models) => {
                problems.extend(settings.err().unwrap_or_default());
                problems.extend(models.err());
                problems.extend(observed_problems);
                Err(Error::Workspace(problems))
            }
        }
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The observations: `file` instead of the workspace's own (from its `dataset`, default
    /// [`DEFAULT_DATASET`]) when given.
    pub fn observations(&self, file: Option<&Path>) -> Result<Observations> {
        let spec = &self.observed.value;
        let dataset = spec
            .dataset
            .as_ref()
            .map_or(DEFAULT_DATASET, |d| d.value.as_str());
        if let Some(file) = file {
            return read_observations(file, dataset)
                .map_err(|message| Error::event_file(file, message));
        }
        let locate = Locator { path: &self.path };
        if let Some(values) = &spec.values {
            return inline_observations(&values.value, &self.path)
                .map_err(|m| Error::Workspace(vec![locate.at(values, m)]));
        }
        let file = spec.file.as_ref().expect("checked when loaded");
        let full = self.dir().join(&file.value);
        read_observations(&full, dataset).map_err(|message| {
            let location = spec
                .dataset
                .as_ref()
                .map_or_else(|| locate.location(file), |d| locate.location(d));
            Error::Workspace(vec![Diagnostic {
                location,
                message: format!("observed file {}: {message}", full.display()),
            }])
        })
    }

    /// Opens the models and checks them against the observations and the priors.
    pub fn posterior(&self, observed: Observations) -> Result<AmortisedPosterior> {
        AmortisedPosterior::load(
            self.priors.clone(),
            observed,
            self.settings.clone(),
            &self.models,
        )
    }

    /// What a posterior run's outputs depend on: the workspace text, the model bytes, the
    /// observations and `extra` (the sampler settings), hashed.
    pub fn fingerprint(&self, observed: &Observations, extra: &str) -> Result<String> {
        let mut hasher = blake3::Hasher::new();
        self.hash_model(&mut hasher)?;
        for v in &observed.values {
            hasher.update(&v.to_le_bytes());
        }
        hasher.update(&(observed.width as u64).to_le_bytes());
        hasher.update(extra.as_bytes());
        Ok(hasher.finalize().to_hex().to_string())
    }

    /// What the posterior of any observation depends on: the workspace text and the model
    /// bytes, hashed (the fingerprint of a coverage test's shards).
    pub fn model_fingerprint(&self) -> Result<String> {
        let mut hasher = blake3::Hasher::new();
        self.hash_model(&mut hasher)?;
        Ok(hasher.finalize().to_hex().to_string())
    }

    fn hash_model(&self, hasher: &mut blake3::Hasher) -> Result<()> {
        hasher.update(self.text.as_bytes());
        for model in &self.models {
            let bytes = std::fs::read(model)
                .map_err(|e| Error::model(model, format!("cannot read: {e}")))?;
            hasher.update(blake3::hash(&bytes).as_bytes());
        }
        Ok(())
    }
}

const KINDS: &str = "nre, nle or npe";
const CONVENTIONS: &str = "log_ratio, logit, ratio or score";
const AGGREGATIONS: &str = "mean_log (alias mean_logit) or mean (alias mean_ratio)";

fn estimator_settings(
    spec: &EstimatorSpec,
    locate: &Locator,
) -> std::result::Result<EstimatorSettings, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let convention = spec.convention.as_ref().map(|c| match c.value.as_str() {
        "log_ratio" => Ok(OutputConvention::LogRatio),
        "logit" => Ok(OutputConvention::Logit),
        "ratio" => Ok(OutputConvention::Ratio),
        "score" => Ok(OutputConvention::Score),
        other => Err(locate.at(
            c,
            format!("estimator: unknown convention `{other}`; expected {CONVENTIONS}"),
        )),
    });
    let kind = match (spec.kind.value.as_str(), convention) {
        ("nre", Some(Ok(c))) => Some(EstimatorKind::Nre(c)),
        ("nre", None) => {
            problems.push(locate.at(
                &spec.kind,
                format!("estimator: an `nre` estimator needs `convention` ({CONVENTIONS})"),
            ));
            None
        }
        ("nle" | "npe", Some(_)) => {
            let c = spec.convention.as_ref().expect("matched Some");
            problems.push(locate.at(
                c,
                format!(
                    "estimator: `convention` does not apply to `{}`: its output is a log density",
                    spec.kind.value
                ),
            ));
            None
        }
        ("nle", None) => Some(EstimatorKind::Nle),
        ("npe", None) => Some(EstimatorKind::Npe),
        (_, Some(Err(d))) => {
            problems.push(d);
            None
        }
        (other, _) => {
            problems.push(locate.at(
                &spec.kind,
                format!("estimator: unknown kind `{other}`; expected {KINDS}"),
            ));
            None
        }
    };
    let combination = match spec.aggregation.as_ref().map(|a| (a, a.value.as_str())) {
        None | Some((_, "mean_log" | "mean_logit")) => Some(Combination::MeanLog),
        Some((_, "mean" | "mean_ratio")) => Some(Combination::Mean),
        Some((a, other)) => {
            problems.push(locate.at(
                a,
                format!("estimator: unknown aggregation `{other}`; expected {AGGREGATIONS}"),
            ));
            None
        }
    };
    let inputs = &spec.inputs.value;
    let inputs = match (&inputs.concatenated, &inputs.x, &inputs.theta) {
        (Some(name), None, None) => Some(NetworkInputs::Concatenated(name.clone())),
        (None, Some(x), Some(theta)) => Some(NetworkInputs::Separate {
            x: x.clone(),
            theta: theta.clone(),
        }),
        _ => {
            problems.push(locate.at(
                &spec.inputs,
                "estimator: `inputs` must be {concatenated: NAME} (one [N, len(x) + len(θ)] input, x first) \
                 or {x: NAME, theta: NAME} (two inputs)"
                    .to_string(),
            ));
            None
        }
    };
    let gradient_step = match &spec.gradient_step {
        None => GRADIENT_STEP,
        Some(s) if s.value.is_finite() && s.value > 0.0 && s.value < 1.0 => s.value,
        Some(s) => {
            problems.push(locate.at(
                s,
                format!(
                    "estimator: gradient_step = {}; expected 0 < step < 1",
                    s.value
                ),
            ));
            GRADIENT_STEP
        }
    };
    match (kind, combination, inputs) {
        (Some(kind), Some(combination), Some(inputs)) if problems.is_empty() => {
            Ok(EstimatorSettings {
                kind,
                combination,
                inputs,
                output: spec.output.as_ref().map(|o| o.value.clone()),
                column: spec.column.as_ref().map_or(0, |c| c.value),
                gradient_step,
            })
        }
        _ => Err(problems),
    }
}

/// Each pattern a path or a glob relative to the workspace; one matching nothing is an error.
fn model_paths(
    path: &Path,
    models: &Spanned<ModelList>,
    locate: &Locator,
) -> std::result::Result<Vec<PathBuf>, Diagnostic> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut found = Vec::new();
    for pattern in models.value.patterns() {
        let full = dir.join(pattern).to_string_lossy().into_owned();
        let matched: Vec<PathBuf> = glob::glob(&full)
            .map_err(|e| {
                locate.at(
                    models,
                    format!("estimator: invalid model pattern `{pattern}`: {e}"),
                )
            })?
            .filter_map(|p| p.ok())
            .collect();
        if matched.is_empty() {
            return Err(locate.at(
                models,
                format!("estimator: model file `{pattern}` not found (looked for {full})"),
            ));
        }
        found.extend(matched);
    }
    Ok(found)
}

fn observed_spec_problems(observed: &Spanned<ObservedSpec>, locate: &Locator) -> Vec<Diagnostic> {
    let spec = &observed.value;
    match (&spec.values, &spec.file) {
        (Some(_), None) | (None, Some(_)) => {}
        _ => {
            return vec![locate.at(
                observed,
                "observed: give either `values` (inline) or `file` (HDF5, with `dataset`)".into(),
            )]
        }
    }
    if let (Some(_), Some(d)) = (&spec.values, &spec.dataset) {
        return vec![locate.at(
            d,
            "observed: `dataset` applies to `file`, not to inline `values`".into(),
        )];
    }
    Vec::new()
}

fn inline_observations(
    values: &ObservedValues,
    source: &Path,
) -> std::result::Result<Observations, String> {
    let rows: Vec<Vec<f64>> = match values {
        ObservedValues::One(x) => vec![x.clone()],
        ObservedValues::Many(xs) => xs.clone(),
    };
    observations_from_rows(rows, source)
}

/// Checks the rows: at least one, all of the same non-zero width, all finite.
fn observations_from_rows(
    rows: Vec<Vec<f64>>,
    source: &Path,
) -> std::result::Result<Observations, String> {
    let width = rows.first().map_or(0, Vec::len);
    if width == 0 {
        return Err("observed: no values; expected one observation x or a list of them".into());
    }
    if let Some(j) = rows.iter().position(|r| r.len() != width) {
        return Err(format!(
            "observed: observation {j} has {} values, observation 0 has {width}; expected equal lengths",
            rows[j].len()
        ));
    }
    if let Some(k) = rows.iter().flatten().position(|v| !v.is_finite()) {
        return Err(format!(
            "observed: value {} of observation {} is not finite",
            k % width,
            k / width
        ));
    }
    Ok(Observations {
        rows: rows.len(),
        width,
        values: rows.concat(),
        source: source.to_path_buf(),
    })
}

/// Observations from an HDF5 dataset [n, len(x)] (n observations) or [len(x)] (one).
fn read_observations(file: &Path, dataset: &str) -> std::result::Result<Observations, String> {
    if !file.is_file() {
        return Err("file not found".into());
    }
    let h5 = hdf5::File::open(file).map_err(|e| format!("cannot open as HDF5: {e}"))?;
    let data = h5.dataset(dataset).map_err(|_| {
        let names = h5.member_names().unwrap_or_default().join(", ");
        format!("no dataset `{dataset}` (found: {names}); expected the observations as [n, len(x)] or [len(x)]")
    })?;
    let array = data
        .read_dyn::<f64>()
        .map_err(|e| format!("dataset `{dataset}` cannot be read as numbers: {e}"))?;
    let rows: Vec<Vec<f64>> = match array.shape() {
        [_] => vec![array.iter().copied().collect()],
        [_, width] if *width > 0 => array
            .iter()
            .copied()
            .collect::<Vec<f64>>()
            .chunks(*width)
            .map(<[f64]>::to_vec)
            .collect(),
        shape => {
            return Err(format!(
                "dataset `{dataset}` has shape {shape:?}; expected [n, len(x)] or [len(x)]"
            ))
        }
    };
    observations_from_rows(rows, file).map_err(|m| format!("dataset `{dataset}`: {m}"))
}
