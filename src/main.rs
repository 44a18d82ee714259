//! The `nsbi` command line: a thin layer over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nsbi::analysis::{Analysis, Dataset};
use nsbi::data::RatioCache;
use nsbi::fit::FitOptions;
use nsbi::ratio;
use nsbi::workspace::Workspace;

#[derive(Parser)]
#[command(
    name = "nsbi",
    version,
    about = "Unbinned likelihood fits with per-event neural density ratios",
    long_about = "nsbi builds unbinned likelihoods from a YAML workspace, HDF5 event files and \
ONNX classifier ensembles that learn per-event density ratios r_c(x) = p_c(x)/p_ref(x).\n\n\
Typical session:\n  nsbi validate workspace.yaml   # check files, columns, models without running them\n  \
nsbi ratios workspace.yaml     # evaluate and cache every ensemble over every event file"
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
    },
    /// Profile-likelihood scan of t = 2ΔNLL in one or two parameters (all others profiled),
    /// with asymptotic 68.27 % / 95.45 % intervals (1-D) or regions (2-D), JSON and plots.
    Scan(ScanArgs),
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
    let outcome = match cli.command {
        Command::Validate { workspace } => run_validate(&workspace),
        Command::Ratios {
            workspace,
            cache_dir,
            json,
            threads,
            quiet,
        } => run_ratios(&workspace, cache_dir, json, threads, quiet),
        Command::Fit {
            workspace,
            asimov,
            fix,
            set_init,
            no_minos,
            json,
            cache_dir,
        } => run_fit(
            &workspace, asimov, fix, set_init, !no_minos, json, cache_dir,
        ),
        Command::Scan(args) => run_scan(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_validate(workspace: &Path) -> anyhow::Result<()> {
    let summary = nsbi::validate::validate(workspace)?;
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
    let fresh = result.records.iter().filter(|r| !r.from_cache).count();
    println!(
        "{} ratio set(s): {} evaluated, {} from cache {}",
        result.records.len(),
        fresh,
        result.records.len() - fresh,
        cache.dir().display()
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
) -> anyhow::Result<()> {
    let analysis = load_analysis(workspace, cache_dir)?;
    let dataset = dataset_from(&analysis, asimov.as_deref())?;
    let like = analysis.likelihood(&dataset)?;
    let mut options = FitOptions::new(&like);
    for (i, v) in analysis.assignments(set_init.as_deref().unwrap_or(""), "--set-init")? {
        options.init[i] = v;
    }
    for (i, v) in analysis.assignments(fix.as_deref().unwrap_or(""), "--fix")? {
        options.init[i] = v;
        options.fixed[i] = true;
    }
    let report = nsbi::analysis::fit_with_intervals(&like, &options, minos);
    let value = report.to_json(&analysis.model);
    print_fit(&value, &dataset);
    if let Some(path) = json {
        nsbi::report::write_json_atomic(&path, &value)?;
    }
    if !report.result.converged {
        anyhow::bail!("fit did not converge: {}", report.result.message);
    }
    Ok(())
}

fn run_scan(args: ScanArgs) -> anyhow::Result<()> {
    let workspace = args.workspace.as_path();
    if args.poi.len() != args.range.len() {
        anyhow::bail!(
            "give one --range per --poi ({} --poi, {} --range)",
            args.poi.len(),
            args.range.len()
        );
    }
    let analysis = load_analysis(workspace, args.cache_dir.clone())?;
    let mut parameters = Vec::new();
    let mut ranges = Vec::new();
    for (name, range) in args.poi.iter().zip(&args.range) {
        let index = analysis
            .model
            .parameter_index(name)
            .ok_or_else(|| anyhow::anyhow!("--poi: unknown parameter '{name}'"))?;
        let (lo, hi) = nsbi::fit::scan::parse_range(range)?;
        let (blo, bhi) = analysis.model.parameters[index].bounds;
        if lo < blo || hi > bhi {
            anyhow::bail!("--range {range} of '{name}' lies outside its bounds [{blo}, {bhi}]");
        }
        parameters.push(index);
        ranges.push((lo, hi));
    }
    let points: Vec<usize> = match args.points.as_slice() {
        [n] => vec![*n; parameters.len()],
        many if many.len() == parameters.len() => many.to_vec(),
        _ => anyhow::bail!("give one --points, or one per --poi"),
    };
    if points.iter().any(|&n| n < 2) {
        anyhow::bail!("--points must be at least 2");
    }
    let dataset = dataset_from(&analysis, args.asimov.as_deref())?;
    let like = analysis.likelihood(&dataset)?;
    let mut options = FitOptions::new(&like);
    for (i, v) in analysis.assignments(args.fix.as_deref().unwrap_or(""), "--fix")? {
        options.init[i] = v;
        options.fixed[i] = true;
    }
    let request = nsbi::analysis::ScanRequest {
        parameters: parameters.clone(),
        ranges,
        points,
        stat_only: args.stat_only,
    };
    let (report, scans) = nsbi::analysis::run_scan(&like, &options, &request, true)?;
    print_scan(&report);
    if let Some(path) = &args.json {
        nsbi::report::write_json_atomic(path, &report)?;
    }
    if let Some(stem) = &args.plot {
        let names: Vec<&str> = args.poi.iter().map(String::as_str).collect();
        let written = if parameters.len() == 1 {
            let curves: Vec<nsbi::plot::Curve> = scans
                .iter()
                .zip(["stat+syst", "stat-only"])
                .map(|(s, label)| nsbi::plot::Curve {
                    label: label.into(),
                    points: s.points.iter().map(|p| (p.values[0], p.t)).collect(),
                    dashed: label == "stat-only",
                })
                .collect();
            nsbi::plot::scan_1d(stem, names[0], &curves, &nsbi::fit::scan::THRESHOLDS_1D)?
        } else {
            let s = &scans[0];
            let cells: Vec<(f64, f64, f64)> = s
                .points
                .iter()
                .map(|p| (p.values[0], p.values[1], p.t))
                .collect();
            let step = |k: usize| {
                (request.ranges[k].1 - request.ranges[k].0) / (request.points[k] - 1) as f64
            };
            let best = (s.best.theta[parameters[0]], s.best.theta[parameters[1]]);
            nsbi::plot::scan_2d(
                stem,
                (names[0], names[1]),
                &cells,
                (step(0), step(1)),
                best,
                &nsbi::fit::scan::THRESHOLDS_2D,
            )?
        };
        for path in written {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn dataset_from(analysis: &Analysis, asimov: Option<&str>) -> anyhow::Result<Dataset> {
    Ok(match asimov {
        None => Dataset::Observed,
        Some(text) => {
            let mut theta = analysis.model.init();
            for (i, v) in analysis.assignments(text, "--asimov")? {
                theta[i] = v;
            }
            Dataset::Asimov(theta)
        }
    })
}

fn print_scan(report: &serde_json::Value) {
    if let Some(poi) = report["poi"].as_str() {
        println!(
            "scan of {poi}: best fit {:.6}",
            report["best_fit"].as_f64().unwrap_or(f64::NAN)
        );
        for (label, part) in [("stat+syst", report), ("stat-only", &report["stat_only"])] {
            if let Some(intervals) = part["intervals"].as_object() {
                for (cl, list) in intervals {
                    let text: Vec<String> = list
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|iv| {
                            format!(
                                "[{:.4}, {:.4}]",
                                iv[0].as_f64().unwrap_or(f64::NAN),
                                iv[1].as_f64().unwrap_or(f64::NAN)
                            )
                        })
                        .collect();
                    println!(
                        "  {label:<10} {cl:>6} % CL (asymptotic): {}",
                        text.join(" ∪ ")
                    );
                }
            }
        }
    } else {
        println!(
            "2-D scan of {}: best fit {}",
            report["pois"], report["best_fit"]
        );
    }
}

fn print_fit(value: &serde_json::Value, dataset: &Dataset) {
    let status = &value["status"];
    println!(
        "fit to {}: {} ({} evaluations, EDM {:.2e})  NLL = {:.6}",
        match dataset {
            Dataset::Observed => "observed data".to_string(),
            Dataset::Asimov(_) => "Asimov data".to_string(),
        },
        status["message"].as_str().unwrap_or(""),
        status["n_eval"],
        status["edm"].as_f64().unwrap_or(f64::NAN),
        value["nll"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "{:<20} {:>12} {:>10} {:>10} {:>10}  note",
        "parameter", "value", "error", "-err", "+err"
    );
    for (name, p) in value["parameters"].as_object().into_iter().flatten() {
        let note = if p["fixed"].as_bool() == Some(true) {
            "fixed".to_string()
        } else if p["at_bound"].as_bool() == Some(true) {
            "at bound".to_string()
        } else if p["constrained"].as_bool() == Some(true) {
            format!(
                "pull {:+.3}, constraint {:.3}",
                p["value"].as_f64().unwrap_or(0.0),
                p["error"].as_f64().unwrap_or(0.0)
            )
        } else {
            String::new()
        };
        println!(
            "{:<20} {:>12.6} {:>10.6} {:>10.6} {:>10.6}  {note}",
            name,
            p["value"].as_f64().unwrap_or(f64::NAN),
            p["error"].as_f64().unwrap_or(f64::NAN),
            -p["error_low"].as_f64().unwrap_or(f64::NAN),
            p["error_high"].as_f64().unwrap_or(f64::NAN),
        );
    }
}

/// Loads a workspace with its model and cached ratios (evaluating what is not cached yet).
fn load_analysis(workspace: &Path, cache_dir: Option<PathBuf>) -> anyhow::Result<Analysis> {
    let ws = Workspace::load(workspace)?;
    let cache = RatioCache::new(cache_dir.unwrap_or_else(|| default_cache_dir(&ws)));
    Ok(Analysis::from_workspace(ws, &cache, true)?)
}

fn default_cache_dir(ws: &Workspace) -> PathBuf {
    std::env::var_os("NSBI_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.dir().join(".nsbi-cache"))
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
            if r.from_cache { "cache" } else { "evaluated" }
        );
    }
}
