//! Profile-likelihood scans in one or two parameters: at each grid point every other free
//! parameter is profiled (a conditional fit warm-started from the global best fit), and
//! t = 2(NLL(point, profiled) − NLL(best)) is recorded. Points are fitted in parallel. The
//! global best fit is a point of the curve, and a 1-D interval's ends are found by profiled
//! fits between the grid points around each crossing, so the grid only brackets them.

use argmin::core::{CostFunction, Error as ArgminError, Executor, State, TerminationReason};
use argmin::solver::brent::BrentRoot;
use indicatif::ProgressBar;
use rayon::prelude::*;

use super::{minimise, FitOptions, FitResult};
use crate::error::{Error, Result};
use crate::likelihood::Likelihood;

/// Asymptotic (Wilks) thresholds on t for one scanned parameter: 68.27 % and 95.45 %.
pub const THRESHOLDS_1D: [(&str, f64); 2] = [("68.27", 1.0), ("95.45", 4.0)];
/// For two parameters (χ² with 2 degrees of freedom).
pub const THRESHOLDS_2D: [(&str, f64); 2] = [
    ("68.27", 2.295_748_928_898_636),
    ("95.45", 6.180_074_306_244_17),
];

/// One scan point: the scanned values and the profiled fit there.
#[derive(Clone, Debug)]
pub struct ScanPoint {
    pub values: Vec<f64>,
    pub nll: f64,
    pub t: f64,
    pub converged: bool,
    pub theta: Vec<f64>,
    /// The global best fit, put into the curve where it lies inside the scanned range (t = 0
    /// there unless a grid point is lower): the minimum of the curve, which a coarse grid
    /// misses.
    pub best_fit: bool,
    /// Why the point has no likelihood (the per-event density or a process's normalisation
    /// is ≤ 0 there): a 2-D scan reports such points and leaves them out (t is NaN) instead
    /// of refusing the scan.
    pub excluded: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Scan {
    pub parameters: Vec<usize>,
    pub best: FitResult,
    /// NLL the t values are measured from: the global minimum, or a lower scan point if one
    /// was found (then `best_from_scan` is true and t stays ≥ 0).
    pub reference_nll: f64,
    pub best_from_scan: bool,
    /// The grid points, then the best fit where it is inside the range (for one parameter
    /// all sorted by the parameter's value).
    pub points: Vec<ScanPoint>,
}

/// Scans `parameters` over `grid` (each entry one point, as many values as parameters).
/// `frozen` parameters are held at the best-fit values (stat-only scans freeze the nuisances,
/// and parameters the user fixed stay fixed). The best fit joins the points when it lies inside
/// the grid's range.
pub fn scan(
    like: &Likelihood,
    best: &FitResult,
    parameters: &[usize],
    grid: &[Vec<f64>],
    frozen: &[usize],
    progress: Option<&ProgressBar>,
) -> Result<Scan> {
    for &p in parameters {
        let param = &like.model.parameters[p];
        let (lo, hi) = param.bounds;
        for point in grid {
            let v = point[parameters.iter().position(|&q| q == p).expect("scanned")];
            if !(lo..=hi).contains(&v) {
                return Err(Error::Analysis(format!(
                    "scan value {}={v} lies outside its bounds [{lo}, {hi}]",
                    param.name
                )));
            }
        }
    }
    let mut points: Vec<ScanPoint> = grid
        .par_iter()
        .map(|values| {
            let fit = fit_at(like, &best.theta, parameters, values, frozen);
            if let Some(bar) = progress {
                bar.inc(1);
            }
            ScanPoint {
                values: values.clone(),
                nll: fit.nll,
                t: f64::NAN,
                converged: fit.converged,
                excluded: exclusion(&fit),
                theta: fit.theta,
                best_fit: false,
            }
        })
        .collect();
    if let Some(point) = best_fit_point(best, parameters, grid) {
        points.push(point);
        if parameters.len() == 1 {
            points.sort_by(|a, b| a.values[0].total_cmp(&b.values[0]));
        }
    }
    // Two parameters: points without a likelihood are reported and left out of the region;
    // one parameter: the scan is refused.
    let refused = |p: &ScanPoint| match parameters.len() {
        2 => p.excluded.is_none() && !p.nll.is_finite(),
        _ => !p.nll.is_finite(),
    };
    let invalid: Vec<String> = points
        .iter()
        .filter(|p| refused(p))
        .map(|p| format!("{:?}", p.values))
        .collect();
    if !invalid.is_empty() {
        let names: Vec<&str> = parameters
            .iter()
            .map(|&p| like.model.parameters[p].name.as_str())
            .collect();
        return Err(Error::Analysis(format!(
            "the scan of {} crosses a region where the per-event density Σ_c ν_c r_c g_c is ≤ 0 (no likelihood) at {} point(s): {}; narrow the range",
            names.join(", "),
            invalid.len(),
            invalid.join(", ")
        )));
    }
    let lowest = points
        .iter()
        .filter(|p| p.excluded.is_none())
        .map(|p| p.nll)
        .fold(f64::INFINITY, f64::min);
    let best_from_scan = lowest < best.nll;
    let reference_nll = lowest.min(best.nll);
    let points = points
        .into_iter()
        .map(|p| ScanPoint {
            t: match p.excluded {
                Some(_) => f64::NAN,
                None => 2.0 * (p.nll - reference_nll),
            },
            ..p
        })
        .collect();
    Ok(Scan {
        parameters: parameters.to_vec(),
        best: best.clone(),
        reference_nll,
        best_from_scan,
        points,
    })
}

/// Why a fit has no likelihood: its last evaluation's invalid density (per-event density or
/// a process's normalisation ≤ 0), or None where it has one.
fn exclusion(fit: &FitResult) -> Option<String> {
    if fit.nll.is_finite() {
        return None;
    }
    Some(match &fit.evaluation.invalid {
        Some(invalid) => invalid.to_string(),
        None => format!("no finite likelihood ({})", fit.message),
    })
}

/// The profiled fit at `values` of `parameters`, warm-started from `start`, with `frozen`
/// held at their values in `start`.
fn fit_at(
    like: &Likelihood,
    start: &[f64],
    parameters: &[usize],
    values: &[f64],
    frozen: &[usize],
) -> FitResult {
    let mut options = FitOptions::new(like);
    options.init = start.to_vec();
    for &f in frozen {
        options.fixed[f] = true;
    }
    for (&p, &v) in parameters.iter().zip(values) {
        options.init[p] = v;
        options.fixed[p] = true;
    }
    minimise(like, &options)
}

/// The global best fit as a scan point, when it lies inside the grid's range in every scanned
/// parameter and is not a grid point already.
fn best_fit_point(best: &FitResult, parameters: &[usize], grid: &[Vec<f64>]) -> Option<ScanPoint> {
    let values: Vec<f64> = parameters.iter().map(|&p| best.theta[p]).collect();
    let inside = values.iter().enumerate().all(|(k, v)| {
        let lo = grid.iter().map(|g| g[k]).fold(f64::INFINITY, f64::min);
        let hi = grid.iter().map(|g| g[k]).fold(f64::NEG_INFINITY, f64::max);
        (lo..=hi).contains(v)
    });
    (inside && !grid.contains(&values)).then(|| ScanPoint {
        values,
        nll: best.nll,
        t: f64::NAN,
        converged: best.converged,
        theta: best.theta.clone(),
        best_fit: true,
        excluded: None,
    })
}

/// An interval {x : t(x) ≤ threshold} of a 1-D scan. An end where the scanned range stops
/// with t still below the threshold is open — the interval may go on beyond the grid —
/// unless the range stops at the parameter's bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    pub low_open: bool,
    pub high_open: bool,
}

