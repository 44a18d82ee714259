//! The steps of a Neyman construction that need the analysis: the observed profile on the
//! grid (which also gives the generation points of the profile construction) and the toys of a
//! shard.

use crate::analysis::{Analysis, Dataset};
use crate::error::{Error, Result};
use crate::fit::{minimise, FitOptions, FitResult};

use super::toys::{run_toys, ToyPlan, ToyRecord, ToySource};

/// `start:stop:step` → start, start + step, …, stop (inclusive, to rounding).
pub fn parse_grid(text: &str) -> Result<Vec<f64>> {
    let bad = || Error::Analysis(format!("--mu-grid '{text}': expected start:stop:step"));
    let parts: Vec<f64> = text
        .split(':')
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    let [start, stop, step] = parts[..] else {
        return Err(bad());
    };
    if !(step > 0.0 && stop >= start && start.is_finite() && stop.is_finite()) {
        return Err(bad());
    }
    // In floating point first: a tiny step gives 10³⁰⁰ points, which no integer holds (n is
    // never NaN: the ends are finite and the step positive).
    let n = ((stop - start) / step + 1e-9).floor() + 1.0;
    if n > MAX_GRID_POINTS as f64 {
        return Err(Error::Analysis(format!(
            "--mu-grid '{text}' has {n:.3e} points; at most {MAX_GRID_POINTS} points are \
             allowed: use a larger step"
        )));
    }
    Ok((0..n as usize).map(|i| start + i as f64 * step).collect())
}

/// The most grid points a toy construction may have (each point costs a set of toy fits).
pub const MAX_GRID_POINTS: usize = 1_000_000;

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
             ask for fewer toys or a coarser --mu-grid"
        ))),
    }
}

/// Fits of the observed data: the unconditional best fit and the conditional fit at every
/// grid value of the POI.
pub struct ObservedProfile {
    pub free: FitResult,
    pub conditional: Vec<FitResult>,
}

impl ObservedProfile {
    /// t_obs(μ) = 2(NLL(μ, α̂̂) − NLL(μ̂, α̂)) on the grid.
    pub fn t(&self) -> Vec<f64> {
        let best = self
            .conditional
            .iter()
            .map(|c| c.nll)
            .fold(self.free.nll, f64::min);
        self.conditional
            .iter()
            .map(|c| 2.0 * (c.nll - best))
            .collect()
    }

    /// Generation point of grid value g: (μ_g, α̂̂(μ_g)) — the profile construction.
    pub fn generation_point(&self, g: usize) -> &[f64] {
        &self.conditional[g].theta
    }
}

/// Fits the observed data at every grid point of `plan`. Without systematics the nuisances
/// stay at their unconditional best-fit values.
pub fn observed_profile(analysis: &Analysis, plan: &ToyPlan) -> Result<ObservedProfile> {
    let like = analysis.likelihood(&Dataset::Observed)?;
    let (lo, hi) = analysis.model.parameters[plan.poi].bounds;
    if let Some(mu) = plan.grid.iter().find(|&&mu| !(lo..=hi).contains(&mu)) {
        return Err(Error::Analysis(format!(
            "--mu-grid value {mu} lies outside the bounds [{lo}, {hi}] of {}",
            analysis.model.parameters[plan.poi].name
        )));
    }
    let free = minimise(&like, &FitOptions::new(&like));
    let mut options = FitOptions::new(&like);
    options.init = free.theta.clone();
    options.fixed[plan.poi] = true;
    if !plan.systematics {
        for (k, p) in analysis.model.parameters.iter().enumerate() {
            options.fixed[k] |= !p.poi;
        }
    }
    let mut conditional = Vec::with_capacity(plan.grid.len());
    for &mu in &plan.grid {
        options.init[plan.poi] = mu;
        let fit = minimise(&like, &options);
        if fit.nll.is_infinite() {
            return Err(Error::Analysis(format!(
                "the observed data have no likelihood at {} = {mu} (a density ≤ 0); \
                 restrict --mu-grid",
                analysis.model.parameters[plan.poi].name
            )));
        }
        options.init = fit.theta.clone();
        conditional.push(fit);
    }
    Ok(ObservedProfile { free, conditional })
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
        let theta_gen = profile.generation_point(g);
        let source = ToySource::asimov(analysis, theta_gen)?;
        records.extend(run_toys(plan, &source, job..end, progress));
        job = end;
    }
    Ok(records)
}

