//! The `nsbi` command line: a thin layer over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nsbi::analysis::{default_cache_dir, Analysis, Dataset};
use nsbi::data::RatioCache;
use nsbi::diagnostics;
use nsbi::infer::construction;
use nsbi::infer::hypotest::{
    check_test, AsymptoticCalculator, Calculator, HypotestResult, SignificanceResult, TestSettings,
    ToyCalculator,
};
use nsbi::infer::limit::{upper_limit, LimitSettings};
use nsbi::infer::test_stat::TestStatistic;
use nsbi::infer::test_toys::{self, TestToyFile, TestToyHeader};
use nsbi::infer::toyfile::{self, ModelFingerprint, ToyFile, ToyFileHeader};
use nsbi::infer::toys::ToyPlan;
use nsbi::ratio;
use nsbi::results::{FitOutput, ScanBestFit, ScanOutput};
use nsbi::workspace::Workspace;

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
nsbi significance workspace.yaml                    # q0, p0, Z observed and expected"
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
    Ratios {
        /// The workspace YAML file.
        workspace: PathBuf,
        /// Cache folder (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Write the summary as JSON to this file as well.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Threads for network evaluation (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Do not draw progress bars.
        #[arg(long)]
        quiet: bool,
        /// Farm shard i of N (i from 0): evaluate only this shard's events of every entry not
        /// in the cache, as parts that the next command reading the cache assembles.
        #[arg(long, value_name = "i/N", conflicts_with = "json")]
        shard: Option<String>,
    },
    /// Maximum-likelihood fit of all free parameters, with Hessian errors, profile-likelihood
    /// (MINOS-like) intervals for the POIs, correlations and nuisance pulls.
    Fit {
        /// The workspace YAML file.
        workspace: PathBuf,
        /// Fit the Asimov set (weighted MC) at these values instead of the observed data,
        /// e.g. `mu=1,alpha_eff=0`; unlisted parameters take their `init`.
        #[arg(long)]
        asimov: Option<String>,
        /// Hold parameters constant, e.g. `alpha_shape=0`.
        #[arg(long)]
        fix: Option<String>,
        /// Start the fit from these values, e.g. `mu=2`.
        #[arg(long)]
        set_init: Option<String>,
        /// Skip the profile-likelihood intervals (Hessian errors only).
        #[arg(long)]
        no_minos: bool,
        /// Write the result as JSON (schema in the README).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Cache folder (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Exit 0 even when the Hessian at the end point is not positive definite (a flat or
        /// downward direction, often a parameter at a bound): the point is reported without
        /// errors or correlations. Without this flag such a fit is an error (exit 1).
        #[arg(long)]
        accept_non_pd_hessian: bool,
    },
    /// Profile-likelihood scan of t = 2ΔNLL in one or two parameters (all others profiled),
    /// with asymptotic 68.27 % / 95.45 % intervals (1-D) or regions (2-D), JSON and plots.
    Scan(ScanArgs),
    /// Calibration of every ratio model on held-out events: reliability curve of the predicted
    /// class probability s = r/(1+r) against the observed fraction of numerator-class events
    /// (classes balanced), for the ensemble and each member, with ECE, pulls and a χ² test.
    #[command(long_about = CALIBRATE_ABOUT)]
    Calibrate(CalibrateArgs),
    /// Reweighting closure: per ratio model, the reference (denominator) sample reweighted by
    /// r(x) against the process sample; per --mu, the MC mixture at --mu-ref reweighted by
    /// p(x|μ)/p(x|μ_ref) against the MC mixture at μ. Per-feature histograms, χ²/ndf, p-values.
    #[command(long_about = CLOSURE_ABOUT)]
    Closure(ClosureArgs),
    /// Pseudo-experiments for a Neyman construction: at each grid value μ of the POI, toys
    /// bootstrapped from the pooled MC at (μ, α̂̂(μ)) (the conditional best fit on the observed
    /// data: the profile construction), each fitted twice (μ fixed, μ free) for
    /// t_μ = 2(NLL(μ, α̂̂) − NLL(μ̂, α̂)). Toy (grid g, toy t) has its own random stream keyed by
    /// (--seed, g, t): the same toy whatever the threads or shards. Writes an HDF5 file
    /// (format in the README), atomically.
    Toys(ToysArgs),
    /// The Neyman construction from toy files: critical values of t_μ per grid point at each
    /// level, the observed t_μ curve, and the confidence set {μ : t_obs(μ) ≤ c(μ)} with its
    /// range from the toys' finite number; next to the asymptotic (Wilks) intervals. JSON and
    /// a belt plot (PNG and SVG).
    Neyman(NeymanArgs),
    /// Merge toy files (or a folder of shard files): checks that they belong to one
    /// construction and that every toy is present exactly once, and names the missing shards.
    Merge(MergeArgs),
    /// Split a toy run into N shards for a batch farm: writes DIR/submit.sbatch (Slurm job
    /// array) or DIR/submit.sub (HTCondor, `queue N`), and DIR/manifest.json. Each shard writes
    /// DIR/shard_i.h5; `nsbi merge DIR --out FILE` checks every shard is there (naming the
    /// command that re-runs a missing one) and merges. Fills the ratio cache first, so the
    /// shards only read it. With --ratios instead of a toy plan: shard i evaluates its range of
    /// events of every ratio cache entry not complete yet (`nsbi ratios W --shard i/N`), and
    /// the next command reading the cache assembles the parts.
    Batch(BatchArgs),
    /// Coverage check of a Neyman construction: fresh toys at one of its grid points (another
    /// seed), and the fraction whose confidence interval contains μ_true at each level, with
    /// its binomial error and the construction's own toy-statistics error.
    Coverage(CoverageArgs),
    /// Convert a workspace from another tool into nsbi's YAML: `nsbi import pyhf ws.json
    /// --out ws.yaml` reads a pyhf JSON workspace (channels, observations, one measurement's
    /// POI and parameter settings) into binned channels. (Every command also takes the JSON
    /// file directly, with its first measurement.)
    Import(ImportArgs),
    /// Write the binned channels of a workspace in another tool's format: `nsbi export pyhf
    /// ws.yaml --out ws.json` writes pyhf JSON that `pyhf.Workspace` loads.
    Export(ExportArgs),
    /// Test one value of the POI: CLs, CLs+b, CLb, the p-values and the expected CLs band
    /// (−2σ … +2σ), with the asymptotic (Asimov) calculator or with toys, as pyhf's
    /// `infer.hypotest` (default statistic q̃_μ).
    Hypotest(HypotestArgs),
    /// Upper limit on the POI at a confidence level by CLs: observed and expected (−2σ … +2σ),
    /// solved by root finding (asymptotic) or interpolated between tested values (toys);
    /// optional Brazil-band plot.
    Limit(LimitArgs),
    /// Discovery significance: q₀, p₀ and Z = Φ⁻¹(1 − p₀) of the data against the
    /// background-only hypothesis, and the median expected under a signal hypothesis.
    Significance(SignificanceArgs),
}

/// The options every hypothesis test shares.
#[derive(clap::Args)]
struct TestArgs {
    /// The workspace YAML file (or a pyhf JSON workspace).
    workspace: PathBuf,
    /// The parameter of interest (default: the workspace's POI).
    #[arg(long)]
    poi: Option<String>,
    /// `asymptotic` (Asimov dataset, CCGV formulas) or `toys` (pseudo-experiments under the
    /// tested and the background hypotheses, generated at the data's conditional fits).
    #[arg(long, default_value = "asymptotic")]
    calculator: String,
    /// Toys per hypothesis (toy calculator).
    #[arg(long, default_value_t = 2000)]
    toys: usize,
    /// Seed of the toys: the same seed gives the same toys, whatever the thread count.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stat-only: nuisance parameters frozen at their best fit to the data, in every fit and
    /// in the toys' generation; global observables not randomised.
    #[arg(long)]
    no_syst: bool,
    /// Threads for the toys (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the result as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Cache folder (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Toy calculator on a farm: make only shard i of N (i from 0) of the toys, into --out.
    #[arg(long, value_name = "i/N", requires = "out")]
    shard: Option<String>,
    /// Toy calculator: write the toys (all, or --shard's) to this HDF5 file instead of
    /// testing; `nsbi merge` joins shards, --toys-from tests with them.
    #[arg(long, conflicts_with = "toys_from")]
    out: Option<PathBuf>,
    /// Toy calculator: test with the toys of these files (paths or quoted glob patterns,
    /// merged first) instead of making them.
    #[arg(long, num_args = 1..)]
    toys_from: Vec<String>,
}

#[derive(clap::Args)]
struct HypotestArgs {
    #[command(flatten)]
    common: TestArgs,
    /// The tested value of the POI.
    #[arg(long, allow_hyphen_values = true)]
    value: f64,
    /// Test statistic: qtilde (q̃_μ, default), qmu (q_μ; pyhf's `q`), or q0 (discovery). The
    /// two-sided tmu and tmutilde are the Neyman construction's (`nsbi toys --test-stat`).
    #[arg(long, default_value = "qtilde")]
    test_stat: String,
    /// For --test-stat q0: the signal hypothesis of the expected p-values.
    #[arg(long, default_value_t = 1.0)]
    signal: f64,
}

