//! Turning raw network outputs into density ratios, and members into an ensemble ratio.
//! These are the definitions the workspace keywords refer to (DESIGN.md §3).

pub use crate::workspace::schema::{Aggregation, OutputConvention};

/// The density ratio r encoded by raw output `y` under `convention`; not checked here
/// (callers reject non-finite or non-positive results with the event's position).
pub fn to_ratio(convention: OutputConvention, y: f64) -> f64 {
    match convention {
        OutputConvention::Score => y / (1.0 - y),
        OutputConvention::Logit | OutputConvention::LogRatio => y.exp(),
        OutputConvention::Ratio => y,
    }
}

/// ln r for raw output `y` under `convention`, without leaving the log scale where the output
/// is on it (a log ratio of −1000 is a small ratio, not zero).
pub fn to_log_ratio(convention: OutputConvention, y: f64) -> f64 {
    match convention {
        OutputConvention::Score => y.ln() - (-y).ln_1p(),
        OutputConvention::Logit | OutputConvention::LogRatio => y,
        OutputConvention::Ratio => y.ln(),
    }
}

/// Combines the members' ratios for one event. `scratch` is reused to avoid allocating per
/// event (the median needs a sorted copy).
pub fn aggregate(aggregation: Aggregation, ratios: &[f64], scratch: &mut Vec<f64>) -> f64 {
    let n = ratios.len() as f64;
    match aggregation {
        Aggregation::MeanRatio => ratios.iter().sum::<f64>() / n,
        Aggregation::MeanLogit => (ratios.iter().map(|r| r.ln()).sum::<f64>() / n).exp(),
        Aggregation::MedianScore => {
            scratch.clear();
            scratch.extend(ratios.iter().map(|r| r / (1.0 + r)));
            scratch.sort_by(f64::total_cmp);
            let m = scratch.len();
            let s = match m % 2 {
                1 => scratch[m / 2],
                _ => 0.5 * (scratch[m / 2 - 1] + scratch[m / 2]),
            };
            s / (1.0 - s)
        }
    }
}

/// Sample standard deviation (n − 1 in the denominator) of the members' ratios; 0 for one
/// member. This is the ensemble spread reported beside each ratio.
pub fn spread(ratios: &[f64]) -> f64 {
    let n = ratios.len();
    if n < 2 {
        return 0.0;
    }
    let mean = ratios.iter().sum::<f64>() / n as f64;
    let ss: f64 = ratios.iter().map(|r| (r - mean).powi(2)).sum();
    (ss / (n - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventions_agree_on_the_same_ratio() {
        let r: f64 = 2.5;
        let s = r / (1.0 + r);
        assert!((to_ratio(OutputConvention::Score, s) - r).abs() < 1e-14);
        assert!((to_ratio(OutputConvention::Logit, r.ln()) - r).abs() < 1e-14);
        assert!((to_ratio(OutputConvention::LogRatio, r.ln()) - r).abs() < 1e-14);
        assert_eq!(to_ratio(OutputConvention::Ratio, r), r);
        for c in [
            OutputConvention::Score,
            OutputConvention::Logit,
            OutputConvention::LogRatio,
            OutputConvention::Ratio,
        ] {
            let y = match c {
                OutputConvention::Score => s,
                OutputConvention::Ratio => r,
                _ => r.ln(),
            };
            assert!((to_log_ratio(c, y) - r.ln()).abs() < 1e-14, "{c:?}");
        }
        assert_eq!(to_log_ratio(OutputConvention::LogRatio, -1000.0), -1000.0);
    }

    #[test]
    fn aggregations_by_hand() {
        let members = [1.0, 3.0, 0.5, 2.0];
        let mut scratch = Vec::new();
        assert_eq!(
            aggregate(Aggregation::MeanRatio, &members, &mut scratch),
            1.625
        );
        let geometric = (1.0f64 * 3.0 * 0.5 * 2.0).powf(0.25);
        assert!(
            (aggregate(Aggregation::MeanLogit, &members, &mut scratch) - geometric).abs() < 1e-14
        );
        // scores 1/3, 1/2, 2/3, 3/4 → median (1/2 + 2/3)/2 = 7/12 → r = 7/5
        assert!((aggregate(Aggregation::MedianScore, &members, &mut scratch) - 1.4).abs() < 1e-14);
        assert!(
            (aggregate(Aggregation::MedianScore, &members[..3], &mut scratch) - 1.0).abs() < 1e-14
        );
    }

    #[test]
    fn spread_is_sample_standard_deviation() {
        assert_eq!(spread(&[2.0]), 0.0);
        assert!((spread(&[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-15);
    }
}
