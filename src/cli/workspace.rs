//! Workspace commands: `validate`, `ratios`, `import`, `export`.

use std::path::PathBuf;

use nsbi::analysis::default_cache_dir;
use nsbi::data::RatioCache;
use nsbi::ratio;
use nsbi::workspace::Workspace;

use super::{set_threads, CacheArgs};

#[derive(clap::Args)]
pub struct RatiosArgs {
    /// The workspace YAML file.
    workspace: PathBuf,
    #[command(flatten)]
    cache: CacheArgs,
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
}

/// Formats of other tools' workspaces.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ForeignFormat {
    /// pyhf JSON workspace (schema 1.0.0).
    Pyhf,
}

#[derive(clap::Args)]
pub struct ImportArgs {
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
pub struct ExportArgs {
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

pub fn run_validate(workspace: &std::path::Path) -> anyhow::Result<()> {
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

pub fn run_ratios(args: &RatiosArgs) -> anyhow::Result<()> {
    set_threads(args.threads)?;
    let ws = Workspace::load(&args.workspace)?;
    let cache = RatioCache::new(
        args.cache
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&ws)),
    );
    if let Some(shard) = &args.shard {
        return run_ratio_shard(&ws, &cache, shard);
    }
    let result = ratio::evaluate_workspace(&ws, &cache, !args.quiet)?;
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
    if let Some(path) = &args.json {
        nsbi::report::write_json_atomic(path, &nsbi::report::ratio_records_json(&result.records))?;
    }
    Ok(())
}

/// `nsbi ratios W --shard i/N`: this shard's parts of the entries not in the cache.
fn run_ratio_shard(ws: &Workspace, cache: &RatioCache, shard: &str) -> anyhow::Result<()> {
    use ratio::shard::PartOutcome;
    let shard = nsbi::batch::parse_shard(shard)?;
    let records = ratio::shard::evaluate_workspace_shard(ws, cache, shard)?;
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

pub fn run_import(args: &ImportArgs) -> anyhow::Result<()> {
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

pub fn run_export(args: &ExportArgs) -> anyhow::Result<()> {
    let ForeignFormat::Pyhf = args.format;
    let model = nsbi::binned::export_pyhf(&args.input, &args.out, args.poi.as_deref())?;
    println!(
        "{}: {} channels as pyhf JSON",
        args.out.display(),
        model.channels.len()
    );
    Ok(())
}
