//! The commands of `nsbi`, one module per family: each parses its options, calls the library
//! and prints from the library's typed results. Nothing here computes a statistic.

pub mod batch;
pub mod diagnostics;
pub mod fit;
pub mod hypotest;
pub mod neyman;
pub mod workspace;

use std::path::{Path, PathBuf};

use nsbi::analysis::Analysis;

/// Options every command that reads the ratio cache takes.
#[derive(clap::Args, Clone, Debug)]
pub struct CacheArgs {
    /// Cache folder (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// (all tests passed, strict): commands without tests always pass.
pub fn passed(_: ()) -> (bool, bool) {
    (true, false)
}

/// Loads a workspace with its model and cached ratios (evaluating what is not cached yet).
pub fn load_analysis(workspace: &Path, cache_dir: Option<PathBuf>) -> anyhow::Result<Analysis> {
    Ok(Analysis::open(workspace, cache_dir, true)?)
}

/// `--threads N`: rayon's global pool, before any parallel work.
pub fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {n}: {e}"))?;
    }
    Ok(())
}

/// `--shard i/N`, or the whole run (0/1).
pub fn shard_or_all(text: Option<&str>) -> anyhow::Result<(usize, usize)> {
    Ok(text
        .map(nsbi::batch::parse_shard)
        .transpose()?
        .unwrap_or((0, 1)))
}

/// A result as JSON to `path`, where given (atomically).
pub fn write_result(path: Option<&Path>, result: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        let mut outputs = nsbi::report::OutputSet::new();
        outputs.json(path, &serde_json::to_value(result)?)?;
        outputs.commit()?;
    }
    Ok(())
}

/// A result's warnings, on stderr.
pub fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// Intervals as `[lo, hi] ∪ …`, an end on the grid's edge marked open (the set may go on).
pub fn format_ends(list: &[[f64; 2]], open: &[[bool; 2]]) -> String {
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

/// A path made absolute where the system can (a batch job runs from another folder).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
