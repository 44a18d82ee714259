//! Coverage of an amortised posterior on held-out simulations: `nsbi coverage-bayes`.
//!
//! For each held-out pair (θ*, x) of a test file ([`pairs`]), the workspace's posterior given
//! x is sampled with NUTS (pairs in parallel; pair i's chains, starting points and TARP
//! reference point come from streams keyed by (seed, i), so nothing depends on the thread
//! count or on which shard ran the pair). Each pair leaves a [`PairRecord`]: its TARP
//! coverage fraction ([`tarp`]), the SBC ranks of θ* ([`sbc`]) and its sampler diagnostics.
//! The records of all pairs — from one run or merged from the shards of a batch farm
//! ([`files`]) — are summarised by [`summarise`] into a [`CoverageBayesResult`].

pub mod files;
pub mod pairs;
pub mod sbc;
pub mod tarp;

use std::ops::Range;
use std::path::Path;

use rand::{Rng, RngCore};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bayes::amortised::AmortisedPosterior;
use crate::bayes::diagnostics::ParameterDiagnostics;
use crate::bayes::run::{keyed_stream, prior_starts};
use crate::bayes::sampler::{sample, SamplerSettings, Samples};
use crate::bayes::workspace::PosteriorWorkspace;
use crate::bayes::Priors;
use crate::error::{Error, Result};
use pairs::TestPairs;
use tarp::Normalisation;

/// R̂ above this flags a pair. Looser than a single posterior's 1.01 ([`RHAT_LIMIT`]): a
/// coverage run's chains are short by design (bulk ESS of order 100 per pair), where R̂ of
/// well-mixed chains scatters above 1.01, while chains stuck in different places give far more.
///
/// [`RHAT_LIMIT`]: crate::bayes::diagnostics::RHAT_LIMIT
pub const PAIR_RHAT_LIMIT: f64 = 1.05;

/// Purposes of the keyed streams of a pair (the chains' own streams are keyed by the pair's
/// sampler seed, drawn from the first).
const PAIR_SEED: u64 = 3;
const REFERENCE: u64 = 4;
/// The bootstrap's stream, keyed by the seed alone.
const BOOTSTRAP: u64 = 5;

/// Where the TARP reference points come from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum References {
    /// A draw from the prior, normalised like θ* (independent of x, as the test requires).
    Prior,
    /// Uniform in the unit box of normalised coordinates: the seed's and the `tarp`
    /// package's `references="random"`.
    Box,
}

/// Everything that sets the numbers of a coverage test; shards must agree on all of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CoverageSettings {
    /// NUTS chains per pair.
    pub chains: usize,
    /// Warm-up iterations per chain.
    pub warmup: u64,
    /// Kept draws per chain; TARP uses all chains × draws of a pair.
    pub draws: u64,
    pub seed: u64,
    pub target_accept: f64,
    pub references: References,
    /// L: draws per pair the SBC ranks are taken among (thinned evenly from the pooled chains).
    pub sbc_draws: usize,
    /// Bins of the rank histograms; must divide L + 1.
    pub sbc_bins: usize,
    /// Intervals of the credibility grid the ECP is reported on.
    pub tarp_bins: usize,
    /// Bootstrap replicates of the ECP band.
    pub bootstrap: usize,
    /// A test fails when its p-value is below this (per parameter: threshold / dimension).
    pub threshold: f64,
}

impl Default for CoverageSettings {
    fn default() -> Self {
        CoverageSettings {
            chains: 4,
            warmup: 400,
            draws: 250,
            seed: 0,
            target_accept: 0.8,
            references: References::Prior,
            sbc_draws: 99,
            sbc_bins: 10,
            tarp_bins: 100,
            bootstrap: 100,
            threshold: 0.01,
        }
    }
}

impl CoverageSettings {
    fn check(&self) -> Result<()> {
        let fail = |m: String| Err(Error::Analysis(format!("coverage-bayes: {m}")));
        let pooled = self.chains * self.draws as usize;
        if self.chains == 0 || self.draws == 0 {
            return fail("needs at least one chain and one draw".into());
        }
        if self.sbc_draws == 0 || self.sbc_draws > pooled {
            return fail(format!(
                "--sbc-draws {} must be between 1 and chains × draws = {pooled}",
                self.sbc_draws
            ));
        }
        if self.sbc_bins < 2 || !(self.sbc_draws + 1).is_multiple_of(self.sbc_bins) {
            return fail(format!(
                "--sbc-bins {} must be at least 2 and divide --sbc-draws + 1 = {} (each bin \
                 holds the same number of possible ranks)",
                self.sbc_bins,
                self.sbc_draws + 1
            ));
        }
        if self.tarp_bins == 0 {
            return fail("--tarp-bins must be at least 1".into());
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return fail(format!("--threshold {} is not in (0, 1)", self.threshold));
        }
        Ok(())
    }

