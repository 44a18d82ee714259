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
    let ws = Workspace::load(workspace)?;
    let cache = RatioCache::new(cache_dir.unwrap_or_else(|| default_cache_dir(&ws)));
    let analysis = Analysis::load(workspace, &cache, true)?;
    let dataset = match &asimov {
        None => Dataset::Observed,
        Some(text) => {
            let mut theta = analysis.model.init();
            for (i, v) in analysis.assignments(text, "--asimov")? {
                theta[i] = v;
            }
            Dataset::Asimov(theta)
        }
    };
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
