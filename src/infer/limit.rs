//! Upper limits: the POI value where CLs falls to 1 − CL, observed and at each line of the
//! expected band, from any [`Calculator`].
//!
//! The tested values of a grid bracket each crossing; the asymptotic calculator's smooth CLs is
//! then solved there by Brent's method to a tolerance, while toy CLs (a step function of the
//! toys, re-drawn at every value) is interpolated linearly between the bracketing grid values,
//! as pyhf's `linear_grid_scan` does, since a root finder would chase the toys' noise.

use std::cell::RefCell;

use serde::Serialize;

use super::hypotest::{Band, Calculator, TestPoint};
use super::test_stat::TestStatistic;
use crate::error::{Error, Result};
use crate::fit::scan::brent;

/// How an upper limit is searched for.
#[derive(Clone, Debug)]
pub struct LimitSettings {
    /// Confidence level (0.95: CLs = 0.05 at the limit).
    pub cl: f64,
    /// Tested values: `points` values spread evenly over `range`.
    pub range: (f64, f64),
    /// The background hypothesis' POI value (0), where CLs is 1 by construction: a range whose
    /// start has a curve below 1 − CL already is extended towards it (halving the distance,
    /// as pyhf's `toms748_scan` does).
    pub background: f64,
    pub points: usize,
    /// Whether to solve each crossing by root finding (asymptotic) or interpolate it (toys).
    pub root_finding: bool,
}

/// One tested value of the limit's grid.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LimitScanPoint {
    pub value: f64,
    pub cls: Band,
}

/// `nsbi limit`'s result.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LimitResult {
    pub poi: String,
    pub cl: f64,
    pub test_stat: TestStatistic,
    pub calculator: &'static str,
    pub observed: f64,
    /// The expected limits, −2σ … +2σ.
    pub expected: [f64; 5],
    /// "root finding (Brent)" or "linear interpolation on the grid".
    pub method: &'static str,
    /// Tested values in increasing order (the grid, and the root finder's values).
    pub scan: Vec<LimitScanPoint>,
    pub warnings: Vec<String>,
}

/// Which CLs curve of a tested point: the observed one (None) or an expected line (0..5).
fn curve(point: &TestPoint, line: Option<usize>) -> f64 {
    match line {
        None => point.observed.cls,
        Some(k) => point.expected[k].cls,
    }
}

/// The upper limits of `calculator`'s CLs on `settings`' grid (see the module documentation).
pub fn upper_limit(
    calculator: &mut dyn Calculator,
    poi: &str,
    statistic: TestStatistic,
    settings: &LimitSettings,
) -> Result<LimitResult> {
    let alpha = 1.0 - settings.cl;
    let (lo, hi) = settings.range;
    if !(settings.cl > 0.0 && settings.cl < 1.0) {
        return Err(Error::Analysis(format!(
            "--cl {} must lie strictly between 0 and 1",
            settings.cl
        )));
    }
    if settings.points < 2 || lo >= hi {
        return Err(Error::Analysis(format!(
            "the limit's scan needs at least 2 points over a range low < high (got {} points \
             over [{lo}, {hi}])",
            settings.points
        )));
    }
    // Tested in increasing order until every curve is below α: beyond the last limit the model
    // may stop being a density (the interference basis at large μ), and nothing is learnt there.
    let mut grid = crate::fit::scan::linspace(lo, hi, settings.points);
    let mut tested: Vec<TestPoint> = Vec::with_capacity(grid.len());
    let mut starts = Vec::new();
    let mut start = lo;
    loop {
        let point = calculator.test(start)?;
        let any_below = curve(&point, None) < alpha || point.expected.iter().any(|e| e.cls < alpha);
        starts.push(point);
        if !any_below || starts.len() > 40 || start <= settings.background {
            break;
        }
        start = settings.background + 0.5 * (start - settings.background);
    }
    // Extension points first (increasing), then the grid from its second value.
    starts.reverse();
    grid.splice(0..1, starts.iter().map(|p| p.value));
    tested.extend(starts);
    for &mu in &grid[tested.len()..] {
        let point = calculator.test(mu)?;
        let all_below = curve(&point, None) < alpha && point.expected.iter().all(|e| e.cls < alpha);
        tested.push(point);
        if all_below {
            break;
        }
    }
    grid.truncate(tested.len());
    let lines = [None, Some(0), Some(1), Some(2), Some(3), Some(4)];
    let mut limits = [f64::NAN; 6];
    let calculator = RefCell::new(calculator);
    let extra = RefCell::new(Vec::new());
    for (slot, &line) in limits.iter_mut().zip(&lines) {
        let what = match line {
            None => "observed".to_string(),
            Some(k) => format!("expected ({:+} σ)", k as i32 - 2),
        };
        let values: Vec<f64> = tested.iter().map(|p| curve(p, line) - alpha).collect();
        let k = bracket(&values).map_err(|end| {
            Error::Analysis(format!(
                "the {what} CLs of {poi} does not cross {alpha} in [{lo}, {hi}] ({}): give a \
                 --range that contains the limit",
                if end {
                    "it stays above it"
                } else {
                    "it is below it already at the start"
                }
            ))
        })?;
        let (a, b) = (grid[k], grid[k + 1]);
        *slot = if settings.root_finding {
            let failure = RefCell::new(None);
            let f = |mu: f64| match calculator.borrow_mut().test(mu) {
                Ok(point) => {
                    let value = curve(&point, line) - alpha;
                    extra.borrow_mut().push(point);
                    value
                }
                Err(e) => {
                    failure.borrow_mut().get_or_insert(e);
                    f64::NAN
                }
            };
            let tolerance = 1e-9 * (hi - lo).max(1.0);
            let root = brent(f, a, b, values[k], values[k + 1], tolerance);
            if let Some(e) = failure.into_inner() {
                return Err(e);
            }
            root.ok_or_else(|| {
                Error::Analysis(format!(
                    "the root finder did not converge on the {what} limit of {poi} in [{a}, {b}]"
                ))
            })?
        } else {
            a + (b - a) * values[k] / (values[k] - values[k + 1])
        };
    }
    tested.append(&mut extra.into_inner());
    tested.sort_by(|p, q| p.value.total_cmp(&q.value));
    tested.dedup_by(|p, q| p.value == q.value);
    let calculator = calculator.into_inner();
    Ok(LimitResult {
        poi: poi.to_string(),
        cl: settings.cl,
        test_stat: statistic,
        calculator: calculator.name(),
        observed: limits[0],
        expected: [limits[1], limits[2], limits[3], limits[4], limits[5]],
        method: if settings.root_finding {
            "root finding (Brent)"
        } else {
            "linear interpolation on the grid"
        },
        scan: tested
            .iter()
            .map(|p| LimitScanPoint {
                value: p.value,
                cls: Band {
                    observed: p.observed.cls,
                    expected: p.expected.map(|e| e.cls),
                },
            })
            .collect(),
        warnings: calculator.warnings(),
    })
}

