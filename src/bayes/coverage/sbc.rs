//! Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari and Gelman, "Validating
//! Bayesian inference algorithms with simulation-based calibration", arXiv:1804.06788): for θ*
//! drawn from the prior and x from the simulator at θ*, the rank of θ*ᵢ among L independent
//! posterior draws of θᵢ is uniform on {0, …, L}. Draws of one chain are correlated, which
//! bunches the ranks (a ∪ or ∩ shape for a calibrated posterior), so the L draws are taken
//! evenly spaced from the pooled chains (the paper's thinning); a pair whose bulk ESS is below
//! L is reported. Ranks are binned into B bins of (L + 1)/B ranks each and tested for
//! uniformity by Pearson's χ² with B − 1 degrees of freedom.

use statrs::distribution::{ContinuousCDF, DiscreteCDF};

/// Indices of `l` draws evenly spaced among `total` (`k · total / l`).
pub fn thinned(total: usize, l: usize) -> impl Iterator<Item = usize> {
    (0..l).map(move |k| k * total / l)
}

/// The rank of `truth` among `draws`: how many are smaller.
pub fn rank(draws: impl Iterator<Item = f64>, truth: f64) -> u64 {
    draws.filter(|&d| d < truth).count() as u64
}

/// Counts of ranks 0..=`l` in `bins` bins of (l + 1)/bins ranks each.
pub fn histogram(ranks: impl Iterator<Item = u64>, l: usize, bins: usize) -> Vec<u64> {
    let mut counts = vec![0; bins];
    for r in ranks {
        counts[r as usize * bins / (l + 1)] += 1;
    }
    counts
}

/// Pearson's χ² of `counts` against equal expected counts, its degrees of freedom and p-value.
pub fn chi2_uniform(counts: &[u64]) -> (f64, usize, f64) {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    let chi2 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum::<f64>();
    let ndf = counts.len() - 1;
    let dist = statrs::distribution::ChiSquared::new(ndf as f64)
        .expect("at least two bins give a valid χ² distribution");
    (chi2, ndf, dist.sf(chi2))
}

/// The central `level` interval of one bin's count under uniform ranks, Binomial(n, 1/bins):
/// the grey band of the rank histograms. (The smallest counts whose CDF reaches each tail
/// probability, found by walking the CDF: statrs's own `inverse_cdf` fails for small n.)
pub fn count_band(pairs: usize, bins: usize, level: f64) -> (u64, u64) {
    let binomial = statrs::distribution::Binomial::new(1.0 / bins as f64, pairs as u64)
        .expect("a probability in (0, 1] gives a valid binomial");
    let tail = (1.0 - level) / 2.0;
    let quantile = |p: f64| {
        (0..=pairs as u64)
            .find(|&k| binomial.cdf(k) >= p)
            .unwrap_or(pairs as u64)
    };
    (quantile(tail), quantile(1.0 - tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_fill_bins_of_equal_width() {
        // L = 9: ranks 0..=9 in 5 bins of two.
        let counts = histogram(0..=9, 9, 5);
        assert_eq!(counts, [2, 2, 2, 2, 2]);
        assert_eq!(rank([0.1, 0.5, 0.9].into_iter(), 0.6), 2);
        assert_eq!(thinned(10, 4).collect::<Vec<_>>(), [0, 2, 5, 7]);
    }

    #[test]
    fn chi2_of_a_flat_histogram_is_zero() {
        let (chi2, ndf, p) = chi2_uniform(&[5, 5, 5, 5]);
        assert_eq!((chi2, ndf), (0.0, 3));
        assert!((p - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_count_band_holds_the_binomial_quantiles() {
        // scipy.stats.binom(200, 0.1).ppf([0.005, 0.995]) = [10, 32]; binom(12, 0.1): [0, 4].
        assert_eq!(count_band(200, 10, 0.99), (10, 32));
        assert_eq!(count_band(12, 10, 0.99), (0, 4));
    }
}