/// The Neyman construction's result, as the `neyman --json` report.
pub struct NeymanResult {
    pub json: serde_json::Value,
    /// (label, critical values on the grid) per level, for the belt plot.
    pub critical: Vec<(String, Vec<f64>)>,
    pub observed_t: Vec<f64>,
}

/// Critical values at `levels` from the merged toys, the observed curve, and the intervals
/// (with their range from the toys' finite number), beside the asymptotic (Wilks) ones.
pub fn neyman(
    header: &super::toyfile::ToyFileHeader,
    records: &[ToyRecord],
    observed_t: Vec<f64>,
    levels: &[f64],
    model: &crate::model::Model,
) -> Result<NeymanResult> {
    use super::neyman::{
        accepted_intervals, coarse_grid_warnings, critical_value, statistics_by_grid,
    };
    use serde_json::{json, Map, Value};
    let grid = &header.grid;
    let mut warnings = Vec::new();
    let poi = model.parameter_index(&header.poi).ok_or_else(|| {
        Error::Analysis(format!(
            "the toys' POI '{}' is not in this workspace",
            header.poi
        ))
    })?;
    let bounds = model.parameters[poi].bounds;
    let edge = |end: Option<&f64>| end.copied().unwrap_or(f64::NAN);
    let edges = (edge(grid.first()), edge(grid.last()));
    let by_grid = statistics_by_grid(records, grid.len());
    let label = |level: f64| format!("{:.2}", 100.0 * level);
    let pairs = |iv: Vec<(f64, f64)>| -> Value {
        json!(iv.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>())
    };
    // Which ends stop at the grid's edge short of the POI's bound: the set may go on there.
    let open_ends = |iv: &[(f64, f64)]| -> Value {
        let ends: Vec<[f64; 2]> = iv.iter().map(|&(a, b)| [a, b]).collect();
        let found = crate::fit::scan::with_open_ends(&ends, edges, bounds);
        json!(found
            .iter()
            .map(|i| [i.low_open, i.high_open])
            .collect::<Vec<_>>())
    };
    let mut open_json = Map::new();
    let (mut critical_json, mut ranges_json) = (Map::new(), Map::new());
    let (mut intervals_json, mut interval_ranges_json) = (Map::new(), Map::new());
    let mut critical = Vec::new();
    for &level in levels {
        let c: Vec<_> = by_grid.iter().map(|t| critical_value(t, level)).collect();
        let values: Vec<f64> = c.iter().map(|c| c.value).collect();
        let low: Vec<f64> = c.iter().map(|c| c.low).collect();
        let high: Vec<f64> = c.iter().map(|c| c.high).collect();
        critical_json.insert(label(level), json!(values));
        ranges_json.insert(label(level), json!({"low": low, "high": high}));
        let accepted = accepted_intervals(grid, &observed_t, &values);
        let what = format!("{} % Neyman", label(level));
        warnings.extend(coarse_grid_warnings(grid, &accepted, &what));
        open_json.insert(label(level), open_ends(&accepted));
        intervals_json.insert(label(level), pairs(accepted));
        // A larger critical value widens the set: the narrowest and widest intervals the toys'
        // statistics allow.
        interval_ranges_json.insert(
            label(level),
            json!({
                "narrow": pairs(accepted_intervals(grid, &observed_t, &low)),
                "wide": pairs(accepted_intervals(grid, &observed_t, &high)),
            }),
        );
        critical.push((label(level), values));
    }
    let (mut asymptotic, mut asymptotic_open) = (Map::new(), Map::new());
    for (name, threshold) in crate::fit::scan::THRESHOLDS_1D {
        let flat = vec![threshold; grid.len()];
        let accepted = accepted_intervals(grid, &observed_t, &flat);
        let what = format!("{name} % asymptotic");
        warnings.extend(coarse_grid_warnings(grid, &accepted, &what));
        asymptotic_open.insert(name.to_string(), open_ends(&accepted));
        asymptotic.insert(name.to_string(), pairs(accepted));
    }
    let n_failed = records
        .iter()
        .filter(|r| !(r.converged_conditional && r.converged_free))
        .count();
    let json = json!({
        "poi": header.poi,
        "test_stat": header.test_stat,
        "grid": grid,
        "n_toys": by_grid.iter().map(Vec::len).collect::<Vec<_>>(),
        "seed": header.seed,
        "systematics": header.systematics && model.has_free_nuisances(),
        "critical_values": critical_json,
        "critical_value_ranges": ranges_json,
        "observed_t": observed_t,
        "intervals": intervals_json,
        "open_ends": open_json,
        "interval_ranges": interval_ranges_json,
        "asymptotic_intervals": asymptotic,
        "asymptotic_open_ends": asymptotic_open,
        "toy_fits_not_converged": n_failed,
        "warnings": warnings,
    });
    Ok(NeymanResult {
        json,
        critical,
        observed_t,
    })
}