#[derive(clap::Args)]
struct LimitArgs {
    #[command(flatten)]
    common: TestArgs,
    /// Confidence level of the limit (CLs = 1 − CL there).
    #[arg(long, default_value_t = 0.95)]
    cl: f64,
    /// Tested values low:high (default: from the POI's lower bound, or 0, to its upper bound).
    #[arg(long, allow_hyphen_values = true)]
    range: Option<String>,
    /// Tested values over the range: they bracket the limits (and, with toys, give them by
    /// interpolation); each is a hypothesis test.
    #[arg(long, default_value_t = 21)]
    points: usize,
    /// Test statistic: qtilde (default) or qmu.
    #[arg(long, default_value = "qtilde")]
    test_stat: String,
    /// Brazil-band plot file stem: writes STEM.png and STEM.svg.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SignificanceArgs {
    #[command(flatten)]
    common: TestArgs,
    /// The POI value of the null hypothesis (no signal).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    value: f64,
    /// The signal hypothesis of the expected significance (the Asimov dataset's POI).
    #[arg(long, default_value_t = 1.0)]
    signal: f64,
}

/// Formats of other tools' workspaces.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ForeignFormat {
    /// pyhf JSON workspace (schema 1.0.0).
    Pyhf,
}

#[derive(clap::Args)]
struct ImportArgs {
    format: ForeignFormat,
    /// The workspace file to read.
    input: PathBuf,
    /// The measurement to take the POI and parameter settings from (default: the first).
    #[arg(long)]
    measurement: Option<String>,
    /// The YAML workspace to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct ExportArgs {
    format: ForeignFormat,
    /// The workspace (YAML, or pyhf JSON): its binned channels are written.
    input: PathBuf,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// The measurement's POI, a parameter of the binned channels (default: the workspace's
    /// POI; needed when that acts on unbinned channels only, e.g. `--poi mu_B`).
    #[arg(long)]
    poi: Option<String>,
}

