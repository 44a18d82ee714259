//! Contours {θ : t(θ) = c(θ)} of a statistic sampled on a rectangular 2-D grid, by marching
//! squares: the crossing on each cell edge is interpolated linearly between its two grid
//! points, and the segments of the cells are chained into polylines. A polyline that comes
//! back to its start is closed (its first point repeated at the end); one that runs into the
//! grid's edge, or into a cell with an excluded (NaN) grid point, is left open there: the
//! region may go on beyond what the grid knows.
//!
//! The threshold may differ from point to point (a Neyman construction's critical values
//! c(θ)), so the same code draws asymptotic regions (t ≤ χ²₂ quantile) and toy-based ones.

use std::collections::HashMap;

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// A statistic on a grid: `values[i * ys.len() + j]` is its value at `(xs[i], ys[j])`; NaN
/// marks an excluded point (no likelihood there), which no contour goes through.
#[derive(Clone, Debug)]
pub struct Grid2 {
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
    pub values: Vec<f64>,
}

/// The threshold a contour is drawn at: one level for the whole grid (asymptotic regions) or
/// one per grid point, in the grid's order (critical values of a Neyman construction).
#[derive(Clone, Copy, Debug)]
pub enum Threshold<'a> {
    Level(f64),
    PerPoint(&'a [f64]),
}

/// One connected piece of a contour; `closed` ones repeat their first point at the end.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Polyline {
    pub points: Vec<[f64; 2]>,
    pub closed: bool,
}

/// The quantile of χ² with `dof` degrees of freedom at confidence level `cl` (a fraction in
/// (0, 1)): Wilks' asymptotic threshold on t for a joint region of `dof` parameters
/// (2.30 for 68.27 % and 5.99 for 95 % in two).
pub fn chi2_threshold(cl: f64, dof: usize) -> f64 {
    let chi2 = ChiSquared::new(dof as f64).expect("a positive number of degrees of freedom");
    chi2.inverse_cdf(cl)
}

/// A grid edge: horizontal from (i, j) to (i + 1, j), or vertical from (i, j) to (i, j + 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Edge {
    Horizontal(usize, usize),
    Vertical(usize, usize),
}

/// The contour of `grid` at `threshold` as polylines. A point is inside where
/// t ≤ threshold; each edge between an inside and an outside point holds one crossing.
pub fn contour(grid: &Grid2, threshold: Threshold) -> Vec<Polyline> {
    let (nx, ny) = (grid.xs.len(), grid.ys.len());
    assert_eq!(grid.values.len(), nx * ny, "one value per grid point");
    // f = t − threshold: inside where f ≤ 0.
    let f: Vec<f64> = (0..nx * ny)
        .map(|k| {
            grid.values[k]
                - match threshold {
                    Threshold::Level(level) => level,
                    Threshold::PerPoint(levels) => levels[k],
                }
        })
        .collect();
    let at = |i: usize, j: usize| f[i * ny + j];
    let mut segments: Vec<[Edge; 2]> = Vec::new();
    for i in 0..nx.saturating_sub(1) {
        for j in 0..ny.saturating_sub(1) {
            let corners = [at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)];
            if corners.iter().any(|v| v.is_nan()) {
                continue;
            }
            segments.extend(cell_segments(i, j, corners));
        }
    }
    chain(&segments)
        .into_iter()
        .map(|(edges, closed)| Polyline {
            points: edges.iter().map(|&e| crossing(grid, &f, e)).collect(),
            closed,
        })
        .collect()
}