/// Coverage of the construction at one of its grid points: fresh toys at μ_true (a seed other
/// than the construction's) and the fraction whose interval at each level contains μ_true.
/// At a grid point the interval {μ : t(μ) ≤ c(μ)} contains μ_true exactly when
/// t_{μ_true}(toy) ≤ c(μ_true), so each toy needs only its t at μ_true.
pub fn coverage(
    analysis: &Analysis,
    construction: &super::toyfile::ToyFile,
    grid_index: usize,
    n_toys: usize,
    seed: u64,
    levels: &[f64],
    progress: &(dyn Fn() + Sync),
) -> Result<serde_json::Value> {
    use super::neyman::{coverage as covered_fraction, critical_value, statistics_by_grid};
    let header = &construction.header;
    if seed == header.seed {
        return Err(Error::Analysis(format!(
            "coverage toys need a seed other than the construction's ({seed})"
        )));
    }
    let poi = analysis.model.parameter_index(&header.poi).ok_or_else(|| {
        Error::Analysis(format!(
            "the toys' POI '{}' is not in this workspace",
            header.poi
        ))
    })?;
    let mu_true = header.grid[grid_index];
    let plan = ToyPlan {
        poi,
        grid: vec![mu_true],
        n_toys,
        seed,
        systematics: header.systematics,
        statistic: header.test_stat,
    };
    let profile = observed_profile(analysis, &plan)?;
    let toys = make_toys(analysis, &plan, &profile, 0..n_toys, progress)?;
    let t: Vec<f64> = toys.iter().map(|r| r.t).collect();
    let construction_t = &statistics_by_grid(&construction.records, header.grid.len())[grid_index];
    let mut rows = serde_json::Map::new();
    for &level in levels {
        let critical = critical_value(construction_t, level);
        let (fraction, error) = covered_fraction(&t, critical.value);
        // The critical value's own uncertainty, from the construction's finite toys.
        let construction_error = (level * (1.0 - level) / construction_t.len() as f64).sqrt();
        rows.insert(
            format!("{:.2}", 100.0 * level),
            serde_json::json!({
                "nominal": level,
                "coverage": fraction,
                "error": error,
                "construction_error": construction_error,
                "pull": (fraction - level) / error.hypot(construction_error),
                "critical_value": critical.value,
            }),
        );
    }
    Ok(serde_json::json!({
        "poi": header.poi,
        "mu_true": mu_true,
        "n_toys": n_toys,
        "construction_toys": construction_t.len(),
        "seed": seed,
        "systematics": header.systematics && analysis.model.has_free_nuisances(),
        "levels": rows,
    }))
}
