//! `nsbi posterior`: NUTS draws of a workspace's `posterior:` section (priors × amortised
//! ONNX estimator), their summary and corner plot.

use std::path::PathBuf;

use nsbi::bayes::run::{
    run_posterior, write_posterior, PosteriorOutputs, PosteriorReport, ProposalRequest,
};
use nsbi::bayes::SamplerSettings;

use super::{print_warnings, set_threads};

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
