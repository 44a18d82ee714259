//! The steps every command shares, from a workspace path to a likelihood: load and check the
//! workspace, build the model, get the cached ratios, pick the dataset (observed or Asimov).
//! Kept here so the CLI stays a thin layer.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use std::sync::{Arc, OnceLock};

use crate::data::RatioCache;
use crate::error::{Error, Result};
use crate::fit::{self, FitOptions, FitResult};
use crate::likelihood::data::ChannelPool;
use crate::likelihood::normalisation::ChannelNormalisation;
use crate::likelihood::{data, ChannelData, Likelihood};
use crate::model::Model;
use crate::ratio::{self, ChannelRatios};
use crate::workspace::Workspace;

/// A workspace with its model and per-event ratios, ready to build likelihoods.
pub struct Analysis {
    pub workspace: Workspace,
    pub model: Model,
    pub ratios: Vec<ChannelRatios>,
    /// Each channel's shape normalisation, built on first use and shared by every dataset
    /// (it depends on the MC only; its tables are built once per analysis, not per dataset).
    normalisations: OnceLock<Vec<Arc<ChannelNormalisation>>>,
    /// Each channel's pooled MC (the Asimov sets' and toys' events), built on first use: a
    /// command on the observed data never builds it.
    pools: OnceLock<Vec<ChannelPool>>,
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
        let model = Model::from_workspace(&workspace)?;
        let ratios = ratio::prepare_workspace(&workspace, cache, show_progress)?;
        Ok(Analysis {
            workspace,
            model,
            ratios,
            normalisations: OnceLock::new(),
            pools: OnceLock::new(),
        })
    }

    /// Every channel's shape normalisation, built once: on the pools' shape inputs when the
    /// pools are built ([`ChannelPool::normalisation`], no second copy), otherwise from each
    /// process's own-MC entries alone ([`data::normalisation`]).
    pub fn normalisations(&self) -> Result<&[Arc<ChannelNormalisation>]> {
        if self.normalisations.get().is_none() {
            let channels = self.model.channels.iter().zip(&self.ratios);
            let built = match self.pools.get() {
                Some(pools) => channels
                    .zip(pools)
                    .map(|((c, r), pool)| pool.normalisation(c, r).map(Arc::new))
                    .collect::<Result<Vec<_>>>()?,
                None => channels
                    .map(|(c, r)| data::normalisation(c, r).map(Arc::new))
                    .collect::<Result<Vec<_>>>()?,
            };
            let _ = self.normalisations.set(built);
        }
        Ok(self.normalisations.get().expect("set above"))
    }

    /// Every channel's pooled MC ([`ChannelPool`]), built once. A command that fits both the
    /// observed data and Asimov sets or toys builds the pools first, so that the normalisation
    /// takes its shape inputs from them ([`Analysis::normalisations`]).
    pub fn pools(&self) -> Result<&[ChannelPool]> {
        if self.pools.get().is_none() {
            let built = self
                .model
                .channels
                .iter()
                .zip(&self.ratios)
                .map(|(c, r)| ChannelPool::new(c, r))
                .collect::<Result<Vec<_>>>()?;
            let _ = self.pools.set(built);
        }
        Ok(self.pools.get().expect("set above"))
    }

    pub fn datasets(&self, dataset: &Dataset) -> Result<Vec<ChannelData>> {
        let channels = self.model.channels.iter().zip(&self.ratios);
        match dataset {
            Dataset::Observed => channels
                .zip(self.normalisations()?.iter().cloned())
                .map(|((c, r), n)| ChannelData::observed_with(c, r, n))
                .collect(),
            Dataset::Asimov(theta) => {
                let pools = self.pools()?;
                channels
                    .zip(pools)
                    .zip(self.normalisations()?.iter().cloned())
                    .map(|(((c, r), pool), n)| ChannelData::asimov_on(c, r, pool, theta, n))
                    .collect()
            }
        }
    }

    /// The likelihood of `dataset`: observed events and counts, or the Asimov events (the
    /// weighted MC) and counts (the expected ones) at θ — with the nominal global observables
    /// for the observed data, the expected ones at θ for an Asimov set.
    pub fn likelihood(&self, dataset: &Dataset) -> Result<Likelihood<'_>> {
        let channels = self.datasets(dataset)?;
        let mut like = match dataset {
            Dataset::Asimov(theta) => Likelihood::with_asimov(&self.model, channels, theta),
            Dataset::Observed => Likelihood::new(&self.model, channels),
        };
        if let Dataset::Asimov(theta) = dataset {
            like.set_expected_global_observables(theta);
        }
        Ok(like)
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
    let result = fit::minimise(like, options);
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
        crate::likelihood::normalisation::report(like.model, &like.channels, &result.theta);
    let binned_channels = like.channel_reports(&result.theta);
    FitReport {
        result,
        intervals,
        normalisation,
        binned_channels,
    }
}

