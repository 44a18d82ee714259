//! The profile-likelihood test statistics of the field as one value type, with their asymptotic
//! distributions: Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011) 1554 ("CCGV"), in pyhf's
//! conventions.
//!
//! Every statistic is made from the same two fits, conditional at the tested value μ and free
//! (see [`ProfileRatio`]); what differs is the range the free fit may take the POI to, the
//! one-sided capping, and the asymptotic distribution:
//!
//! | name       | CCGV     | free fit's POI range    | capping           |
//! |------------|----------|-------------------------|-------------------|
//! | `tmu`      | t_μ      | the workspace bounds    | none (two-sided)  |
//! | `tmutilde` | t̃_μ      | bounds ∩ [0, ∞)         | none (two-sided)  |
//! | `qmu`      | q_μ      | the workspace bounds    | 0 where μ̂ > μ     |
//! | `qtilde`   | q̃_μ      | bounds ∩ [0, ∞)         | 0 where μ̂ > μ     |
//! | `q0`       | q_0      | the workspace bounds    | 0 where μ̂ < μ₀    |
//!
//! Fits always respect the workspace's bounds (as pyhf's do): with a POI bounded below at 0,
//! `tmu` and `tmutilde` (and `qmu`, `qtilde`) take the same values, and only their asymptotic
//! distributions differ. The tilde statistics raise a lower bound below 0 to 0, which is CCGV's
//! definition (μ̂ < 0 is replaced by 0).
//!
//! Asymptotics (CCGV §3, Wald's approximation): σ of μ̂ comes from the statistic on the Asimov
//! dataset of the background hypothesis (μ' = 0, or μ' = μ_A for `q0`), √q_A = |μ − μ'|/σ. The
//! one-sided statistics are mapped, as pyhf does, to the "−μ̂/σ" axis, where the statistic is
//! Normal with unit width, centred at −√q_A under the tested hypothesis and at 0 under the
//! background one ([`Asymptotic`]); the expected values at n σ are read there.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::error::{Error, Result};

/// A profile-likelihood test statistic (see the module's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TestStatistic {
    Tmu,
    Tmutilde,
    Qmu,
    Qtilde,
    Q0,
}

/// Each statistic with its accepted spellings (the first is the canonical one; pyhf calls q_μ
/// `q`).
const NAMES: [(TestStatistic, &[&str]); 5] = [
    (TestStatistic::Tmu, &["tmu", "t"]),
    (
        TestStatistic::Tmutilde,
        &["tmutilde", "tmu_tilde", "ttilde"],
    ),
    (TestStatistic::Qmu, &["qmu", "q"]),
    (TestStatistic::Qtilde, &["qtilde", "qmu_tilde", "qmutilde"]),
    (TestStatistic::Q0, &["q0"]),
];

impl TestStatistic {
    /// The canonical name (the JSON and toy-file spelling).
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(s, _)| *s == self)
            .expect("every statistic is named")
            .1[0]
    }

    /// The statistic of `text` (any accepted spelling, case-insensitive).
    pub fn parse(text: &str) -> Result<TestStatistic> {
        let wanted = text.trim().to_ascii_lowercase();
        NAMES
            .iter()
            .find(|(_, names)| names.contains(&wanted.as_str()))
            .map(|(s, _)| *s)
            .ok_or_else(|| {
                let known: Vec<&str> = NAMES.iter().map(|(_, n)| n[0]).collect();
                Error::Analysis(format!(
                    "unknown test statistic '{text}' (expected one of: {})",
                    known.join(", ")
                ))
            })
    }

    /// Whether the free fit's POI is kept ≥ 0 (CCGV's "tilde" statistics).
    pub fn is_tilde(self) -> bool {
        matches!(self, TestStatistic::Tmutilde | TestStatistic::Qtilde)
    }

    /// Whether the statistic is one-sided (an upper limit's q_μ, q̃_μ, or discovery's q_0):
    /// those give CLs; t_μ and t̃_μ give two-sided intervals (scan, Neyman).
    pub fn is_one_sided(self) -> bool {
        matches!(
            self,
            TestStatistic::Qmu | TestStatistic::Qtilde | TestStatistic::Q0
        )
    }

    /// The POI's bounds the fits of this statistic use: the tilde statistics raise a lower
    /// bound below 0 to 0.
    pub fn poi_bounds(self, bounds: (f64, f64)) -> (f64, f64) {
        if self.is_tilde() {
            (bounds.0.max(0.0), bounds.1)
        } else {
            bounds
        }
    }

    /// A note where the POI's bounds do not suit the statistic, as pyhf warns: q_μ and t_μ
    /// with a POI bounded at 0 are their tilde forms in value, with the other asymptotics.
    pub fn bounds_warning(self, poi: &str, bounds: (f64, f64)) -> Option<String> {
        let at_zero = bounds.0 == 0.0;
        let suggestion = match self {
            TestStatistic::Qmu if at_zero => "qtilde",
            TestStatistic::Tmu if at_zero => "tmutilde",
            _ => return None,
        };
        Some(format!(
            "{} is used with {poi} bounded below at 0, where its values are those of {suggestion} \
             but its asymptotic distribution assumes an unbounded {poi}: use --test-stat {suggestion}",
            self.name()
        ))
    }

    /// The statistic's value from the two fits (see the module's table).
    pub fn value(self, fits: &ProfileRatio) -> f64 {
        let t = fits.t();
        match self {
            TestStatistic::Tmu | TestStatistic::Tmutilde => t,
            TestStatistic::Qmu | TestStatistic::Qtilde if fits.poi_hat > fits.tested => 0.0,
            TestStatistic::Q0 if fits.poi_hat < fits.tested => 0.0,
            _ => t,
        }
    }

    /// The μ of the Asimov dataset that gives σ: the background hypothesis (0) for limits, the
    /// signal hypothesis `signal` for discovery's q_0 (pyhf takes 1).
    pub fn asimov_poi(self, signal: f64) -> f64 {
        match self {
            TestStatistic::Q0 => signal,
            _ => 0.0,
        }
    }

    /// The asymptotic p-value of the tested hypothesis for an observed value `q`, with
    /// √q_A = `sqrt_q_asimov` (CCGV eqs. 36, 47, 57, 66, 53).
    pub fn asymptotic_p_value(self, q: f64, sqrt_q_asimov: f64) -> f64 {
        let sqrt_q = q.max(0.0).sqrt();
        match self {
            TestStatistic::Tmu => 2.0 * upper_tail(sqrt_q),
            TestStatistic::Tmutilde => {
                let q_a = sqrt_q_asimov * sqrt_q_asimov;
                if q <= q_a {
                    2.0 * upper_tail(sqrt_q)
                } else {
                    upper_tail(sqrt_q) + upper_tail((q + q_a) / (2.0 * sqrt_q_asimov))
                }
            }
            TestStatistic::Qmu | TestStatistic::Qtilde | TestStatistic::Q0 => {
                Asymptotic::new(self, sqrt_q_asimov).clsb(q)
            }
        }
    }
}

