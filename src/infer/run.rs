//! The Neyman construction as a user runs it: from a request in the user's terms (parameter
//! names, grid text, toy files named by paths or patterns) to toy files, critical values and
//! coverage. The command line and the Python package both call these, so a request means the
//! same thing, and is refused with the same message, wherever it is made.

use std::path::{Path, PathBuf};

use super::construction::{self, check_toy_count, parse_grid};
use super::test_stat::TestStatistic;
use super::test_toys;
use super::toyfile::{self, ModelFingerprint, ToyFile, ToyFileHeader};
use super::toys::ToyPlan;
use crate::analysis::Analysis;
use crate::error::{Error, Result};

/// The toys a user asks for: `nsbi toys` and `nsbi batch` options.
#[derive(Clone, Debug)]
pub struct ToyRequest {
    /// The parameter of interest (default: the workspace's first POI).
    pub poi: Option<String>,
    /// Grid of true POI values, `start:stop:step` (inclusive).
    pub grid: String,
    /// Toys per grid point.
    pub n_toys: usize,
    pub seed: u64,
    /// Stat-only: nuisance parameters frozen at their best fit on the observed data.
    pub no_syst: bool,
    /// The construction's two-sided statistic (t_μ or t̃_μ).
    pub statistic: TestStatistic,
}

/// The plan a request makes on this analysis, checked against the workspace's parameters; the
/// model takes the statistic's POI bounds (t̃_μ keeps the POI ≥ 0) before anything is fitted.
pub fn toy_plan(analysis: &mut Analysis, request: &ToyRequest) -> Result<ToyPlan> {
    let poi = analysis.poi_index(request.poi.as_deref())?;
    if request.n_toys == 0 {
        return Err(Error::Analysis("--toys must be at least 1".into()));
    }
    let grid = parse_grid(&request.grid)?;
    check_toy_count(grid.len(), request.n_toys)?;
    let statistic = request.statistic;
    if statistic.is_one_sided() {
        return Err(Error::Analysis(format!(
            "--test-stat {statistic}: the Neyman construction takes a two-sided statistic, tmu \
             or tmutilde (one-sided tests: nsbi hypotest, nsbi limit)"
        )));
    }
    analysis.use_statistic_bounds(poi, statistic);
    Ok(ToyPlan {
        poi,
        grid,
        n_toys: request.n_toys,
        seed: request.seed,
        // Without a free nuisance parameter the toys are stat-only, and say so.
        systematics: !request.no_syst && analysis.model.has_free_nuisances(),
        statistic,
    })
}

/// The toys of shard `shard = (i, N)` of a plan, with the header that names the workspace, the
/// model's fingerprint and the shard (what `merge`, `neyman` and `coverage` check).
pub fn make_toy_file(
    analysis: &Analysis,
    plan: &ToyPlan,
    workspace: &Path,
    shard: (usize, usize),
    progress: &(dyn Fn() + Sync),
) -> Result<ToyFile> {
    // The toys' pools first: the observed fits' normalisation then shares their shape inputs.
    analysis.pools()?;
    let profile = construction::observed_profile(analysis, plan)?;
    let jobs = plan.shard(shard.0, shard.1);
    let records = construction::make_toys(analysis, plan, &profile, jobs, progress)?;
    let names = analysis
        .model
        .parameters
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let header = ToyFileHeader::new(
        workspace,
        plan,
        names,
        ModelFingerprint::of(analysis),
        shard,
    );
    Ok(ToyFile { header, records })
}