impl FitReport {
    /// The documented JSON schema of `nsbi fit --json` (see README).
    pub fn to_json(&self, model: &Model) -> Value {
        let r = &self.result;
        let n = r.theta.len();
        let mut parameters = Map::new();
        for (i, p) in model.parameters.iter().enumerate() {
            // Errors are null where the Hessian gives none (not positive definite).
            let error = r.hesse_error(i);
            let (low, high) = self
                .intervals
                .iter()
                .find(|interval| interval.parameter == i)
                .map_or((error, error), |interval| {
                    (
                        interval.low.map(|lo| r.theta[i] - lo),
                        interval.high.map(|hi| hi - r.theta[i]),
                    )
                });
            // Pull (θ̂ − a)/σ and constraint σ̂/σ in units of the constraint's width σ around
            // its global observable a.
            let (pull, constraint) =
                model
                    .constraints
                    .iter()
                    .find(|c| c.parameter == i)
                    .map_or((None, None), |c| {
                        let (centre, width) = c.centre_and_width();
                        (
                            Some((r.theta[i] - centre) / width),
                            error.map(|e| e / width),
                        )
                    });
            parameters.insert(
                p.name.clone(),
                json!({
                    "pull": pull, "constraint": constraint,
                    "value": r.theta[i], "error": error, "error_low": low, "error_high": high,
                    "bounds": [finite_or_null(p.bounds.0), finite_or_null(p.bounds.1)],
                    "fixed": r.fixed[i], "poi": p.poi, "constrained": p.constrained, "at_bound": r.at_bound[i],
                }),
            );
        }
        let mut correlation = Map::new();
        for (i, p) in model.parameters.iter().enumerate() {
            let mut row = Map::new();
            for (j, q) in model.parameters.iter().enumerate() {
                let denom = r.error(i) * r.error(j);
                // The diagonal is 1 by definition (cov_ii / σ_i² can round to 1 ± 1 ulp).
                let c = if i == j {
                    1.0
                } else if denom > 0.0 {
                    r.covariance[i * n + j] / denom
                } else {
                    0.0
                };
                row.insert(q.name.clone(), json!(c));
            }
            correlation.insert(p.name.clone(), Value::Object(row));
        }
        // No correlations without a covariance (a Hessian that is not positive definite).
        let has_covariance = r.hessian == fit::HessianStatus::PositiveDefinite;
        let minos: Vec<Value> = self
            .intervals
            .iter()
            .map(|interval| {
                json!({
                    "parameter": model.parameters[interval.parameter].name,
                    "conditional_fits": interval.conditional_fits, "n_eval": interval.n_eval,
                    "evaluations": evaluations_json(&interval.evaluations),
                    "notes": interval.notes,
                })
            })
            .collect();
        json!({
            "status": {"converged": r.converged, "verdict": r.verdict(), "hessian": r.hessian.as_str(), "message": r.message, "n_eval": r.n_eval, "evaluations": evaluations_json(&r.evaluations), "iterations": r.iterations, "edm": r.edm},
            "minos": minos,
            "nll": r.nll, "twice_nll": 2.0 * r.nll,
            "parameters": parameters,
            "correlation": if has_covariance { Value::Object(correlation) } else { Value::Null },
            "normalisation": self.normalisation,
            "binned_channels": self.binned_channels,
        })
    }
}

/// `{"value": .., "gradient": .., "hessian": ..}`: evaluations by order (a Hessian costs
/// several values).
fn evaluations_json(counts: &fit::EvaluationCounts) -> Value {
    json!({"value": counts.value, "gradient": counts.gradient, "hessian": counts.hessian})
}