#[derive(clap::Args)]
struct CoverageArgs {
    /// The workspace YAML file.
    workspace: PathBuf,
    /// The construction's toy files (paths or quoted glob patterns).
    #[arg(long, required = true, num_args = 1..)]
    toys: Vec<String>,
    /// The true POI value: one of the construction's grid points.
    #[arg(long, allow_hyphen_values = true)]
    mu_true: f64,
    /// Number of coverage toys.
    #[arg(long, default_value_t = 500)]
    n: usize,
    /// Seed of the coverage toys (must differ from the construction's).
    #[arg(long)]
    seed: u64,
    /// Confidence levels in addition to 0.6827 and 0.9545.
    #[arg(long)]
    cl: Vec<f64>,
    /// Write the result as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Cache folder (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(subcommand_precedence_over_arg = true, subcommand_negates_reqs = true)]
struct BatchArgs {
    /// slurm or condor.
    #[arg(value_enum)]
    scheduler: nsbi::batch::Scheduler,
    /// A hypothesis test whose toy calculator's toys the shards make (instead of a
    /// Neyman construction's toy plan): `nsbi batch slurm hypotest WS --value 1 --calculator
    /// toys --toys N --shards K --dir DIR`.
    #[command(subcommand)]
    test: Option<BatchTest>,
    /// The workspace YAML file.
    workspace: Option<PathBuf>,
    #[command(flatten)]
    plan: Option<ToyPlanArgs>,
    /// Shard the ratio evaluation (`nsbi ratios`) by event ranges instead of making toys.
    #[arg(long, conflicts_with_all = ["mu_grid", "toys"])]
    ratios: bool,
    /// Number of shards (array tasks).
    #[arg(long, global = true, default_value_t = 0)]
    shards: usize,
    /// Folder for the submission, the manifest, the shard files and the logs.
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    /// Cache folder (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// A hypothesis test whose toys a farm makes (`nsbi batch slurm|condor hypotest|limit|significance`).
#[derive(Subcommand)]
enum BatchTest {
    /// The toys of `nsbi hypotest` (same options).
    Hypotest(HypotestArgs),
    /// The toys of `nsbi limit` at every value of its scan (same options).
    Limit(LimitArgs),
    /// The toys of `nsbi significance` (same options).
    Significance(SignificanceArgs),
}

/// What toys to make: shared by `nsbi toys` and `nsbi batch`.
#[derive(clap::Args)]
struct ToyPlanArgs {
    /// The parameter of interest (default: the workspace's first POI).
    #[arg(long)]
    poi: Option<String>,
    /// Grid of true POI values, start:stop:step (inclusive), e.g. 0:3:0.1.
    #[arg(long, allow_hyphen_values = true)]
    mu_grid: String,
    /// Toys per grid point.
    #[arg(long)]
    toys: usize,
    /// Seed of the random streams.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stat-only toys: nuisance parameters frozen at their best fit on the observed data, in
    /// generation and in every fit; global observables not randomised.
    #[arg(long)]
    no_syst: bool,
    /// The statistic of the construction: tmu (t_μ, Feldman–Cousins ordering) or tmutilde
    /// (t̃_μ: the free fit keeps the POI ≥ 0). The toy file records it.
    #[arg(long, default_value = "tmu")]
    test_stat: String,
}

impl ToyPlanArgs {
    /// The same options as `nsbi toys` arguments (for the shards of a batch).
    fn to_arguments(&self) -> Vec<String> {
        let mut out = vec![
            "--mu-grid".to_string(),
            self.mu_grid.clone(),
            "--toys".into(),
            self.toys.to_string(),
            "--seed".into(),
            self.seed.to_string(),
        ];
        if let Some(poi) = &self.poi {
            out.extend(["--poi".to_string(), poi.clone()]);
        }
        if self.no_syst {
            out.push("--no-syst".into());
        }
        out.extend(["--test-stat".to_string(), self.test_stat.clone()]);
        out
    }
}

#[derive(clap::Args)]
struct ToysArgs {
    /// The workspace YAML file.
    workspace: PathBuf,
    #[command(flatten)]
    plan: ToyPlanArgs,
    /// Make only shard i of N (i from 0): a contiguous part of the (grid point, toy) list.
    #[arg(long, value_name = "i/N")]
    shard: Option<String>,
    /// Output HDF5 file.
    #[arg(long)]
    out: PathBuf,
    /// Threads (default: all cores). The results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Cache folder (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct NeymanArgs {
    /// The workspace YAML file (for the observed t_μ curve).
    workspace: PathBuf,
    /// Toy files: paths or glob patterns (quote them), merged before use.
    #[arg(long, required = true, num_args = 1..)]
    toys: Vec<String>,
    /// Confidence levels in addition to 0.6827 and 0.9545.
    #[arg(long)]
    cl: Vec<f64>,
    /// Write the result as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Belt plot: writes PLOT with .png and .svg extensions.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Cache folder (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct MergeArgs {
    /// Toy files or folders (every `*.h5` inside).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The merged file.
    #[arg(long)]
    out: PathBuf,
}

const CALIBRATE_ABOUT: &str = "Calibration of every ratio model on held-out events.

For the ratio r_c = p_c/p_ref of process c, the numerator class is the process's MC sample and \
the denominator class the channel's reference sample; for a shape variation r = p_c(x|α=±1)/p_c(x) \
they are the varied sample (from --holdout) and the nominal process sample. The example \
workspace's MC samples are statistically independent of the training samples, so they are \
held-out events; --holdout replaces any of them.

Both classes are weighted to equal totals (balanced priors); then a perfect ratio makes the \
fraction of numerator events in each bin of s = r/(1+r) equal the mean s in the bin. Errors are \
sum-of-w² errors of the per-event residuals (binomial for unit weights); bins with fewer than \
20 effective entries are drawn but left out of the test. Reported per ensemble and per member: \
ECE (weighted mean |observed - predicted|), max |pull|, χ²/ndf and its p-value, and the \
members' spread of s.

Writes OUT/calibration.json and OUT/calibration_<model>.png/.svg.";

const CLOSURE_ABOUT: &str = "Reweighting closure tests.

1. Per ratio model: the denominator sample (the reference; the nominal process sample for a \
   shape variation given with --holdout) reweighted event by event by r(x), scaled to the \
   numerator's total weight, against the numerator (process) sample.
2. Per --mu value: the weighted MC mixture (the Asimov set) at --mu-ref reweighted by \
   p(x|μ)/p(x|μ_ref)·ν(μ)/ν(μ_ref) from the full model, against the MC mixture at μ. The \
   mixture has negative weights where a coefficient is negative (interference).

Per feature: histograms in bins at the quantiles of the weighted events, with the error of \
target − reweighted in each bin sqrt(Σ (t−u)²) over events with target weight t and \
reweighted weight u (negative weights and events shared by both histograms included), \
χ² = Σ pull², ndf = number of filled bins (nothing is fitted: normalisation is tested too).

Writes OUT/closure.json and OUT/closure_<test>.png/.svg.";

/// Options shared by `calibrate` and `closure`.
#[derive(clap::Args)]
struct DiagnosticArgs {
    /// The workspace YAML file.
    workspace: PathBuf,
    /// Only the ratio models of this process (repeatable; default: all).
    #[arg(long)]
    process: Vec<String>,
    /// Held-out events NAME=FILE (repeatable), NAME being `reference`, a process (e.g. `S`) or
    /// a shape variation (`B/alpha_shape:up`), optionally prefixed by `CHANNEL/`. The file's
    /// group and weight column are those of the workspace sample it replaces (for a shape
    /// variation: of its process's sample).
    #[arg(long)]
    holdout: Vec<String>,
    /// Bins (of s for calibration, per feature for closure).
    #[arg(long, default_value_t = 20)]
    bins: usize,
    /// Family-wise p-value threshold of the run: with N tests (one per reliability curve, or
    /// per feature histogram) each test fails when its p-value is below p-threshold / N
    /// (Bonferroni), so a perfect model fails a run with probability at most p-threshold.
    #[arg(long, default_value_t = 0.01)]
    p_threshold: f64,
    /// Output folder for JSON and plots (default: nsbi-diagnostics/<workspace stem> beside the
    /// workspace).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exit with status 2 when any test fails (for CI).
    #[arg(long)]
    strict: bool,
    /// Cache folder (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CalibrateArgs {
    #[command(flatten)]
    common: DiagnosticArgs,
}

#[derive(clap::Args)]
struct ClosureArgs {
    #[command(flatten)]
    common: DiagnosticArgs,
    /// Values of the POI for the parameter-point test (repeatable; 1.7 as in the ATLAS seeds).
    #[arg(long, default_values_t = [1.7], allow_hyphen_values = true)]
    mu: Vec<f64>,
    /// The POI value of the MC mixture that is reweighted.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    mu_ref: f64,
}

#[derive(clap::Args)]
struct ScanArgs {
    /// The workspace YAML file.
    workspace: PathBuf,
    /// Parameter to scan; give twice for a 2-D scan.
    #[arg(long, required = true)]
    poi: Vec<String>,
    /// Range low:high, one per --poi (e.g. 0:3, or -2:2).
    #[arg(long, required = true, allow_hyphen_values = true)]
    range: Vec<String>,
    /// Grid points per parameter (one value for all, or one per --poi).
    #[arg(long, default_value = "31")]
    points: Vec<usize>,
    /// Also scan with the nuisances frozen at their best-fit values (both curves in the plot).
    #[arg(long)]
    stat_only: bool,
    /// Confidence levels (%) of a 2-D scan's regions, repeatable [default: 68.27 and 95].
    #[arg(long)]
    cl: Vec<f64>,
    /// Scan the Asimov set at these values instead of the observed data.
    #[arg(long)]
    asimov: Option<String>,
    /// Hold parameters constant, e.g. `alpha_shape=0`.
    #[arg(long)]
    fix: Option<String>,
    /// Write the scan as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Plot file stem: writes STEM.png and STEM.svg.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Cache folder (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome: anyhow::Result<(bool, bool)> = match cli.command {
        Command::Validate { workspace } => run_validate(&workspace).map(passed),
        Command::Ratios {
            workspace,
            cache_dir,
            threads,
            shard: Some(shard),
            ..
        } => run_ratio_shard(&workspace, cache_dir, &shard, threads).map(passed),
        Command::Ratios {
            workspace,
            cache_dir,
            json,
            threads,
            quiet,
            shard: None,
        } => run_ratios(&workspace, cache_dir, json, threads, quiet).map(passed),
        Command::Fit {
            workspace,
            asimov,
            fix,
            set_init,
            no_minos,
            json,
            cache_dir,
            accept_non_pd_hessian,
        } => run_fit(
            &workspace, asimov, fix, set_init, !no_minos, json, cache_dir,
        )
        .and_then(|result| check_hessian(&result, accept_non_pd_hessian))
        .map(passed),
        Command::Scan(args) => run_scan(args).map(passed),
        Command::Calibrate(args) => {
            run_calibrate(&args.common).map(|pass| (pass, args.common.strict))
        }
        Command::Closure(args) => run_closure(&args).map(|pass| (pass, args.common.strict)),
        Command::Toys(args) => run_toys(&args).map(passed),
        Command::Neyman(args) => run_neyman(&args).map(passed),
        Command::Merge(args) => run_merge(&args).map(passed),
        Command::Batch(args) => run_batch(&args).map(passed),
        Command::Coverage(args) => run_coverage(&args).map(passed),
        Command::Import(args) => run_import(&args).map(passed),
        Command::Export(args) => run_export(&args).map(passed),
        Command::Hypotest(args) => run_hypotest(&args).map(passed),
        Command::Limit(args) => run_limit(&args).map(passed),
        Command::Significance(args) => run_significance(&args).map(passed),
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

/// (all tests passed, strict): commands without tests always pass.
fn passed(_: ()) -> (bool, bool) {
    (true, false)
}

fn run_import(args: &ImportArgs) -> anyhow::Result<()> {
    let ForeignFormat::Pyhf = args.format;
    let model = nsbi::binned::import_pyhf(&args.input, args.measurement.as_deref(), &args.out)?;
    println!(
        "{}: {} binned channels, {} parameters, {} constraint terms",
        args.out.display(),
        model.channels.len(),
        model.parameters.len(),
        model.constraints.len()
    );
    Ok(())
}

fn run_export(args: &ExportArgs) -> anyhow::Result<()> {
    let ForeignFormat::Pyhf = args.format;
    let model = nsbi::binned::export_pyhf(&args.input, &args.out, args.poi.as_deref())?;
    println!(
        "{}: {} channels as pyhf JSON",
        args.out.display(),
        model.channels.len()
    );
    Ok(())
}

fn run_validate(workspace: &Path) -> anyhow::Result<()> {
    let summary = nsbi::validate::validate(workspace)?;
    for warning in &summary.warnings {
        eprintln!("{}", warning.as_warning());
    }
    println!(
        "{}: valid — {} channel(s), {} event file(s) with {} events, {} ensemble(s) of {} model(s)",
        workspace.display(),
        summary.channels,
        summary.event_files,
        summary.events,
        summary.ensembles,
        summary.models
    );
    Ok(())
}

fn run_ratios(
    workspace: &Path,
    cache_dir: Option<PathBuf>,
    json: Option<PathBuf>,
    threads: Option<usize>,
    quiet: bool,
) -> anyhow::Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    let ws = Workspace::load(workspace)?;
    let cache = RatioCache::new(cache_dir.unwrap_or_else(|| default_cache_dir(&ws)));
    let result = ratio::evaluate_workspace(&ws, &cache, !quiet)?;
    print_ratio_table(&result.records);
    let cached = result.records.iter().filter(|r| r.from_cache).count();
    let assembled = result.records.iter().filter(|r| r.from_parts > 0).count();
    println!(
        "{} ratio set(s): {} evaluated, {} from cache {}{}",
        result.records.len(),
        result.records.len() - cached - assembled,
        cached,
        cache.dir().display(),
        match assembled {
            0 => String::new(),
            n => format!(", {n} assembled from farm parts"),
        }
    );
    if let Some(path) = json {
        nsbi::report::write_json_atomic(&path, &nsbi::report::ratio_records_json(&result.records))?;
    }
    Ok(())
}

fn run_fit(
    workspace: &Path,
    asimov: Option<String>,
    fix: Option<String>,
    set_init: Option<String>,
    minos: bool,
    json: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<nsbi::fit::FitResult> {
    let analysis = load_analysis(workspace, cache_dir)?;
    let dataset = dataset_from(&analysis, asimov.as_deref())?;
    let like = analysis.likelihood(&dataset)?;
    let options = analysis.fit_options(&like, set_init.as_deref(), fix.as_deref())?;
    let report = nsbi::analysis::fit_with_intervals(&like, &options, minos);
    let output = FitOutput::new(&report, &analysis.model);
    print_fit(&output, &dataset);
    if let Some(path) = json {
        nsbi::report::write_json_atomic(&path, &serde_json::to_value(&output)?)?;
    }
    if !report.result.converged {
        anyhow::bail!("fit did not converge: {}", report.result.message);
    }
    Ok(report.result)
}

/// A fit that ended where the Hessian is not positive definite is not a valid minimum: an
/// error unless `--accept-non-pd-hessian`.
fn check_hessian(result: &nsbi::fit::FitResult, accept: bool) -> anyhow::Result<()> {
    if result.hessian == nsbi::fit::HessianStatus::NotPositiveDefinite && !accept {
        anyhow::bail!(
            "the fit ended where the Hessian is not positive definite ({}): no errors, no \
             correlations, and not a minimum in every direction. Fix or bound the flat \
             parameters, or pass --accept-non-pd-hessian to accept the point without errors",
            result.message
        );
    }
    Ok(())
}

fn run_scan(args: ScanArgs) -> anyhow::Result<()> {
    let workspace = args.workspace.as_path();
    let analysis = load_analysis(workspace, args.cache_dir.clone())?;
    let ranges = args
        .range
        .iter()
        .map(|r| nsbi::fit::scan::parse_range(r))
        .collect::<nsbi::Result<Vec<_>>>()?;
    let names: Vec<&str> = args.poi.iter().map(String::as_str).collect();
    let request = nsbi::analysis::ScanRequest::new(
        &analysis.model,
        &names,
        &ranges,
        &args.points,
        args.stat_only,
    )?;
    let parameters = request.parameters.clone();
    let dataset = dataset_from(&analysis, args.asimov.as_deref())?;
    let like = analysis.likelihood(&dataset)?;
    let options = analysis.fit_options(&like, None, args.fix.as_deref())?;
    let mut request = request;
    if !args.cl.is_empty() {
        request.levels = args.cl.clone();
    }
    let (report, scans) = nsbi::analysis::scan_report(&like, &options, &request, true)?;
    print_scan(&report);
    let mut outputs = nsbi::report::OutputSet::new();
    if let Some(path) = &args.json {
        outputs.json(path, &serde_json::to_value(&report)?)?;
    }
    if let Some(stem) = &args.plot {
        let names: Vec<&str> = args.poi.iter().map(String::as_str).collect();
        if parameters.len() == 1 {
            let curves: Vec<nsbi::plot::Curve> = scans
                .iter()
                .zip([(report.label(), false), ("stat-only", true)])
                .map(|(s, (label, dashed))| nsbi::plot::Curve {
                    label: label.into(),
                    points: s.points.iter().map(|p| (p.values[0], p.t)).collect(),
                    dashed,
                })
                .collect();
            nsbi::plot::scan_1d(
                &mut outputs,
                stem,
                names[0],
                &curves,
                &nsbi::fit::scan::THRESHOLDS_1D,
            )?;
        } else {
            let s = &scans[0];
            // Excluded points (no likelihood) have t = NaN: drawn as such.
            let cells: Vec<(f64, f64, f64)> = s
                .points
                .iter()
                .filter(|p| !p.best_fit)
                .map(|p| (p.values[0], p.values[1], p.t))
                .collect();
            let contours = report.curve.contours.as_deref().unwrap_or_default();
            let step = |k: usize| {
                (request.ranges[k].1 - request.ranges[k].0) / (request.points[k] - 1) as f64
            };
            let best = (s.best.theta[parameters[0]], s.best.theta[parameters[1]]);
            nsbi::plot::scan_2d(
                &mut outputs,
                stem,
                (names[0], names[1]),
                &cells,
                (step(0), step(1)),
                best,
                contours,
            )?;
        }
    }
    for path in outputs.commit()? {
        if Some(&path) != args.json.as_ref() {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The `warnings` of a scan or Neyman report, on stderr.
fn print_warnings(report: &serde_json::Value) {
    for warning in report["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", warning.as_str().unwrap_or_default());
    }
}

/// [`format_ends`] of intervals and open-end flags read from a report's JSON.
fn format_intervals(list: &serde_json::Value, open: &serde_json::Value) -> String {
    let list: Vec<[f64; 2]> = serde_json::from_value(list.clone()).unwrap_or_default();
    let open: Vec<[bool; 2]> = serde_json::from_value(open.clone()).unwrap_or_default();
    format_ends(&list, &open)
}

/// Intervals as `[lo, hi] ∪ …`, an end on the grid's edge marked open (the set may go on).
fn format_ends(list: &[[f64; 2]], open: &[[bool; 2]]) -> String {
    let end = |x: f64, open: bool| {
        if open {
            format!("{x:.4} (grid edge: open)")
        } else {
            format!("{x:.4}")
        }
    };
    let text: Vec<String> = list
        .iter()
        .enumerate()
        .map(|(k, iv)| {
            let flags = open.get(k).copied().unwrap_or_default();
            format!("[{}, {}]", end(iv[0], flags[0]), end(iv[1], flags[1]))
        })
        .collect();
    if text.is_empty() {
        "none".into()
    } else {
        text.join(" ∪ ")
    }
}

/// The workspace, what to look at, and where the outputs go.
fn prepare_diagnostics(
    args: &DiagnosticArgs,
) -> anyhow::Result<(Workspace, Vec<diagnostics::Holdout>, PathBuf)> {
    if args.bins < 2 {
        anyhow::bail!("--bins must be at least 2");
    }
    if !(args.p_threshold > 0.0 && args.p_threshold < 1.0) {
        anyhow::bail!("--p-threshold must lie in (0, 1), got {}", args.p_threshold);
    }
    let ws = Workspace::load(&args.workspace)?;
    let holdouts = args
        .holdout
        .iter()
        .map(|h| diagnostics::Holdout::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| diagnostics::default_output_dir(&args.workspace));
    std::fs::create_dir_all(&out)
        .map_err(|e| anyhow::anyhow!("cannot create output folder {}: {e}", out.display()))?;
    Ok((ws, holdouts, out))
}

fn run_calibrate(args: &DiagnosticArgs) -> anyhow::Result<bool> {
    let (ws, holdouts, out) = prepare_diagnostics(args)?;
    let selection = diagnostics::select(&ws, &args.process, &holdouts)?;
    let report = diagnostics::calibrate(&ws, &selection, args.bins, args.p_threshold)?;
    print_calibration(&report);
    let mut outputs = nsbi::report::OutputSet::new();
    outputs.json(&out.join("calibration.json"), &report.to_json())?;
    for m in &report.models {
        let stem = out.join(format!("calibration_{}", diagnostics::file_stem(&m.label)));
        nsbi::plot::diagnostics::reliability(
            &mut outputs,
            &stem,
            &m.label,
            &m.ensemble,
            &m.members,
        )?;
    }
    for path in outputs.commit()? {
        println!("wrote {}", path.display());
    }
    Ok(report.all_pass())
}

fn run_closure(args: &ClosureArgs) -> anyhow::Result<bool> {
    let common = &args.common;
    let (ws, holdouts, out) = prepare_diagnostics(common)?;
    let cache = RatioCache::new(
        common
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&ws)),
    );
    let mut tests = {
        let selection = diagnostics::select(&ws, &common.process, &holdouts)?;
        let tests = diagnostics::ratio_closures(&ws, &selection, &cache, common.bins)?;
        (tests, selection.skipped)
    };
    let analysis = Analysis::from_workspace(ws, &cache, true)?;
    let pois = analysis.model.pois();
    if !args.mu.is_empty() {
        let [poi] = pois.as_slice() else {
            anyhow::bail!(
                "--mu needs a model with exactly one POI (this one has {})",
                pois.len()
            );
        };
        let name = analysis.model.parameters[*poi].name.clone();
        let point = |value: f64| -> anyhow::Result<Vec<f64>> {
            let mut theta = analysis.model.init();
            for (i, v) in analysis.assignments(&format!("{name}={value}"), "--mu")? {
                theta[i] = v;
            }
            Ok(theta)
        };
        let reference = point(args.mu_ref)?;
        for &mu in &args.mu {
            tests.0.extend(diagnostics::parameter_closure(
                &analysis,
                &reference,
                &point(mu)?,
                &format!("{name}={mu}"),
                common.bins,
            )?);
        }
    }
    let report = diagnostics::ClosureReport {
        tests: tests.0,
        skipped: tests.1,
        bins: common.bins,
        p_threshold: common.p_threshold,
    };
    print_closure(&report);
    let mut outputs = nsbi::report::OutputSet::new();
    outputs.json(&out.join("closure.json"), &report.to_json())?;
    for test in &report.tests {
        let stem = out.join(format!("closure_{}", diagnostics::file_stem(&test.name)));
        nsbi::plot::diagnostics::closure(&mut outputs, &stem, test)?;
    }
    for path in outputs.commit()? {
        println!("wrote {}", path.display());
    }
    Ok(report.all_pass())
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "pass"
    } else {
        "FAIL"
    }
}

fn print_calibration(report: &diagnostics::CalibrationReport) {
    println!(
        "{:<28} {:>15} {:>8} {:>12} {:>10} {:>9} {:>17} {:>8}  result",
        "ratio model",
        "events num/den",
        "ECE",
        "chi2/ndf",
        "p-value",
        "max|pull|",
        "member ECE",
        "spread"
    );
    for m in &report.models {
        let c = &m.ensemble;
        let eces: Vec<f64> = m.members.iter().map(|c| c.ece).collect();
        let (lo, hi) = eces
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), e| {
                (a.min(*e), b.max(*e))
            });
        println!(
            "{:<28} {:>15} {:>8.4} {:>12} {:>10.3e} {:>9.2} {:>17} {:>8.4}  {}",
            m.label,
            format!("{}/{}", m.numerator.len(), m.denominator.len()),
            c.ece,
            format!("{:.1}/{}", c.chi2, c.ndf),
            c.p_value,
            c.max_abs_pull,
            format!("{lo:.4}..{hi:.4}"),
            m.mean_spread,
            verdict(report.passes(m))
        );
        let bad = c.bad_bins();
        if !bad.is_empty() {
            let text: Vec<String> = bad
                .iter()
                .take(5)
                .map(|&b| {
                    let bin = &c.bins[b];
                    format!(
                        "s in [{:.2}, {:.2}): observed {:.4} vs predicted {:.4} (pull {:+.1})",
                        bin.low,
                        bin.high,
                        bin.observed,
                        bin.mean_predicted,
                        bin.pull.unwrap_or(f64::NAN)
                    )
                })
                .collect();
            println!("    bins beyond 3σ: {}", text.join("; "));
        }
    }
    for s in &report.skipped {
        println!("skipped {s}");
    }
    println!(
        "family-wise p threshold {} over {} test(s): each needs p ≥ {:.3e}",
        report.p_threshold,
        report.models.len(),
        report.per_test_threshold()
    );
}

