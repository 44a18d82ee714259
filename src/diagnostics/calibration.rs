//! Calibration of a ratio model: is s = r/(1+r) the probability that an event belongs to the
//! numerator class, on events the networks never saw?
//!
//! With both classes weighted to equal totals (balanced priors), a perfect ratio r = p₁/p₀
//! gives P(class 1 | x) = p₁/(p₁+p₀) = s(x) exactly, so in every bin of s the weighted fraction
//! of class-1 events must equal the mean predicted s: the reliability curve is the diagonal.

use super::stats::chi2_p_value;

/// Bins with fewer effective entries than this are shown but left out of χ² and max pull: their
/// Gaussian error would not be trustworthy.
pub const MIN_EFFECTIVE_ENTRIES: f64 = 20.0;

/// |pull| above which a bin is named in the report.
pub const PULL_TO_REPORT: f64 = 3.0;

/// One bin of predicted probability s.
#[derive(Clone, Debug, PartialEq)]
pub struct ReliabilityBin {
    pub low: f64,
    pub high: f64,
    /// Balanced weight in the bin (each class sums to 1 over all bins).
    pub weight: f64,
    pub mean_predicted: f64,
    /// Weighted fraction of class-1 (numerator) events.
    pub observed: f64,
    /// Error of observed − predicted: √[Σ₁ w²(1−s)² + Σ₀ w² s²] / W, the sum-of-w² error of the
    /// per-event residuals (y − s), which reduces to the binomial √(s(1−s)/n) for unit weights.
    pub error: f64,
    /// (Σw)²/Σw² over both classes.
    pub effective_entries: f64,
    pub n_numerator: usize,
    pub n_denominator: usize,
    /// (observed − mean_predicted) / error; `None` outside the test (too few entries).
    pub pull: Option<f64>,
}

/// A reliability curve and its summary numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct ReliabilityCurve {
    pub bins: Vec<ReliabilityBin>,
    /// Expected calibration error: Σ_b W_b |observed_b − predicted_b| / Σ_b W_b.
    pub ece: f64,
    /// Largest |pull| over the bins in the test, and its bin.
    pub max_abs_pull: f64,
    pub max_pull_bin: Option<usize>,
    pub chi2: f64,
    pub ndf: usize,
    pub p_value: f64,
}

/// Class probability s = r/(1+r), computed so that r = ∞ would give 1.
pub fn score(r: f64) -> f64 {
    1.0 / (1.0 + 1.0 / r)
}

/// Equal bins of s over [low, high]: the range the model's predictions actually cover, so a
/// weak classifier (a small shape systematic, s ≈ ½) still gets all its bins.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBins {
    pub low: f64,
    pub high: f64,
    pub bins: usize,
}

impl ScoreBins {
    /// Spans the scores of both classes.
    pub fn spanning(scores: &[&[f64]], bins: usize) -> ScoreBins {
        let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
        for s in scores.iter().flat_map(|s| s.iter()) {
            low = low.min(*s);
            high = high.max(*s);
        }
        // No scores, or all equal (NaN-free: scores are finite): fall back to [0, 1].
        if high.partial_cmp(&low) != Some(std::cmp::Ordering::Greater) {
            (low, high) = (0.0, 1.0);
        }
        ScoreBins { low, high, bins }
    }

    /// The bin of s; scores outside the range go to the first or last bin.
    pub fn bin(&self, s: f64) -> usize {
        let k = ((s - self.low) / (self.high - self.low) * self.bins as f64).floor();
        (k.max(0.0) as usize).min(self.bins - 1)
    }

    fn edge(&self, k: usize) -> f64 {
        self.low + (self.high - self.low) * k as f64 / self.bins as f64
    }
}

/// Accumulated sums of one bin.
#[derive(Clone, Copy, Default)]
struct Sums {
    w1: f64,
    w0: f64,
    w2: f64,
    ws: f64,
    residual2: f64,
    n1: usize,
    n0: usize,
}

/// The reliability curve of predicted scores `s1` (numerator-class events, weights `w1`) and
/// `s0` (denominator-class events, weights `w0`), each class rescaled to total weight 1.
pub fn reliability_curve(
    s1: &[f64],
    w1: &[f64],
    s0: &[f64],
    w0: &[f64],
    bins: ScoreBins,
) -> ReliabilityCurve {
    let (k1, k0) = (1.0 / w1.iter().sum::<f64>(), 1.0 / w0.iter().sum::<f64>());
    let mut sums = vec![Sums::default(); bins.bins];
    for (&s, &w) in s1.iter().zip(w1) {
        let (b, w) = (bins.bin(s), w * k1);
        let acc = &mut sums[b];
        acc.w1 += w;
        acc.w2 += w * w;
        acc.ws += w * s;
        acc.residual2 += (w * (1.0 - s)).powi(2);
        acc.n1 += 1;
    }
    for (&s, &w) in s0.iter().zip(w0) {
        let (b, w) = (bins.bin(s), w * k0);
        let acc = &mut sums[b];
        acc.w0 += w;
        acc.w2 += w * w;
        acc.ws += w * s;
        acc.residual2 += (w * s).powi(2);
        acc.n0 += 1;
    }
    let edges = bins;
    let bins: Vec<ReliabilityBin> = sums
        .iter()
        .enumerate()
        .map(|(b, acc)| {
            let weight = acc.w1 + acc.w0;
            let filled = weight > 0.0;
            let mean_predicted = if filled { acc.ws / weight } else { f64::NAN };
            let observed = if filled { acc.w1 / weight } else { f64::NAN };
            let error = if filled {
                acc.residual2.sqrt() / weight
            } else {
                f64::NAN
            };
            let effective_entries = if acc.w2 > 0.0 {
                weight * weight / acc.w2
            } else {
                0.0
            };
            let pull = (filled && error > 0.0 && effective_entries >= MIN_EFFECTIVE_ENTRIES)
                .then(|| (observed - mean_predicted) / error);
            ReliabilityBin {
                low: edges.edge(b),
                high: edges.edge(b + 1),
                weight,
                mean_predicted,
                observed,
                error,
                effective_entries,
                n_numerator: acc.n1,
                n_denominator: acc.n0,
                pull,
            }
        })
        .collect();
    summarise(bins)
}