/// Marks the ends of `intervals` that sit on the grid's `edges` short of the parameter's
/// `bounds` as open.
pub fn with_open_ends(
    intervals: &[[f64; 2]],
    edges: (f64, f64),
    bounds: (f64, f64),
) -> Vec<Interval> {
    intervals
        .iter()
        .map(|&[low, high]| Interval {
            low,
            high,
            low_open: low == edges.0 && edges.0 > bounds.0,
            high_open: high == edges.1 && edges.1 < bounds.1,
        })
        .collect()
}

/// Fewest grid points an interval should hold for the scan to resolve the curve around it.
const MIN_POINTS_INSIDE: usize = 3;
/// A crossing refined further than this fraction of the grid step from its linear estimate
/// means the grid is too coarse for the curve's shape there.
const MAX_SHIFT_IN_STEPS: f64 = 0.1;

/// The intervals of a 1-D scan at `threshold`, each crossing of the threshold found by
/// Brent's root finding on t(x) − threshold with a profiled fit at each trial x (bracketed by
/// the two grid points around it; `frozen` as in the scan), not by interpolation on the grid.
/// Adds to `warnings` where the grid is too coarse: an interval holding fewer than
/// [`MIN_POINTS_INSIDE`] grid points, or a crossing far from its linear estimate.
pub fn profile_intervals(
    like: &Likelihood,
    scan: &Scan,
    frozen: &[usize],
    threshold: f64,
    warnings: &mut Vec<String>,
) -> Vec<Interval> {
    let parameter = scan.parameters[0];
    let name = &like.model.parameters[parameter].name;
    let xs: Vec<f64> = scan.points.iter().map(|p| p.values[0]).collect();
    let ts: Vec<f64> = scan.points.iter().map(|p| p.t).collect();
    let (first, last) = (xs[0], xs[xs.len() - 1]);
    let tolerance = 1e-6 * (last - first);
    let refine = |i: usize| -> Option<f64> {
        let (a, b) = (&scan.points[i], &scan.points[i + 1]);
        let start = if a.t <= threshold { &a.theta } else { &b.theta };
        let excess = |x: f64| {
            let fit = fit_at(like, start, &scan.parameters, &[x], frozen);
            2.0 * (fit.nll - scan.reference_nll) - threshold
        };
        let (fa, fb) = (a.t - threshold, b.t - threshold);
        brent(excess, a.values[0], b.values[0], fa, fb, tolerance)
    };
    let mut out = Vec::new();
    for [low, high] in intervals_1d(&xs, &ts, threshold) {
        let mut ends = [low, high];
        for end in &mut ends {
            // A crossing lies strictly between grid points i and i + 1; a grid edge stays.
            let Some(i) = xs.windows(2).position(|w| w[0] < *end && *end < w[1]) else {
                continue;
            };
            let step = xs[i + 1] - xs[i];
            let Some(refined) = refine(i) else {
                warnings.push(format!(
                    "the crossing near {name} = {:.4} could not be refined (a profiled fit \
                     there had no finite likelihood); its linear interpolation on the grid is \
                     reported",
                    *end
                ));
                continue;
            };
            if (refined - *end).abs() > MAX_SHIFT_IN_STEPS * step {
                warnings.push(format!(
                    "the crossing at {name} = {refined:.4} lies {:.4} from its linear \
                     interpolation on the grid (step {step:.4}): the grid is too coarse for the \
                     curve; the profiled crossing is reported",
                    (refined - *end).abs()
                ));
            }
            *end = refined;
        }
        let inside = scan
            .points
            .iter()
            .filter(|p| !p.best_fit && (ends[0]..=ends[1]).contains(&p.values[0]))
            .count();
        if inside < MIN_POINTS_INSIDE {
            warnings.push(format!(
                "the interval [{:.4}, {:.4}] of {name} holds {inside} grid point(s): the grid \
                 is too coarse to show the curve; use more --points or a narrower --range",
                ends[0], ends[1]
            ));
        }
        out.push(ends);
    }
    let bounds = like.model.parameters[parameter].bounds;
    with_open_ends(&out, (first, last), bounds)
}

