//! Profile-likelihood scans in one or two parameters: at each grid point every other free
//! parameter is profiled (a conditional fit warm-started from the global best fit), and
//! t = 2(NLL(point, profiled) − NLL(best)) is recorded. Points are fitted in parallel.

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
}

#[derive(Clone, Debug)]
pub struct Scan {
    pub parameters: Vec<usize>,
    pub best: FitResult,
    /// NLL the t values are measured from: the global minimum, or a lower scan point if one
    /// was found (then `best_from_scan` is true and t stays ≥ 0).
    pub reference_nll: f64,
    pub best_from_scan: bool,
    pub points: Vec<ScanPoint>,
}

/// Scans `parameters` over `grid` (each entry one point, as many values as parameters).
/// `frozen` parameters are held at the best-fit values (stat-only scans freeze the nuisances).
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
    let points: Vec<ScanPoint> = grid
        .par_iter()
        .map(|values| {
            let mut options = FitOptions::new(like);
            options.init = best.theta.clone();
            for &f in frozen {
                options.fixed[f] = true;
            }
            for (&p, &v) in parameters.iter().zip(values) {
                options.init[p] = v;
                options.fixed[p] = true;
            }
            let fit = minimise(like, &options);
            if let Some(bar) = progress {
                bar.inc(1);
            }
            ScanPoint {
                values: values.clone(),
                nll: fit.nll,
                t: f64::NAN,
                converged: fit.converged,
                theta: fit.theta,
            }
        })
        .collect();
    let invalid: Vec<String> = points
        .iter()
        .filter(|p| !p.nll.is_finite())
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
    let lowest = points.iter().map(|p| p.nll).fold(f64::INFINITY, f64::min);
    let best_from_scan = lowest < best.nll;
    let reference_nll = lowest.min(best.nll);
    let points = points
        .into_iter()
        .map(|p| ScanPoint {
            t: 2.0 * (p.nll - reference_nll),
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
    fn two_disjoint_intervals_and_open_ends() {
        let xs = linspace(0.0, 4.0, 401);
        let ts: Vec<f64> = xs.iter().map(|x| ((x - 1.0) * (x - 3.0)).powi(2)).collect();
        let found = intervals_1d(&xs, &ts, 0.25);
        assert_eq!(found.len(), 2, "{found:?}");
        let open = intervals_1d(&xs, &xs.iter().map(|x| x * x).collect::<Vec<_>>(), 1.0);
        assert_eq!(open[0][0], 0.0);
    }
}