    fn sampler(&self, seed: u64) -> SamplerSettings {
        SamplerSettings {
            chains: self.chains,
            warmup: self.warmup,
            draws: self.draws,
            seed,
            target_accept: self.target_accept,
            ..SamplerSettings::default()
        }
    }
}

/// What a coverage test was run on and how: the provenance of its result and its shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CoverageRun {
    /// The workspace path as given (for people; shards are matched by the fingerprints).
    pub workspace: String,
    /// The test file as given.
    pub test: String,
    pub parameters: Vec<String>,
    /// Held-out pairs used (the whole test file, or its first `--pairs`).
    pub pairs: usize,
    /// Hash of the workspace text and its model files.
    pub workspace_fingerprint: String,
    /// Hash of the θ* and x of the pairs used.
    pub test_fingerprint: String,
    pub settings: CoverageSettings,
}

impl CoverageRun {
    /// How `other` (a shard's run) differs from this one, in words; empty when it belongs.
    pub fn differences(&self, other: &CoverageRun) -> Vec<String> {
        let mut out = Vec::new();
        if self.workspace_fingerprint != other.workspace_fingerprint {
            out.push(format!(
                "made from another workspace or other models ({} here)",
                other.workspace
            ));
        }
        if self.test_fingerprint != other.test_fingerprint || self.pairs != other.pairs {
            out.push(format!(
                "made from another test file or --pairs ({} pairs of {} there, {} here)",
                other.pairs, other.test, self.pairs
            ));
        }
        if self.parameters != other.parameters {
            out.push(format!(
                "parameters {:?}, expected {:?}",
                other.parameters, self.parameters
            ));
        }
        if self.settings != other.settings {
            out.push(format!(
                "made with other settings: {} (expected {})",
                serde_json::to_string(&other.settings).expect("settings serialise"),
                serde_json::to_string(&self.settings).expect("settings serialise")
            ));
        }
        out
    }
}

/// What one pair contributes to the tests.
#[derive(Clone, Debug, PartialEq)]
pub struct PairRecord {
    pub pair: usize,
    /// TARP's coverage fraction f: the share of draws nearer the reference point than θ*.
    pub f: f64,
    /// The rank of each θ*ᵢ among the L thinned draws.
    pub ranks: Vec<u64>,
    /// The largest rank-normalised R̂ over the parameters.
    pub rhat: f64,
    /// The smallest bulk ESS over the parameters.
    pub ess_bulk: f64,
    pub divergences: u64,
}

/// The draws of one pair, with what TARP measured them against.
pub struct PairDraws {
    pub samples: Samples,
    /// The reference point, in normalised coordinates.
    pub reference: Vec<f64>,
}

/// A workspace's posterior, a test file and the settings, checked and opened once.
pub struct CoverageSetup {
    pub run: CoverageRun,
    pub pairs: TestPairs,
    pub priors: Priors,
    pub normalisation: Normalisation,
    posterior: AmortisedPosterior,
}

impl CoverageSetup {
    /// Reads the workspace and the test file (its first `limit` pairs, where given) and opens
    /// the models (conditioned on pair 0's x, which checks the widths).
    pub fn open(
        workspace: &Path,
        test: &Path,
        limit: Option<usize>,
        settings: &CoverageSettings,
    ) -> Result<CoverageSetup> {
        settings.check()?;
        let ws = PosteriorWorkspace::load(workspace)?;
        let mut pairs = TestPairs::read(test, &ws.priors)?;
        if let Some(n) = limit {
            pairs = pairs.first(n)?;
        }
        // The workspace's own observations say how wide x is, where they can be read.
        if let Ok(observed) = ws.observations(None) {
            pairs.check_width(observed.width, &observed.source)?;
        }
        let posterior = ws.posterior(pairs.observations(0))?;
        let (low, high) = pairs.theta_range();
        let run = CoverageRun {
            workspace: workspace.display().to_string(),
            test: test.display().to_string(),
            parameters: ws.priors.names.clone(),
            pairs: pairs.n,
            workspace_fingerprint: ws.model_fingerprint()?,
            test_fingerprint: pairs.fingerprint(),
            settings: settings.clone(),
        };
        Ok(CoverageSetup {
            run,
            pairs,
            priors: ws.priors.clone(),
            normalisation: Normalisation { low, high },
            posterior,
        })
    }