/// A function whose values at the two ends of the bracket are already known (the scan's grid
/// points): argmin's `BrentRoot` evaluates both ends when it starts, and here each evaluation
/// is a profiled fit, so the ends are answered from the scan. A non-finite value stops the run.
struct KnownEnds<F> {
    ends: [(f64, f64); 2],
    f: F,
}

impl<F: Fn(f64) -> f64> CostFunction for KnownEnds<F> {
    type Param = f64;
    type Output = f64;
    fn cost(&self, x: &f64) -> std::result::Result<f64, ArgminError> {
        if let Some(&(_, known)) = self.ends.iter().find(|(end, _)| end == x) {
            return Ok(known);
        }
        let value = (self.f)(*x);
        if value.is_finite() {
            Ok(value)
        } else {
            Err(ArgminError::msg(format!("not finite at {x}")))
        }
    }
}

/// The root of `f` on [a, b], where f(a) = `fa` and f(b) = `fb` have opposite signs, by
/// argmin's Brent solver to `tolerance` in x. None when `f` returns a non-finite value or 100
/// iterations do not converge.
pub(crate) fn brent(
    f: impl Fn(f64) -> f64,
    a: f64,
    b: f64,
    fa: f64,
    fb: f64,
    tolerance: f64,
) -> Option<f64> {
    let problem = KnownEnds {
        ends: [(a, fa), (b, fb)],
        f,
    };
    let run = Executor::new(problem, BrentRoot::new(a, b, tolerance))
        .configure(|state| state.max_iters(100))
        .run()
        .ok()?;
    let state = run.state();
    let converged = state.get_termination_reason() == Some(&TerminationReason::SolverConverged);
    converged.then(|| state.get_param().copied()).flatten()
}

