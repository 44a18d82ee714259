//! The steps every command shares, from a workspace path to a likelihood: load and check the
//! workspace, build the model, get the cached ratios, pick the dataset (observed or Asimov).
//! Kept here so the CLI stays a thin layer.

use indexmap::IndexMap;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::sync::Arc;

use crate::data::RatioCache;
use crate::error::{Error, Result};
use crate::fit::{self, FitOptions, FitResult};
use crate::likelihood::{ChannelData, Likelihood};
use crate::model::Model;
use crate::ratio::{self, ChannelRatios};
use crate::results::{ContourOutput, ExcludedPoint, ScanBestFit, ScanCurve, ScanOutput, ScanRow};
use crate::workspace::Workspace;

/// A workspace with its model and per-event ratios, ready to build likelihoods.
pub struct Analysis {
    pub workspace: Workspace,
    /// The model, its unbinned channels attached to `ratios`.
    pub model: Model,
    /// The unbinned channels' ratios, one per channel.
    pub ratios: Arc<Vec<ChannelRatios>>,
}

/// Which events the likelihood is built on.
#[derive(Clone, Debug)]
pub enum Dataset {
    Observed,
    /// The weighted MC at this full parameter point.
    Asimov(Vec<f64>),
}

impl Analysis {
    pub fn load(
        path: &std::path::Path,
        cache: &RatioCache,
        show_progress: bool,
    ) -> Result<Analysis> {
        Analysis::from_workspace(Workspace::load(path)?, cache, show_progress)
    }

    /// Builds the model of an already loaded workspace and gets its ratios (from `cache` or
    /// evaluated now).
    pub fn from_workspace(
        workspace: Workspace,
        cache: &RatioCache,
        show_progress: bool,
    ) -> Result<Analysis> {
        let mut model = Model::from_workspace(&workspace)?;
        let ratios = Arc::new(ratio::prepare_workspace(&workspace, cache, show_progress)?);
        model.channels.attach(Arc::clone(&ratios));
        Ok(Analysis {
            workspace,
            model,
            ratios,
        })
    }

    /// Builds what every channel kind's Asimov sets and toys are made from (the unbinned
    /// pools, [`crate::channel::ChannelKind::prepare_generation`]): a command that fits both
    /// the observed data and Asimov sets or toys does this first, so that the unbinned
    /// normalisation takes its shape inputs from the pools.
    pub fn prepare_generation(&self) -> Result<()> {
        self.model
            .all_kinds()
            .try_for_each(|kind| kind.prepare_generation())
    }

    /// The unbinned channels' datasets of `dataset`.
    pub fn datasets(&self, dataset: &Dataset) -> Result<Vec<ChannelData>> {
        match dataset {
            Dataset::Observed => self.model.channels.observed_sets(),
            Dataset::Asimov(theta) => self.model.channels.asimov_sets(theta),
        }
    }