/// Toy files named by paths, folders (their `*.h5`) or glob patterns, sorted, each once.
pub fn toy_paths(inputs: &[String]) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for input in inputs {
        let pattern = if Path::new(input).is_dir() {
            format!("{}/*.h5", input.trim_end_matches('/'))
        } else {
            input.clone()
        };
        let bad_pattern = |e: glob::PatternError| {
            Error::Analysis(format!("toy file pattern '{input}' is not valid: {e}"))
        };
        let before = paths.len();
        for entry in glob::glob(&pattern).map_err(bad_pattern)? {
            paths
                .push(entry.map_err(|e| {
                    Error::io(format!("toy file {}", e.path().display()), e.into())
                })?);
        }
        if paths.len() == before {
            return Err(Error::Analysis(format!("no toy file matches '{input}'")));
        }
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// What `nsbi merge` wrote: a Neyman construction's toys or a hypothesis test's.
pub enum Merged {
    NeymanToys(usize),
    TestToys(usize),
}

/// Merges toy files of one run (either format, told by the first file) into `out`.
pub fn merge_files(paths: &[PathBuf], out: &Path) -> Result<Merged> {
    let first_format = paths.first().and_then(|p| test_toys::file_format(p));
    if first_format.as_deref() == Some(test_toys::FORMAT) {
        let merged = test_toys::merge(paths)?;
        merged.write(out)?;
        return Ok(Merged::TestToys(merged.records.len()));
    }
    let merged = toyfile::merge(paths)?;
    merged.write(out)?;
    Ok(Merged::NeymanToys(merged.records.len()))
}

/// The levels of a Neyman construction: 68.27 % and 95.45 %, and the `extra` ones asked for.
pub fn confidence_levels(extra: &[f64]) -> Result<Vec<f64>> {
    let mut levels = vec![0.6827, 0.9545];
    for &cl in extra {
        if !(cl > 0.0 && cl < 1.0) {
            return Err(Error::Analysis(format!(
                "--cl {cl}: a confidence level lies strictly between 0 and 1"
            )));
        }
        levels.push(cl);
    }
    Ok(levels)
}

/// The construction's POI in this analysis, which takes the toys' statistic's POI bounds and
/// must be the model the toys were made from (`files` names them in the refusal).
fn construction_poi(analysis: &mut Analysis, toys: &ToyFile, files: &str) -> Result<usize> {
    let header = &toys.header;
    let poi = analysis.model.parameter_index(&header.poi).ok_or_else(|| {
        Error::Analysis(format!(
            "the toys' POI '{}' is not in this workspace",
            header.poi
        ))
    })?;
    analysis.use_statistic_bounds(poi, header.test_stat);
    header.require_model(analysis, files)?;
    Ok(poi)
}

/// The Neyman construction from merged toys (`files` names them in messages): the observed
/// t_μ on the toys' grid, critical values at `levels`, and the confidence sets.
pub fn neyman(
    analysis: &mut Analysis,
    toys: &ToyFile,
    files: &str,
    levels: &[f64],
) -> Result<construction::NeymanResult> {
    let poi = construction_poi(analysis, toys, files)?;
    let header = &toys.header;
    let plan = ToyPlan {
        poi,
        grid: header.grid.clone(),
        n_toys: header.n_toys,
        seed: header.seed,
        systematics: header.systematics,
        statistic: header.test_stat,
    };
    let observed = construction::observed_profile(analysis, &plan)?.t();
    construction::neyman(header, &toys.records, observed, levels, &analysis.model)
}

/// A coverage check of a construction: fresh toys at one of its grid points.
#[derive(Clone, Debug)]
pub struct CoverageRequest {
    /// The true POI value: one of the construction's grid points.
    pub mu_true: f64,
    pub n_toys: usize,
    /// The coverage toys' seed (another than the construction's).
    pub seed: u64,
    pub levels: Vec<f64>,
}

/// Coverage of a construction (merged toys; `files` names them in messages) at a grid point.
pub fn coverage(
    analysis: &mut Analysis,
    toys: &ToyFile,
    files: &str,
    request: &CoverageRequest,
    progress: &(dyn Fn() + Sync),
) -> Result<serde_json::Value> {
    let (grid, mu_true) = (&toys.header.grid, request.mu_true);
    let grid_index = grid
        .iter()
        .position(|&mu| (mu - mu_true).abs() < 1e-9)
        .ok_or_else(|| {
            Error::Analysis(format!(
                "--mu-true {mu_true} is not a grid point of the construction ({grid:?})"
            ))
        })?;
    construction_poi(analysis, toys, files)?;
    construction::coverage(
        analysis,
        toys,
        grid_index,
        request.n_toys,
        request.seed,
        &request.levels,
        progress,
    )
}
