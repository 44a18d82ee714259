//! The `nsbi` command line: a thin layer over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nsbi::data::RatioCache;
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
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
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