/// Intervals {x : t(x) ≤ threshold} from a 1-D scan, with the crossings linearly
/// interpolated; an interval reaching the end of the grid ends there.
pub fn intervals_1d(xs: &[f64], ts: &[f64], threshold: f64) -> Vec<[f64; 2]> {
    let mut out = Vec::new();
    let mut start: Option<f64> = None;
    for i in 0..xs.len() {
        let inside = ts[i] <= threshold;
        if i == 0 {
            if inside {
                start = Some(xs[0]);
            }
            continue;
        }
        let was_inside = ts[i - 1] <= threshold;
        let crossing =
            || xs[i - 1] + (threshold - ts[i - 1]) * (xs[i] - xs[i - 1]) / (ts[i] - ts[i - 1]);
        match (was_inside, inside) {
            (false, true) => start = Some(crossing()),
            (true, false) => {
                out.push([start.take().unwrap_or(xs[i - 1]), crossing()]);
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push([s, *xs.last().unwrap_or(&s)]);
    }
    out
}

/// Parses `lo:hi` into a pair.
pub fn parse_range(text: &str) -> Result<(f64, f64)> {
    let bad = || Error::Analysis(format!("--range '{text}': expected low:high, e.g. 0:3"));
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    let (lo, hi): (f64, f64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// The most points a scan may have in all (each point is a profile fit).
pub const MAX_SCAN_POINTS: usize = 1_000_000;

/// Refuses a scan of `points` per parameter beyond [`MAX_SCAN_POINTS`] points in all: a larger
/// request is a typing error (and its grid would not fit in memory).
pub fn check_points(points: &[usize]) -> Result<()> {
    let total = points.iter().try_fold(1usize, |n, &p| n.checked_mul(p));
    match total {
        Some(n) if n <= MAX_SCAN_POINTS => Ok(()),
        _ => Err(Error::Analysis(format!(
            "--points {points:?}: at most {MAX_SCAN_POINTS} scan points are allowed in all"
        ))),
    }
}

/// `points` evenly spaced values from lo to hi inclusive.
pub fn linspace(lo: f64, hi: f64, points: usize) -> Vec<f64> {
    match points {
        0 => vec![],
        1 => vec![0.5 * (lo + hi)],
        n => (0..n)
            .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossings_of_a_parabola() {
        let xs = linspace(-3.0, 3.0, 61);
        let ts: Vec<f64> = xs.iter().map(|x| (x - 0.5) * (x - 0.5)).collect();
        let one = intervals_1d(&xs, &ts, 1.0);
        assert_eq!(one.len(), 1);
        assert!(
            (one[0][0] + 0.5).abs() < 0.01 && (one[0][1] - 1.5).abs() < 0.01,
            "{one:?}"
        );
        let two = intervals_1d(&xs, &ts, 4.0);
        assert!((two[0][0] + 1.5).abs() < 0.01 && (two[0][1] - 2.5).abs() < 0.01);
    }

    #[test]
    fn brent_finds_the_root_of_a_parabola_to_tolerance() {
        let parabola = |x: f64| (x - 0.944) * (x - 0.944) / (0.0714 * 0.0714) - 1.0;
        let calls = std::cell::Cell::new(0);
        let counted = |x: f64| {
            calls.set(calls.get() + 1);
            parabola(x)
        };
        let root = brent(counted, 0.944, 1.5, parabola(0.944), parabola(1.5), 1e-6).unwrap();
        assert!((root - (0.944 + 0.0714)).abs() < 1e-6, "{root}");
        assert!(calls.get() < 40, "{} evaluations", calls.get());
    }

    #[test]
    fn ends_on_the_grid_edge_short_of_the_bound_are_open() {
        let found = with_open_ends(&[[0.2, 1.3], [1.6, 3.0]], (0.2, 3.0), (0.0, 3.0));
        assert!(found[0].low_open && !found[0].high_open);
        // The grid ends at the parameter's bound: the interval really ends there.
        assert!(!found[1].low_open && !found[1].high_open);
    }

    #[test]
    fn two_disjoint_intervals_and_open_ends() {
        let xs = linspace(0.0, 4.0, 401);
        let ts: Vec<f64> = xs.iter().map(|x| ((x - 1.0) * (x - 3.0)).powi(2)).collect();
        let found = intervals_1d(&xs, &ts, 0.25);
        assert_eq!(found.len(), 2, "{found:?}");
        let open = intervals_1d(&xs, &xs.iter().map(|x| x * x).collect::<Vec<_>>(), 1.0);
        assert_eq!(open[0][0], 0.0);
    }
}