fn print_closure(report: &diagnostics::ClosureReport) {
    let threshold = report.per_test_threshold();
    println!(
        "{:<24} {:<14} {:>12} {:>8} {:>10}  result",
        "closure test", "feature", "chi2/ndf", "ratio", "p-value"
    );
    for test in &report.tests {
        for f in &test.features {
            println!(
                "{:<24} {:<14} {:>12} {:>8.2} {:>10.3e}  {}",
                test.name,
                f.feature,
                format!("{:.1}/{}", f.chi2, f.ndf),
                f.chi2 / f.ndf.max(1) as f64,
                f.p_value,
                verdict(f.p_value >= threshold)
            );
            let bad = f.bad_bins();
            if f.p_value < threshold && !bad.is_empty() {
                let e = &f.histogram.edges;
                let text: Vec<String> = bad
                    .iter()
                    .take(5)
                    .map(|(b, p)| format!("[{:.4}, {:.4}] pull {p:+.1}", e[*b], e[b + 1]))
                    .collect();
                println!("    bins beyond 3σ: {}", text.join("; "));
            }
        }
        println!(
            "{:<24} {:<14} total target {:.6} vs reweighted {:.6}  → {}",
            test.name,
            "(all)",
            test.target_total,
            test.reweighted_total,
            verdict(test.passes(threshold))
        );
    }
    for s in &report.skipped {
        println!("skipped {s}");
    }
    let n: usize = report.tests.iter().map(|t| t.features.len()).sum();
    println!(
        "family-wise p threshold {} over {n} feature test(s): each needs p ≥ {threshold:.3e}",
        report.p_threshold
    );
}

