//! `nsbi posterior`: NUTS draws of a workspace's `posterior:` section (priors × amortised
//! ONNX estimator), their summary and corner plot; `nsbi coverage-bayes`: TARP and SBC of that
//! posterior on held-out simulations.

use std::path::PathBuf;

use nsbi::bayes::coverage::{
    files, stage_outputs, summarise, CoverageBayesResult, CoverageSettings, CoverageSetup,
    References,
};
use nsbi::bayes::run::{
    run_posterior, write_posterior, PosteriorOutputs, PosteriorReport, ProposalRequest,
};
use nsbi::bayes::SamplerSettings;

use super::{absolute, print_warnings, set_threads};

#[derive(clap::Args)]
pub struct PosteriorArgs {
    /// The workspace YAML file with a `posterior:` section.
    workspace: PathBuf,
    /// Observations from this HDF5 file (the workspace's `dataset`, default `x`) instead of
    /// the workspace's own.
    #[arg(long)]
    observed: Option<PathBuf>,
    /// Chains, run in parallel.
    #[arg(long, default_value = "4")]
    chains: usize,
    /// Kept draws per chain.
    #[arg(long, default_value = "1000")]
    draws: u64,
    /// Warm-up (step size and mass matrix adaptation) iterations per chain, discarded.
    #[arg(long, default_value = "1000")]
    warmup: u64,
    /// Seed: the same seed gives the same draws, whatever --threads.
    #[arg(long, default_value = "0")]
    seed: u64,
    /// Acceptance rate the step size adaptation aims at; raise it (0.9, 0.95) when
    /// divergences are reported.
    #[arg(long, default_value = "0.8")]
    target_accept: f64,
    /// Write the draws (chains × draws × parameters) to this HDF5 file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the summary (means, quantiles, R-hat, ESS, warnings) as JSON
    /// (schemas/posterior.schema.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Corner plot: STEM.png and STEM.svg (1-D and 2-D marginals).
    #[arg(long, value_name = "STEM")]
    plot: Option<PathBuf>,
    /// Write θ points for the next round of simulation and training (sequential NRE/NPE) to
    /// this HDF5 file: `theta` (points × parameters) and `from_prior` flags.
    #[arg(long)]
    proposal_out: Option<PathBuf>,
    /// Points in the proposal (default: chains × draws); the posterior part is thinned evenly.
    #[arg(long)]
    proposal_size: Option<usize>,
    /// Share of the proposal drawn from the prior.
    #[arg(long, default_value = "0")]
    prior_fraction: f64,
    /// Worker threads (default: all cores); the draws do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run_posterior_command(args: &PosteriorArgs) -> anyhow::Result<()> {
    set_threads(args.threads)?;
    let settings = SamplerSettings {
        chains: args.chains,
        warmup: args.warmup,
        draws: args.draws,
        seed: args.seed,
        target_accept: args.target_accept,
        ..SamplerSettings::default()
    };
    let run = run_posterior(&args.workspace, args.observed.as_deref(), &settings)?;
    let written = write_posterior(
        &run,
        &PosteriorOutputs {
            samples: args.out.clone(),
            json: args.json.clone(),
            corner: args.plot.clone(),
            proposal: args.proposal_out.clone().map(|path| {
                let size = args
                    .proposal_size
                    .unwrap_or(args.chains * args.draws as usize);
                (
                    path,
                    ProposalRequest {
                        size,
                        prior_fraction: args.prior_fraction,
                    },
                )
            }),
        },
    )?;
    print_report(&run.report);
    for path in written {
        println!("wrote {}", path.display());
    }
    print_warnings(&run.report.summary.warnings);
    Ok(())
}

fn print_report(report: &PosteriorReport) {
    let s = &report.summary;
    println!(
        "posterior of {} ({} estimator, {} observation(s) from {}): {} chains × {} draws after {} warm-up, seed {}",
        report.workspace,
        report.estimator,
        report.observations,
        report.observed,
        s.chains,
        s.draws_per_chain,
        report.warmup,
        report.seed
    );
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>8} {:>8}",
        "parameter", "mean", "sd", "5%", "50%", "95%", "R-hat", "ESS bulk", "ESS tail"
    );
    for p in &s.parameters {
        println!(
            "{:<14} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>7.4} {:>8.0} {:>8.0}",
            p.name,
            p.mean,
            p.sd,
            p.quantiles.q05,
            p.quantiles.q50,
            p.quantiles.q95,
            p.diagnostics.rhat,
            p.diagnostics.ess_bulk,
            p.diagnostics.ess_tail
        );
    }
    println!("divergent transitions after warm-up: {}", s.divergences);
}