/// The segments of cell (i, j), its corners' f in the order (i, j), (i+1, j), (i+1, j+1),
/// (i, j+1). A saddle (opposite corners inside) is split by the cell's mean value: where the
/// centre is inside, the inside corners are joined through it.
fn cell_segments(i: usize, j: usize, f: [f64; 4]) -> Vec<[Edge; 2]> {
    // Edge k joins corner k and corner k + 1 (mod 4).
    let edges = [
        Edge::Horizontal(i, j),
        Edge::Vertical(i + 1, j),
        Edge::Horizontal(i, j + 1),
        Edge::Vertical(i, j),
    ];
    let inside = f.map(|v| v <= 0.0);
    let cut: Vec<usize> = (0..4)
        .filter(|&k| inside[k] != inside[(k + 1) % 4])
        .collect();
    match cut.as_slice() {
        [a, b] => vec![[edges[*a], edges[*b]]],
        [_, _, _, _] => {
            let centre_inside = f.iter().sum::<f64>() / 4.0 <= 0.0;
            // Cut off the corners on the side the centre is not: corner k lies between
            // edges k − 1 and k.
            let lonely: Vec<usize> = (0..4).filter(|&k| inside[k] != centre_inside).collect();
            lonely
                .iter()
                .map(|&k| [edges[(k + 3) % 4], edges[k]])
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The crossing on `edge`, linearly interpolated between its two grid points.
fn crossing(grid: &Grid2, f: &[f64], edge: Edge) -> [f64; 2] {
    let ny = grid.ys.len();
    let ((i0, j0), (i1, j1)) = match edge {
        Edge::Horizontal(i, j) => ((i, j), (i + 1, j)),
        Edge::Vertical(i, j) => ((i, j), (i, j + 1)),
    };
    let (f0, f1) = (f[i0 * ny + j0], f[i1 * ny + j1]);
    let s = f0 / (f0 - f1);
    [
        grid.xs[i0] + s * (grid.xs[i1] - grid.xs[i0]),
        grid.ys[j0] + s * (grid.ys[j1] - grid.ys[j0]),
    ]
}

/// Chains segments that share an edge into polylines of edges: first from the free ends
/// (open polylines), then around the cycles that remain (closed; the start repeated).
fn chain(segments: &[[Edge; 2]]) -> Vec<(Vec<Edge>, bool)> {
    let mut touching: HashMap<Edge, Vec<usize>> = HashMap::new();
    for (s, pair) in segments.iter().enumerate() {
        for e in pair {
            touching.entry(*e).or_default().push(s);
        }
    }
    let mut used = vec![false; segments.len()];
    let walk = |start: usize, from: Edge, used: &mut Vec<bool>| -> (Vec<Edge>, bool) {
        let mut edges = vec![from];
        let (mut segment, mut at) = (start, from);
        loop {
            used[segment] = true;
            let [a, b] = segments[segment];
            let next = if a == at { b } else { a };
            edges.push(next);
            if next == from {
                return (edges, true);
            }
            match touching[&next].iter().find(|&&s| !used[s]) {
                Some(&s) => (segment, at) = (s, next),
                None => return (edges, false),
            }
        }
    };
    let mut out = Vec::new();
    // Free ends are edges touched by one segment; sorted for a deterministic order.
    let mut ends: Vec<(Edge, usize)> = touching
        .iter()
        .filter(|(_, s)| s.len() == 1)
        .map(|(e, s)| (*e, s[0]))
        .collect();
    ends.sort_by_key(|(e, _)| edge_order(*e));
    for (edge, s) in ends {
        if !used[s] {
            out.push(walk(s, edge, &mut used));
        }
    }
    for s in 0..segments.len() {
        if !used[s] {
            out.push(walk(s, segments[s][0], &mut used));
        }
    }
    out
}

fn edge_order(edge: Edge) -> (usize, usize, usize) {
    match edge {
        Edge::Horizontal(i, j) => (0, i, j),
        Edge::Vertical(i, j) => (1, i, j),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::scan::linspace;

    /// t = q(x, y) = a quadratic form around (0.3, −0.2), an ellipse tilted by a correlation.
    fn quadratic(x: f64, y: f64) -> f64 {
        let (dx, dy) = ((x - 0.3) / 0.5, (y + 0.2) / 0.8);
        (dx * dx + dy * dy - 1.2 * dx * dy) / (1.0 - 0.36)
    }

    fn grid(xs: Vec<f64>, ys: Vec<f64>, t: impl Fn(f64, f64) -> f64) -> Grid2 {
        let values = xs
            .iter()
            .flat_map(|&x| ys.iter().map(move |&y| (x, y)))
            .map(|(x, y)| t(x, y))
            .collect();
        Grid2 { xs, ys, values }
    }

    #[test]
    fn chi2_thresholds_of_two_parameters() {
        assert!((chi2_threshold(0.6827, 2) - 2.2957).abs() < 1e-3);
        assert!((chi2_threshold(0.95, 2) - 5.9915).abs() < 1e-4);
        assert!((chi2_threshold(0.95, 1) - 3.8415).abs() < 1e-4);
    }

    #[test]
    fn an_ellipse_is_one_closed_polyline_on_the_level_set() {
        let g = grid(linspace(-3.0, 3.5, 66), linspace(-3.5, 3.0, 66), quadratic);
        for level in [2.30, 5.99] {
            let lines = contour(&g, Threshold::Level(level));
            assert_eq!(lines.len(), 1, "{lines:?}");
            let line = &lines[0];
            assert!(line.closed);
            assert_eq!(line.points.first(), line.points.last());
            assert!(line.points.len() > 40, "{} points", line.points.len());
            // Linear interpolation on a 0.1 grid: q at the crossings within a few % of the
            // level (the interpolation error of a quadratic over one step).
            for p in &line.points {
                let q = quadratic(p[0], p[1]);
                assert!((q / level - 1.0).abs() < 0.02, "q = {q} at {p:?}");
            }
        }
    }

    #[test]
    fn a_region_through_the_grid_edge_is_an_open_polyline() {
        // The grid stops at x = 0.3, through the ellipse's centre.
        let g = grid(linspace(-3.0, 0.3, 34), linspace(-3.5, 3.0, 66), quadratic);
        let lines = contour(&g, Threshold::Level(2.30));
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(!line.closed);
        for end in [line.points[0], line.points[line.points.len() - 1]] {
            assert!(
                (end[0] - 0.3).abs() < 1e-12,
                "end {end:?} on the grid's edge"
            );
        }
    }

    #[test]
    fn excluded_points_open_the_contour_and_a_threshold_per_point_is_used() {
        let mut g = grid(linspace(-3.0, 3.5, 66), linspace(-3.5, 3.0, 66), quadratic);
        // Exclude the points with x > 1 (as a negative density would).
        for (k, v) in g.values.iter_mut().enumerate() {
            if g.xs[k / 66] > 1.0 {
                *v = f64::NAN;
            }
        }
        let lines = contour(&g, Threshold::Level(5.99));
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].closed);
        assert!(lines[0].points.iter().all(|p| p[0] <= 1.0));
        // The same level given point by point draws the same line.
        let levels = vec![5.99; g.values.len()];
        assert_eq!(contour(&g, Threshold::PerPoint(&levels)), lines);
    }

    #[test]
    fn two_separate_regions_are_two_polylines_and_a_saddle_stays_split() {
        // Two minima at x = ±1: t = (x² − 1)² / 0.05 + y² / 0.25.
        let t = |x: f64, y: f64| (x * x - 1.0).powi(2) / 0.05 + y * y / 0.25;
        let g = grid(linspace(-2.0, 2.0, 81), linspace(-1.5, 1.5, 61), t);
        let lines = contour(&g, Threshold::Level(2.30));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.closed));
        // A checkerboard cell: each inside corner cut off on its own.
        let g = Grid2 {
            xs: vec![0.0, 1.0],
            ys: vec![0.0, 1.0],
            values: vec![0.0, 2.0, 2.0, 0.0],
        };
        assert_eq!(contour(&g, Threshold::Level(1.5)).len(), 2);
    }
}
