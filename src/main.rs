//! The `nsbi` command line: a thin layer over the library (commands in `cli/`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` that ignores a closed stdout (`nsbi fit W --json f.json | head -1`): the
/// standard one panics with "Broken pipe" and the command stops before writing its files.
/// Results are still computed and files written; only the lines nobody reads are dropped.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("cannot write to standard output: {e}");
            }
        }
    }};
}

mod cli;

#[derive(Parser)]
#[command(
    name = "nsbi",
    version,
    about = "Unbinned likelihood fits with per-event neural density ratios",
    long_about = "nsbi builds unbinned likelihoods from a YAML workspace, HDF5 event files and \
ONNX classifier ensembles that learn per-event density ratios r_c(x) = p_c(x)/p_ref(x); \
channels of `type: binned` (HistFactory histograms, pyhf's modifiers) may sit beside the \
unbinned ones, sharing their parameters, and a pyhf JSON workspace may be given in place of \
the YAML.\n\n\
Typical session:\n  nsbi validate workspace.yaml   # check files, columns, models without running them\n  \
nsbi ratios workspace.yaml     # evaluate and cache every ensemble over every event file\n  \
nsbi calibrate workspace.yaml  # reliability curves of the ratio models on held-out events\n  \
nsbi closure workspace.yaml    # reweighting closure per ratio model and per parameter point\n  \
nsbi fit workspace.yaml        # best fit, errors, profile intervals, pulls\n  \
nsbi scan workspace.yaml --poi mu --range 0.6:1.5 --points 61 --stat-only --plot scan\n  \
nsbi toys workspace.yaml --mu-grid 0.6:1.5:0.025 --toys 1000 --seed 1 --out toys.h5\n  \
nsbi neyman workspace.yaml --toys toys.h5 --json ci.json --plot belt\n  \
nsbi limit workspace.yaml --cl 0.95 --plot brazil   # CLs upper limit, observed and expected\n  \
nsbi significance workspace.yaml                    # q0, p0, Z observed and expected\n  \
nsbi posterior posterior.yaml --chains 4 --draws 2000 --out samples.h5 --json summary.json --plot corner\n  \
nsbi coverage-bayes posterior.yaml --test pairs.h5 --json coverage.json --plot coverage  # TARP and SBC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a workspace without running any network: YAML schema, parameters referenced in
    /// coefficient expressions, event files, groups and columns, ONNX input widths and outputs.
    Validate {
        /// The workspace YAML file.
        workspace: PathBuf,
    },
    /// Evaluate every ratio ensemble over every event file of its channel (observed data,
    /// reference and MC samples) and cache the per-event ratios. A second run only checks
    /// content hashes; any change to a model, an event file or a setting is re-evaluated.
    Ratios(cli::workspace::RatiosArgs),
    /// Maximum-likelihood fit of all free parameters, with Hessian errors, profile-likelihood
    /// (MINOS-like) intervals for the POIs, correlations and nuisance pulls.
    Fit(cli::fit::FitArgs),
    /// Profile-likelihood scan of t = 2ΔNLL in one or two parameters (all others profiled),
    /// with asymptotic 68.27 % / 95.45 % intervals (1-D) or 68.27 % / 95 % regions (2-D; --cl),
    /// JSON and plots.
    Scan(cli::fit::ScanArgs),
    /// Calibration of every ratio model on held-out events: reliability curve of the predicted
    /// class probability s = r/(1+r) against the observed fraction of numerator-class events
    /// (classes balanced), for the ensemble and each member, with ECE, pulls and a χ² test.
    #[command(long_about = cli::diagnostics::CALIBRATE_ABOUT)]
    Calibrate(cli::diagnostics::CalibrateArgs),
    /// Reweighting closure: per ratio model, the reference (denominator) sample reweighted by
    /// r(x) against the process sample; per --mu, the MC mixture at --mu-ref reweighted by
    /// p(x|μ)/p(x|μ_ref) against the MC mixture at μ. Per-feature histograms, χ²/ndf, p-values.
    #[command(long_about = cli::diagnostics::CLOSURE_ABOUT)]
    Closure(cli::diagnostics::ClosureArgs),
    /// Pseudo-experiments for a Neyman construction: at each grid value μ of the POI, toys
    /// bootstrapped from the pooled MC at (μ, α̂̂(μ)) (the conditional best fit on the observed
    /// data: the profile construction), each fitted twice (μ fixed, μ free) for
    /// t_μ = 2(NLL(μ, α̂̂) − NLL(μ̂, α̂)). Toy (grid g, toy t) has its own random stream keyed by
    /// (--seed, g, t): the same toy whatever the threads or shards. Writes an HDF5 file
    /// (format in the README), atomically.
    Toys(cli::neyman::ToysArgs),
    /// The Neyman construction from toy files: critical values of t_μ per grid point at each
    /// level, the observed t_μ curve, and the confidence set {μ : t_obs(μ) ≤ c(μ)} with its
    /// range from the toys' finite number; next to the asymptotic (Wilks) intervals. JSON and
    /// a belt plot (PNG and SVG).
    Neyman(cli::neyman::NeymanArgs),
    /// Merge toy files (or a folder of shard files): checks that they belong to one
    /// construction and that every toy is present exactly once, and names the missing shards.
    Merge(cli::neyman::MergeArgs),
    /// Split a toy run into N shards for a batch farm: writes DIR/submit.sbatch (Slurm job
    /// array) or DIR/submit.sub (HTCondor, `queue N`), and DIR/manifest.json. Each shard writes
    /// DIR/shard_i.h5; `nsbi merge DIR --out FILE` checks every shard is there (naming the
    /// command that re-runs a missing one) and merges. Fills the ratio cache first, so the
    /// shards only read it. With --ratios instead of a toy plan: shard i evaluates its range of
    /// events of every ratio cache entry not complete yet (`nsbi ratios W --shard i/N`), and
    /// the next command reading the cache assembles the parts.
    Batch(Box<cli::batch::BatchArgs>),
    /// Coverage check of a Neyman construction: fresh toys at one of its grid points (another
    /// seed), and the fraction whose confidence interval contains μ_true at each level, with
    /// its binomial error and the construction's own toy-statistics error.
    Coverage(cli::neyman::CoverageArgs),
    /// Convert a workspace from another tool into nsbi's YAML: `nsbi import pyhf ws.json
    /// --out ws.yaml` reads a pyhf JSON workspace (channels, observations, one measurement's
    /// POI and parameter settings) into binned channels. (Every command also takes the JSON
    /// file directly, with its first measurement.)
    Import(cli::workspace::ImportArgs),
    /// Write the binned channels of a workspace in another tool's format: `nsbi export pyhf
    /// ws.yaml --out ws.json` writes pyhf JSON that `pyhf.Workspace` loads.
    Export(cli::workspace::ExportArgs),
    /// Test one value of the POI: CLs, CLs+b, CLb, the p-values and the expected CLs band
    /// (−2σ … +2σ), with the asymptotic (Asimov) calculator or with toys, as pyhf's
    /// `infer.hypotest` (default statistic q̃_μ).
    Hypotest(cli::hypotest::HypotestArgs),
    /// Upper limit on the POI at a confidence level by CLs: observed and expected (−2σ … +2σ),
    /// solved by root finding (asymptotic) or interpolated between tested values (toys);
    /// optional Brazil-band plot.
    Limit(cli::hypotest::LimitArgs),
    /// Discovery significance: q₀, p₀ and Z = Φ⁻¹(1 − p₀) of the data against the
    /// background-only hypothesis, and the median expected under a signal hypothesis.
    Significance(cli::hypotest::SignificanceArgs),
    /// Bayesian posterior of a workspace's `posterior:` section — priors × an amortised ONNX
    /// estimator (nre, nle or npe) given observations — sampled with NUTS (chains in parallel,
    /// bounded parameters in unconstrained coordinates): draws in HDF5 (--out), a summary with
    /// means, quantiles, rank-normalised R-hat and bulk/tail ESS (--json), a corner plot
    /// (--plot), and warnings for R-hat > 1.01, ESS < 400 and divergent transitions.
    Posterior(cli::posterior::PosteriorArgs),
    /// Calibration of a `posterior:` workspace on held-out simulations (--test F.h5: θ* from
    /// the prior, x simulated at θ*): NUTS draws for each x (pairs in parallel), then TARP
    /// (expected coverage against credibility level, bootstrap band, Kolmogorov–Smirnov test)
    /// and SBC (rank histograms per parameter, χ² test), pass/fail at --threshold; JSON,
    /// plots, per-pair draws. Shards over pairs for a batch farm (--shard i/N --out, then
    /// --merge).
    CoverageBayes(cli::posterior::CoverageBayesArgs),
}