    /// Samples the pairs of `range` in parallel, in pair order; with `keep_draws` their
    /// draws too.
    pub fn sample_pairs(
        &self,
        range: Range<usize>,
        keep_draws: bool,
    ) -> Result<(Vec<PairRecord>, Vec<PairDraws>)> {
        let done: Vec<(PairRecord, PairDraws)> = range
            .into_par_iter()
            .map(|i| self.sample_pair(i))
            .collect::<Result<_>>()?;
        let (records, draws): (Vec<_>, Vec<_>) = done.into_iter().unzip();
        Ok((records, if keep_draws { draws } else { Vec::new() }))
    }

    fn sample_pair(&self, i: usize) -> Result<(PairRecord, PairDraws)> {
        let settings = &self.run.settings;
        let in_pair = |e: Error| {
            Error::Analysis(format!(
                "coverage-bayes, pair {i} of {}: {e}",
                self.pairs.path.display()
            ))
        };
        let posterior = self
            .posterior
            .with_observations(self.pairs.observations(i))
            .map_err(in_pair)?;
        let seed = keyed_stream(settings.seed, i as u64, PAIR_SEED).next_u64();
        let starts = prior_starts(&self.priors, settings.chains, seed).map_err(in_pair)?;
        let samples = sample(&posterior, &starts, &settings.sampler(seed)).map_err(in_pair)?;
        let reference = self.reference(i);
        let theta_star = self.pairs.theta_star(i);
        let dim = samples.dim;
        let normalised: Vec<f64> = samples
            .values
            .chunks(dim)
            .flat_map(|d| self.normalisation.apply(d))
            .collect();
        let f = tarp::coverage_fraction(
            normalised.chunks(dim),
            &self.normalisation.apply(theta_star),
            &reference,
        );
        let pooled = samples.chains * samples.draws;
        let ranks = (0..dim)
            .map(|k| {
                let thinned = sbc::thinned(pooled, settings.sbc_draws);
                sbc::rank(thinned.map(|j| samples.values[j * dim + k]), theta_star[k])
            })
            .collect();
        let diagnostics: Vec<ParameterDiagnostics> = (0..dim)
            .map(|k| ParameterDiagnostics::of(&samples.parameter(k)))
            .collect();
        let record = PairRecord {
            pair: i,
            f,
            ranks,
            rhat: diagnostics.iter().map(|d| d.rhat).fold(f64::NAN, f64::max),
            ess_bulk: diagnostics
                .iter()
                .map(|d| d.ess_bulk)
                .fold(f64::NAN, f64::min),
            divergences: samples.total_divergences(),
        };
        Ok((record, PairDraws { samples, reference }))
    }

    /// Pair i's reference point in normalised coordinates, from its own stream.
    fn reference(&self, i: usize) -> Vec<f64> {
        let mut rng = keyed_stream(self.run.settings.seed, i as u64, REFERENCE);
        match self.run.settings.references {
            References::Prior => self.normalisation.apply(&self.priors.sample(&mut rng)),
            References::Box => (0..self.priors.dim())
                .map(|_| rng.random::<f64>())
                .collect(),
        }
    }
}

/// The TARP test's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TarpResult {
    pub references: References,
    /// Credibility levels α: 0, 1/tarp_bins, …, 1.
    pub alpha: Vec<f64>,
    /// Expected coverage probability at each α: the share of pairs with f < α.
    pub ecp: Vec<f64>,
    /// Bootstrap (pairs resampled with replacement) mean of the ECP at each α.
    pub ecp_bootstrap_mean: Vec<f64>,
    /// Bootstrap standard deviation of the ECP at each α.
    pub ecp_bootstrap_sd: Vec<f64>,
    /// Kolmogorov–Smirnov distance of the f's from Uniform(0, 1): sup |ECP(α) − α|.
    pub ks_distance: f64,
    /// Its asymptotic p-value.
    pub p_value: f64,
    /// The test passes when p_value ≥ threshold.
    pub threshold: f64,
    pub pass: bool,
}

/// One parameter's rank histogram and its uniformity test.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct SbcParameter {
    pub name: String,
    /// Counts per bin, ranks 0 … L in order.
    pub histogram: Vec<u64>,
    /// Pearson's χ² against equal counts.
    pub chi2: f64,
    pub ndf: usize,
    pub p_value: f64,
    /// p_value ≥ the per-parameter threshold.
    pub pass: bool,
}

