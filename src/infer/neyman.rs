//! The Neyman construction from toys: critical values of t_μ per grid point, and the observed
//! confidence set {μ : t_obs(μ) ≤ c(μ)} (DESIGN.md §4).

use super::toys::ToyRecord;

/// The critical value of one confidence level at one grid point, with the range it moves in
/// by the toys' finite number (the order statistics one binomial standard deviation either
/// side of the quantile's rank).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Critical {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// The `level` quantile of `sorted` (ascending): the smallest t whose empirical CDF reaches
/// `level`, with its binomial range.
pub fn critical_value(sorted: &[f64], level: f64) -> Critical {
    let n = sorted.len();
    if n == 0 {
        return Critical {
            value: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let rank = |r: f64| sorted[(r.ceil() as usize).clamp(1, n) - 1];
    let centre = level * n as f64;
    let spread = (n as f64 * level * (1.0 - level)).sqrt();
    Critical {
        value: rank(centre),
        low: rank(centre - spread),
        high: rank(centre + spread),
    }
}

/// The sorted test statistics of each grid point.
pub fn statistics_by_grid(records: &[ToyRecord], n_grid: usize) -> Vec<Vec<f64>> {
    let mut by_grid = vec![Vec::new(); n_grid];
    for r in records {
        by_grid[r.grid_index].push(r.t);
    }
    for ts in &mut by_grid {
        ts.sort_by(f64::total_cmp);
    }
    by_grid
}

/// The parts of the grid where `observed[i] ≤ critical[i]`, as intervals whose ends are
/// interpolated linearly in (observed − critical) between grid points; an end at the grid's
/// edge stays there, and so does one next to an excluded grid point (NaN: nothing is known
/// between them).
pub fn accepted_intervals(grid: &[f64], observed: &[f64], critical: &[f64]) -> Vec<(f64, f64)> {
    let d: Vec<f64> = observed.iter().zip(critical).map(|(o, c)| o - c).collect();
    let crossing = |i: usize| {
        let (a, b) = (d[i], d[i + 1]);
        match (a.is_nan(), b.is_nan()) {
            (true, _) => grid[i + 1],
            (_, true) => grid[i],
            _ => grid[i] + (grid[i + 1] - grid[i]) * a / (a - b),
        }
    };
    let mut out = Vec::new();
    let mut start: Option<f64> = None;
    for (i, &di) in d.iter().enumerate() {
        let inside = di <= 0.0;
        match (inside, start) {
            (true, None) => start = Some(if i == 0 { grid[0] } else { crossing(i - 1) }),
            (false, Some(lo)) => {
                out.push((lo, crossing(i - 1)));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(lo) = start {
        out.push((lo, grid[grid.len() - 1]));
    }
    out
}

/// Fewest grid points an accepted interval should hold for the grid to resolve it.
const MIN_POINTS_INSIDE: usize = 2;

/// Warnings when the grid is too coarse for the set `intervals` (of `what`, e.g. "68.27 %
/// Neyman"): no grid point accepted, or an interval resting on fewer than
/// [`MIN_POINTS_INSIDE`] of them. The toys fix the grid, so a finer one means new toys
/// (by `--mu-grid` or `--grid`: the warning names neither).
pub fn coarse_grid_warnings(grid: &[f64], intervals: &[(f64, f64)], what: &str) -> Vec<String> {
    if intervals.is_empty() {
        return vec![format!(
            "{what}: no grid point is accepted: the set is empty or lies between grid points; \
             make toys on a finer grid"
        )];
    }
    intervals
        .iter()
        .filter_map(|&(lo, hi)| {
            let inside = grid.iter().filter(|&&mu| lo <= mu && mu <= hi).count();
            (inside < MIN_POINTS_INSIDE).then(|| {
                format!(
                    "{what}: the interval [{lo:.4}, {hi:.4}] rests on {inside} grid point(s): \
                     the grid is too coarse to place its ends; make toys on a finer grid"
                )
            })
        })
        .collect()
}

/// Fraction of `t` values at or below `critical`, with its binomial standard error.
pub fn coverage(t: &[f64], critical: f64) -> (f64, f64) {
    let n = t.len() as f64;
    let covered = t.iter().filter(|&&x| x <= critical).count() as f64;
    let p = covered / n;
    (p, (p * (1.0 - p) / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_of_known_sample() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        let c = critical_value(&sorted, 0.6827);
        assert_eq!(c.value, 69.0);
        // ±sqrt(100·0.6827·0.3173) ≈ 4.65 ranks
        assert_eq!((c.low, c.high), (64.0, 73.0));
    }

    #[test]
    fn intervals_interpolate_crossings() {
        let grid = [0.0, 1.0, 2.0, 3.0, 4.0];
        let observed = [3.0, 0.5, 0.0, 0.5, 3.0];
        let critical = [1.0; 5];
        let iv = accepted_intervals(&grid, &observed, &critical);
        assert_eq!(iv.len(), 1);
        assert!((iv[0].0 - 0.8).abs() < 1e-12 && (iv[0].1 - 3.2).abs() < 1e-12);
        // Accepted at the lower edge: the interval starts at the grid's edge.
        let iv = accepted_intervals(&grid, &[0.0, 0.5, 2.0, 0.5, 0.0], &critical);
        assert_eq!(iv.len(), 2);
        assert_eq!(iv[0].0, 0.0);
        assert!((iv[0].1 - (1.0 + 0.5 / 1.5)).abs() < 1e-12);
        assert_eq!(iv[1].1, 4.0);
        // An excluded point (NaN) ends an interval at its neighbour, and one starts after it.
        let nan = f64::NAN;
        let iv = accepted_intervals(&grid, &[0.0, 0.5, nan, 0.5, 3.0], &critical);
        assert_eq!(iv.len(), 2);
        assert_eq!(iv[0], (0.0, 1.0));
        assert!(iv[1].0 == 3.0 && (iv[1].1 - (3.0 + 0.5 / 2.5)).abs() < 1e-12);
    }

    #[test]
    fn coarse_grids_warn() {
        let grid = [0.0, 1.0, 2.0, 3.0];
        assert!(coarse_grid_warnings(&grid, &[(0.5, 2.5)], "68.27 %").is_empty());
        let one = coarse_grid_warnings(&grid, &[(0.5, 1.5)], "68.27 %");
        assert!(one[0].contains("rests on 1 grid point(s)"), "{one:?}");
        let none = coarse_grid_warnings(&grid, &[], "68.27 %");
        assert!(none[0].contains("no grid point is accepted"), "{none:?}");
    }

    #[test]
    fn coverage_counts_with_binomial_error() {
        let (p, e) = coverage(&[0.1, 0.5, 2.0, 3.0], 1.0);
        assert_eq!(p, 0.5);
        assert!((e - 0.25).abs() < 1e-15);
    }
}
