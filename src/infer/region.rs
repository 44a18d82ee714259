//! Neyman confidence regions of several POIs: the accepted set {θ : t_obs(θ) ≤ c(θ)} on the
//! construction's grid, as a mask of grid points and — for two POIs on a product grid — as
//! contour polylines (marching squares with a threshold per point, [`Threshold::PerPoint`]),
//! beside the asymptotic region t_obs ≤ χ²_k quantile (Wilks, k the grid's POIs).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Serialize;

use super::construction::{exclusion_warning, level_label, not_converged, ExcludedPoint};
use super::neyman::{critical_value, statistics_by_grid};
use super::test_stat::TestStatistic;
use super::toyfile::ToyFileHeader;
use super::toys::ToyRecord;
use crate::error::{Error, Result};
use crate::fit::contour::{chi2_threshold, contour, Grid2, Threshold};
use crate::results::ContourOutput;

/// `nsbi neyman --json` of a construction of several POIs.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct NeymanRegionOutput {
    /// The POIs a grid point fixes (the region's axes).
    pub pois: Vec<String>,
    /// The POIs the statistic profiles.
    pub profiled: Vec<String>,
    pub test_stat: TestStatistic,
    /// The grid points: values of `pois`.
    pub points: Vec<Vec<f64>>,
    /// A product grid's axes (`points` runs over them, the last fastest); absent for a list
    /// of points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub axes: Option<Vec<Vec<f64>>>,
    /// Toys per grid point.
    pub n_toys: Vec<usize>,
    pub seed: u64,
    pub systematics: bool,
    /// t_obs at every grid point.
    pub observed_t: Vec<f64>,
    /// The observed data's best fit of `pois`.
    pub best_fit: IndexMap<String, f64>,
    /// The Neyman region at each confidence level.
    pub regions: Vec<NeymanRegion>,
    /// The asymptotic region at each level: t_obs ≤ the χ²_k quantile, k = the number of POIs.
    pub asymptotic_regions: Vec<AsymptoticRegion>,
    pub toy_fits_not_converged: usize,
    /// The grid points left out (the model is not a density there): no toys, critical values
    /// and observed t null, in no region, and no contour runs through their cells.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_points: Vec<ExcludedPoint>,
    pub warnings: Vec<String>,
}

/// The Neyman region at one confidence level.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct NeymanRegion {
    /// Confidence level in %.
    pub cl: f64,
    /// c(θ) per grid point: the toys' `cl` quantile of t.
    #[schemars(with = "Vec<Option<f64>>")]
    pub critical_values: Vec<f64>,
    /// The order statistics one binomial standard deviation of rank either side of c(θ): the
    /// range the toys' finite number leaves it.
    #[schemars(with = "Vec<Option<f64>>")]
    pub critical_low: Vec<f64>,
    #[schemars(with = "Vec<Option<f64>>")]
    pub critical_high: Vec<f64>,
    /// Whether each grid point is in the region: t_obs ≤ c.
    pub accepted: Vec<bool>,
    /// In the region with the low (narrow) and high (wide) critical values: the band of grid
    /// points whose membership the toys' statistics leave open lies between.
    pub accepted_narrow: Vec<bool>,
    pub accepted_wide: Vec<bool>,
    /// The region's boundary (two POIs on a product grid): t_obs = c(θ), interpolated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contour: Option<Polylines>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contour_narrow: Option<Polylines>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contour_wide: Option<Polylines>,
}

/// A contour's polylines of (x, y) points; a closed one repeats its first point, an open one
/// ends on the grid's edge (the region may go on there).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Polylines {
    pub polylines: Vec<Vec<[f64; 2]>>,
    pub closed: Vec<bool>,
}

/// The asymptotic region at one confidence level.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AsymptoticRegion {
    /// Confidence level in %.
    pub cl: f64,
    /// The region is t_obs ≤ threshold.
    pub threshold: f64,
    pub accepted: Vec<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contour: Option<ContourOutput>,
}