fn summarise(bins: Vec<ReliabilityBin>) -> ReliabilityCurve {
    let filled = bins.iter().filter(|b| b.weight > 0.0);
    let total: f64 = filled.clone().map(|b| b.weight).sum();
    let ece = filled
        .map(|b| b.weight * (b.observed - b.mean_predicted).abs())
        .sum::<f64>()
        / total;
    let mut chi2 = 0.0;
    let mut ndf = 0;
    let mut max_abs_pull = 0.0;
    let mut max_pull_bin = None;
    for (i, b) in bins.iter().enumerate() {
        if let Some(p) = b.pull {
            chi2 += p * p;
            ndf += 1;
            if p.abs() > max_abs_pull {
                max_abs_pull = p.abs();
                max_pull_bin = Some(i);
            }
        }
    }
    ReliabilityCurve {
        bins,
        ece,
        max_abs_pull,
        max_pull_bin,
        chi2,
        ndf,
        p_value: chi2_p_value(chi2, ndf),
    }
}

impl ReliabilityCurve {
    /// Indices of the bins whose |pull| exceeds [`PULL_TO_REPORT`], worst first.
    pub fn bad_bins(&self) -> Vec<usize> {
        let mut bad: Vec<(usize, f64)> = self
            .bins
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.pull.filter(|p| p.abs() > PULL_TO_REPORT).map(|p| (i, p)))
            .collect();
        bad.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        bad.into_iter().map(|(i, _)| i).collect()
    }
}

/// The predicted scores of one class's events: the ensemble's, every member's, and the events'
/// weights.
pub struct ClassScores {
    pub ensemble: Vec<f64>,
    pub members: Vec<Vec<f64>>,
    pub weights: Vec<f64>,
}

/// Per bin of the ensemble's s: the weighted mean over its events (classes balanced) of the
/// members' standard deviation of s — how much the networks disagree where the ensemble puts
/// an event; and the same mean over all events.
pub fn member_spread_per_bin(classes: [&ClassScores; 2], bins: ScoreBins) -> (Vec<f64>, f64) {
    let mut sum = vec![0.0; bins.bins];
    let mut weight = vec![0.0; bins.bins];
    let mut scores = Vec::new();
    for class in classes {
        let scale = 1.0 / class.weights.iter().sum::<f64>();
        for (i, (&s, &w)) in class.ensemble.iter().zip(&class.weights).enumerate() {
            scores.clear();
            scores.extend(class.members.iter().map(|m| m[i]));
            let b = bins.bin(s);
            sum[b] += w * scale * sample_std(&scores);
            weight[b] += w * scale;
        }
    }
    let mean = sum.iter().sum::<f64>() / weight.iter().sum::<f64>();
    let per_bin = sum
        .iter()
        .zip(&weight)
        .map(|(s, w)| if *w > 0.0 { s / w } else { f64::NAN })
        .collect();
    (per_bin, mean)
}

fn sample_std(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 2 {
        return 0.0;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_scores_give_the_diagonal() {
        // Two bins' worth of events at s = 0.25 and s = 0.75 with class fractions equal to s
        // (after balancing both classes to equal totals): zero deviation.
        let s1 = [0.25, 0.75, 0.75, 0.75];
        let s0 = [0.25, 0.25, 0.25, 0.75];
        let ones = [1.0; 4];
        let bins = ScoreBins {
            low: 0.0,
            high: 1.0,
            bins: 2,
        };
        let curve = reliability_curve(&s1, &ones, &s0, &ones, bins);
        assert_eq!(curve.bins[0].observed, 0.25);
        assert_eq!(curve.bins[1].observed, 0.75);
        assert_eq!(curve.ece, 0.0);
        // Binomial error for unit weights: √(s(1−s)/n) with n = 4 events per bin.
        assert!((curve.bins[0].error - (0.25f64 * 0.75 / 4.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn class_weights_are_balanced() {
        // Class 0 has ten times the weight: balancing must undo it.
        let bins = ScoreBins::spanning(&[&[0.5]], 1);
        assert_eq!((bins.low, bins.high), (0.0, 1.0));
        let curve = reliability_curve(&[0.5], &[1.0], &[0.5], &[10.0], bins);
        assert_eq!(curve.bins[0].observed, 0.5);
    }
}
