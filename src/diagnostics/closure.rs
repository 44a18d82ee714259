//! Reweighting closure: a sample reweighted event by event by a learned ratio must reproduce
//! the target sample in every feature. Two kinds of test use it:
//! 1. per ratio model: the denominator sample (the reference, or the nominal sample of a shape
//!    systematic) times r(x) against the numerator sample;
//! 2. per parameter point: the weighted MC mixture at μ_ref times p(x|μ)/p(x|μ_ref) from the
//!    full model against the MC mixture at μ — which checks every ratio and the coefficients
//!    together, including the negative-weight interference mixture.

use super::calibration::PULL_TO_REPORT;
use super::stats::{chi2_p_value, quantile_edges, HistogramComparison};
use crate::data::Events;

/// Events of one sample with, per event, its weight in the target histogram (t) and in the
/// reweighted histogram (u); an event may enter both (the μ test shares MC events).
pub struct WeightedSegment<'e> {
    pub events: &'e Events,
    pub target: Vec<f64>,
    pub reweighted: Vec<f64>,
}

/// One feature's comparison.
#[derive(Clone, Debug)]
pub struct FeatureClosure {
    pub feature: String,
    pub histogram: HistogramComparison,
    pub chi2: f64,
    pub ndf: usize,
    pub p_value: f64,
}

impl FeatureClosure {
    /// Bins whose |pull| exceeds [`PULL_TO_REPORT`], worst first, with their pulls.
    pub fn bad_bins(&self) -> Vec<(usize, f64)> {
        let mut bad: Vec<(usize, f64)> = self
            .histogram
            .pulls()
            .into_iter()
            .enumerate()
            .filter_map(|(i, p)| p.filter(|p| p.abs() > PULL_TO_REPORT).map(|p| (i, p)))
            .collect();
        bad.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        bad
    }
}

/// One closure test: a named comparison over every feature.
#[derive(Clone, Debug)]
pub struct ClosureTest {
    /// Short name: the ratio model's label (`SR/S`) or the parameter point (`SR/mu=1.7`).
    pub name: String,
    pub description: String,
    pub target_total: f64,
    pub reweighted_total: f64,
    pub features: Vec<FeatureClosure>,
}

/// Histograms every feature of `segments` in `bins` bins at the quantiles of the events that
/// carry a weight, and compares target with reweighted.
pub fn compare_features(
    features: &[String],
    segments: &[WeightedSegment<'_>],
    bins: usize,
) -> Vec<FeatureClosure> {
    features
        .iter()
        .enumerate()
        .map(|(j, feature)| {
            let column = |seg: &'_ WeightedSegment<'_>| {
                let values = seg.events.values.column(j).to_owned();
                (0..seg.target.len())
                    .map(move |i| (values[i] as f64, seg.target[i], seg.reweighted[i]))
                    .collect::<Vec<_>>()
            };
            let rows: Vec<(f64, f64, f64)> = segments.iter().flat_map(column).collect();
            let weighted: Vec<f64> = rows
                .iter()
                .filter(|(_, t, u)| *t != 0.0 || *u != 0.0)
                .map(|(x, _, _)| *x)
                .collect();
            let histogram =
                HistogramComparison::fill(quantile_edges(&weighted, bins), rows.into_iter());
            let (chi2, ndf) = histogram.chi2();
            FeatureClosure {
                feature: feature.clone(),
                histogram,
                chi2,
                ndf,
                p_value: chi2_p_value(chi2, ndf),
            }
        })
        .collect()
}

/// Test 1 for one ratio model: `denominator` weighted by r(x) (its total scaled to the
/// numerator's, since r compares normalised densities) against `numerator`.
pub fn ratio_closure<'e>(
    numerator: &'e Events,
    denominator: &'e Events,
    ratio_on_denominator: &[f64],
) -> [WeightedSegment<'e>; 2] {
    let scale = numerator.total_weight() / denominator.total_weight();
    [
        WeightedSegment {
            events: numerator,
            target: numerator.weights.clone(),
            reweighted: vec![0.0; numerator.len()],
        },
        WeightedSegment {
            events: denominator,
            target: vec![0.0; denominator.len()],
            reweighted: denominator
                .weights
                .iter()
                .zip(ratio_on_denominator)
                .map(|(w, r)| w * scale * r)
                .collect(),
        },
    ]
}

impl ClosureTest {
    pub fn new(
        name: String,
        description: String,
        features: &[String],
        segments: &[WeightedSegment<'_>],
        bins: usize,
    ) -> ClosureTest {
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        ClosureTest {
            name,
            description,
            target_total: segments.iter().map(|s| sum(&s.target)).sum(),
            reweighted_total: segments.iter().map(|s| sum(&s.reweighted)).sum(),
            features: compare_features(features, segments, bins),
        }
    }

    pub fn passes(&self, per_test_threshold: f64) -> bool {
        self.features
            .iter()
            .all(|f| f.p_value >= per_test_threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn events(values: &[f32], weights: &[f64]) -> Events {
        Events {
            file: "test.h5".into(),
            features: vec!["x".into()],
            values: Array2::from_shape_vec((values.len(), 1), values.to_vec()).unwrap(),
            weights: weights.to_vec(),
        }
    }

    #[test]
    fn exact_reweighting_closes() {
        // Numerator: two events at x = 0.1 and one at 0.9 (weight 1); denominator: one event
        // each, weight 2. r = (2/3)/(1/2) at 0.1 and (1/3)/(1/2) at 0.9; after scaling the
        // denominator to the numerator's total (3/4) the histograms agree bin by bin.
        let num = events(&[0.1, 0.1, 0.9], &[1.0; 3]);
        let den = events(&[0.1, 0.9], &[2.0; 2]);
        let segments = ratio_closure(&num, &den, &[4.0 / 3.0, 2.0 / 3.0]);
        let test = ClosureTest::new("t".into(), String::new(), &num.features, &segments, 3);
        let h = &test.features[0].histogram;
        // Two distinct values: one bin, its top edge included.
        assert_eq!(h.edges, vec![0.1f32 as f64, 0.9f32 as f64]);
        assert!((test.reweighted_total - 3.0).abs() < 1e-12);
        for b in 0..h.target.len() {
            assert!((h.target[b] - h.reweighted[b]).abs() < 1e-12);
        }
        assert!(test.features[0].chi2 < 1e-20);
    }
}
