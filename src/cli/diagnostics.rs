//! Diagnostics of the ratio models: `calibrate`, `closure`.

use std::path::PathBuf;

use nsbi::analysis::{default_cache_dir, Analysis};
use nsbi::data::RatioCache;
use nsbi::diagnostics;
use nsbi::workspace::Workspace;

use super::CacheArgs;

pub const CALIBRATE_ABOUT: &str = "Calibration of every ratio model on held-out events.

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

pub const CLOSURE_ABOUT: &str = "Reweighting closure tests.

1. Per ratio model: the denominator sample (the reference; the nominal process sample for a \
   shape variation given with --holdout) reweighted event by event by r(x), scaled to the \
   numerator's total weight, against the numerator (process) sample.
2. Per --mu value (one POI) or --at point (any number: --at c1=0.5,c2=-0.3): the weighted MC \
   mixture (the Asimov set) at --mu-ref (default 1) or --at-ref (default: every parameter at \
   its initial value) \
   reweighted by p(x|θ)/p(x|θ_ref)·ν(θ)/ν(θ_ref) from the full model, against the MC mixture at \
   θ. The mixture has negative weights where a coefficient is negative (interference).

Per feature: histograms in bins at the quantiles of the weighted events, with the error of \
target − reweighted in each bin sqrt(Σ (t−u)²) over events with target weight t and \
reweighted weight u (negative weights and events shared by both histograms included), \
χ² = Σ pull², ndf = number of filled bins (nothing is fitted: normalisation is tested too).

Writes OUT/closure.json and OUT/closure_<test>.png/.svg.";

/// Options shared by `calibrate` and `closure`.
#[derive(clap::Args)]
pub struct DiagnosticArgs {
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
    pub strict: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(clap::Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub common: DiagnosticArgs,
}

#[derive(clap::Args)]
pub struct ClosureArgs {
    #[command(flatten)]
    pub common: DiagnosticArgs,
    /// Values of the POI for the parameter-point test of a one-POI model (repeatable;
    /// default 1.7, as in the ATLAS seeds).
    #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["at", "at_ref"])]
    mu: Vec<f64>,
    /// The POI value of the MC mixture that is reweighted (with --mu).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    mu_ref: f64,
    /// A parameter point for the parameter-point test, any number of POIs: `c1=0.5,c2=-0.3`
    /// (repeatable; parameters not named at their initial values).
    #[arg(long, allow_hyphen_values = true)]
    at: Vec<String>,
    /// The point of the MC mixture that is reweighted to each --at point, of the same form
    /// (default: every parameter at its initial value).
    #[arg(long, allow_hyphen_values = true)]
    at_ref: Option<String>,
}

impl ClosureArgs {
    /// The parameter-point tests asked for: `--at` points for any model; `--mu` values (1.7
    /// when neither is given) for a one-POI model. A model of several POIs without `--at`
    /// gets none, and a note says how to ask.
    fn point_closures(&self, analysis: &Analysis) -> anyhow::Result<Vec<diagnostics::ClosureTest>> {
        let bins = self.common.bins;
        if !self.at.is_empty() {
            let reference = self.at_ref.as_deref();
            return Ok(diagnostics::point_closures(
                analysis, &self.at, reference, bins,
            )?);
        }
        let pois = analysis.model.pois().len();
        if self.mu.is_empty() && pois != 1 {
            eprintln!(
                "note: no parameter-point closure test: the model has {pois} POIs; give the \
                 points with --at NAME=VALUE,…"
            );
            return Ok(Vec::new());
        }
        let mu = if self.mu.is_empty() {
            vec![1.7]
        } else {
            self.mu.clone()
        };
        Ok(diagnostics::poi_closures(analysis, &mu, self.mu_ref, bins)?)
    }
}

/// The workspace, what to look at, and where the outputs go.
fn prepare(
    args: &DiagnosticArgs,
) -> anyhow::Result<(Workspace, Vec<diagnostics::Holdout>, PathBuf)> {
    let (ws, holdouts) =
        diagnostics::open(&args.workspace, args.bins, args.p_threshold, &args.holdout)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| diagnostics::default_output_dir(&args.workspace));
    std::fs::create_dir_all(&out)
        .map_err(|e| anyhow::anyhow!("cannot create output folder {}: {e}", out.display()))?;
    Ok((ws, holdouts, out))
}

/// `nsbi calibrate`: whether every reliability test passed.
pub fn run_calibrate(args: &DiagnosticArgs) -> anyhow::Result<bool> {
    let (ws, holdouts, out) = prepare(args)?;
    let selection = diagnostics::select(&ws, &args.process, &holdouts)?;
    let report = diagnostics::calibrate(&ws, &selection, args.bins, args.p_threshold)?;
    print_calibration(&report);
    let mut outputs = nsbi::report::OutputSet::new();
    outputs.json(
        &out.join("calibration.json"),
        &serde_json::to_value(report.output())?,
    )?;
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

/// `nsbi closure`: whether every closure test passed.
pub fn run_closure(args: &ClosureArgs) -> anyhow::Result<bool> {
    let common = &args.common;
    let (ws, holdouts, out) = prepare(common)?;
    let cache = RatioCache::new(
        common
            .cache
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&ws)),
    );
    let selection = diagnostics::select(&ws, &common.process, &holdouts)?;
    let mut tests = diagnostics::ratio_closures(&ws, &selection, &cache, common.bins)?;
    let skipped = selection.skipped;
    let analysis = Analysis::from_workspace(ws, &cache, true)?;
    tests.extend(args.point_closures(&analysis)?);
    let report = diagnostics::ClosureReport {
        tests,
        skipped,
        bins: common.bins,
        p_threshold: common.p_threshold,
    };
    print_closure(&report);
    let mut outputs = nsbi::report::OutputSet::new();
    outputs.json(
        &out.join("closure.json"),
        &serde_json::to_value(report.output())?,
    )?;
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