    /// The likelihood of `dataset`: every channel kind's observed data, or its Asimov data at
    /// θ (the unbinned channels' weighted MC, the binned channels' expected counts) — with the
    /// nominal global observables for the observed data, the expected ones at θ for an Asimov
    /// set.
    pub fn likelihood(&self, dataset: &Dataset) -> Result<Likelihood<'_>> {
        let kinds = self.model.all_kinds();
        let observed: Result<Vec<_>> = match dataset {
            Dataset::Observed => kinds.map(|kind| kind.observed()).collect(),
            Dataset::Asimov(theta) => kinds.map(|kind| kind.asimov(theta)).collect(),
        };
        let mut like = Likelihood::with_observed(&self.model, observed?);
        if let Dataset::Asimov(theta) = dataset {
            like.set_expected_global_observables(theta);
        }
        Ok(like)
    }

    /// Loads the workspace at `path` with its ratios cached in `cache_dir` (default:
    /// [`default_cache_dir`]), as every command does.
    pub fn open(
        path: &std::path::Path,
        cache_dir: Option<std::path::PathBuf>,
        show_progress: bool,
    ) -> Result<Analysis> {
        let workspace = Workspace::load(path)?;
        let cache = RatioCache::new(cache_dir.unwrap_or_else(|| default_cache_dir(&workspace)));
        Analysis::from_workspace(workspace, &cache, show_progress)
    }

    /// The observed data, or the Asimov set at `asimov` (`name=value,...`; unlisted
    /// parameters at their `init`).
    pub fn dataset(&self, asimov: Option<&str>) -> Result<Dataset> {
        Ok(match asimov {
            None => Dataset::Observed,
            Some(text) => {
                let mut theta = self.model.init();
                for (i, v) in self.assignments(text, "--asimov")? {
                    theta[i] = v;
                }
                Dataset::Asimov(theta)
            }
        })
    }

    /// The fit options of `like` with the starting values `set_init` and the parameters held
    /// at `fix` (both `name=value,...`).
    pub fn fit_options(
        &self,
        like: &Likelihood,
        set_init: Option<&str>,
        fix: Option<&str>,
    ) -> Result<FitOptions> {
        let mut options = FitOptions::new(like);
        for (i, v) in self.assignments(set_init.unwrap_or(""), "--set-init")? {
            options.init[i] = v;
        }
        for (i, v) in self.assignments(fix.unwrap_or(""), "--fix")? {
            options.init[i] = v;
            options.fixed[i] = true;
        }
        Ok(options)
    }

    /// The parameter named by `--poi`, or the workspace's first POI.
    pub fn poi_index(&self, name: Option<&str>) -> Result<usize> {
        match name {
            Some(name) => self
                .model
                .parameter_index(name)
                .ok_or_else(|| Error::Analysis(format!("--poi: unknown parameter '{name}'"))),
            None => {
                self.model.pois().first().copied().ok_or_else(|| {
                    Error::Analysis("the workspace declares no POI: give --poi".into())
                })
            }
        }
    }

    /// The POI takes the bounds of the statistic it is tested with (t̃_μ and q̃_μ keep it ≥ 0)
    /// before anything is fitted.
    pub fn use_statistic_bounds(
        &mut self,
        poi: usize,
        statistic: crate::infer::test_stat::TestStatistic,
    ) {
        let bounds = &mut self.model.parameters[poi].bounds;
        *bounds = statistic.poi_bounds(*bounds);
    }

    /// Parses `name=value,name=value` assignments against the model's parameters.
    pub fn assignments(&self, text: &str, what: &str) -> Result<Vec<(usize, f64)>> {
        let mut out = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item.split_once('=').ok_or_else(|| {
                Error::Analysis(format!("{what}: expected name=value, got '{item}'"))
            })?;
            let index = self.model.parameter_index(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = self
                    .model
                    .parameters
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                Error::Analysis(format!(
                    "{what}: unknown parameter '{}' (parameters: {})",
                    name.trim(),
                    known.join(", ")
                ))
            })?;
            let value: f64 = value.trim().parse().map_err(|_| {
                Error::Analysis(format!("{what}: '{}' is not a number", value.trim()))
            })?;
            let (lo, hi) = self.model.parameters[index].bounds;
            if !(lo..=hi).contains(&value) {
                return Err(Error::Analysis(format!(
                    "{what}: {name}={value} lies outside its bounds [{lo}, {hi}]"
                )));
            }
            if out.iter().any(|&(k, _)| k == index) {
                return Err(Error::Analysis(format!(
                    "{what}: {} is given twice; give each parameter once",
                    name.trim()
                )));
            }
            out.push((index, value));
        }
        Ok(out)
    }
}

