//! TARP, "Tests of Accuracy with Random Points" (Lemos, Coogan, Hezaveh and Perreault-Levasseur,
//! ICML 2023; seed 000's validation of its NPE/NLE/NRE posteriors), as the `tarp` package
//! (0.1.1, `get_tarp_coverage`) computes it:
//!
//! 1. θ* and the draws are normalised per parameter by the smallest and largest θ* of the
//!    test set, (θ − low) / (high − low + 10⁻¹⁰) (`norm=True`);
//! 2. each pair i gets a reference point θᵣ (in normalised coordinates);
//! 3. fᵢ = the fraction of pair i's draws closer (Euclidean) to θᵣ than θ* is: the
//!    credibility of the smallest ball around θᵣ that holds θ*;
//! 4. ECP(α) = the fraction of pairs with fᵢ < α — the package's cumulative histogram of f,
//!    read at its bin edges. A calibrated posterior gives fᵢ uniform on [0, 1]: ECP(α) = α.
//!
//! The pass/fail is the Kolmogorov–Smirnov test of the f's against Uniform(0, 1): D =
//! sup |ECP(α) − α| is exactly the largest distance of the curve from the diagonal, and its
//! p-value is the asymptotic Kolmogorov distribution (scipy's `kstest(method="asymp")`).
//!
//! The uncertainty band is a bootstrap over pairs (resampled with replacement; mean and
//! standard deviation of the ECP at each α). The package's `bootstrap=True` instead replaces
//! one simulation by another per iteration, cumulatively and in place, which is not a
//! nonparametric bootstrap; its number of replicates (100) is kept as the default.

use rand::Rng;

/// The package's guard against a parameter whose θ* are all equal.
pub const NORMALISATION_EPSILON: f64 = 1e-10;

/// θ ↦ (θ − low) / (high − low + ε), per parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalisation {
    pub low: Vec<f64>,
    pub high: Vec<f64>,
}

impl Normalisation {
    pub fn apply(&self, theta: &[f64]) -> Vec<f64> {
        theta
            .iter()
            .zip(self.low.iter().zip(&self.high))
            .map(|(&t, (&low, &high))| (t - low) / (high - low + NORMALISATION_EPSILON))
            .collect()
    }
}

/// Euclidean distance, summed in parameter order as numpy sums a short last axis.
fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// fᵢ: the fraction of `draws` (normalised) strictly closer to `reference` than `theta_star`
/// (normalised).
pub fn coverage_fraction<'a>(
    draws: impl ExactSizeIterator<Item = &'a [f64]>,
    theta_star: &[f64],
    reference: &[f64],
) -> f64 {
    let total = draws.len() as f64;
    let radius = distance(reference, theta_star);
    let inside = draws.filter(|d| distance(reference, d) < radius).count();
    inside as f64 / total
}

/// ECP(α): the fraction of `sorted` f values below α; at α ≥ 1 every f ≤ α counts (the
/// package's last histogram bin is closed).
pub fn ecp_at(sorted: &[f64], alpha: f64) -> f64 {
    let below = if alpha >= 1.0 {
        sorted.partition_point(|&f| f <= alpha)
    } else {
        sorted.partition_point(|&f| f < alpha)
    };
    below as f64 / sorted.len() as f64
}

/// ECP on `alpha`, from unsorted f values.
pub fn ecp_curve(f: &[f64], alpha: &[f64]) -> Vec<f64> {
    let mut sorted = f.to_vec();
    sorted.sort_by(f64::total_cmp);
    alpha.iter().map(|&a| ecp_at(&sorted, a)).collect()
}

/// `bins` + 1 equally spaced credibility levels from 0 to 1.
pub fn credibility_grid(bins: usize) -> Vec<f64> {
    (0..=bins).map(|k| k as f64 / bins as f64).collect()
}

/// Mean and standard deviation (numpy's, ddof 0) of the ECP on `alpha` over `replicates`
/// resamplings of the pairs with replacement.
pub fn bootstrap<R: Rng>(
    f: &[f64],
    alpha: &[f64],
    replicates: usize,
    rng: &mut R,
) -> (Vec<f64>, Vec<f64>) {
    let mut sum = vec![0.0; alpha.len()];
    let mut sum_sq = vec![0.0; alpha.len()];
    let mut resampled = vec![0.0; f.len()];
    for _ in 0..replicates {
        for slot in resampled.iter_mut() {
            *slot = f[rng.random_range(0..f.len())];
        }
        for (k, e) in ecp_curve(&resampled, alpha).into_iter().enumerate() {
            sum[k] += e;
            sum_sq[k] += e * e;
        }
    }
    let b = replicates.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / b).collect();
    let sd = sum_sq
        .iter()
        .zip(&mean)
        .map(|(s, m)| (s / b - m * m).max(0.0).sqrt())
        .collect();
    (mean, sd)
}

/// The Kolmogorov–Smirnov distance of the f values from Uniform(0, 1) and its asymptotic
/// p-value P(K > D√n).
pub fn ks_uniform(f: &[f64]) -> (f64, f64) {
    let mut sorted = f.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let d = sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let x = x.clamp(0.0, 1.0);
            ((i + 1) as f64 / n - x).max(x - i as f64 / n)
        })
        .fold(0.0, f64::max);
    (d, kolmogorov_sf(d * n.sqrt()))
}

/// P(K > x) of the Kolmogorov distribution: the alternating series for x > 1, the Jacobi
/// theta form 1 − √(2π)/x Σ exp(−(2k−1)²π²/(8x²)) below (both converge in a few terms where
/// they are used).
pub fn kolmogorov_sf(x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 1.0;
    }
    if x > 1.0 {
        let sum: f64 = (1..=100)
            .map(|k| {
                let k = k as f64;
                let sign = if k as u64 % 2 == 1 { 1.0 } else { -1.0 };
                sign * (-2.0 * k * k * x * x).exp()
            })
            .sum();
        (2.0 * sum).clamp(0.0, 1.0)
    } else {
        let sum: f64 = (1..=100)
            .map(|k| {
                let odd = (2 * k - 1) as f64;
                (-odd * odd * PI * PI / (8.0 * x * x)).exp()
            })
            .sum();
        (1.0 - (2.0 * PI).sqrt() / x * sum).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecp_counts_values_below_alpha_and_closes_the_last_bin() {
        let f = [0.0, 0.25, 0.5, 1.0];
        assert_eq!(ecp_curve(&f, &[0.0, 0.25, 0.3, 1.0]), [0.0, 0.25, 0.5, 1.0]);
    }

    #[test]
    fn kolmogorov_tail_matches_known_values() {
        // scipy.stats.kstwobign.sf at 0.5, 1.0, 1.36 and 2.0.
        for (x, p) in [
            (0.5, 0.963_945_243_664_875_1),
            (1.0, 0.269_999_671_677_354_56),
            (1.36, 0.049_485_876_755_377_876),
            (2.0, 0.000_670_925_255_779_695_3),
        ] {
            assert!(
                (kolmogorov_sf(x) - p).abs() < 1e-12,
                "{x}: {}",
                kolmogorov_sf(x)
            );
        }
    }
}
