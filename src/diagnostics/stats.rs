//! The statistics the diagnostics share: χ² tail probabilities, histogram edges, and weighted
//! two-sample histogram comparisons whose errors come from the sum of squared weights, so
//! negative weights (interference) and events shared by both histograms are counted correctly.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// P(χ²_ndf ≥ chi2): the p-value of a χ² statistic with `ndf` degrees of freedom.
/// statrs evaluates the survival function as the upper regularised incomplete gamma
/// Q(ndf/2, chi2/2) directly, so the far tail (p ~ 1e-100) keeps its relative precision.
pub fn chi2_p_value(chi2: f64, ndf: usize) -> f64 {
    if ndf == 0 {
        return 1.0;
    }
    ChiSquared::new(ndf as f64)
        .expect("one or more degrees of freedom")
        .sf(chi2)
}

/// Bin edges at the quantiles of `values` (`bins` bins of about equal count), so every bin has
/// enough events for Gaussian errors whatever the shape of the distribution; repeated edges (a
/// discrete feature) are merged. The last bin includes its upper edge.
pub fn quantile_edges(values: &[f64], bins: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 || bins == 0 {
        return Vec::new();
    }
    let mut edges = vec![sorted[0]];
    for k in 1..bins {
        let edge = sorted[k * n / bins];
        if edge > *edges.last().expect("non-empty") {
            edges.push(edge);
        }
    }
    let top = sorted[n - 1];
    if top > *edges.last().expect("non-empty") {
        edges.push(top);
    }
    edges
}

/// The bin of `x` among `edges` (lower edge included; the top edge belongs to the last bin);
/// `None` outside.
pub fn bin_of(edges: &[f64], x: f64) -> Option<usize> {
    let bins = edges.len().checked_sub(1)?;
    if bins == 0 || !(x >= edges[0] && x <= edges[bins]) {
        return None;
    }
    // partition_point: the number of edges ≤ x.
    Some((edges.partition_point(|e| *e <= x) - 1).min(bins - 1))
}

/// Two weighted histograms of the same events: each event carries a target weight t and a
/// reweighted weight u (one of them may be 0, when the event belongs to one sample only).
/// Per bin the difference T − R = Σ (t − u) has variance Σ (t − u)² — the sum-of-w² error of
/// the per-event difference, which is right for independent samples (Σt² + Σu²) and also when
/// the same events enter both (their common fluctuation cancels).
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramComparison {
    pub edges: Vec<f64>,
    pub target: Vec<f64>,
    pub reweighted: Vec<f64>,
    /// √Σt² and √Σu² per bin: the statistical bands drawn around each histogram.
    pub target_error: Vec<f64>,
    pub reweighted_error: Vec<f64>,
    /// √Σ(t − u)² per bin: the error of the difference.
    pub difference_error: Vec<f64>,
}

impl HistogramComparison {
    /// Fills the bins of `edges` from per-event `(x, t, u)`; events outside are ignored.
    pub fn fill(edges: Vec<f64>, events: impl Iterator<Item = (f64, f64, f64)>) -> Self {
        let bins = edges.len().saturating_sub(1);
        let mut h = HistogramComparison {
            edges,
            target: vec![0.0; bins],
            reweighted: vec![0.0; bins],
            target_error: vec![0.0; bins],
            reweighted_error: vec![0.0; bins],
            difference_error: vec![0.0; bins],
        };
        for (x, t, u) in events {
            if let Some(b) = bin_of(&h.edges, x) {
                h.target[b] += t;
                h.reweighted[b] += u;
                h.target_error[b] += t * t;
                h.reweighted_error[b] += u * u;
                h.difference_error[b] += (t - u) * (t - u);
            }
        }
        for v in h
            .target_error
            .iter_mut()
            .chain(&mut h.reweighted_error)
            .chain(&mut h.difference_error)
        {
            *v = v.sqrt();
        }
        h
    }