/// The ratio cache of a workspace: $NSBI_CACHE_DIR, or `.nsbi-cache` beside it.
pub fn default_cache_dir(ws: &Workspace) -> std::path::PathBuf {
    std::env::var_os("NSBI_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ws.dir().join(".nsbi-cache"))
}

/// A fit with its profile-likelihood intervals for the POIs, as the `--json` report.
pub struct FitReport {
    pub result: FitResult,
    /// The ΔNLL = ½ profile interval of each free POI.
    pub intervals: Vec<fit::ProfileInterval>,
    /// The shape normalisation at the best fit ([`crate::likelihood::normalisation::report`]).
    pub normalisation: Value,
    /// Each binned (other-kind) channel's counts and expected counts at the best fit.
    pub binned_channels: Vec<BinnedChannelReport>,
}

/// A binned channel at the best fit (the report of every channel kind but the unbinned one).
pub use crate::channel::ChannelReport as BinnedChannelReport;

/// Fits `like` from `options` and profiles every free POI.
pub fn fit_with_intervals(like: &Likelihood, options: &FitOptions, minos: bool) -> FitReport {
    let mut result = fit::minimise(like, options);
    if result.converged {
        refuse_minimum_without_density(like, &mut result);
    }
    let mut intervals = Vec::new();
    if minos && result.converged {
        for poi in like.model.pois() {
            if !options.fixed[poi] {
                let budget = fit::MINOS_BUDGET_FITS * options.max_evaluations;
                intervals.push(fit::profile_interval(like, &result, poi, 0.5, budget));
            }
        }
    }
    let normalisation =
        crate::likelihood::normalisation::report(like.model, like.unbinned(), &result.theta);
    let binned_channels = like.channel_reports(&result.theta);
    FitReport {
        result,
        intervals,
        normalisation,
        binned_channels,
    }
}

/// A minimum where the model is not a density (some pooled MC event of an unbinned channel
/// with a negative density, or a negative expected count) is not a success, even though the
/// data's own events have a likelihood there: the fit is marked not converged, saying where.
/// (Where the check itself cannot be made — a pool that toys could not use — the fit stands.)
fn refuse_minimum_without_density(like: &Likelihood, result: &mut fit::FitResult) {
    if let Ok(Some(invalid)) = like.model.generation_invalid(&result.theta) {
        result.converged = false;
        result.message.push_str(&format!(
            "; the model is not a density at this minimum (over the pooled MC or the bins: \
             {invalid}): restrict the parameters' bounds to where it is one"
        ));
    }
}

/// What `nsbi scan` was asked for.
pub struct ScanRequest {
    pub parameters: Vec<usize>,
    pub ranges: Vec<(f64, f64)>,
    pub points: Vec<usize>,
    /// Also scan with the nuisance parameters frozen at their best-fit values.
    pub stat_only: bool,
    /// Confidence levels (%) of a 2-D scan's regions ([`CONTOUR_LEVELS_2D`] by default).
    pub levels: Vec<f64>,
}

/// Confidence levels (%) of a 2-D scan's regions unless `--cl` asks for others: t ≤ 2.30
/// and t ≤ 5.99 (χ² with 2 degrees of freedom).
pub const CONTOUR_LEVELS_2D: [f64; 2] = [68.27, 95.0];

impl ScanRequest {
    /// The scan of the parameters `names` over `ranges` with `points` values each (one count
    /// for all, or one per parameter), checked against the model: known names, ranges inside
    /// the bounds, at least 2 points.
    pub fn new(
        model: &Model,
        names: &[&str],
        ranges: &[(f64, f64)],
        points: &[usize],
        stat_only: bool,
    ) -> Result<ScanRequest> {
        if names.len() != ranges.len() {
            return Err(Error::Analysis(format!(
                "give one --range per --poi ({} --poi, {} --range)",
                names.len(),
                ranges.len()
            )));
        }
        let mut parameters = Vec::new();
        for (name, &(lo, hi)) in names.iter().zip(ranges) {
            if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
                return Err(Error::Analysis(format!(
                    "--range {lo}:{hi} of '{name}': expected low < high"
                )));
            }
            let index = model
                .parameter_index(name)
                .ok_or_else(|| Error::Analysis(format!("--poi: unknown parameter '{name}'")))?;
            let (blo, bhi) = model.parameters[index].bounds;
            if lo < blo || hi > bhi {
                return Err(Error::Analysis(format!(
                    "--range {lo}:{hi} of '{name}' lies outside its bounds [{blo}, {bhi}]"
                )));
            }
            parameters.push(index);
        }
        let points: Vec<usize> = match points {
            [n] => vec![*n; parameters.len()],
            many if many.len() == parameters.len() => many.to_vec(),
            _ => {
                return Err(Error::Analysis(
                    "give one --points, or one per --poi".into(),
                ))
            }
        };
        if points.iter().any(|&n| n < 2) {
            return Err(Error::Analysis("--points must be at least 2".into()));
        }
        fit::scan::check_points(&points)?;
        Ok(ScanRequest {
            parameters,
            ranges: ranges.to_vec(),
            points,
            stat_only,
            levels: CONTOUR_LEVELS_2D.to_vec(),
        })
    }
}

