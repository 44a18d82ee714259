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
    pub priors: Priors,
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
        priors: ws.priors.clone(),
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
    keyed_stream(seed, chain, 1)
}

/// A ChaCha8 stream keyed by (seed, index, purpose): independent streams for every chain,
/// coverage pair and use, whatever order threads take them in.
pub(crate) fn keyed_stream(seed: u64, chain: u64, purpose: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&chain.to_le_bytes());
    key[16..24].copy_from_slice(&purpose.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// θ points for the next round of simulation and training (sequential NRE/NPE): the
/// posterior's draws, thinned evenly, mixed with prior draws.
#[derive(Clone, Debug)]
pub struct ProposalRequest {
    /// Points in all.
    pub size: usize,
    /// Share of them drawn from the prior (keeps the next round's training set covering it).
    pub prior_fraction: f64,
}

/// The proposal's points: rows of θ and whether each came from the prior. The posterior part
/// takes every k-th of the pooled draws (chains in order), so it is as decorrelated as the run
/// allows; the prior part is drawn with its own stream keyed by the run's seed.
pub fn proposal(
    run: &PosteriorRun,
    request: &ProposalRequest,
) -> Result<(Vec<Vec<f64>>, Vec<bool>)> {
    let f = request.prior_fraction;
    if !(0.0..=1.0).contains(&f) || request.size == 0 {
        return Err(Error::Analysis(format!(
            "proposal: {} points with prior fraction {f}; expected at least one point and 0 ≤ fraction ≤ 1",
            request.size
        )));
    }
    let from_prior = (request.size as f64 * f).round() as usize;
    let from_posterior = request.size - from_prior;
    let total = run.samples.chains * run.samples.draws;
    if from_posterior > total {
        return Err(Error::Analysis(format!(
            "proposal: {from_posterior} posterior points asked for, the run has {total} draws; \
             raise --draws or --chains, or lower --proposal-size"
        )));
    }
    let mut points: Vec<Vec<f64>> = (0..from_posterior)
        .map(|k| {
            let index = k * total / from_posterior.max(1);
            run.samples
                .draw(index / run.samples.draws, index % run.samples.draws)
                .to_vec()
        })
        .collect();
    let mut rng = keyed_stream(run.report.seed, u64::MAX, 2);
    points.extend((0..from_prior).map(|_| run.priors.sample(&mut rng)));
    let flags = (0..request.size).map(|i| i >= from_posterior).collect();
    Ok((points, flags))
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
    /// The next round's proposal points, HDF5, and how to make them.
    pub proposal: Option<(PathBuf, ProposalRequest)>,
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
    if let Some((path, request)) = &to.proposal {
        let (points, flags) = proposal(run, request)?;
        let tmp = outputs.stage(path)?;
        write_proposal(&tmp, &points, &flags, &run.names, &run.report.fingerprint)?;
    }
    if let Some(stem) = &to.corner {
        crate::plot::corner::corner(&mut outputs, stem, &run.names, &run.samples, None)?;
    }
    outputs.commit()
}

/// `theta` (points × parameters), `from_prior` (1 where the point is a prior draw), and the
/// `parameters` names and the run's `fingerprint` as attributes.
fn write_proposal(
    path: &Path,
    points: &[Vec<f64>],
    flags: &[bool],
    names: &[String],
    fingerprint: &str,
) -> Result<()> {
    use hdf5::types::VarLenUnicode;
    let err = |e: hdf5::Error| Error::event_file(path, e.to_string());
    let file = hdf5::File::create(path).map_err(err)?;
    let theta = ndarray::Array2::from_shape_vec((points.len(), names.len()), points.concat())
        .map_err(|e| Error::Analysis(format!("proposal points: {e}")))?;
    file.new_dataset_builder()
        .with_data(&theta)
        .create("theta")
        .map_err(err)?;
    let flags: Vec<u8> = flags.iter().map(|&f| u8::from(f)).collect();
    file.new_dataset_builder()
        .with_data(flags.as_slice())
        .create("from_prior")
        .map_err(err)?;
    let text = |s: String| {
        s.parse::<VarLenUnicode>()
            .map_err(|_| Error::Analysis("attribute is not valid text".into()))
    };
    let names = text(serde_json::to_string(names).expect("names serialise"))?;
    for (key, value) in [
        ("parameters", names),
        ("fingerprint", text(fingerprint.to_string())?),
    ] {
        file.new_attr::<VarLenUnicode>()
            .create(key)
            .and_then(|a| a.write_scalar(&value))
            .map_err(err)?;
    }
    file.flush().map_err(err)
}