impl std::fmt::Display for TestStatistic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// 1 − Φ(x), accurate far in the tail.
pub fn upper_tail(x: f64) -> f64 {
    unit_normal().cdf(-x)
}

/// Φ(x).
pub fn normal_cdf(x: f64) -> f64 {
    unit_normal().cdf(x)
}

/// The significance Z = Φ⁻¹(1 − p) of a p-value, computed as −Φ⁻¹(p) so that p-values far
/// below the double-precision resolution of 1 − p keep their Z (∞ for p = 0).
pub fn significance(p: f64) -> f64 {
    -unit_normal().inverse_cdf(p)
}

fn unit_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("the unit normal exists")
}

/// What every statistic is made from: the NLL minima of the fit conditional at the tested
/// value and of the free fit, and the POI at the free fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProfileRatio {
    pub tested: f64,
    pub nll_conditional: f64,
    pub nll_free: f64,
    pub poi_hat: f64,
}

impl ProfileRatio {
    /// −2 ln λ(μ) = 2(NLL(μ, θ̂̂) − NLL(μ̂, θ̂)), at least 0: a free fit that ended above the
    /// conditional one did not converge to the minimum, which is then at least as low as the
    /// conditional fit's (pyhf clips the same way).
    pub fn t(&self) -> f64 {
        (2.0 * (self.nll_conditional - self.nll_free)).max(0.0)
    }
}

/// The normal σ-levels of an expected band, in the order the bands are reported: −2σ, −1σ,
/// median, +1σ, +2σ of the quantity (CLs, limit). On the background distribution of the
/// statistic these are its +2σ … −2σ quantiles (a large statistic is a small CLs).
pub const BAND_SIGMAS: [f64; 5] = [2.0, 1.0, 0.0, -1.0, -2.0];

/// The asymptotic distributions of a one-sided statistic (q_μ, q̃_μ, q_0) on pyhf's "−μ̂/σ" axis.
#[derive(Clone, Copy, Debug)]
pub struct Asymptotic {
    statistic: TestStatistic,
    sqrt_q_asimov: f64,
}

impl Asymptotic {
    pub fn new(statistic: TestStatistic, sqrt_q_asimov: f64) -> Asymptotic {
        Asymptotic {
            statistic,
            sqrt_q_asimov,
        }
    }

    /// The statistic's value q on the −μ̂/σ axis: √q − √q_A, or for q̃_μ beyond q_A (where
    /// μ̂ < 0 and q̃ grows linearly in μ̂) (q − q_A)/(2√q_A) (CCGV eq. 62; pyhf's
    /// `AsymptoticCalculator.teststatistic`).
    pub fn axis(&self, q: f64) -> f64 {
        let sqrt_q = q.max(0.0).sqrt();
        let sqrt_qa = self.sqrt_q_asimov;
        if self.statistic == TestStatistic::Qtilde && sqrt_q > sqrt_qa {
            (q - sqrt_qa * sqrt_qa) / (2.0 * sqrt_qa)
        } else {
            sqrt_q - sqrt_qa
        }
    }