fn finite_or_null(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// What `nsbi scan` was asked for.
pub struct ScanRequest {
    pub parameters: Vec<usize>,
    pub ranges: Vec<(f64, f64)>,
    pub points: Vec<usize>,
    /// Also scan with the nuisance parameters frozen at their best-fit values.
    pub stat_only: bool,
}

/// Confidence levels (%) of a 2-D scan's regions unless `--cl` asks for others: t ≤ 2.30
/// and t ≤ 5.99 (χ² with 2 degrees of freedom).
pub const CONTOUR_LEVELS_2D: [f64; 2] = [68.27, 95.0];

/// Runs a 1-D or 2-D profile scan (and its stat-only twin) and returns the JSON report; a 2-D
/// scan's regions at [`CONTOUR_LEVELS_2D`].
pub fn run_scan(
    like: &Likelihood,
    options: &FitOptions,
    request: &ScanRequest,
    progress: bool,
) -> Result<(Value, Vec<fit::scan::Scan>)> {
    run_scan_at_levels(like, options, request, &CONTOUR_LEVELS_2D, progress)
}

/// [`run_scan`] with a 2-D scan's regions at confidence levels `cls` (in %): their
/// thresholds t ≤ χ²₂ quantile, contours (`contours`) and the grid points left out for want
/// of a likelihood (`excluded_points`).
pub fn run_scan_at_levels(
    like: &Likelihood,
    options: &FitOptions,
    request: &ScanRequest,
    cls: &[f64],
    progress: bool,
) -> Result<(Value, Vec<fit::scan::Scan>)> {
    use fit::scan::{linspace, profile_intervals, scan, THRESHOLDS_1D};
    if let Some(cl) = cls.iter().find(|cl| !(**cl > 0.0 && **cl < 100.0)) {
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
        let points: Vec<Value> = result
            .points
            .iter()
            .map(|p| {
                let mut row = Map::new();
                for (name, v) in names.iter().zip(&p.values) {
                    row.insert(name.to_string(), json!(v));
                }
                row.insert("t".into(), json!(p.t));
                row.insert("nll".into(), json!(p.nll));
                row.insert("converged".into(), json!(p.converged));
                row.insert("best_fit".into(), json!(p.best_fit));
                Value::Object(row)
            })
            .collect();
        let mut report = Map::new();
        report.insert("points".into(), Value::Array(points));
        report.insert("best_fit_from_scan".into(), json!(result.best_from_scan));
        if request.parameters.len() == 1 {
            let (mut intervals, mut open_ends) = (Map::new(), Map::new());
            for (cl, level) in THRESHOLDS_1D {
                let mut notes = Vec::new();
                let found = profile_intervals(like, &result, frozen, level, &mut notes);
                let ends: Vec<[f64; 2]> = found.iter().map(|i| [i.low, i.high]).collect();
                let open: Vec<[bool; 2]> =
                    found.iter().map(|i| [i.low_open, i.high_open]).collect();
                intervals.insert(cl.to_string(), json!(ends));
                open_ends.insert(cl.to_string(), json!(open));
                warnings.extend(notes.into_iter().map(|n| format!("{label}, {cl} %: {n}")));
            }
            report.insert("intervals".into(), Value::Object(intervals));
            report.insert("open_ends".into(), Value::Object(open_ends));
        } else {
            warnings.extend(coarse_2d_warnings(&result, &names, label));
            let levels = contour_levels(cls);
            report.insert(
                "thresholds".into(),
                json!(levels
                    .iter()
                    .map(|(cl, t)| (format!("{cl}"), json!(t)))
                    .collect::<Map<String, Value>>()),
            );
            report.insert(
                "contours".into(),
                contours_json(&result, (&axes[0], &axes[1]), &levels),
            );
            report.insert(
                "excluded_points".into(),
                excluded_points_json(&result, &names),
            );
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
        reports.push((label.to_string(), report));
        scans.push(result);
    }
    let best_fit: Map<String, Value> = request
        .parameters
        .iter()
        .map(|&p| (like.model.parameters[p].name.clone(), json!(best.theta[p])))
        .collect();
    let (_, mut main) = reports.remove(0);
    main.insert("systematics".into(), json!(systematics));
    if request.parameters.len() == 1 {
        main.insert("poi".into(), json!(names[0]));
        main.insert("best_fit".into(), json!(best.theta[request.parameters[0]]));
    } else {
        main.insert("pois".into(), json!(names));
        main.insert("best_fit".into(), Value::Object(best_fit));
    }
    main.insert("best_nll".into(), json!(best.nll));
    if let Some((_, stat)) = reports.pop() {
        main.insert("stat_only".into(), Value::Object(stat));
    }
    main.insert("warnings".into(), json!(warnings));
    Ok((Value::Object(main), scans))
}

/// (CL in %, threshold on t) of a 2-D region at each confidence level.
pub fn contour_levels(cls: &[f64]) -> Vec<(f64, f64)> {
    cls.iter()
        .map(|&cl| (cl, fit::contour::chi2_threshold(cl / 100.0, 2)))
        .collect()
}

/// The contours of a 2-D scan's grid (the best-fit point aside) at each `(cl, threshold)`:
/// `[{cl, threshold, polylines: [[[x, y], …]], closed: [bool]}]`.
fn contours_json(scan: &fit::scan::Scan, axes: (&[f64], &[f64]), levels: &[(f64, f64)]) -> Value {
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
    let out: Vec<Value> = levels
        .iter()
        .map(|&(cl, threshold)| {
            let lines = fit::contour::contour(&grid, fit::contour::Threshold::Level(threshold));
            json!({
                "cl": cl, "threshold": threshold,
                "polylines": lines.iter().map(|l| &l.points).collect::<Vec<_>>(),
                "closed": lines.iter().map(|l| l.closed).collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(out)
}

/// The grid points without a likelihood: `[{<poi>: value, …, reason}]`.
fn excluded_points_json(scan: &fit::scan::Scan, names: &[&str]) -> Value {
    let out: Vec<Value> = scan
        .points
        .iter()
        .filter_map(|p| {
            let reason = p.excluded.as_ref()?;
            let mut row: Map<String, Value> = names
                .iter()
                .zip(&p.values)
                .map(|(name, v)| (name.to_string(), json!(v)))
                .collect();
            row.insert("reason".into(), json!(reason));
            Some(Value::Object(row))
        })
        .collect();
    Value::Array(out)
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