    /// (T − R)/σ per bin; `None` where the bin has no events.
    pub fn pulls(&self) -> Vec<Option<f64>> {
        (0..self.target.len())
            .map(|b| {
                let sigma = self.difference_error[b];
                (sigma > 0.0).then(|| (self.target[b] - self.reweighted[b]) / sigma)
            })
            .collect()
    }

    /// χ² = Σ pulls² over the bins with events, and their number (the ndf: no parameter is
    /// fitted, the normalisation is part of what is tested).
    pub fn chi2(&self) -> (f64, usize) {
        let pulls: Vec<f64> = self.pulls().into_iter().flatten().collect();
        (pulls.iter().map(|p| p * p).sum(), pulls.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_p_values_match_scipy() {
        // scipy.stats.chi2.sf(x, k), scipy 1.17
        let cases = [
            (0.5, 1, 0.479_500_122_186_953_37),
            (3.0, 2, 0.223_130_160_148_429_82),
            (25.0, 20, 0.201_431_104_945_535_9),
            (40.0, 20, 0.004_995_412_308_307_578_5),
            (150.0, 20, 6.285_681_673_933_351e-22),
            (10.0, 3, 0.018_566_135_463_043_25),
            (1e-3, 5, 0.999_999_998_318_512_3),
            (200.0, 180, 0.146_346_174_698_732_73),
            (600.0, 20, 2.878_499_265_537_051_2e-114),
            (950.0, 1000, 0.869_124_065_745_688_3),
            (1200.0, 1000, 1.225_594_233_062_289_3e-5),
            (0.3, 1, 0.583_882_420_770_365),
            (1e-8, 2, 0.999_999_995),
            (40.0, 3, 1.065_509_033_425_585e-8),
        ];
        for (x, k, expected) in cases {
            let p = chi2_p_value(x, k);
            assert!(
                (p / expected - 1.0).abs() < 1e-10,
                "chi2 {x} ndf {k}: {p} vs scipy {expected}"
            );
        }
        assert_eq!(chi2_p_value(3.0, 0), 1.0);
        assert_eq!(chi2_p_value(0.0, 4), 1.0);
        assert!(chi2_p_value(f64::NAN, 4).is_nan());
    }

    #[test]
    fn quantile_edges_split_counts_evenly_and_merge_ties() {
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        let edges = quantile_edges(&values, 4);
        assert_eq!(edges, vec![0.0, 25.0, 50.0, 75.0, 99.0]);
        let discrete = [1.0, 1.0, 1.0, 1.0, 2.0, 3.0];
        assert_eq!(quantile_edges(&discrete, 3), vec![1.0, 2.0, 3.0]);
        assert_eq!(bin_of(&edges, 99.0), Some(3));
        assert_eq!(bin_of(&edges, 25.0), Some(1));
        assert_eq!(bin_of(&edges, 24.9), Some(0));
        assert_eq!(bin_of(&edges, 100.0), None);
    }

    #[test]
    fn shared_events_cancel_in_the_difference_error() {
        // The same event in both histograms with equal weights: no difference, no error.
        let h = HistogramComparison::fill(vec![0.0, 1.0], [(0.5, 2.0, 2.0)].into_iter());
        assert_eq!(h.difference_error, vec![0.0]);
        assert_eq!(h.chi2(), (0.0, 0));
        // Independent samples (disjoint events): variances add; a negative weight counts by w².
        let h = HistogramComparison::fill(
            vec![0.0, 1.0],
            [(0.5, 3.0, 0.0), (0.2, -1.0, 0.0), (0.7, 0.0, 1.0)].into_iter(),
        );
        assert_eq!(h.target, vec![2.0]);
        assert!((h.difference_error[0] - 11f64.sqrt()).abs() < 1e-15);
        assert!((h.chi2().0 - 1.0 / 11.0).abs() < 1e-15);
    }
}