    /// CLs+b = p_μ: the tested hypothesis' tail beyond the value `q`.
    pub fn clsb(&self, q: f64) -> f64 {
        self.clsb_at(self.axis(q))
    }

    /// CLb: the background hypothesis' tail beyond the value `q`.
    pub fn clb(&self, q: f64) -> f64 {
        upper_tail(self.axis(q))
    }

    fn clsb_at(&self, axis: f64) -> f64 {
        upper_tail(axis + self.sqrt_q_asimov)
    }

    /// (CLs+b, CLb, CLs) for an observed value `q`.
    pub fn observed(&self, q: f64) -> TailProbabilities {
        TailProbabilities::new(self.clsb(q), self.clb(q))
    }

    /// The same at the background hypothesis' n-σ value of the statistic (n in
    /// [`BAND_SIGMAS`] order: the band's −2σ … +2σ).
    pub fn expected(&self) -> [TailProbabilities; 5] {
        BAND_SIGMAS.map(|n| TailProbabilities::new(self.clsb_at(n), upper_tail(n)))
    }
}

/// The tail probabilities of an observed (or expected) statistic.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TailProbabilities {
    pub clsb: f64,
    pub clb: f64,
    pub cls: f64,
}

impl TailProbabilities {
    pub fn new(clsb: f64, clb: f64) -> TailProbabilities {
        TailProbabilities {
            clsb,
            clb,
            cls: clsb / clb,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for (s, names) in NAMES {
            for name in names {
                assert_eq!(TestStatistic::parse(name).unwrap(), s);
            }
            assert_eq!(TestStatistic::parse(s.name()).unwrap(), s);
        }
        let err = TestStatistic::parse("lambda").unwrap_err().to_string();
        assert!(err.contains("'lambda'") && err.contains("qtilde"), "{err}");
    }

    #[test]
    fn capping_follows_the_one_sided_definitions() {
        let fits = |poi_hat| ProfileRatio {
            tested: 1.0,
            nll_conditional: 3.0,
            nll_free: 2.0,
            poi_hat,
        };
        assert_eq!(TestStatistic::Qtilde.value(&fits(1.5)), 0.0);
        assert_eq!(TestStatistic::Qtilde.value(&fits(0.5)), 2.0);
        assert_eq!(TestStatistic::Tmu.value(&fits(1.5)), 2.0);
        assert_eq!(TestStatistic::Q0.value(&fits(0.5)), 0.0);
        assert_eq!(TestStatistic::Q0.value(&fits(1.5)), 2.0);
        // A free fit above the conditional one counts as t = 0, never negative.
        let worse = ProfileRatio {
            nll_free: 3.5,
            ..fits(0.5)
        };
        assert_eq!(worse.t(), 0.0);
    }

    #[test]
    fn asymptotics_agree_with_the_closed_forms_of_ccgv() {
        // q̃ below q_A: CLs+b = 1 − Φ(√q), CLb = Φ(√q_A − √q) (CCGV eqs. 65-66).
        let a = Asymptotic::new(TestStatistic::Qtilde, 2.0);
        let q: f64 = 2.5;
        assert!((a.clsb(q) - upper_tail(q.sqrt())).abs() < 1e-15);
        assert!((a.clb(q) - normal_cdf(2.0 - q.sqrt())).abs() < 1e-15);
        // Above q_A: CLs+b = 1 − Φ((q + q_A)/(2√q_A)).
        let q = 9.0;
        assert!((a.clsb(q) - upper_tail((q + 4.0) / 4.0)).abs() < 1e-15);
        // The median expected CLs: CLs+b = 1 − Φ(√q_A), CLb = ½.
        let median = a.expected()[2];
        assert!((median.cls - 2.0 * upper_tail(2.0)).abs() < 1e-15);
        // q_0: p_0 = 1 − Φ(√q_0), whatever √q_A.
        let d = Asymptotic::new(TestStatistic::Q0, 3.0);
        assert!((d.clsb(4.0) - upper_tail(2.0)).abs() < 1e-15);
        // t_μ: Wilks, two-sided; t̃_μ tends to it when q_A is large.
        let p = TestStatistic::Tmu.asymptotic_p_value(1.0, 1.0);
        assert!((p - 0.317_310_507_862_914_1).abs() < 1e-9, "{p}");
        let pt = TestStatistic::Tmutilde.asymptotic_p_value(1.0, 100.0);
        assert!((pt - p).abs() < 1e-12);
        assert!((significance(upper_tail(2.5)) - 2.5).abs() < 1e-9);
        // Far tails keep their significance (1 − p rounds to 1 there).
        assert!((significance(upper_tail(20.0)) - 20.0).abs() < 1e-6);
    }
}