/// The SBC test's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct SbcResult {
    /// L: draws per pair the ranks are taken among (ranks 0 … L).
    pub draws: usize,
    pub bins: usize,
    /// The settings' threshold divided by the number of parameters (Bonferroni): the whole
    /// test's false-alarm rate stays at most the threshold.
    pub threshold_per_parameter: f64,
    /// The central 99 % range of one bin's count for uniform ranks (Binomial(pairs, 1/bins)).
    pub band_99: [u64; 2],
    pub parameters: Vec<SbcParameter>,
    pub pass: bool,
}

/// A pair whose draws should be looked at: R̂ above [`PAIR_RHAT_LIMIT`], divergences, or a bulk ESS below
/// L (its SBC ranks come from correlated draws).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct FlaggedPair {
    pub pair: usize,
    /// null where undefined (a chain that never moved): such a pair is flagged.
    #[schemars(with = "Option<f64>")]
    pub rhat: f64,
    #[schemars(with = "Option<f64>")]
    pub ess_bulk: f64,
    pub divergences: u64,
}

/// The sampler's health over all pairs.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct SamplingDiagnostics {
    /// The largest R̂ of any pair and parameter (null where no pair's is defined).
    #[schemars(with = "Option<f64>")]
    pub rhat_max: f64,
    /// The smallest bulk ESS of any pair and parameter (null where no pair's is defined).
    #[schemars(with = "Option<f64>")]
    pub ess_bulk_min: f64,
    /// Divergent transitions after warm-up, all pairs.
    pub divergences: u64,
    pub flagged: Vec<FlaggedPair>,
}

/// `nsbi coverage-bayes --json`: TARP and SBC of a posterior on held-out simulations.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CoverageBayesResult {
    #[serde(flatten)]
    pub run: CoverageRun,
    pub tarp: TarpResult,
    pub sbc: SbcResult,
    pub sampling: SamplingDiagnostics,
    /// TARP and every parameter's SBC pass.
    pub pass: bool,
    pub warnings: Vec<String>,
}

/// The tests on the records of every pair of `run` (in pair order).
pub fn summarise(run: &CoverageRun, records: &[PairRecord]) -> CoverageBayesResult {
    let settings = &run.settings;
    let f: Vec<f64> = records.iter().map(|r| r.f).collect();
    let alpha = tarp::credibility_grid(settings.tarp_bins);
    let mut rng = keyed_stream(settings.seed, u64::MAX, BOOTSTRAP);
    let (mean, sd) = tarp::bootstrap(&f, &alpha, settings.bootstrap, &mut rng);
    let (ks_distance, p_value) = tarp::ks_uniform(&f);
    let tarp = TarpResult {
        references: settings.references,
        ecp: tarp::ecp_curve(&f, &alpha),
        alpha,
        ecp_bootstrap_mean: mean,
        ecp_bootstrap_sd: sd,
        ks_distance,
        p_value,
        threshold: settings.threshold,
        pass: p_value >= settings.threshold,
    };
    let per_parameter = settings.threshold / run.parameters.len() as f64;
    let parameters: Vec<SbcParameter> = run
        .parameters
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let ranks = records.iter().map(|r| r.ranks[k]);
            let histogram = sbc::histogram(ranks, settings.sbc_draws, settings.sbc_bins);
            let (chi2, ndf, p_value) = sbc::chi2_uniform(&histogram);
            SbcParameter {
                name: name.clone(),
                histogram,
                chi2,
                ndf,
                p_value,
                pass: p_value >= per_parameter,
            }
        })
        .collect();
    let (low, high) = sbc::count_band(records.len(), settings.sbc_bins, 0.99);
    let sbc = SbcResult {
        draws: settings.sbc_draws,
        bins: settings.sbc_bins,
        threshold_per_parameter: per_parameter,
        band_99: [low, high],
        pass: parameters.iter().all(|p| p.pass),
        parameters,
    };
    let sampling = sampling_diagnostics(records, settings.sbc_draws);
    let warnings = warnings(&tarp, &sbc, &sampling, records.len());
    CoverageBayesResult {
        run: run.clone(),
        pass: tarp.pass && sbc.pass,
        tarp,
        sbc,
        sampling,
        warnings,
    }
}

