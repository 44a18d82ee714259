//! The Neyman construction as a user runs it: from a request in the user's terms (parameter
//! names, grid text, toy files named by paths or patterns) to toy files, critical values and
//! coverage. The command line and the Python package both call these, so a request means the
//! same thing, and is refused with the same message, wherever it is made.

use std::path::{Path, PathBuf};

use super::construction::{self, check_toy_count, CoverageOutput, GridSpec, NeymanOutput};
use super::region::{self, NeymanRegionOutput};
use super::test_stat::TestStatistic;
use super::test_toys;
use super::toyfile::{self, ModelFingerprint, ToyFile, ToyFileHeader};
use super::toys::ToyPlan;
use crate::analysis::Analysis;
use crate::error::{Error, Result};

/// The grid of a toy request, in the command line's three spellings.
#[derive(Clone, Debug)]
pub enum GridRequest {
    /// `--mu-grid start:stop:step` of the request's `poi`: every other POI profiled.
    MuGrid(String),
    /// `--grid NAME=start:stop:step`, repeated: the product of the axes.
    Axes(Vec<String>),
    /// `--points FILE`: a header line naming the POIs, then a point per line.
    Points(PathBuf),
}

/// The toys a user asks for: `nsbi toys` and `nsbi batch` options.
#[derive(Clone, Debug)]
pub struct ToyRequest {
    /// The parameter of interest of a `--mu-grid` (default: the workspace's first POI).
    pub poi: Option<String>,
    pub grid: GridRequest,
    /// POIs the statistic profiles (`--profile`, with `--grid` or `--points`); the model's
    /// POIs neither on the grid nor profiled are held at their initial values.
    pub profile: Vec<String>,
    /// Toys per grid point.
    pub n_toys: usize,
    pub seed: u64,
    /// Stat-only: nuisance parameters frozen at their best fit on the observed data.
    pub no_syst: bool,
    /// The construction's two-sided statistic (t_μ or t̃_μ).
    pub statistic: TestStatistic,
}