/// The regions at `levels` from the merged toys of a construction of several POIs and the
/// observed t on its grid; `best_fit` is the observed best fit of the grid's POIs.
pub fn neyman_regions(
    header: &ToyFileHeader,
    records: &[ToyRecord],
    observed_t: Vec<f64>,
    best_fit: Vec<f64>,
    levels: &[f64],
    systematics: bool,
) -> Result<NeymanRegionOutput> {
    let n_points = header.grid.len();
    if observed_t.len() != n_points {
        return Err(Error::Analysis(format!(
            "{} observed t values for {n_points} grid points",
            observed_t.len()
        )));
    }
    let by_point = statistics_by_grid(records, n_points);
    let plane = plane(header, &observed_t);
    let mut warnings: Vec<String> =
        exclusion_warning(&header.pois, &header.excluded, not_converged(records))
            .into_iter()
            .collect();
    let mut regions = Vec::new();
    for &level in levels {
        let label = level_label(level);
        let c: Vec<_> = by_point.iter().map(|t| critical_value(t, level)).collect();
        let values: Vec<f64> = c.iter().map(|c| c.value).collect();
        let low: Vec<f64> = c.iter().map(|c| c.low).collect();
        let high: Vec<f64> = c.iter().map(|c| c.high).collect();
        let accepted = accepted(&observed_t, &values);
        warnings.extend(region_warnings(&accepted, &format!("{label} % Neyman")));
        let boundary = |critical: &[f64]| {
            plane.as_ref().map(|grid| {
                let lines = contour(grid, Threshold::PerPoint(critical));
                Polylines {
                    polylines: lines.iter().map(|l| l.points.clone()).collect(),
                    closed: lines.iter().map(|l| l.closed).collect(),
                }
            })
        };
        if let Some(open) = boundary(&values).filter(|p| p.closed.contains(&false)) {
            warnings.push(open_warning(
                &format!("{label} % Neyman"),
                open.closed.len(),
            ));
        }
        regions.push(NeymanRegion {
            cl: label.parse().expect("a formatted number"),
            contour: boundary(&values),
            contour_narrow: boundary(&low),
            contour_wide: boundary(&high),
            accepted_narrow: self::accepted(&observed_t, &low),
            accepted_wide: self::accepted(&observed_t, &high),
            accepted,
            critical_values: values,
            critical_low: low,
            critical_high: high,
        });
    }
    let dof = header.pois.len();
    let mut asymptotic_regions = Vec::new();
    for &level in levels {
        let label = level_label(level);
        let threshold = chi2_threshold(level, dof);
        let flat = vec![threshold; n_points];
        let accepted = accepted(&observed_t, &flat);
        warnings.extend(region_warnings(&accepted, &format!("{label} % asymptotic")));
        let contour = plane.as_ref().map(|grid| {
            let lines = contour(grid, Threshold::Level(threshold));
            ContourOutput {
                cl: label.parse().expect("a formatted number"),
                threshold,
                polylines: lines.iter().map(|l| l.points.clone()).collect(),
                closed: lines.iter().map(|l| l.closed).collect(),
            }
        });
        asymptotic_regions.push(AsymptoticRegion {
            cl: label.parse().expect("a formatted number"),
            threshold,
            accepted,
            contour,
        });
    }
    Ok(NeymanRegionOutput {
        pois: header.pois.clone(),
        profiled: header.profiled.clone(),
        test_stat: header.test_stat,
        points: header.grid.points.clone(),
        axes: header.grid.axes.clone(),
        n_toys: by_point.iter().map(Vec::len).collect(),
        seed: header.seed,
        systematics,
        observed_t,
        best_fit: header.pois.iter().cloned().zip(best_fit).collect(),
        regions,
        asymptotic_regions,
        toy_fits_not_converged: not_converged(records),
        excluded_points: header.excluded.clone(),
        warnings,
    })
}

/// The observed t on the construction's plane, where its grid is a product of two axes:
/// what marching squares needs.
fn plane(header: &ToyFileHeader, observed_t: &[f64]) -> Option<Grid2> {
    match header.grid.axes.as_deref() {
        Some([xs, ys]) => Some(Grid2 {
            xs: xs.clone(),
            ys: ys.clone(),
            values: observed_t.to_vec(),
        }),
        _ => None,
    }
}

/// Grid points in the set: t_obs ≤ c (a point without toys, c NaN, is not).
fn accepted(observed: &[f64], critical: &[f64]) -> Vec<bool> {
    observed.iter().zip(critical).map(|(t, c)| t <= c).collect()
}

/// Fewest grid points a region should hold for the grid to resolve its shape.
const MIN_POINTS_INSIDE: usize = 4;

/// Warnings when the grid is too coarse for the region `accepted` of `what`.
fn region_warnings(accepted: &[bool], what: &str) -> Vec<String> {
    let inside = accepted.iter().filter(|&&a| a).count();
    match inside {
        0 => vec![format!(
            "{what}: no grid point is accepted: the region is empty or lies between grid \
             points; make toys on a finer grid"
        )],
        n if n < MIN_POINTS_INSIDE => vec![format!(
            "{what}: the region rests on {n} grid point(s): the grid is too coarse to draw it; \
             make toys on a finer grid"
        )],
        _ => Vec::new(),
    }
}

/// The warning for a region whose boundary runs into the grid's edge.
fn open_warning(what: &str, pieces: usize) -> String {
    format!(
        "{what}: the region's boundary ({pieces} piece(s)) reaches the grid's edge: the region \
         may go on beyond the grid; make toys on a larger grid"
    )
}