fn sampling_diagnostics(records: &[PairRecord], sbc_draws: usize) -> SamplingDiagnostics {
    SamplingDiagnostics {
        rhat_max: records.iter().map(|r| r.rhat).fold(f64::NAN, f64::max),
        ess_bulk_min: records.iter().map(|r| r.ess_bulk).fold(f64::NAN, f64::min),
        divergences: records.iter().map(|r| r.divergences).sum(),
        flagged: records
            .iter()
            .filter(|r| {
                r.rhat.is_nan()
                    || r.rhat > PAIR_RHAT_LIMIT
                    || r.divergences > 0
                    || r.ess_bulk.is_nan()
                    || r.ess_bulk < sbc_draws as f64
            })
            .map(|r| FlaggedPair {
                pair: r.pair,
                rhat: r.rhat,
                ess_bulk: r.ess_bulk,
                divergences: r.divergences,
            })
            .collect(),
    }
}

fn warnings(
    tarp: &TarpResult,
    sbc: &SbcResult,
    sampling: &SamplingDiagnostics,
    pairs: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    if !tarp.pass {
        out.push(format!(
            "TARP fails: the expected coverage departs from the diagonal by up to {:.3} \
             (Kolmogorov–Smirnov p = {:.2e} < {}): the posterior is miscalibrated",
            tarp.ks_distance, tarp.p_value, tarp.threshold
        ));
    }
    for p in sbc.parameters.iter().filter(|p| !p.pass) {
        out.push(format!(
            "SBC fails for {}: ranks not uniform (χ² = {:.1} for {} degrees of freedom, p = \
             {:.2e} < {:.2e})",
            p.name, p.chi2, p.ndf, p.p_value, sbc.threshold_per_parameter
        ));
    }
    let count = |keep: &dyn Fn(&FlaggedPair) -> bool| {
        let hit: Vec<usize> = sampling
            .flagged
            .iter()
            .filter(|f| keep(f))
            .map(|f| f.pair)
            .collect();
        let first: Vec<String> = hit.iter().take(10).map(usize::to_string).collect();
        let more = if hit.len() > 10 { ", …" } else { "" };
        (hit.len(), format!("{}{more}", first.join(", ")))
    };
    let (n, list) = count(&|f| f.rhat.is_nan() || f.rhat > PAIR_RHAT_LIMIT);
    if n > 0 {
        out.push(format!(
            "{n} of {pairs} pairs have R-hat > {PAIR_RHAT_LIMIT} (pairs {list}): raise --warmup or \
             --draws"
        ));
    }
    let (n, list) = count(&|f| f.divergences > 0);
    if n > 0 {
        out.push(format!(
            "{n} of {pairs} pairs have divergent transitions ({} in all; pairs {list}): raise \
             --target-accept",
            sampling.divergences
        ));
    }
    let (n, list) = count(&|f| f.ess_bulk.is_nan() || f.ess_bulk < sbc.draws as f64);
    if n > 0 {
        out.push(format!(
            "{n} of {pairs} pairs have a bulk ESS below the {} SBC draws (pairs {list}): their \
             ranks come from correlated draws; raise --draws or lower --sbc-draws",
            sbc.draws
        ));
    }
    out
}

/// The coverage test of every pair (`limit`: the first pairs only), in one process.
pub fn run_coverage(
    workspace: &Path,
    test: &Path,
    limit: Option<usize>,
    settings: &CoverageSettings,
) -> Result<CoverageBayesResult> {
    let setup = CoverageSetup::open(workspace, test, limit, settings)?;
    let (records, _) = setup.sample_pairs(0..setup.run.pairs, false)?;
    Ok(summarise(&setup.run, &records))
}

/// Stages the result's JSON and plots (`stem_tarp`, `stem_sbc`, PNG and SVG) in `outputs`.
pub fn stage_outputs(
    outputs: &mut crate::report::OutputSet,
    result: &CoverageBayesResult,
    json: Option<&Path>,
    plot: Option<&Path>,
) -> Result<()> {
    if let Some(path) = json {
        let value = serde_json::to_value(result).expect("the result serialises");
        outputs.json(path, &value)?;
    }
    if let Some(stem) = plot {
        let suffixed = |s: &str| {
            let mut name = stem.as_os_str().to_owned();
            name.push(s);
            std::path::PathBuf::from(name)
        };
        crate::plot::coverage_bayes::tarp(outputs, &suffixed("_tarp"), result)?;
        crate::plot::coverage_bayes::sbc(outputs, &suffixed("_sbc"), result)?;
    }
    Ok(())
}