/// The plan a request makes on this analysis, checked against the workspace's parameters; the
/// model takes the statistic's POI bounds (t̃_μ keeps the grid's POIs ≥ 0) before anything is
/// fitted.
pub fn toy_plan(analysis: &mut Analysis, request: &ToyRequest) -> Result<ToyPlan> {
    if request.poi.is_some() && !matches!(request.grid, GridRequest::MuGrid(_)) {
        return Err(Error::Analysis(
            "--poi names the POI of --mu-grid; --grid and --points name their POIs themselves"
                .into(),
        ));
    }
    let spec = match &request.grid {
        GridRequest::MuGrid(text) => GridSpec::MuGrid {
            poi: analysis.poi_index(request.poi.as_deref())?,
            text,
        },
        GridRequest::Axes(axes) => GridSpec::Axes(axes),
        GridRequest::Points(path) => GridSpec::Points(path),
    };
    if request.n_toys == 0 {
        return Err(Error::Analysis("--toys must be at least 1".into()));
    }
    let (pois, profiled, grid) = construction::toy_grid(&analysis.model, spec, &request.profile)?;
    check_toy_count(grid.len(), request.n_toys)?;
    let statistic = request.statistic;
    if statistic.is_one_sided() {
        return Err(Error::Analysis(format!(
            "--test-stat {statistic}: the Neyman construction takes a two-sided statistic, tmu \
             or tmutilde (one-sided tests: nsbi hypotest, nsbi limit)"
        )));
    }
    for &poi in &pois {
        analysis.use_statistic_bounds(poi, statistic);
    }
    Ok(ToyPlan {
        pois,
        profiled,
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
    // Every kind's toy inputs first (the unbinned pools): the observed fits' normalisation then
    // shares their shape inputs.
    analysis.prepare_generation()?;
    let mut profile = construction::observed_profile(analysis, plan)?;
    profile.exclude_generation(analysis, plan)?;
    let jobs = plan.shard(shard.0, shard.1);
    let records = construction::make_toys(analysis, plan, &profile, jobs, progress)?;
    let names = analysis
        .model
        .parameters
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let mut header = ToyFileHeader::new(
        workspace,
        plan,
        names,
        ModelFingerprint::of(analysis),
        shard,
    );
    header.excluded = profile.excluded;
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

/// The plan the toys of a construction were made with, in this analysis: its POIs take the
/// toys' statistic's bounds, and the model must be the one the toys were made from (`files`
/// names them in the refusal).
fn construction_plan(analysis: &mut Analysis, toys: &ToyFile, files: &str) -> Result<ToyPlan> {
    let header = &toys.header;
    let index = |names: &[String]| -> Result<Vec<usize>> {
        names
            .iter()
            .map(|name| {
                analysis.model.parameter_index(name).ok_or_else(|| {
                    Error::Analysis(format!("the toys' POI '{name}' is not in this workspace"))
                })
            })
            .collect()
    };
    let (pois, profiled) = (index(&header.pois)?, index(&header.profiled)?);
    for &poi in &pois {
        analysis.use_statistic_bounds(poi, header.test_stat);
    }
    header.require_model(analysis, files)?;
    Ok(ToyPlan {
        pois,
        profiled,
        grid: header.grid.clone(),
        n_toys: header.n_toys,
        seed: header.seed,
        systematics: header.systematics,
        statistic: header.test_stat,
    })
}

/// What `nsbi neyman` finds: intervals of one POI, or regions of several.
#[derive(Clone, Debug)]
pub enum NeymanReport {
    Intervals(Box<NeymanOutput>),
    Regions(Box<NeymanRegionOutput>),
}

/// The Neyman construction from merged toys (`files` names them in messages): the observed
/// t on the toys' grid, critical values at `levels`, and the confidence sets — intervals for
/// one POI, regions (grid mask, and contours on a product grid of two) for several.
pub fn neyman(
    analysis: &mut Analysis,
    toys: &ToyFile,
    files: &str,
    levels: &[f64],
) -> Result<NeymanReport> {
    let plan = construction_plan(analysis, toys, files)?;
    let (header, records) = (&toys.header, &toys.records);
    let profile = construction::observed_profile(analysis, &plan)?;
    let model = &analysis.model;
    // The toys' excluded points (the generation model's too, which the observed fits do not
    // see) belong to no set.
    let mut observed_t = profile.t();
    for e in &header.excluded {
        observed_t[e.grid_index] = f64::NAN;
    }
    if let Some(g) = (0..observed_t.len())
        .find(|&g| profile.is_excluded(g) && !construction::is_excluded(&header.excluded, g))
    {
        return Err(Error::Analysis(format!(
            "the toy files {files} hold toys at grid point {g}, where the observed data have no \
             likelihood: they were made from other data; make the toys again"
        )));
    }
    if plan.pois.len() == 1 {
        let output = construction::neyman(header, records, observed_t, levels, model)?;
        return Ok(NeymanReport::Intervals(Box::new(output)));
    }
    let best_fit = plan.pois.iter().map(|&k| profile.free.theta[k]).collect();
    let systematics = header.systematics && model.has_free_nuisances();
    let output =
        region::neyman_regions(header, records, observed_t, best_fit, levels, systematics)?;
    Ok(NeymanReport::Regions(Box::new(output)))
}

/// The true point of a coverage check.
#[derive(Clone, Debug)]
pub enum TruePoint {
    /// `--mu-true`: the value of a one-POI construction's POI.
    Mu(f64),
    /// `--at c1=0.2,c2=-0.1`: every POI of the construction's grid by name.
    ByName(String),
}

/// A coverage check of a construction: fresh toys at one of its grid points.
#[derive(Clone, Debug)]
pub struct CoverageRequest {
    /// The true point: one of the construction's grid points.
    pub point: TruePoint,
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
) -> Result<CoverageOutput> {
    let header = &toys.header;
    let point = match &request.point {
        TruePoint::Mu(mu) => {
            if header.pois.len() != 1 {
                return Err(Error::Analysis(format!(
                    "--mu-true is for a construction of one POI; this one has {} ({}): give \
                     --at {}",
                    header.pois.len(),
                    header.pois.join(", "),
                    header
                        .pois
                        .iter()
                        .map(|p| format!("{p}=…"))
                        .collect::<Vec<_>>()
                        .join(",")
                )));
            }
            vec![*mu]
        }
        TruePoint::ByName(text) => true_point(analysis, &header.pois, text)?,
    };
    let grid_index = header.grid.index_of(&point).ok_or_else(|| {
        Error::Analysis(format!(
            "the true point ({}) is not a grid point of the construction",
            header
                .pois
                .iter()
                .zip(&point)
                .map(|(name, v)| format!("{name} = {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    construction_plan(analysis, toys, files)?;
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

/// The values `text` (`name=value,…`) gives the construction's POIs `pois`, in their order:
/// each named exactly once, nothing else named.
fn true_point(analysis: &Analysis, pois: &[String], text: &str) -> Result<Vec<f64>> {
    let assigned = analysis.assignments(text, "--at")?;
    let model = &analysis.model;
    let names: Vec<&str> = assigned
        .iter()
        .map(|&(k, _)| model.parameters[k].name.as_str())
        .collect();
    if let Some(name) = names.iter().find(|n| !pois.iter().any(|p| p == *n)) {
        return Err(Error::Analysis(format!(
            "--at {name}: not a POI of the construction's grid ({})",
            pois.join(", ")
        )));
    }
    pois.iter()
        .map(|poi| {
            let at = names.iter().position(|n| n == poi);
            at.map(|i| assigned[i].1).ok_or_else(|| {
                Error::Analysis(format!(
                    "--at: no value for {poi} (the construction's grid has {})",
                    pois.join(", ")
                ))
            })
        })
        .collect()
}