fn dataset_from(analysis: &Analysis, asimov: Option<&str>) -> anyhow::Result<Dataset> {
    Ok(analysis.dataset(asimov)?)
}

fn print_scan(report: &ScanOutput) {
    if let Some(poi) = &report.poi {
        let best = match report.best_fit {
            ScanBestFit::One(x) => x,
            ScanBestFit::ByName(_) => f64::NAN,
        };
        println!("scan of {poi}: best fit {best:.6}");
        let curves = [(report.label(), Some(&report.curve))];
        for (label, curve) in curves
            .into_iter()
            .chain([("stat-only", report.stat_only.as_ref())])
        {
            let Some(curve) = curve else { continue };
            let (Some(intervals), Some(open_ends)) = (&curve.intervals, &curve.open_ends) else {
                continue;
            };
            for (cl, list) in intervals {
                let open = open_ends.get(cl).map_or(&[][..], Vec::as_slice);
                println!(
                    "  {label:<10} {cl:>6} % CL (asymptotic): {}",
                    format_ends(list, open)
                );
            }
        }
    } else {
        println!(
            "2-D scan of {}: best fit {}",
            serde_json::to_string(&report.pois).unwrap_or_default(),
            serde_json::to_string(&report.best_fit).unwrap_or_default()
        );
        print_contours(report);
    }
    print_result_warnings(&report.warnings);
}

/// One line per 2-D region: its threshold, polylines and extent on the grid.
fn print_contours(report: &ScanOutput) {
    let label = report.label();
    for contour in report.curve.contours.iter().flatten() {
        let points = contour.polylines.iter().flatten();
        let extent = |k: usize| {
            let lo = points.clone().map(|p| p[k]).fold(f64::INFINITY, f64::min);
            (
                lo,
                points
                    .clone()
                    .map(|p| p[k])
                    .fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let ((x0, x1), (y0, y1)) = (extent(0), extent(1));
        let closed = contour.closed.iter().filter(|&&c| c).count();
        println!(
            "  {label:<10} {:>6} % CL (asymptotic, t ≤ {:.3}): {} polyline(s), {closed} closed; \
             [{x0:.4}, {x1:.4}] × [{y0:.4}, {y1:.4}]",
            contour.cl,
            contour.threshold,
            contour.polylines.len(),
        );
    }
    if let Some(excluded) = report
        .curve
        .excluded_points
        .as_ref()
        .filter(|e| !e.is_empty())
    {
        println!(
            "  {} grid point(s) excluded (no likelihood), e.g. {}",
            excluded.len(),
            serde_json::to_string(&excluded[0]).unwrap_or_default()
        );
    }
}

fn print_fit(fit: &FitOutput, dataset: &Dataset) {
    let status = &fit.status;
    if status.hessian == nsbi::fit::HessianStatus::NotPositiveDefinite.as_str() {
        println!("WARNING: the Hessian is not positive definite: no errors, no correlations");
    }
    print_bound_and_minos_warnings(fit);
    println!(
        "fit to {}: {} ({} evaluations, EDM {:.2e})  NLL = {:.6}",
        match dataset {
            Dataset::Observed => "observed data".to_string(),
            Dataset::Asimov(_) => "Asimov data".to_string(),
        },
        status.message,
        status.n_eval,
        status.edm,
        fit.nll
    );
    if let Some(line) = nsbi::likelihood::normalisation::report_line(&fit.normalisation) {
        println!("{line}");
    }
    for channel in &fit.binned_channels {
        println!("{}", channel.summary());
    }
    println!(
        "{:<20} {:>12} {:>10} {:>10} {:>10}  note",
        "parameter", "value", "error", "-err", "+err"
    );
    for (name, p) in &fit.parameters {
        let note = if p.fixed {
            "fixed".to_string()
        } else if p.at_bound {
            "at bound".to_string()
        } else if let Some(pull) = p.pull {
            let pull = format!("pull {pull:+.3}");
            match p.constraint {
                Some(width) => format!("{pull}, constraint {width:.3}"),
                None => pull,
            }
        } else {
            String::new()
        };
        println!(
            "{:<20} {:>12.6} {:>10} {:>10} {:>10}  {note}",
            name,
            p.value,
            error_cell(p.error, 1.0),
            error_cell(p.error_low, -1.0),
            error_cell(p.error_high, 1.0),
        );
    }
}

/// The warnings of a fit that ended on a bound (no error for the parameters there) and of a
/// MINOS interval with an end not found.
fn print_bound_and_minos_warnings(fit: &FitOutput) {
    let names = fit.at_bound();
    if !names.is_empty() {
        println!(
            "WARNING: the minimum lies on a bound of {}: not a stationary point there, so no \
             error for {}",
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" },
        );
    }
    for note in fit.minos.iter().flat_map(|interval| &interval.notes) {
        println!("WARNING: {note}");
    }
}

/// An error column of `print_fit`: the value times `sign`, or "n/a" where there is none.
fn error_cell(error: Option<f64>, sign: f64) -> String {
    error.map_or_else(|| "n/a".to_string(), |e| format!("{:.6}", sign * e))
}

/// The toy plan the command-line options ask for, checked against the workspace's parameters.
fn toy_plan(analysis: &Analysis, args: &ToyPlanArgs) -> anyhow::Result<ToyPlan> {
    let poi = poi_index(analysis, args.poi.as_deref())?;
    if args.toys == 0 {
        anyhow::bail!("--toys must be at least 1");
    }
    let grid = construction::parse_grid(&args.mu_grid)?;
    construction::check_toy_count(grid.len(), args.toys)?;
    let statistic = TestStatistic::parse(&args.test_stat)?;
    if statistic.is_one_sided() {
        anyhow::bail!(
            "--test-stat {statistic}: the Neyman construction takes a two-sided statistic, tmu \
             or tmutilde (one-sided tests: nsbi hypotest, nsbi limit)"
        );
    }
    Ok(ToyPlan {
        poi,
        grid,
        n_toys: args.toys,
        seed: args.seed,
        // Without a free nuisance parameter the toys are stat-only, and say so.
        systematics: !args.no_syst && analysis.model.has_free_nuisances(),
        statistic,
    })
}

/// The model takes the POI bounds of the toys' statistic (t̃_μ keeps the POI ≥ 0) before
/// anything is fitted.
fn use_statistic_bounds(analysis: &mut Analysis, poi: usize, statistic: TestStatistic) {
    let bounds = &mut analysis.model.parameters[poi].bounds;
    *bounds = statistic.poi_bounds(*bounds);
}

fn parse_shard(text: &str) -> anyhow::Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("--shard '{text}': expected i/N with 0 ≤ i < N");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse()?, n.trim().parse()?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn run_toys(args: &ToysArgs) -> anyhow::Result<()> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    let shard = args
        .shard
        .as_deref()
        .map(parse_shard)
        .transpose()?
        .unwrap_or((0, 1));
    let mut analysis = load_analysis(&args.workspace, args.cache_dir.clone())?;
    let plan = toy_plan(&analysis, &args.plan)?;
    use_statistic_bounds(&mut analysis, plan.poi, plan.statistic);
    // The toys' pools first: the observed fits' normalisation then shares their shape inputs.
    analysis.pools()?;
    let profile = construction::observed_profile(&analysis, &plan)?;
    let jobs = plan.shard(shard.0, shard.1);
    let bar = indicatif::ProgressBar::new(jobs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("toys {bar:40} {pos}/{len} {elapsed} (eta {eta})")
            .expect("valid template"),
    );
    let records = construction::make_toys(&analysis, &plan, &profile, jobs, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let names = analysis
        .model
        .parameters
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let fingerprint = ModelFingerprint::of(&analysis);
    let header = ToyFileHeader::new(&args.workspace, &plan, names, fingerprint, shard);
    ToyFile { header, records }.write(&args.out)?;
    println!(
        "{} toys (shard {}/{}) written to {}",
        plan.shard(shard.0, shard.1).len(),
        shard.0,
        shard.1,
        args.out.display()
    );
    Ok(())
}

/// Toy files named by paths, folders (their `*.h5`) or glob patterns.
fn toy_paths(inputs: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for input in inputs {
        let pattern = if Path::new(input).is_dir() {
            format!("{}/*.h5", input.trim_end_matches('/'))
        } else {
            input.clone()
        };
        let before = paths.len();
        for entry in glob::glob(&pattern)? {
            paths.push(entry?);
        }
        if paths.len() == before {
            anyhow::bail!("no toy file matches '{input}'");
        }
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

fn run_merge(args: &MergeArgs) -> anyhow::Result<()> {
    let mut paths = Vec::new();
    for input in &args.inputs {
        // A batch folder: its manifest says which shard files must be there.
        if input.join("manifest.json").is_file() {
            paths.extend(nsbi::batch::Manifest::read(input)?.shard_files(input)?);
        } else {
            paths.extend(toy_paths(&[input.display().to_string()])?);
        }
    }
    if paths
        .first()
        .and_then(|p| test_toys::file_format(p))
        .as_deref()
        == Some(test_toys::FORMAT)
    {
        let merged = test_toys::merge(&paths)?;
        merged.write(&args.out)?;
        println!(
            "{} toy statistics of a hypothesis test merged into {}",
            merged.records.len(),
            args.out.display()
        );
        return Ok(());
    }
    let merged = toyfile::merge(&paths)?;
    merged.write(&args.out)?;
    println!(
        "{} toys merged into {}",
        merged.records.len(),
        args.out.display()
    );
    Ok(())
}

fn run_neyman(args: &NeymanArgs) -> anyhow::Result<()> {
    let merged = toyfile::merge(&toy_paths(&args.toys)?)?;
    let mut analysis = load_analysis(&args.workspace, args.cache_dir.clone())?;
    let header = &merged.header;
    let poi = analysis.model.parameter_index(&header.poi).ok_or_else(|| {
        anyhow::anyhow!("the toys' POI '{}' is not in this workspace", header.poi)
    })?;
    use_statistic_bounds(&mut analysis, poi, header.test_stat);
    header.require_model(&analysis, &args.toys.join(" "))?;
    let plan = ToyPlan {
        poi,
        grid: header.grid.clone(),
        n_toys: header.n_toys,
        seed: header.seed,
        systematics: header.systematics,
        statistic: header.test_stat,
    };
    let observed = construction::observed_profile(&analysis, &plan)?.t();
    let result = construction::neyman(
        header,
        &merged.records,
        observed,
        &levels(&args.cl)?,
        &analysis.model,
    )?;
    let json = &result.json;
    for (label, iv) in json["intervals"].as_object().into_iter().flatten() {
        let text = format_intervals(iv, &json["open_ends"][label]);
        println!("{label} % Neyman interval(s) of {}: {text}", header.poi);
    }
    for (label, iv) in json["asymptotic_intervals"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let text = format_intervals(iv, &json["asymptotic_open_ends"][label]);
        println!("{label} % asymptotic interval(s): {text}");
    }
    print_warnings(json);
    let mut outputs = nsbi::report::OutputSet::new();
    if let Some(path) = &args.json {
        outputs.json(path, json)?;
    }
    if let Some(stem) = &args.plot {
        let points = |v: &[f64]| header.grid.iter().copied().zip(v.iter().copied()).collect();
        let mut curves = vec![nsbi::plot::Curve {
            label: "observed t".into(),
            points: points(&result.observed_t),
            dashed: false,
        }];
        for (label, c) in &result.critical {
            curves.push(nsbi::plot::Curve {
                label: format!("critical value {label} %"),
                points: points(c),
                dashed: true,
            });
        }
        let thresholds = nsbi::fit::scan::THRESHOLDS_1D;
        nsbi::plot::scan_1d(&mut outputs, stem, &header.poi, &curves, &thresholds)?;
    }
    outputs.commit()?;
    Ok(())
}

fn levels(extra: &[f64]) -> anyhow::Result<Vec<f64>> {
    let mut levels = vec![0.6827, 0.9545];
    for &cl in extra {
        if !(cl > 0.0 && cl < 1.0) {
            anyhow::bail!("--cl {cl}: a confidence level lies strictly between 0 and 1");
        }
        levels.push(cl);
    }
    Ok(levels)
}

fn run_coverage(args: &CoverageArgs) -> anyhow::Result<()> {
    let construction = toyfile::merge(&toy_paths(&args.toys)?)?;
    let grid_index = construction
        .header
        .grid
        .iter()
        .position(|&mu| (mu - args.mu_true).abs() < 1e-9)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--mu-true {} is not a grid point of the construction ({:?})",
                args.mu_true,
                construction.header.grid
            )
        })?;
    let mut analysis = load_analysis(&args.workspace, args.cache_dir.clone())?;
    let header = &construction.header;
    let poi = analysis.model.parameter_index(&header.poi).ok_or_else(|| {
        anyhow::anyhow!("the toys' POI '{}' is not in this workspace", header.poi)
    })?;
    use_statistic_bounds(&mut analysis, poi, header.test_stat);
    header.require_model(&analysis, &args.toys.join(" "))?;
    let bar = indicatif::ProgressBar::new(args.n as u64);
    let report = construction::coverage(
        &analysis,
        &construction,
        grid_index,
        args.n,
        args.seed,
        &levels(&args.cl)?,
        &|| bar.inc(1),
    )?;
    bar.finish_and_clear();
    for (label, row) in report["levels"].as_object().into_iter().flatten() {
        println!(
            "{label} %: coverage {:.4} ± {:.4} (construction ± {:.4}), pull {:.2}",
            row["coverage"].as_f64().unwrap_or(f64::NAN),
            row["error"].as_f64().unwrap_or(f64::NAN),
            row["construction_error"].as_f64().unwrap_or(f64::NAN),
            row["pull"].as_f64().unwrap_or(f64::NAN),
        );
    }
    if let Some(path) = &args.json {
        nsbi::report::write_json_atomic(path, &report)?;
    }
    Ok(())
}

fn run_batch(args: &BatchArgs) -> anyhow::Result<()> {
    if args.shards == 0 {
        anyhow::bail!("--shards must be at least 1");
    }
    if let Some(test) = &args.test {
        return run_batch_test(args, test);
    }
    let Some(plan_args) = &args.plan else {
        if args.ratios {
            return run_batch_ratios(args);
        }
        anyhow::bail!("nsbi batch needs a toy plan (--mu-grid and --toys) or --ratios");
    };
    let (ws, cache_dir) = batch_workspace(args)?;
    let mut analysis = Analysis::from_workspace(ws, &RatioCache::new(cache_dir.clone()), true)?;
    let mut toys_arguments = vec![
        "toys".to_string(),
        absolute(batch_workspace_path(args)?).display().to_string(),
    ];
    toys_arguments.extend(plan_args.to_arguments());
    toys_arguments.extend(["--cache-dir".to_string(), cache_dir.display().to_string()]);
    // The same checks `nsbi toys` makes, now rather than on the farm.
    let plan = toy_plan(&analysis, plan_args)?;
    use_statistic_bounds(&mut analysis, plan.poi, plan.statistic);
    construction::observed_profile(&analysis, &plan)?;
    let dir = absolute(batch_dir(args)?);
    let manifest =
        nsbi::batch::Manifest::new(&std::env::current_exe()?, toys_arguments, args.shards);
    let submission = nsbi::batch::write_submission(&dir, args.scheduler, manifest)?;
    println!(
        "{} shards of {} toys: submission {}, manifest {}",
        args.shards,
        plan.n_jobs(),
        submission.display(),
        dir.join("manifest.json").display()
    );
    Ok(())
}

/// A path made absolute where the system can (a batch job runs from another folder).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The workspace of a batch submission and its cache folder, made absolute for the farm.
fn batch_workspace(args: &BatchArgs) -> anyhow::Result<(Workspace, PathBuf)> {
    let ws = Workspace::load(batch_workspace_path(args)?)?;
    let cache_dir = absolute(
        &args
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&ws)),
    );
    Ok((ws, cache_dir))
}