/// The first grid interval where `values` (CLs − α) goes from ≥ 0 to < 0; Err(true) when it
/// never falls below 0, Err(false) when it starts below.
fn bracket(values: &[f64]) -> std::result::Result<usize, bool> {
    if values[0] < 0.0 {
        return Err(false);
    }
    values
        .windows(2)
        .position(|w| w[0] >= 0.0 && w[1] < 0.0)
        .ok_or(true)
}

/// The limit's scan range: `range` (`low:high`) where given, else from just above the
/// background hypothesis (0, or the POI's lower bound), where CLs is 1, to μ̂ + 5σ̂ of the fit
/// to the data (or the POI's upper bound `bounds.1`).
pub fn scan_range(
    range: Option<&str>,
    bounds: (f64, f64),
    calculator: &dyn Calculator,
    points: usize,
) -> Result<(f64, f64)> {
    if let Some(text) = range {
        return crate::fit::scan::parse_range(text);
    }
    let (lo, hi) = bounds;
    let start = lo.max(0.0);
    let end = match calculator.poi_error() {
        Some(sigma) if sigma > 0.0 => (calculator.poi_hat().max(start) + 5.0 * sigma).min(hi),
        _ if hi.is_finite() => hi,
        _ => {
            return Err(Error::Analysis(
                "the fit to the data gives no error on the POI and its upper bound is \
                 infinite: give --range low:high for the limit's scan"
                    .into(),
            ))
        }
    };
    // The background hypothesis itself has no CLs: start a quarter step above it.
    Ok((start + (end - start) / (4 * points.max(1)) as f64, end))
}

/// The scan of a limit from stored toys (`files`): their tested `values` (an even grid, as
/// `--out` made it), which `range` and `points`, where given, must reproduce.
pub fn stored_scan(
    values: &[f64],
    range: Option<&str>,
    points: usize,
    files: &str,
) -> Result<((f64, f64), usize)> {
    use crate::fit::scan::{linspace, parse_range};
    let stored = (values[0], values[values.len() - 1]);
    if linspace(stored.0, stored.1, values.len()) != values {
        return Err(Error::Analysis(format!(
            "toy file {files} was tested at {values:?}, not at a limit's evenly spaced scan: \
             make the toys with `nsbi limit … --out`"
        )));
    }
    if let Some(text) = range {
        let (lo, hi) = parse_range(text)?;
        let asked = linspace(lo, hi, points);
        if asked != values {
            return Err(Error::Analysis(format!(
                "toy file {files} holds toys at {values:?}, not at the {asked:?} that --range \
                 {text} --points {points} asks for: give the toys' range and points, or none"
            )));
        }
    }
    Ok((stored, values.len()))
}