#[derive(clap::Args)]
pub struct CoverageBayesArgs {
    /// The workspace YAML file with a `posterior:` section.
    workspace: PathBuf,
    /// Held-out pairs, HDF5: `theta` [n, len(θ)] drawn from the prior and `x` [n, len(x)]
    /// (or [n, m, len(x)]: m observations per pair) simulated at them.
    #[arg(long)]
    test: PathBuf,
    /// Use only the first N pairs of the test file.
    #[arg(long, value_name = "N")]
    pairs: Option<usize>,
    /// NUTS chains per pair.
    #[arg(long, default_value_t = 4)]
    chains: usize,
    /// Kept draws per chain.
    #[arg(long, default_value_t = 250)]
    draws: u64,
    /// Warm-up iterations per chain.
    #[arg(long, default_value_t = 400)]
    warmup: u64,
    /// Seed: pair i's chains and reference point come from streams keyed by (seed, i), so the
    /// result depends neither on --threads nor on --shard.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 0.8)]
    target_accept: f64,
    /// TARP reference points: `prior` (a prior draw per pair) or `box` (uniform in the
    /// normalised unit box, as the `tarp` package's "random").
    #[arg(long, value_enum, default_value_t = References::Prior)]
    references: References,
    /// L: draws per pair the SBC ranks are taken among, evenly thinned from the pooled chains.
    #[arg(long, default_value_t = 99)]
    sbc_draws: usize,
    /// Bins of the SBC rank histograms (must divide --sbc-draws + 1).
    #[arg(long, default_value_t = 10)]
    sbc_bins: usize,
    /// Intervals of the credibility grid the ECP curve is reported on.
    #[arg(long, default_value_t = 100)]
    tarp_bins: usize,
    /// Bootstrap replicates of the ECP band.
    #[arg(long, default_value_t = 100)]
    bootstrap: usize,
    /// A test fails when its p-value is below this (TARP: Kolmogorov–Smirnov; SBC: χ² per
    /// parameter against threshold / number of parameters).
    #[arg(long, default_value_t = 0.01)]
    threshold: f64,
    /// Write the result (schemas/coverage_bayes.schema.json).
    #[arg(long, conflicts_with = "shard")]
    json: Option<PathBuf>,
    /// Plots STEM_tarp.png/.svg (ECP against credibility) and STEM_sbc.png/.svg (rank
    /// histograms).
    #[arg(long, value_name = "STEM", conflicts_with = "shard")]
    plot: Option<PathBuf>,
    /// Write every sampled pair's draws, θ*, reference point, TARP f and ranks (HDF5).
    #[arg(long, conflicts_with = "merge")]
    samples_out: Option<PathBuf>,
    /// Run only shard i of N of the pairs and write its records to --out (merged by
    /// --merge).
    #[arg(long, value_name = "i/N", requires = "out")]
    shard: Option<String>,
    /// The shard's file.
    #[arg(long, requires = "shard")]
    out: Option<PathBuf>,
    /// Merge shard files (or a `nsbi batch` folder) of this workspace, test file and these
    /// settings instead of sampling; refuses shards made otherwise.
    #[arg(long, num_args = 1.., conflicts_with = "shard")]
    merge: Vec<PathBuf>,
    /// Exit with status 2 when a test fails.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads (default: all cores); the result does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
}

impl CoverageBayesArgs {
    fn settings(&self) -> CoverageSettings {
        CoverageSettings {
            chains: self.chains,
            warmup: self.warmup,
            draws: self.draws,
            seed: self.seed,
            target_accept: self.target_accept,
            references: self.references,
            sbc_draws: self.sbc_draws,
            sbc_bins: self.sbc_bins,
            tarp_bins: self.tarp_bins,
            bootstrap: self.bootstrap,
            threshold: self.threshold,
        }
    }
}

impl CoverageBayesArgs {
    /// For `nsbi batch`: refuses options the farm sets itself, and opens the workspace and the
    /// test file as a shard would; returns the number of pairs.
    pub fn check_for_batch(&self) -> anyhow::Result<usize> {
        if self.shard.is_some() || self.out.is_some() || !self.merge.is_empty() {
            anyhow::bail!("nsbi batch coverage-bayes sets --shard, --out and --merge itself");
        }
        let setup = CoverageSetup::open(&self.workspace, &self.test, self.pairs, &self.settings())?;
        Ok(setup.run.pairs)
    }