/// `nsbi batch … --ratios`: a job array whose shard i runs `nsbi ratios W --shard i/N`. The
/// workspace and its models are checked here, and nothing is evaluated.
fn run_batch_ratios(args: &BatchArgs) -> anyhow::Result<()> {
    let (ws, cache_dir) = batch_workspace(args)?;
    let pending = ratio::shard::pending_entries(&ws, &RatioCache::new(cache_dir.clone()))?;
    let arguments = vec![
        "ratios".to_string(),
        absolute(batch_workspace_path(args)?).display().to_string(),
        "--cache-dir".into(),
        cache_dir.display().to_string(),
        "--quiet".into(),
    ];
    let dir = absolute(batch_dir(args)?);
    let manifest = nsbi::batch::Manifest::ratios(&std::env::current_exe()?, arguments, args.shards);
    let submission = nsbi::batch::write_submission(&dir, args.scheduler, manifest)?;
    println!(
        "{} shards over {} ratio cache entries to evaluate ({} events): submission {}, \
         manifest {}",
        args.shards,
        pending.len(),
        pending.iter().sum::<usize>(),
        submission.display(),
        dir.join("manifest.json").display()
    );
    Ok(())
}

/// `nsbi ratios W --shard i/N`: this shard's parts of the entries not in the cache.
fn run_ratio_shard(
    workspace: &Path,
    cache_dir: Option<PathBuf>,
    shard: &str,
    threads: Option<usize>,
) -> anyhow::Result<()> {
    use ratio::shard::PartOutcome;
    let shard = parse_shard(shard)?;
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    let ws = Workspace::load(workspace)?;
    let cache = RatioCache::new(cache_dir.unwrap_or_else(|| default_cache_dir(&ws)));
    let records = ratio::shard::evaluate_workspace_shard(&ws, &cache, shard)?;
    for r in &records {
        println!(
            "{:<36} {:<22} events {:>9}..{:<9} of {:>9}  {:?}",
            r.ensemble,
            r.role.to_string(),
            r.events.start,
            r.events.end,
            r.n_events,
            r.outcome
        );
    }
    let count = |o| records.iter().filter(|r| r.outcome == o).count();
    println!(
        "shard {}/{}: {} part(s) evaluated, {} already present, {} entries complete, {} with no \
         events in this shard; cache {}",
        shard.0,
        shard.1,
        count(PartOutcome::Evaluated),
        count(PartOutcome::PartPresent),
        count(PartOutcome::EntryComplete),
        count(PartOutcome::NoEvents),
        cache.dir().display()
    );
    Ok(())
}

