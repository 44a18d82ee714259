//! A workspace's posterior sampled, summarised and written: what `nsbi posterior` runs.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use crate::bayes::amortised::EstimatorKind;
use crate::bayes::prior::Priors;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::bayes::sampler::{sample, SamplerSettings, Samples};
use crate::bayes::summary::{stage_samples, PosteriorSummary};
use crate::bayes::workspace::PosteriorWorkspace;
use crate::error::{Error, Result};
use crate::report::OutputSet;

/// `nsbi posterior --json`: the run's provenance and the posterior summary.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct PosteriorReport {
    pub workspace: String,
    /// The workspace's `name`, if it has one.
    pub name: Option<String>,
    /// `nre`, `nle` or `npe`.
    pub estimator: String,
    /// Number of observations x the posterior conditions on.
    pub observations: usize,
    /// Where they came from.
    pub observed: String,
    pub warmup: u64,
    pub seed: u64,
    /// Hash of the workspace text, the model bytes, the observations and the sampler settings;
    /// also the `fingerprint` attribute of the draws' HDF5 file.
    pub fingerprint: String,
    #[serde(flatten)]
    pub summary: PosteriorSummary,
}

/// The draws of a run with their summary.
pub struct PosteriorRun {
    pub names: Vec<String>,
    pub samples: Samples,
    pub report: PosteriorReport,
}

/// Samples the posterior of `workspace` given its observations (or those of `observed`, an
/// HDF5 file with the workspace's dataset), chains started at prior draws.
pub fn run_posterior(
    workspace: &Path,
    observed: Option<&Path>,
    settings: &SamplerSettings,
) -> Result<PosteriorRun> {
    let ws = PosteriorWorkspace::load(workspace)?;
    let observations = ws.observations(observed)?;
    let fingerprint = ws.fingerprint(&observations, &format!("{settings:?}"))?;
    let source = observations.source.display().to_string();
    let rows = observations.rows;
    let posterior = ws.posterior(observations)?;
    let starts = prior_starts(&ws.priors, settings.chains, settings.seed)?;
    let samples = sample(&posterior, &starts, settings)?;
    let names = ws.priors.names.clone();
    let report = PosteriorReport {
        workspace: workspace.display().to_string(),
        name: ws.name.clone(),
        estimator: match ws.settings.kind {
            EstimatorKind::Nre(_) => "nre",
            EstimatorKind::Nle => "nle",
            EstimatorKind::Npe => "npe",
        }
        .to_string(),
        observations: rows,
        observed: source,
        warmup: settings.warmup,
        seed: settings.seed,
        fingerprint,
        summary: PosteriorSummary::of(&samples, &names),
    };
    Ok(PosteriorRun {
        names,
        samples,
        report,
    })
}

/// One starting point per chain, drawn from the prior with the chain's own stream, strictly
/// inside the support (a uniform draw may land on its lower bound).
pub fn prior_starts(priors: &Priors, chains: usize, seed: u64) -> Result<Vec<Vec<f64>>> {
    (0..chains as u64)
        .map(|chain| {
            let mut rng = start_rng(seed, chain);
            (0..100)
                .map(|_| priors.sample(&mut rng))
                .find(|theta| {
                    theta
                        .iter()
                        .zip(priors.priors.iter().map(|p| p.support()))
                        .all(|(&t, (low, high))| low < t && t < high)
                })
                .ok_or_else(|| {
                    Error::Analysis(format!(
                        "posterior sampling: no prior draw strictly inside the support for chain {chain}"
                    ))
                })
        })
        .collect()
}

/// The stream chain `chain`'s starting point is drawn from: keyed by (seed, chain) like the
/// sampler's own stream, with a third word so the two never coincide.
fn start_rng(seed: u64, chain: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&chain.to_le_bytes());
    key[16..24].copy_from_slice(&1u64.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// Where a run's outputs go.
#[derive(Clone, Debug, Default)]
pub struct PosteriorOutputs {
    /// The draws, HDF5.
    pub samples: Option<PathBuf>,
    /// The summary, JSON.
    pub json: Option<PathBuf>,
    /// Stem of the corner plot (`stem.png`, `stem.svg`).
    pub corner: Option<PathBuf>,
}

/// Writes the run's outputs all together (staged, then renamed): none is left half-written
/// or beside another run's.
pub fn write_posterior(run: &PosteriorRun, to: &PosteriorOutputs) -> Result<Vec<PathBuf>> {
    let mut outputs = OutputSet::new();
    if let Some(path) = &to.samples {
        stage_samples(
            &mut outputs,
            path,
            &run.samples,
            &run.names,
            Some(&run.report.fingerprint),
        )?;
    }
    if let Some(path) = &to.json {
        let value = serde_json::to_value(&run.report).expect("the report serialises");
        outputs.json(path, &value)?;
    }
    if let Some(stem) = &to.corner {
        crate::plot::corner::corner(&mut outputs, stem, &run.names, &run.samples, None)?;
    }
    outputs.commit()
}