fn main() -> ExitCode {
    use cli::{batch, diagnostics, fit, hypotest, neyman, passed, posterior, workspace};
    let outcome: anyhow::Result<(bool, bool)> = match Cli::parse().command {
        Command::Validate { workspace } => workspace::run_validate(&workspace).map(passed),
        Command::Ratios(args) => workspace::run_ratios(&args).map(passed),
        Command::Fit(args) => fit::run_fit(&args).map(passed),
        Command::Scan(args) => fit::run_scan(&args).map(passed),
        Command::Calibrate(args) => {
            diagnostics::run_calibrate(&args.common).map(|pass| (pass, args.common.strict))
        }
        Command::Closure(args) => {
            diagnostics::run_closure(&args).map(|pass| (pass, args.common.strict))
        }
        Command::Toys(args) => neyman::run_toys(&args).map(passed),
        Command::Neyman(args) => neyman::run_neyman(&args).map(passed),
        Command::Merge(args) => neyman::run_merge(&args).map(passed),
        Command::Batch(args) => batch::run_batch(&args).map(passed),
        Command::Coverage(args) => neyman::run_coverage(&args).map(passed),
        Command::Import(args) => workspace::run_import(&args).map(passed),
        Command::Export(args) => workspace::run_export(&args).map(passed),
        Command::Hypotest(args) => hypotest::run_hypotest(&args).map(passed),
        Command::Limit(args) => hypotest::run_limit(&args).map(passed),
        Command::Significance(args) => hypotest::run_significance(&args).map(passed),
        Command::Posterior(args) => posterior::run_posterior_command(&args).map(passed),
        Command::CoverageBayes(args) => {
            posterior::run_coverage_bayes(&args).map(|pass| (pass, args.strict))
        }
    };
    match outcome {
        Ok((true, _)) | Ok((false, false)) => ExitCode::SUCCESS,
        Ok((false, true)) => {
            eprintln!("some diagnostic tests failed (--strict)");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