/// Loads a workspace with its model and cached ratios (evaluating what is not cached yet).
/// The analysis and settings of a hypothesis test: the POI, the statistic (whose POI bounds
/// the model takes: the tilde statistics keep the POI ≥ 0), the thread pool.
fn test_setup(
    common: &TestArgs,
    statistic: TestStatistic,
    signal: f64,
) -> anyhow::Result<(Analysis, TestSettings, Vec<String>)> {
    if let Some(n) = common.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {n}: {e}"))?;
    }
    let mut analysis = load_analysis(&common.workspace, common.cache_dir.clone())?;
    let poi = poi_index(&analysis, common.poi.as_deref())?;
    let parameter = &mut analysis.model.parameters[poi];
    let warnings: Vec<String> = statistic
        .bounds_warning(&parameter.name, parameter.bounds)
        .into_iter()
        .collect();
    parameter.bounds = statistic.poi_bounds(parameter.bounds);
    let settings = TestSettings {
        poi,
        statistic,
        signal,
        systematics: !common.no_syst && analysis.model.has_free_nuisances(),
    };
    Ok((analysis, settings, warnings))
}

/// The parameter named by `--poi`, or the workspace's first POI.
fn poi_index(analysis: &Analysis, name: Option<&str>) -> anyhow::Result<usize> {
    Ok(match name {
        Some(name) => analysis
            .model
            .parameter_index(name)
            .ok_or_else(|| anyhow::anyhow!("--poi: unknown parameter '{name}'"))?,
        None => *analysis
            .model
            .pois()
            .first()
            .ok_or_else(|| anyhow::anyhow!("the workspace declares no POI: give --poi"))?,
    })
}

/// The calculator `--calculator` names.
fn calculator<'a>(
    analysis: &'a Analysis,
    settings: &TestSettings,
    common: &TestArgs,
) -> anyhow::Result<Box<dyn Calculator + 'a>> {
    if !common.toys_from.is_empty() && common.calculator != "toys" {
        anyhow::bail!("--toys-from tests with stored toys: give --calculator toys");
    }
    Ok(match common.calculator.as_str() {
        "asymptotic" => Box::new(AsymptoticCalculator::new(analysis, settings)?),
        "toys" if !common.toys_from.is_empty() => {
            let files = common.toys_from.join(" ");
            let merged = test_toys::merge(&toy_paths(&common.toys_from)?)?;
            Box::new(ToyCalculator::from_file(
                analysis, settings, merged, &files,
            )?)
        }
        "toys" => Box::new(ToyCalculator::new(
            analysis,
            settings,
            common.toys,
            common.seed,
        )?),
        other => anyhow::bail!("--calculator '{other}' is not known (expected asymptotic or toys)"),
    })
}

fn write_result(path: Option<&Path>, result: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        let mut outputs = nsbi::report::OutputSet::new();
        outputs.json(path, &serde_json::to_value(result)?)?;
        outputs.commit()?;
    }
    Ok(())
}

/// A result's warnings, on stderr (as the scan's and Neyman's).
fn print_result_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// The median, ±1σ and ±2σ of a band (ordered −2σ … +2σ).
fn band_text(values: &[f64; 5], show: fn(f64) -> String) -> String {
    format!(
        "{} [−1σ {}, +1σ {}] [−2σ {}, +2σ {}]",
        show(values[2]),
        show(values[1]),
        show(values[3]),
        show(values[0]),
        show(values[4])
    )
}

/// A probability to four significant digits, in scientific notation when small.
fn probability(p: f64) -> String {
    if p != 0.0 && p.abs() < 1e-3 {
        format!("{p:.4e}")
    } else {
        format!("{p:.6}")
    }
}

fn poi_value(x: f64) -> String {
    format!("{x:.6}")
}

fn run_hypotest(args: &HypotestArgs) -> anyhow::Result<()> {
    let statistic = TestStatistic::parse(&args.test_stat)?;
    if !statistic.is_one_sided() {
        anyhow::bail!(
            "--test-stat {statistic}: CLs needs a one-sided statistic (qtilde, qmu, or q0 for              discovery); tmu and tmutilde give two-sided intervals (nsbi scan, nsbi neyman)"
        );
    }
    let (analysis, settings, mut warnings) = test_setup(&args.common, statistic, args.signal)?;
    check_test(&analysis, &settings, &[args.value])?;
    if args.common.out.is_some() {
        return write_test_toys(&args.common, &analysis, &settings, |_| Ok(vec![args.value]));
    }
    let mut calc = calculator(&analysis, &settings, &args.common)?;
    let point = calc.test(args.value)?;
    let poi = &analysis.model.parameters[settings.poi].name;
    let mut result = HypotestResult::new(poi, statistic, calc.as_ref(), point);
    warnings.append(&mut result.warnings);
    result.warnings = warnings;
    println!(
        "{poi} = {} ({statistic}, {}): CLs = {}  CLs+b = {}  CLb = {}",
        result.value,
        result.calculator,
        probability(result.cls.observed),
        probability(result.clsb),
        probability(result.clb)
    );
    println!(
        "expected CLs: {}",
        band_text(&result.cls.expected, probability)
    );
    if let Some(toys) = &result.toys {
        println!(
            "toys: {} per hypothesis; CLs ± {:.2e}, CLs+b ± {:.2e}, CLb ± {:.2e}",
            toys.n_toys, toys.cls, toys.clsb, toys.clb
        );
    }
    print_result_warnings(&result.warnings);
    write_result(args.common.json.as_deref(), &result)
}

fn run_limit(args: &LimitArgs) -> anyhow::Result<()> {
    let statistic = TestStatistic::parse(&args.test_stat)?;
    if !matches!(statistic, TestStatistic::Qtilde | TestStatistic::Qmu) {
        anyhow::bail!("--test-stat {statistic}: an upper limit needs qtilde or qmu");
    }
    let (analysis, settings, mut warnings) = test_setup(&args.common, statistic, 1.0)?;
    if args.common.out.is_some() {
        return write_test_toys(&args.common, &analysis, &settings, |calc| {
            let range = limit_range(args, &analysis, &settings, calc)?;
            check_test(&analysis, &settings, &[range.0, range.1])?;
            Ok(nsbi::fit::scan::linspace(range.0, range.1, args.points))
        });
    }
    let mut calc = calculator(&analysis, &settings, &args.common)?;
    let (range, points) = match calc.stored_values() {
        Some(values) => stored_limit_grid(args, &values)?,
        None => (
            limit_range(args, &analysis, &settings, calc.as_ref())?,
            args.points,
        ),
    };
    check_test(&analysis, &settings, &[range.0, range.1])?;
    let limit_settings = LimitSettings {
        cl: args.cl,
        range,
        background: 0.0,
        points,
        root_finding: args.common.calculator == "asymptotic",
    };
    let poi = analysis.model.parameters[settings.poi].name.clone();
    let mut result = upper_limit(calc.as_mut(), &poi, statistic, &limit_settings)?;
    warnings.append(&mut result.warnings);
    result.warnings = warnings;
    println!(
        "{:.1} % CLs upper limit on {poi} ({statistic}, {}): observed {:.6}",
        100.0 * result.cl,
        result.calculator,
        result.observed
    );
    println!("expected: {}", band_text(&result.expected, poi_value));
    print_result_warnings(&result.warnings);
    let mut outputs = nsbi::report::OutputSet::new();
    if let Some(path) = &args.common.json {
        outputs.json(path, &serde_json::to_value(&result)?)?;
    }
    if let Some(stem) = &args.plot {
        let mu: Vec<f64> = result.scan.iter().map(|p| p.value).collect();
        let observed: Vec<f64> = result.scan.iter().map(|p| p.cls.observed).collect();
        let expected: Vec<[f64; 5]> = result.scan.iter().map(|p| p.cls.expected).collect();
        let curve = nsbi::plot::brazil::BrazilCurve {
            poi: &poi,
            cl: result.cl,
            mu: &mu,
            observed: &observed,
            expected: &expected,
            observed_limit: Some(result.observed),
            expected_limits: Some(result.expected),
        };
        nsbi::plot::brazil::brazil(&mut outputs, stem, &curve)?;
    }
    outputs.commit()?;
    Ok(())
}

/// A limit's default scan: from just above the background hypothesis (0, or the POI's lower
/// bound), where CLs is 1, to μ̂ + 5σ̂ of the fit to the data (or the POI's upper bound).
fn default_limit_range(
    analysis: &Analysis,
    settings: &TestSettings,
    calc: &dyn Calculator,
    points: usize,
) -> anyhow::Result<(f64, f64)> {
    let (lo, hi) = analysis.model.parameters[settings.poi].bounds;
    let start = lo.max(0.0);
    let end = match calc.poi_error() {
        Some(sigma) if sigma > 0.0 => (calc.poi_hat().max(start) + 5.0 * sigma).min(hi),
        _ if hi.is_finite() => hi,
        _ => anyhow::bail!(
            "the fit to the data gives no error on the POI and its upper bound is infinite: \
             give --range low:high for the limit's scan"
        ),
    };
    // The background hypothesis itself has no CLs: start a quarter step above it.
    Ok((start + (end - start) / (4 * points.max(1)) as f64, end))
}