/// Runs a 1-D or 2-D profile scan (and its stat-only twin) and returns its report.
pub fn scan_report(
    like: &Likelihood,
    options: &FitOptions,
    request: &ScanRequest,
    progress: bool,
) -> Result<(ScanOutput, Vec<fit::scan::Scan>)> {
    use fit::scan::{linspace, profile_intervals, scan, THRESHOLDS_1D};
    if let Some(cl) = request
        .levels
        .iter()
        .find(|cl| !(**cl > 0.0 && **cl < 100.0))
    {
        return Err(Error::Analysis(format!(
            "--cl {cl}: a confidence level is a percentage strictly between 0 and 100"
        )));
    }
    check_scan_parameters(like, options, &request.parameters)?;
    let best = fit::minimise(like, options);
    if !best.converged {
        return Err(Error::Analysis(format!(
            "the global fit before the scan did not converge: {}",
            best.message
        )));
    }
    let axes: Vec<Vec<f64>> = request
        .ranges
        .iter()
        .zip(&request.points)
        .map(|(r, n)| linspace(r.0, r.1, *n))
        .collect();
    let grid: Vec<Vec<f64>> = match axes.as_slice() {
        [x] => x.iter().map(|v| vec![*v]).collect(),
        [x, y] => x
            .iter()
            .flat_map(|a| y.iter().map(move |b| vec![*a, *b]))
            .collect(),
        _ => {
            return Err(Error::Analysis(
                "scans take one or two parameters (--poi)".into(),
            ))
        }
    };
    let names: Vec<&str> = request
        .parameters
        .iter()
        .map(|&p| like.model.parameters[p].name.as_str())
        .collect();
    let nuisances: Vec<usize> = (0..like.n_parameters())
        .filter(|i| !request.parameters.contains(i) && !like.model.parameters[*i].poi)
        .collect();
    // Parameters the user fixed stay at their values at every scan point too.
    let fixed: Vec<usize> = (0..like.n_parameters())
        .filter(|i| options.fixed[*i] && !request.parameters.contains(i))
        .collect();
    let systematics = nuisances.iter().any(|&i| !options.fixed[i]);
    let mut warnings = Vec::new();
    if request.stat_only && !systematics {
        warnings.push(
            "--stat-only: the model has no free nuisance parameter, so the main curve is already \
             stat-only and no second curve is drawn"
                .to_string(),
        );
    }
    let main_label = if systematics {
        "stat+syst"
    } else {
        "stat-only"
    };
    let mut frozen_stat = fixed.clone();
    frozen_stat.extend(nuisances);
    // Without a free nuisance the stat-only curve would repeat the main one point for point.
    let variants: Vec<(&str, Vec<usize>)> = if request.stat_only && systematics {
        vec![(main_label, fixed), ("stat-only", frozen_stat)]
    } else {
        vec![(main_label, fixed)]
    };
    let mut scans = Vec::new();
    let mut reports = Vec::new();
    for (label, frozen) in &variants {
        let bar = progress.then(|| {
            let bar = ProgressBar::new(grid.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} points ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(format!("scan {} ({label})", names.join(", ")));
            bar
        });
        let result = scan(
            like,
            &best,
            &request.parameters,
            &grid,
            frozen,
            bar.as_ref(),
        )?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let points: Vec<ScanRow> = result
            .points
            .iter()
            .map(|p| ScanRow {
                values: names
                    .iter()
                    .map(|n| n.to_string())
                    .zip(p.values.clone())
                    .collect(),
                t: p.t,
                nll: p.nll,
                converged: p.converged,
                best_fit: p.best_fit,
            })
            .collect();
        let mut report = ScanCurve {
            points,
            best_fit_from_scan: result.best_from_scan,
            intervals: None,
            open_ends: None,
            thresholds: None,
            contours: None,
            excluded_points: None,
        };
        if request.parameters.len() == 1 {
            let (mut intervals, mut open_ends) = (IndexMap::new(), IndexMap::new());
            for (cl, level) in THRESHOLDS_1D {
                let mut notes = Vec::new();
                let found = profile_intervals(like, &result, frozen, level, &mut notes);
                let ends: Vec<[f64; 2]> = found.iter().map(|i| [i.low, i.high]).collect();
                let open: Vec<[bool; 2]> =
                    found.iter().map(|i| [i.low_open, i.high_open]).collect();
                intervals.insert(cl.to_string(), ends);
                open_ends.insert(cl.to_string(), open);
                warnings.extend(notes.into_iter().map(|n| format!("{label}, {cl} %: {n}")));
            }
            report.intervals = Some(intervals);
            report.open_ends = Some(open_ends);
        } else {
            warnings.extend(coarse_2d_warnings(&result, &names, label));
            let levels = contour_levels(&request.levels);
            report.thresholds = Some(levels.iter().map(|(cl, t)| (format!("{cl}"), *t)).collect());
            report.contours = Some(contours(&result, (&axes[0], &axes[1]), &levels));
            report.excluded_points = Some(excluded_points(&result, &names));
            let excluded = result
                .points
                .iter()
                .filter(|p| p.excluded.is_some())
                .count();
            if excluded > 0 {
                warnings.push(format!(
                    "{label}: {excluded} grid point(s) have no likelihood (the density is ≤ 0 \
                     there) and are left out of the regions; see excluded_points"
                ));
            }
        }
        reports.push(report);
        scans.push(result);
    }
    let one = request.parameters.len() == 1;
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let best_fit = if one {
        ScanBestFit::One(best.theta[request.parameters[0]])
    } else {
        let values = request.parameters.iter().map(|&p| best.theta[p]);
        ScanBestFit::ByName(names.iter().cloned().zip(values).collect())
    };
    let mut reports = reports.into_iter();
    let output = ScanOutput {
        curve: reports.next().expect("the main curve is always scanned"),
        systematics,
        poi: one.then(|| names[0].clone()),
        pois: (!one).then_some(names),
        best_fit,
        best_nll: best.nll,
        stat_only: reports.next(),
        warnings,
    };
    Ok((output, scans))
}

