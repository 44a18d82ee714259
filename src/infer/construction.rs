//! The steps of a Neyman construction that need the analysis: the observed profile on the
//! grid (which also gives the generation points of the profile construction) and the toys of a
//! shard.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::{Analysis, Dataset};
use crate::error::{Error, Result};
use crate::fit::{minimise, why_undefined, FitOptions, FitResult};
use crate::likelihood::InvalidDensity;

use super::poi_grid::parse_values;
use super::test_stat::TestStatistic;
use super::toys::{run_toys, ToyPlan, ToyRecord, ToySource};

/// `--mu-grid start:stop:step` → start, start + step, …, stop (inclusive, to rounding).
pub fn parse_grid(text: &str) -> Result<Vec<f64>> {
    parse_values(&format!("--mu-grid '{text}'"), text)
}

/// The most toys a plan may hold in all (grid points × toys per point): 10⁹ toys are two
/// billion fits and 100 GB of toy records, beyond any construction; a larger request is a
/// typing error, and its product could overflow.
pub const MAX_TOYS: usize = 1_000_000_000;

/// The toys of `n_toys` per point on `n_grid` grid points in all; `None` beyond [`MAX_TOYS`].
pub fn total_toys(n_grid: usize, n_toys: usize) -> Option<usize> {
    n_grid
        .checked_mul(n_toys)
        .filter(|&total| total <= MAX_TOYS)
}

/// Refuses `n_toys` toys per point on `n_grid` grid points beyond [`MAX_TOYS`] in all.
pub fn check_toy_count(n_grid: usize, n_toys: usize) -> Result<()> {
    match total_toys(n_grid, n_toys) {
        Some(_) => Ok(()),
        None => Err(Error::Analysis(format!(
            "--toys {n_toys} on {n_grid} grid points is more than {MAX_TOYS} toys in all: \
             ask for fewer toys or a coarser grid"
        ))),
    }
}