fn run_significance(args: &SignificanceArgs) -> anyhow::Result<()> {
    let statistic = TestStatistic::Q0;
    let (analysis, settings, mut warnings) = test_setup(&args.common, statistic, args.signal)?;
    check_test(&analysis, &settings, &[args.value, args.signal])?;
    if args.signal == args.value {
        anyhow::bail!(
            "--signal {} equals the null hypothesis' --value: the expected significance needs              a signal hypothesis other than the null",
            args.signal
        );
    }
    if args.common.out.is_some() {
        return write_test_toys(&args.common, &analysis, &settings, |_| Ok(vec![args.value]));
    }
    let mut calc = calculator(&analysis, &settings, &args.common)?;
    let point = calc.test(args.value)?;
    let poi = &analysis.model.parameters[settings.poi].name;
    let mut result = SignificanceResult::new(poi, args.signal, calc.as_ref(), point);
    warnings.append(&mut result.warnings);
    result.warnings = warnings;
    let d = &result.observed;
    println!(
        "{poi} = {} rejected at: q0 = {:.6}, p0 = {:.4e}, Z = {:.4} ({})",
        result.value, d.q0, d.p0, d.z, result.calculator
    );
    let e = &result.expected;
    println!(
        "expected under {poi} = {}: q0 = {:.6}, p0 = {:.4e}, Z = {:.4}",
        result.signal, e.q0, e.p0, e.z
    );
    print_result_warnings(&result.warnings);
    write_result(args.common.json.as_deref(), &result)
}

fn load_analysis(workspace: &Path, cache_dir: Option<PathBuf>) -> anyhow::Result<Analysis> {
    Ok(Analysis::open(workspace, cache_dir, true)?)
}

fn print_ratio_table(records: &[ratio::RatioRecord]) {
    println!(
        "{:<36} {:<22} {:>8} {:>3} {:>10} {:>10} {:>10} {:>10}  source",
        "ensemble", "events", "n", "k", "mean r", "min r", "max r", "spread"
    );
    for r in records {
        println!(
            "{:<36} {:<22} {:>8} {:>3} {:>10.4} {:>10.4} {:>10.4} {:>10.4}  {}",
            r.ensemble,
            r.role.to_string(),
            r.n_events,
            r.n_members,
            r.mean_ratio,
            r.min_ratio,
            r.max_ratio,
            r.mean_spread,
            match (r.from_cache, r.from_parts) {
                (true, _) => "cache".to_string(),
                (false, 0) => "evaluated".to_string(),
                (false, parts) => format!("{parts} farm part(s)"),
            }
        );
    }
}

/// The limit's scan range: --range, or the default from the fit to the data.
fn limit_range(
    args: &LimitArgs,
    analysis: &Analysis,
    settings: &TestSettings,
    calc: &dyn Calculator,
) -> anyhow::Result<(f64, f64)> {
    match &args.range {
        Some(text) => Ok(nsbi::fit::scan::parse_range(text)?),
        None => default_limit_range(analysis, settings, calc, args.points),
    }
}

/// The scan of a limit from stored toys: their tested values (an even grid, as `--out` made
/// it), which --range and --points, where given, must reproduce.
fn stored_limit_grid(args: &LimitArgs, values: &[f64]) -> anyhow::Result<((f64, f64), usize)> {
    let files = args.common.toys_from.join(" ");
    let range = (values[0], values[values.len() - 1]);
    if nsbi::fit::scan::linspace(range.0, range.1, values.len()) != values {
        anyhow::bail!(
            "toy file {files} was tested at {values:?}, not at a limit's evenly spaced scan: \
             make the toys with `nsbi limit … --out`"
        );
    }
    if let Some(text) = &args.range {
        let (lo, hi) = nsbi::fit::scan::parse_range(text)?;
        let asked = nsbi::fit::scan::linspace(lo, hi, args.points);
        if asked != values {
            anyhow::bail!(
                "toy file {files} holds toys at {values:?}, not at the {asked:?} that --range \
                 {text} --points {} asks for: give the toys' range and points, or none",
                args.points
            );
        }
    }
    Ok((range, values.len()))
}

/// `--out` (with or without `--shard`): makes the toy calculator's toys at the values `tested`
/// gives (from the calculator's fit to the data) and writes them, without testing.
fn write_test_toys(
    common: &TestArgs,
    analysis: &Analysis,
    settings: &TestSettings,
    tested: impl FnOnce(&ToyCalculator) -> anyhow::Result<Vec<f64>>,
) -> anyhow::Result<()> {
    if common.calculator != "toys" {
        anyhow::bail!("--out and --shard write the toy calculator's toys: give --calculator toys");
    }
    let out = common.out.as_ref().expect("--out is given");
    let shard = common
        .shard
        .as_deref()
        .map(parse_shard)
        .transpose()?
        .unwrap_or((0, 1));
    let mut calc = ToyCalculator::new(analysis, settings, common.toys, common.seed)?;
    let values = tested(&calc)?;
    let plan = calc.plan(values)?;
    let jobs = nsbi::infer::toys::shard_range(plan.n_jobs(), shard.0, shard.1);
    let records = calc.make_toys(&plan, jobs.clone())?;
    let header = TestToyHeader::new(&common.workspace, plan, analysis, shard);
    TestToyFile { header, records }.write(out)?;
    println!(
        "{} toys (shard {}/{}) written to {}",
        jobs.len(),
        shard.0,
        shard.1,
        out.display()
    );
    print_result_warnings(&calc.warnings());
    Ok(())
}

/// The workspace of `nsbi batch` (a toy plan's or ratios').
fn batch_workspace_path(args: &BatchArgs) -> anyhow::Result<&Path> {
    args.workspace
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("nsbi batch needs the workspace"))
}

/// The folder of `nsbi batch`'s submission.
fn batch_dir(args: &BatchArgs) -> anyhow::Result<&Path> {
    args.dir
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("nsbi batch needs --dir, the submission's folder"))
}

/// The toy calculator's options every shard and the final test share.
fn test_toy_arguments(common: &TestArgs) -> Vec<String> {
    let mut out = vec![
        "--calculator".to_string(),
        "toys".into(),
        "--toys".into(),
        common.toys.to_string(),
        "--seed".into(),
        common.seed.to_string(),
    ];
    if let Some(poi) = &common.poi {
        out.extend(["--poi".to_string(), poi.clone()]);
    }
    if common.no_syst {
        out.push("--no-syst".into());
    }
    out
}

/// `nsbi batch slurm|condor hypotest|limit|significance …`: shard i runs the test with
/// `--shard i/N --out DIR/shard_i.h5`; the submission and the manifest name the merge and the
/// test with the merged toys. The workspace, the fit to the data and the tested values are
/// checked here, and no toy is made.
fn run_batch_test(args: &BatchArgs, test: &BatchTest) -> anyhow::Result<()> {
    let (command, common, statistic, signal) = match test {
        BatchTest::Hypotest(a) => ("hypotest", &a.common, a.test_stat.as_str(), a.signal),
        BatchTest::Limit(a) => ("limit", &a.common, a.test_stat.as_str(), 1.0),
        BatchTest::Significance(a) => ("significance", &a.common, "q0", a.signal),
    };
    if common.calculator != "toys" {
        anyhow::bail!(
            "nsbi batch {command} farms the toy calculator's toys: give --calculator toys"
        );
    }
    if common.out.is_some() || common.shard.is_some() || !common.toys_from.is_empty() {
        anyhow::bail!("nsbi batch {command} sets --shard, --out and --toys-from itself");
    }
    let (analysis, settings, _) = test_setup(common, TestStatistic::parse(statistic)?, signal)?;
    let mut calc = ToyCalculator::new(&analysis, &settings, common.toys, common.seed)?;
    let mut options = test_toy_arguments(common);
    let tested = match test {
        BatchTest::Hypotest(a) => {
            options.extend(["--value".to_string(), a.value.to_string()]);
            options.extend(["--test-stat".to_string(), a.test_stat.clone()]);
            options.extend(["--signal".to_string(), a.signal.to_string()]);
            vec![a.value]
        }
        BatchTest::Limit(a) => {
            options.extend(["--cl".to_string(), a.cl.to_string()]);
            options.extend(["--points".to_string(), a.points.to_string()]);
            options.extend(["--test-stat".to_string(), a.test_stat.clone()]);
            if let Some(range) = &a.range {
                options.extend(["--range".to_string(), range.clone()]);
            }
            let range = limit_range(a, &analysis, &settings, &calc)?;
            nsbi::fit::scan::linspace(range.0, range.1, a.points)
        }
        BatchTest::Significance(a) => {
            options.extend(["--value".to_string(), a.value.to_string()]);
            options.extend(["--signal".to_string(), a.signal.to_string()]);
            vec![a.value]
        }
    };
    check_test(&analysis, &settings, &tested)?;
    let plan = calc.plan(tested)?;
    let cache_dir = absolute(
        &common
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&analysis.workspace)),
    );
    let mut arguments = vec![
        command.to_string(),
        absolute(&common.workspace).display().to_string(),
    ];
    arguments.extend(options);
    arguments.extend(["--cache-dir".to_string(), cache_dir.display().to_string()]);
    let dir = absolute(batch_dir(args)?);
    let mut result = arguments.clone();
    result.extend([
        "--toys-from".to_string(),
        dir.join("toys.h5").display().to_string(),
    ]);
    if let Some(json) = &common.json {
        result.extend(["--json".to_string(), absolute(json).display().to_string()]);
    }
    if let BatchTest::Limit(LimitArgs {
        plot: Some(stem), ..
    }) = test
    {
        result.extend(["--plot".to_string(), absolute(stem).display().to_string()]);
    }
    let exe = std::env::current_exe()?;
    let mut manifest = nsbi::batch::Manifest::new(&exe, arguments, args.shards);
    manifest.result_arguments = result;
    let submission = nsbi::batch::write_submission(&dir, args.scheduler, manifest)?;
    println!(
        "{} shards of {} {command} toys: submission {}, manifest {}",
        args.shards,
        plan.n_jobs(),
        submission.display(),
        dir.join("manifest.json").display()
    );
    Ok(())
}