    /// The arguments every shard shares, and those of the merge (JSON and plots into `dir`
    /// unless --json and --plot say otherwise).
    pub fn batch_arguments(&self, dir: &std::path::Path) -> (Vec<String>, Vec<String>) {
        let s = self.settings();
        let mut shared = vec![
            "coverage-bayes".to_string(),
            absolute(&self.workspace).display().to_string(),
            "--test".into(),
            absolute(&self.test).display().to_string(),
        ];
        if let Some(n) = self.pairs {
            shared.extend(["--pairs".to_string(), n.to_string()]);
        }
        let references = match s.references {
            References::Prior => "prior",
            References::Box => "box",
        };
        for (flag, value) in [
            ("--chains", s.chains.to_string()),
            ("--warmup", s.warmup.to_string()),
            ("--draws", s.draws.to_string()),
            ("--seed", s.seed.to_string()),
            ("--target-accept", s.target_accept.to_string()),
            ("--references", references.to_string()),
            ("--sbc-draws", s.sbc_draws.to_string()),
            ("--sbc-bins", s.sbc_bins.to_string()),
            ("--tarp-bins", s.tarp_bins.to_string()),
            ("--bootstrap", s.bootstrap.to_string()),
            ("--threshold", s.threshold.to_string()),
        ] {
            shared.extend([flag.to_string(), value]);
        }
        let mut result = shared.clone();
        let json = self
            .json
            .as_deref()
            .map_or_else(|| dir.join("coverage_bayes.json"), absolute);
        let plot = self
            .plot
            .as_deref()
            .map_or_else(|| dir.join("coverage"), absolute);
        result.extend([
            "--merge".to_string(),
            dir.display().to_string(),
            "--json".into(),
            json.display().to_string(),
            "--plot".into(),
            plot.display().to_string(),
        ]);
        (shared, result)
    }
}

/// `nsbi coverage-bayes`: returns whether TARP and SBC pass (a shard: true).
pub fn run_coverage_bayes(args: &CoverageBayesArgs) -> anyhow::Result<bool> {
    set_threads(args.threads)?;
    let setup = CoverageSetup::open(&args.workspace, &args.test, args.pairs, &args.settings())?;
    let n = setup.run.pairs;
    if let (Some(text), Some(out)) = (&args.shard, &args.out) {
        let (i, count) = nsbi::batch::parse_shard(text)?;
        let range = files::shard_pairs(n, i, count);
        let (records, draws) = setup.sample_pairs(range.clone(), args.samples_out.is_some())?;
        files::write_shard(out, &setup.run, (i, count), &records)?;
        println!(
            "shard {i}/{count}: pairs {}..{} of {n} sampled; wrote {}",
            range.start,
            range.end,
            out.display()
        );
        write_draws(args, &setup, &records, &draws)?;
        return Ok(true);
    }
    let records = if args.merge.is_empty() {
        let (records, draws) = setup.sample_pairs(0..n, args.samples_out.is_some())?;
        write_draws(args, &setup, &records, &draws)?;
        records
    } else {
        files::merge_shards(&setup.run, &shard_paths(&args.merge)?)?
    };
    let result = summarise(&setup.run, &records);
    let mut outputs = nsbi::report::OutputSet::new();
    stage_outputs(
        &mut outputs,
        &result,
        args.json.as_deref(),
        args.plot.as_deref(),
    )?;
    let written = outputs.commit()?;
    print_coverage(&result);
    for path in written {
        println!("wrote {}", path.display());
    }
    print_warnings(&result.warnings);
    Ok(result.pass)
}

fn write_draws(
    args: &CoverageBayesArgs,
    setup: &CoverageSetup,
    records: &[nsbi::bayes::coverage::PairRecord],
    draws: &[nsbi::bayes::coverage::PairDraws],
) -> anyhow::Result<()> {
    if let Some(path) = &args.samples_out {
        files::write_draws(path, setup, records, draws)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Shard files: a batch folder's (its manifest names the missing ones), a folder's `*.h5`,
/// or files.
fn shard_paths(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for input in inputs {
        if input.join("manifest.json").is_file() {
            paths.extend(nsbi::batch::Manifest::read(input)?.shard_files(input)?);
        } else if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "h5"))
                .collect();
            found.sort();
            paths.extend(found);
        } else {
            paths.push(input.clone());
        }
    }
    Ok(paths)
}

fn print_coverage(result: &CoverageBayesResult) {
    let (r, t, s) = (&result.run, &result.tarp, &result.sbc);
    let verdict = |pass: bool| if pass { "pass" } else { "FAIL" };
    println!(
        "coverage of {} on {} ({} pairs, {} chains × {} draws each, seed {})",
        r.workspace, r.test, r.pairs, r.settings.chains, r.settings.draws, r.settings.seed
    );
    println!(
        "TARP ({:?} references): max |ECP − α| = {:.4}, KS p = {:.3e} → {} (threshold {})",
        t.references,
        t.ks_distance,
        t.p_value,
        verdict(t.pass),
        t.threshold
    );
    println!(
        "SBC ranks among {} draws, {} bins (99 % band per bin {}–{}):",
        s.draws, s.bins, s.band_99[0], s.band_99[1]
    );
    for p in &s.parameters {
        println!(
            "  {:<14} χ² = {:>7.2} / {:<3} p = {:.3e} → {}",
            p.name,
            p.chi2,
            p.ndf,
            p.p_value,
            verdict(p.pass)
        );
    }
    let d = &result.sampling;
    println!(
        "sampling: R-hat ≤ {:.4}, bulk ESS ≥ {:.0}, {} divergences, {} pairs flagged",
        d.rhat_max,
        d.ess_bulk_min,
        d.divergences,
        d.flagged.len()
    );
    println!("coverage test: {}", verdict(result.pass));
}
