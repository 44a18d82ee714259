//! What a posterior run hands back: a summary per parameter (JSON through serde) and the draws
//! themselves in HDF5.

use std::path::Path;

use hdf5::types::VarLenUnicode;
use schemars::JsonSchema;
use serde::Serialize;

use crate::bayes::diagnostics::{self, ParameterDiagnostics};
use crate::bayes::sampler::Samples;
use crate::error::{Error, Result};

/// The posterior of one parameter in numbers.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ParameterSummary {
    pub name: String,
    pub mean: f64,
    /// Standard deviation of the draws.
    pub sd: f64,
    /// The 5, 16, 50, 84 and 95 % quantiles (90 % and 68 % central intervals and the median).
    pub quantiles: Quantiles,
    #[serde(flatten)]
    pub diagnostics: ParameterDiagnostics,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Quantiles {
    pub q05: f64,
    pub q16: f64,
    pub q50: f64,
    pub q84: f64,
    pub q95: f64,
}

/// The summary of a whole run: per parameter, the sampler's divergences, and the warnings that
/// say whether the numbers can be trusted.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct PosteriorSummary {
    pub chains: usize,
    pub draws_per_chain: usize,
    pub parameters: Vec<ParameterSummary>,
    pub divergences: u64,
    pub warnings: Vec<String>,
}

impl PosteriorSummary {
    /// Summarises the draws; `names` in parameter order.
    pub fn of(samples: &Samples, names: &[String]) -> Self {
        let parameters: Vec<ParameterSummary> = names
            .iter()
            .enumerate()
            .map(|(i, name)| parameter_summary(name, &samples.parameter(i)))
            .collect();
        let diagnostics: Vec<ParameterDiagnostics> =
            parameters.iter().map(|p| p.diagnostics.clone()).collect();
        PosteriorSummary {
            chains: samples.chains,
            draws_per_chain: samples.draws,
            warnings: diagnostics::warnings(names, &diagnostics, samples.total_divergences()),
            divergences: samples.total_divergences(),
            parameters,
        }
    }
}

fn parameter_summary(name: &str, chains: &[Vec<f64>]) -> ParameterSummary {
    let mut draws: Vec<f64> = chains.concat();
    let n = draws.len() as f64;
    let mean = draws.iter().sum::<f64>() / n;
    let sd = (draws.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    draws.sort_by(f64::total_cmp);
    let q = |p: f64| sorted_quantile(&draws, p);
    ParameterSummary {
        name: name.to_string(),
        mean,
        sd,
        quantiles: Quantiles {
            q05: q(0.05),
            q16: q(0.16),
            q50: q(0.5),
            q84: q(0.84),
            q95: q(0.95),
        },
        diagnostics: ParameterDiagnostics::of(chains),
    }
}

/// Linear interpolation between order statistics (numpy's default).
fn sorted_quantile(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    sorted[below] + (position - below as f64) * (sorted[above] - sorted[below])
}

/// Writes the draws to HDF5 atomically (temporary file beside `path`, then rename):
/// `samples` (chains × draws × parameters), `divergences` and `step_size` (per chain), the
/// parameter names as the JSON list attribute `parameters`, and `fingerprint` (what made the
/// draws) as an attribute of that name when given.
pub fn write_samples(
    path: &Path,
    samples: &Samples,
    names: &[String],
    fingerprint: Option<&str>,
) -> Result<()> {
    check_names(path, samples, names)?;
    crate::report::write_through_temp(path, ".tmp", |tmp| {
        write_samples_to(tmp, samples, names, fingerprint)
    })
}

/// [`write_samples`] into a temporary file of `outputs`, renamed with the command's other
/// outputs.
pub fn stage_samples(
    outputs: &mut crate::report::OutputSet,
    path: &Path,
    samples: &Samples,
    names: &[String],
    fingerprint: Option<&str>,
) -> Result<()> {
    check_names(path, samples, names)?;
    let tmp = outputs.stage(path)?;
    write_samples_to(&tmp, samples, names, fingerprint)
}

fn check_names(path: &Path, samples: &Samples, names: &[String]) -> Result<()> {
    if names.len() != samples.dim {
        return Err(Error::Analysis(format!(
            "{}: {} parameter names for draws of {} parameters",
            path.display(),
            names.len(),
            samples.dim
        )));
    }
    Ok(())
}

fn write_samples_to(
    path: &Path,
    samples: &Samples,
    names: &[String],
    fingerprint: Option<&str>,
) -> Result<()> {
    let err = |e: hdf5::Error| Error::event_file(path, e.to_string());
    let file = hdf5::File::create(path).map_err(err)?;
    let draws = ndarray::Array3::from_shape_vec(
        (samples.chains, samples.draws, samples.dim),
        samples.values.clone(),
    )
    .map_err(|e| Error::Analysis(format!("posterior draws: {e}")))?;
    file.new_dataset_builder()
        .with_data(&draws)
        .create("samples")
        .map_err(err)?;
    file.new_dataset_builder()
        .with_data(samples.divergences.as_slice())
        .create("divergences")
        .map_err(err)?;
    file.new_dataset_builder()
        .with_data(samples.step_sizes.as_slice())
        .create("step_size")
        .map_err(err)?;
    let names: VarLenUnicode = serde_json::to_string(names)
        .expect("names serialise")
        .parse()
        .map_err(|_| Error::Analysis("parameter names are not valid text".into()))?;
    file.new_attr::<VarLenUnicode>()
        .create("parameters")
        .and_then(|a| a.write_scalar(&names))
        .map_err(err)?;
    if let Some(fingerprint) = fingerprint {
        let value: VarLenUnicode = fingerprint
            .parse()
            .map_err(|_| Error::Analysis("fingerprint is not valid text".into()))?;
        file.new_attr::<VarLenUnicode>()
            .create("fingerprint")
            .and_then(|a| a.write_scalar(&value))
            .map_err(err)?;
    }
    file.flush().map_err(err)
}