/// The POIs of a plan by name: `grid` the POIs a grid point fixes (in the order of its
/// values), `profile` the POIs the statistic profiles. A POI of the model named by neither is
/// held at its initial value; `--mu-grid` (`profile_the_rest`) profiles them all, as one-POI
/// constructions always have.
pub fn plan_pois(
    model: &crate::model::Model,
    grid: &[String],
    profile: &[String],
    profile_the_rest: bool,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let index = |name: &String, option: &str| {
        model.parameter_index(name).ok_or_else(|| {
            Error::Analysis(format!(
                "{option} {name}: the workspace has no parameter '{name}' (its parameters: {})",
                model
                    .parameters
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    };
    let pois: Vec<usize> = grid
        .iter()
        .map(|n| index(n, "--grid"))
        .collect::<Result<_>>()?;
    for (i, k) in pois.iter().enumerate() {
        if pois[..i].contains(k) {
            return Err(Error::Analysis(format!(
                "--grid {}: the grid names this parameter twice",
                model.parameters[*k].name
            )));
        }
    }
    let mut profiled = Vec::new();
    for name in profile {
        let k = index(name, "--profile")?;
        if pois.contains(&k) {
            return Err(Error::Analysis(format!(
                "--profile {name}: {name} is on the grid; a POI is either fixed by the grid \
                 point or profiled"
            )));
        }
        if !model.parameters[k].poi {
            return Err(Error::Analysis(format!(
                "--profile {name}: {name} is not a POI of the workspace (nuisance parameters \
                 are always profiled, unless --no-syst)"
            )));
        }
        if !profiled.contains(&k) {
            profiled.push(k);
        }
    }
    if profile_the_rest {
        profiled.extend(model.pois().into_iter().filter(|k| !pois.contains(k)));
    }
    Ok((pois, profiled))
}

/// Where a construction's grid comes from: the command line's three spellings.
#[derive(Clone, Copy, Debug)]
pub enum GridSpec<'a> {
    /// `--poi NAME --mu-grid start:stop:step`: one POI (index), every other POI profiled.
    MuGrid { poi: usize, text: &'a str },
    /// `--grid NAME=start:stop:step`, repeated: the product of the axes.
    Axes(&'a [String]),
    /// `--points FILE`: a list of points ([`super::poi_grid::read_points`]).
    Points(&'a std::path::Path),
}

/// The POIs a grid point fixes, the profiled POIs (`profile`, names) and the grid points a
/// request names.
pub fn toy_grid(
    model: &crate::model::Model,
    spec: GridSpec,
    profile: &[String],
) -> Result<(Vec<usize>, Vec<usize>, super::poi_grid::PoiGrid)> {
    use super::poi_grid::{parse_axis, read_points, PoiGrid};
    let (names, grid, profile_the_rest) = match spec {
        GridSpec::MuGrid { poi, text } => {
            if !profile.is_empty() {
                return Err(Error::Analysis(
                    "--profile goes with --grid or --points: --mu-grid profiles every POI but \
                     its own"
                        .into(),
                ));
            }
            let name = model.parameters[poi].name.clone();
            (vec![name], PoiGrid::line(parse_grid(text)?), true)
        }
        GridSpec::Axes(texts) => {
            let (names, axes): (Vec<String>, Vec<Vec<f64>>) = texts
                .iter()
                .map(|t| parse_axis(t))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .unzip();
            (names, PoiGrid::product(axes)?, false)
        }
        GridSpec::Points(path) => {
            let (names, grid) = read_points(path)?;
            (names, grid, false)
        }
    };
    let (pois, profiled) = plan_pois(model, &names, profile, profile_the_rest)?;
    Ok((pois, profiled, grid))
}

/// Fits of the observed data: the unconditional best fit and the conditional fit at every
/// grid point, and the grid points excluded from the construction.
pub struct ObservedProfile {
    pub free: FitResult,
    pub conditional: Vec<FitResult>,
    /// The grid points where the model is not a density (by grid index): no toys are made
    /// there, and they belong to no confidence set.
    pub excluded: Vec<ExcludedPoint>,
}

/// Why a grid point is left out of a construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExclusionStage {
    /// The observed data have no likelihood at the point (for any value of the parameters the
    /// conditional fit frees): an observed event's density, a process's shape normalisation
    /// or a bin's expected count is not positive.
    ObservedData,
    /// The model the toys would be drawn from is not a density at the generation point: a
    /// pooled MC event's density or a bin's expected count is negative.
    Generation,
}

/// A grid point excluded from a construction because the mixture density is not a density
/// there — with several POIs the basis weights can make it negative in parts of the plane.
/// Such a point is reported, never generated at nor fitted through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExcludedPoint {
    pub grid_index: usize,
    /// The grid's POI values.
    pub point: Vec<f64>,
    pub stage: ExclusionStage,
    /// The channel where the density fails, where one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The event (of the observed data, or of the channel's pooled MC for `generation`) or,
    /// for a binned channel, the bin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin: Option<usize>,
    /// The process (index in its channel) whose shape normalisation is not positive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<usize>,
    /// The density, normalisation or expected count found there (null where not finite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub density: Option<f64>,
    /// The same, in words, with every parameter's value.
    pub reason: String,
}

impl ExcludedPoint {
    fn new(
        grid_index: usize,
        point: &[f64],
        stage: ExclusionStage,
        invalid: Option<&InvalidDensity>,
        reason: String,
    ) -> ExcludedPoint {
        let event = invalid.filter(|i| !i.bin && i.process.is_none());
        ExcludedPoint {
            grid_index,
            point: point.to_vec(),
            stage,
            channel: invalid.map(|i| i.channel.clone()),
            event: event.map(|i| i.event),
            bin: invalid.filter(|i| i.bin).map(|i| i.event),
            process: invalid.and_then(|i| i.process),
            density: invalid.map(|i| i.density).filter(|d| d.is_finite()),
            reason,
        }
    }

    /// `POI = value, …: reason`, for warnings.
    pub fn describe(&self, pois: &[String]) -> String {
        let point: Vec<String> = pois
            .iter()
            .zip(&self.point)
            .map(|(name, v)| format!("{name} = {v}"))
            .collect();
        let stage = match self.stage {
            ExclusionStage::ObservedData => "the observed data have no likelihood",
            ExclusionStage::Generation => "the toys' generation model is not a density",
        };
        format!("({}): {stage}: {}", point.join(", "), self.reason)
    }
}

/// The warning that lists a construction's excluded grid points (their reasons are in the
/// outputs' `excluded_points`), with the toys' fits `not_converged` (a free fit that ended
/// where the model is not a density is among them).
pub fn exclusion_warning(
    pois: &[String],
    excluded: &[ExcludedPoint],
    not_converged: usize,
) -> Option<String> {
    (!excluded.is_empty()).then(|| {
        let list: Vec<String> = excluded
            .iter()
            .map(|e| {
                let values: Vec<String> = pois
                    .iter()
                    .zip(&e.point)
                    .map(|(name, v)| format!("{name} = {v}"))
                    .collect();
                format!("({})", values.join(", "))
            })
            .collect();
        format!(
            "{} grid point(s) excluded: the model is not a density there (no toys; in no \
             confidence set): {}; {not_converged} toy fit(s) not converged, among them those \
             whose free fit ended where the model is not a density",
            excluded.len(),
            list.join(", ")
        )
    })
}

/// Whether grid point `g` is among `excluded`.
pub fn is_excluded(excluded: &[ExcludedPoint], g: usize) -> bool {
    excluded.iter().any(|e| e.grid_index == g)
}

impl ObservedProfile {
    /// t_obs(θ) = 2(NLL(θ, α̂̂) − NLL(θ̂, α̂)) on the grid; NaN at the excluded points.
    pub fn t(&self) -> Vec<f64> {
        let best = self
            .conditional
            .iter()
            .enumerate()
            .filter(|(g, _)| !self.is_excluded(*g))
            .map(|(_, c)| c.nll)
            .fold(self.free.nll, f64::min);
        self.conditional
            .iter()
            .enumerate()
            .map(|(g, c)| match self.is_excluded(g) {
                true => f64::NAN,
                false => 2.0 * (c.nll - best),
            })
            .collect()
    }

    /// Generation point of grid point g: (θ_g, α̂̂(θ_g)) — the profile construction.
    pub fn generation_point(&self, g: usize) -> &[f64] {
        &self.conditional[g].theta
    }

    pub fn is_excluded(&self, g: usize) -> bool {
        is_excluded(&self.excluded, g)
    }

    /// Excludes, besides the points where the observed data have no likelihood, those whose
    /// generation point is not a density of the model the toys are drawn from
    /// ([`crate::model::Model::generation_invalid`]); the excluded points end in grid order.
    pub fn exclude_generation(&mut self, analysis: &Analysis, plan: &ToyPlan) -> Result<()> {
        let model = &analysis.model;
        for (g, point) in plan.grid.points.iter().enumerate() {
            if self.is_excluded(g) {
                continue;
            }
            let theta = self.generation_point(g);
            if let Some(invalid) = model.generation_invalid(theta)? {
                let at = model.describe_point(theta);
                let reason = match invalid.bin {
                    true => format!("{invalid} at {at}"),
                    false => format!(
                        "per-event density Σ_c ν̃_c r_c g_c = {:.6e} < 0 at pooled MC event {} \
                         of channel {} at {at}",
                        invalid.density, invalid.event, invalid.channel
                    ),
                };
                self.excluded.push(ExcludedPoint::new(
                    g,
                    point,
                    ExclusionStage::Generation,
                    Some(&invalid),
                    reason,
                ));
            }
        }
        self.excluded.sort_by_key(|e| e.grid_index);
        Ok(())
    }
}

/// `name = value, …` of the grid's POIs at `point`, for messages.
pub fn describe_point(model: &crate::model::Model, pois: &[usize], point: &[f64]) -> String {
    pois.iter()
        .zip(point)
        .map(|(&k, v)| format!("{} = {v}", model.parameters[k].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fits the observed data at every grid point of `plan`, each conditional fit started where
/// the previous valid one ended. Without systematics the nuisances stay at their unconditional
/// best-fit values (the free fit floats them). A point where the observed data have no
/// likelihood is excluded, with the reason.
pub fn observed_profile(analysis: &Analysis, plan: &ToyPlan) -> Result<ObservedProfile> {
    let like = analysis.likelihood(&Dataset::Observed)?;
    let model = &analysis.model;
    for point in &plan.grid.points {
        for (&k, &value) in plan.pois.iter().zip(point) {
            let (lo, hi) = model.parameters[k].bounds;
            if !(lo..=hi).contains(&value) {
                return Err(Error::Analysis(format!(
                    "grid value {value} lies outside the bounds [{lo}, {hi}] of {}",
                    model.parameters[k].name
                )));
            }
        }
    }
    let free = minimise(&like, &plan.fit_options(&like));
    let mut options = plan.conditional_fit_options(&like);
    options.init = free.theta.clone();
    let mut conditional = Vec::with_capacity(plan.grid.len());
    let mut excluded = Vec::new();
    for (g, point) in plan.grid.points.iter().enumerate() {
        let mut init = options.init.clone();
        for (&k, &value) in plan.pois.iter().zip(point) {
            init[k] = value;
        }
        let fit = minimise(
            &like,
            &FitOptions {
                init,
                ..options.clone()
            },
        );
        if fit.nll.is_infinite() {
            let reason = why_undefined(&like, &fit.theta, &fit.evaluation);
            let invalid = fit.evaluation.invalid.as_ref();
            excluded.push(ExcludedPoint::new(
                g,
                point,
                ExclusionStage::ObservedData,
                invalid,
                reason,
            ));
        } else {
            options.init = fit.theta.clone();
        }
        conditional.push(fit);
    }
    Ok(ObservedProfile {
        free,
        conditional,
        excluded,
    })
}

/// Makes and fits the toys of jobs `jobs` (see [`ToyPlan::shard`]), one grid point at a time.
pub fn make_toys(
    analysis: &Analysis,
    plan: &ToyPlan,
    profile: &ObservedProfile,
    jobs: std::ops::Range<usize>,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<ToyRecord>> {
    let mut records = Vec::with_capacity(jobs.len());
    let mut job = jobs.start;
    while job < jobs.end {
        let g = job / plan.n_toys;
        let end = ((g + 1) * plan.n_toys).min(jobs.end);
        if profile.is_excluded(g) {
            job = end;
            continue;
        }
        let theta_gen = profile.generation_point(g);
        let source = ToySource::asimov(analysis, theta_gen)?;
        let mut made = run_toys(plan, &source, job..end, progress);
        if !profile.excluded.is_empty() {
            mark_fits_outside_the_density(&source, &mut made);
        }
        records.extend(made);
        job = end;
    }
    Ok(records)
}

/// Marks as failed (`converged_free` false) the toys whose free fit ended where the model is
/// not a density ([`crate::model::Model::generation_invalid`] at θ̂). A fit never steps to a
/// point where one of its toy's events has no density (that point has no likelihood and the
/// step is rejected), but it can end where the density is negative away from the toy's
/// events, which the fit does not see: its t would be taken against a model that is no
/// density. Checked where the plan has excluded points — where the model is known to turn
/// negative in the plane; a pool evaluation per toy (on the pool the toys were drawn from)
/// would otherwise add to every construction.
fn mark_fits_outside_the_density(source: &ToySource, records: &mut [ToyRecord]) {
    use rayon::prelude::*;
    records.par_iter_mut().for_each(|record| {
        record.converged_free &= source.invalid_at(&record.theta_hat).is_none();
    });
}

/// `nsbi neyman --json` of a one-POI construction: critical values on the grid with their
/// range from the toys' finite number, the observed t, and the confidence intervals beside
/// the asymptotic (Wilks) ones. Levels are keyed by their value in % (`68.27`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct NeymanOutput {
    pub poi: String,
    pub test_stat: TestStatistic,
    pub grid: Vec<f64>,
    /// Toys per grid point.
    pub n_toys: Vec<usize>,
    pub seed: u64,
    pub systematics: bool,
    #[schemars(with = "IndexMap<String, Vec<Option<f64>>>")]
    pub critical_values: IndexMap<String, Vec<f64>>,
    pub critical_value_ranges: IndexMap<String, CriticalRange>,
    pub observed_t: Vec<f64>,
    pub intervals: IndexMap<String, Vec<[f64; 2]>>,
    /// Whether each end of each interval stops at the grid's edge short of the POI's bound
    /// (the set may go on there).
    pub open_ends: IndexMap<String, Vec<[bool; 2]>>,
    pub interval_ranges: IndexMap<String, IntervalRange>,
    pub asymptotic_intervals: IndexMap<String, Vec<[f64; 2]>>,
    pub asymptotic_open_ends: IndexMap<String, Vec<[bool; 2]>>,
    pub toy_fits_not_converged: usize,
    /// The grid points left out (the model is not a density there): no toys, critical value
    /// and observed t null, in no interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_points: Vec<ExcludedPoint>,
    pub warnings: Vec<String>,
}

/// The critical values one binomial standard deviation of rank either side (per grid point).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CriticalRange {
    #[schemars(with = "Vec<Option<f64>>")]
    pub low: Vec<f64>,
    #[schemars(with = "Vec<Option<f64>>")]
    pub high: Vec<f64>,
}

/// The narrowest and widest intervals the critical values' ranges allow.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct IntervalRange {
    pub narrow: Vec<[f64; 2]>,
    pub wide: Vec<[f64; 2]>,
}

/// A level's key in the outputs: its value in % with two decimals (`68.27`).
pub fn level_label(level: f64) -> String {
    format!("{:.2}", 100.0 * level)
}

/// Critical values at `levels` from the merged toys of a one-POI construction, the observed
/// curve, and the intervals (with their range from the toys' finite number), beside the
/// asymptotic (Wilks) ones.
pub fn neyman(
    header: &super::toyfile::ToyFileHeader,
    records: &[ToyRecord],
    observed_t: Vec<f64>,
    levels: &[f64],
    model: &crate::model::Model,
) -> Result<NeymanOutput> {
    use super::neyman::{
        accepted_intervals, coarse_grid_warnings, critical_value, statistics_by_grid,
    };
    let [poi_name] = &header.pois[..] else {
        return Err(Error::Analysis(format!(
            "the toys' grid has {} POIs ({}); intervals are for one POI, regions for more",
            header.pois.len(),
            header.pois.join(", ")
        )));
    };
    let grid: Vec<f64> = header.grid.points.iter().map(|p| p[0]).collect();
    if grid.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::Analysis(
            "the toys' grid points of one POI are not in increasing order: intervals need an \
             ordered grid"
                .into(),
        ));
    }
    let mut warnings = Vec::new();
    let poi = model.parameter_index(poi_name).ok_or_else(|| {
        Error::Analysis(format!(
            "the toys' POI '{poi_name}' is not in this workspace"
        ))
    })?;
    let bounds = model.parameters[poi].bounds;
    let edge = |end: Option<&f64>| end.copied().unwrap_or(f64::NAN);
    let edges = (edge(grid.first()), edge(grid.last()));
    let by_grid = statistics_by_grid(records, grid.len());
    let pairs =
        |iv: Vec<(f64, f64)>| -> Vec<[f64; 2]> { iv.iter().map(|&(a, b)| [a, b]).collect() };
    // Which ends stop at the grid's edge short of the POI's bound: the set may go on there.
    let open_ends = |iv: &[[f64; 2]]| -> Vec<[bool; 2]> {
        crate::fit::scan::with_open_ends(iv, edges, bounds)
            .iter()
            .map(|i| [i.low_open, i.high_open])
            .collect()
    };
    let mut out = NeymanOutput {
        poi: poi_name.clone(),
        test_stat: header.test_stat,
        grid: grid.clone(),
        n_toys: by_grid.iter().map(Vec::len).collect(),
        seed: header.seed,
        systematics: header.systematics && model.has_free_nuisances(),
        critical_values: IndexMap::new(),
        critical_value_ranges: IndexMap::new(),
        observed_t: observed_t.clone(),
        intervals: IndexMap::new(),
        open_ends: IndexMap::new(),
        interval_ranges: IndexMap::new(),
        asymptotic_intervals: IndexMap::new(),
        asymptotic_open_ends: IndexMap::new(),
        toy_fits_not_converged: not_converged(records),
        excluded_points: header.excluded.clone(),
        warnings: Vec::new(),
    };
    warnings.extend(exclusion_warning(
        &header.pois,
        &header.excluded,
        not_converged(records),
    ));
    for &level in levels {
        let label = level_label(level);
        let c: Vec<_> = by_grid.iter().map(|t| critical_value(t, level)).collect();
        let values: Vec<f64> = c.iter().map(|c| c.value).collect();
        let low: Vec<f64> = c.iter().map(|c| c.low).collect();
        let high: Vec<f64> = c.iter().map(|c| c.high).collect();
        let accepted = accepted_intervals(&grid, &observed_t, &values);
        let what = format!("{label} % Neyman");
        warnings.extend(coarse_grid_warnings(&grid, &accepted, &what));
        let accepted = pairs(accepted);
        out.open_ends.insert(label.clone(), open_ends(&accepted));
        out.intervals.insert(label.clone(), accepted);
        // A larger critical value widens the set: the narrowest and widest intervals the toys'
        // statistics allow.
        out.interval_ranges.insert(
            label.clone(),
            IntervalRange {
                narrow: pairs(accepted_intervals(&grid, &observed_t, &low)),
                wide: pairs(accepted_intervals(&grid, &observed_t, &high)),
            },
        );
        out.critical_value_ranges
            .insert(label.clone(), CriticalRange { low, high });
        out.critical_values.insert(label, values);
    }
    for (name, threshold) in crate::fit::scan::THRESHOLDS_1D {
        let flat = vec![threshold; grid.len()];
        let accepted = accepted_intervals(&grid, &observed_t, &flat);
        let what = format!("{name} % asymptotic");
        warnings.extend(coarse_grid_warnings(&grid, &accepted, &what));
        let accepted = pairs(accepted);
        out.asymptotic_open_ends
            .insert(name.to_string(), open_ends(&accepted));
        out.asymptotic_intervals.insert(name.to_string(), accepted);
    }
    out.warnings = warnings;
    Ok(out)
}

/// The toys whose conditional or free fit did not converge.
pub fn not_converged(records: &[ToyRecord]) -> usize {
    records
        .iter()
        .filter(|r| !(r.converged_conditional && r.converged_free))
        .count()
}

/// `nsbi coverage --json`: the coverage of a construction's confidence sets at one of its
/// grid points, by confidence level in %.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CoverageOutput {
    /// The POI of a one-POI construction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poi: Option<String>,
    /// Its true value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mu_true: Option<f64>,
    /// The point of a construction of several POIs, by name: its joint regions' coverage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poi_true: Option<IndexMap<String, f64>>,
    pub n_toys: usize,
    pub construction_toys: usize,
    pub seed: u64,
    pub systematics: bool,
    pub levels: IndexMap<String, CoverageLevel>,
}

/// The coverage at one confidence level.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CoverageLevel {
    pub nominal: f64,
    /// The fraction of fresh toys whose set contains the true point.
    pub coverage: f64,
    /// Its binomial standard error.
    pub error: f64,
    /// The critical value's own uncertainty, from the construction's finite toys, as an error
    /// on the coverage.
    pub construction_error: f64,
    /// (coverage − nominal) / both errors in quadrature.
    pub pull: f64,
    pub critical_value: f64,
}

/// Coverage of the construction at one of its grid points: fresh toys at the point (a seed
/// other than the construction's) and the fraction whose set at each level contains it. At a
/// grid point θ the set {θ' : t(θ') ≤ c(θ')} contains θ exactly when t_θ(toy) ≤ c(θ), so
/// each toy needs only its t at θ — for an interval of one POI as for a joint region.
pub fn coverage(
    analysis: &Analysis,
    construction: &super::toyfile::ToyFile,
    grid_index: usize,
    n_toys: usize,
    seed: u64,
    levels: &[f64],
    progress: &(dyn Fn() + Sync),
) -> Result<CoverageOutput> {
    use super::neyman::{coverage as covered_fraction, critical_value, statistics_by_grid};
    let header = &construction.header;
    if seed == header.seed {
        return Err(Error::Analysis(format!(
            "coverage toys need a seed other than the construction's ({seed})"
        )));
    }
    let model = &analysis.model;
    let index = |name: &String| {
        model.parameter_index(name).ok_or_else(|| {
            Error::Analysis(format!("the toys' POI '{name}' is not in this workspace"))
        })
    };
    let point = header.grid.points[grid_index].clone();
    let plan = ToyPlan {
        pois: header.pois.iter().map(index).collect::<Result<_>>()?,
        profiled: header.profiled.iter().map(index).collect::<Result<_>>()?,
        grid: super::poi_grid::PoiGrid {
            points: vec![point.clone()],
            axes: None,
        },
        n_toys,
        seed,
        systematics: header.systematics,
        statistic: header.test_stat,
    };
    if let Some(e) = header.excluded.iter().find(|e| e.grid_index == grid_index) {
        return Err(Error::Analysis(format!(
            "the true point is excluded from the construction {}: it has no coverage",
            e.describe(&header.pois)
        )));
    }
    let mut profile = observed_profile(analysis, &plan)?;
    profile.exclude_generation(analysis, &plan)?;
    if let Some(e) = profile.excluded.first() {
        return Err(Error::Analysis(format!(
            "no coverage toys at the true point {}",
            e.describe(&header.pois)
        )));
    }
    let toys = make_toys(analysis, &plan, &profile, 0..n_toys, progress)?;
    let t: Vec<f64> = toys.iter().map(|r| r.t).collect();
    let construction_t = &statistics_by_grid(&construction.records, header.grid.len())[grid_index];
    let mut rows = IndexMap::new();
    for &level in levels {
        let critical = critical_value(construction_t, level);
        let (fraction, error) = covered_fraction(&t, critical.value);
        let construction_error = (level * (1.0 - level) / construction_t.len() as f64).sqrt();
        rows.insert(
            level_label(level),
            CoverageLevel {
                nominal: level,
                coverage: fraction,
                error,
                construction_error,
                pull: (fraction - level) / error.hypot(construction_error),
                critical_value: critical.value,
            },
        );
    }
    let one_poi = header.pois.len() == 1;
    Ok(CoverageOutput {
        poi: one_poi.then(|| header.pois[0].clone()),
        mu_true: one_poi.then(|| point[0]),
        poi_true: (!one_poi).then(|| header.pois.iter().cloned().zip(point).collect()),
        n_toys,
        construction_toys: construction_t.len(),
        seed,
        systematics: header.systematics && model.has_free_nuisances(),
        levels: rows,
    })
}