/// [`scan_report`] as its JSON value, for callers that read the report by key.
pub fn run_scan(
    like: &Likelihood,
    options: &FitOptions,
    request: &ScanRequest,
    progress: bool,
) -> Result<(Value, Vec<fit::scan::Scan>)> {
    let (output, scans) = scan_report(like, options, request, progress)?;
    let value = serde_json::to_value(&output).expect("scan reports always serialise");
    Ok((value, scans))
}

/// (CL in %, threshold on t) of a 2-D region at each confidence level.
pub fn contour_levels(cls: &[f64]) -> Vec<(f64, f64)> {
    cls.iter()
        .map(|&cl| (cl, fit::contour::chi2_threshold(cl / 100.0, 2)))
        .collect()
}

/// The contours of a 2-D scan's grid (the best-fit point aside) at each `(cl, threshold)`.
fn contours(
    scan: &fit::scan::Scan,
    axes: (&[f64], &[f64]),
    levels: &[(f64, f64)],
) -> Vec<ContourOutput> {
    let grid = fit::contour::Grid2 {
        xs: axes.0.to_vec(),
        ys: axes.1.to_vec(),
        values: scan
            .points
            .iter()
            .filter(|p| !p.best_fit)
            .map(|p| p.t)
            .collect(),
    };
    levels
        .iter()
        .map(|&(cl, threshold)| {
            let lines = fit::contour::contour(&grid, fit::contour::Threshold::Level(threshold));
            ContourOutput {
                cl,
                threshold,
                polylines: lines.iter().map(|l| l.points.clone()).collect(),
                closed: lines.iter().map(|l| l.closed).collect(),
            }
        })
        .collect()
}

/// The grid points without a likelihood, with the reason.
fn excluded_points(scan: &fit::scan::Scan, names: &[&str]) -> Vec<ExcludedPoint> {
    scan.points
        .iter()
        .filter_map(|p| {
            Some(ExcludedPoint {
                values: names
                    .iter()
                    .map(|n| n.to_string())
                    .zip(p.values.clone())
                    .collect(),
                reason: p.excluded.clone()?,
            })
        })
        .collect()
}

/// Refuses a scan of a parameter named twice or held fixed (by `--fix` or `fixed: true`):
/// its "best fit" would be the fixed value and its interval meaningless.
fn check_scan_parameters(
    like: &Likelihood,
    options: &FitOptions,
    parameters: &[usize],
) -> Result<()> {
    for (k, &p) in parameters.iter().enumerate() {
        let name = &like.model.parameters[p].name;
        if parameters[..k].contains(&p) {
            return Err(Error::Analysis(format!(
                "--poi {name} is given twice: a scan takes distinct parameters"
            )));
        }
        if options.fixed[p] {
            return Err(Error::Analysis(format!(
                "cannot scan '{name}': it is fixed (by --fix or `fixed: true` in the workspace), \
                 so it has no best fit or interval; free it to scan it"
            )));
        }
    }
    Ok(())
}

/// Warnings for a 2-D scan whose 68.27 % region spans fewer than 3 grid values along an
/// axis: the grid is too coarse to draw the region.
fn coarse_2d_warnings(scan: &fit::scan::Scan, names: &[&str], label: &str) -> Vec<String> {
    let level = fit::scan::THRESHOLDS_2D[0].1;
    let inside: Vec<&fit::scan::ScanPoint> = scan
        .points
        .iter()
        .filter(|p| !p.best_fit && p.t <= level)
        .collect();
    let mut warnings = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let mut values: Vec<f64> = inside.iter().map(|p| p.values[k]).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        if values.len() < 3 {
            warnings.push(format!(
                "{label}: the 68.27 % region spans {} grid value(s) of {name}: the grid is too \
                 coarse to show it; use more --points or a narrower --range",
                values.len()
            ));
        }
    }
    warnings
}
