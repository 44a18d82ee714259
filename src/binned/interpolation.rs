//! The interpolation codes of HistFactory's binned modifiers, with pyhf's semantics.
//!
//! `normsys` scales a sample by a factor between its ±1σ factors (hi, lo): codes 1 and 4 are
//! the multiplicative codes of [`crate::model::interpolation::Variation`], whose formulas are
//! pyhf's `code1` and `code4` (α₀ = 1) term by term. `histosys` *adds* Δ(α) to the nominal
//! yield, in absolute events per bin, summed over the histosys of a sample — not a factor, so
//! that a bin with a nominal yield of zero can still gain events. Its codes 0, 2 and 4p are
//! written here on the differences Δ⁺ = hi − nom and Δ⁻ = nom − lo, as pyhf's `code0`, `code2`
//! and `code4p`.

use serde::{Deserialize, Serialize};

use crate::model::interpolation::{InterpolationCode, Variation};

pub use crate::model::interpolation::Interpolated;

/// Interpolation of `normsys` factors. pyhf's `Model` default is code 4; ROOT HistFactory's
/// is code 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormsysCode {
    Code1,
    #[default]
    Code4,
}

/// Interpolation of `histosys` shifts. pyhf's `Model` default is code 4p; ROOT HistFactory's
/// is code 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistosysCode {
    Code0,
    Code2,
    #[default]
    Code4p,
}

impl NormsysCode {
    /// The pyhf name of the code (`modifier_settings={"normsys": {"interpcode": ...}}`).
    pub fn pyhf_name(self) -> &'static str {
        match self {
            NormsysCode::Code1 => "code1",
            NormsysCode::Code4 => "code4",
        }
    }

    /// The factor's interpolation between (hi, lo), prepared once.
    pub fn variation(self, hi: f64, lo: f64) -> Variation {
        let code = match self {
            NormsysCode::Code1 => InterpolationCode::Code1,
            NormsysCode::Code4 => InterpolationCode::Code4,
        };
        Variation::new(code, hi, lo, 1.0)
    }
}

impl HistosysCode {
    pub fn pyhf_name(self) -> &'static str {
        match self {
            HistosysCode::Code0 => "code0",
            HistosysCode::Code2 => "code2",
            HistosysCode::Code4p => "code4p",
        }
    }

    /// Δ(α), dΔ/dα and d²Δ/dα² for one bin with Δ⁺ = hi − nom and Δ⁻ = nom − lo.
    pub fn shift(self, alpha: f64, delta_up: f64, delta_down: f64) -> Interpolated {
        let linear = |slope: f64, offset: f64| Interpolated {
            value: offset + slope * alpha,
            d1: slope,
            d2: 0.0,
        };
        match self {
            HistosysCode::Code0 => linear(if alpha >= 0.0 { delta_up } else { delta_down }, 0.0),
            HistosysCode::Code2 => {
                // a α² + b α inside |α| ≤ 1, continued linearly with matching slope outside.
                let a = 0.5 * (delta_up - delta_down);
                let b = 0.5 * (delta_up + delta_down);
                if alpha > 1.0 {
                    linear(b + 2.0 * a, delta_up - (b + 2.0 * a))
                } else if alpha < -1.0 {
                    linear(b - 2.0 * a, -delta_down + (b - 2.0 * a))
                } else {
                    Interpolated {
                        value: a * alpha * alpha + b * alpha,
                        d1: 2.0 * a * alpha + b,
                        d2: 2.0 * a,
                    }
                }
            }
            HistosysCode::Code4p => {
                if alpha > 1.0 {
                    linear(delta_up, 0.0)
                } else if alpha < -1.0 {
                    linear(delta_down, 0.0)
                } else {
                    // α S + α² A (15 − 10α² + 3α⁴), S = (Δ⁺ + Δ⁻)/2, A = (Δ⁺ − Δ⁻)/16,
                    // in pyhf's order of operations.
                    let s = 0.5 * (delta_up + delta_down);
                    let a = 0.0625 * (delta_up - delta_down);
                    let a2 = alpha * alpha;
                    Interpolated {
                        value: a2 * (a2 * (a2 * 3.0 - 10.0) + 15.0) * a + alpha * s,
                        d1: s + a * alpha * (30.0 - 40.0 * a2 + 18.0 * a2 * a2),
                        d2: a * (30.0 - 120.0 * a2 + 90.0 * a2 * a2),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN.md §2: code4p with (lo, nom, hi) = (9, 10, 12) gives 10.9482421875 at α = 0.5.
    #[test]
    fn code4p_reference_values() {
        let shift = |alpha| 10.0 + HistosysCode::Code4p.shift(alpha, 2.0, 1.0).value;
        assert!((shift(0.5) - 10.9482421875).abs() < 1e-12);
        assert!((shift(-0.5) - 9.4482421875).abs() < 1e-12);
        assert!((shift(2.0) - 14.0).abs() < 1e-12);
    }

    /// Every code is continuous at ±1 and its derivatives agree with finite differences.
    #[test]
    fn derivatives_match_finite_differences() {
        for code in [
            HistosysCode::Code0,
            HistosysCode::Code2,
            HistosysCode::Code4p,
        ] {
            for alpha in [-2.3, -1.3, -0.4, 0.3, 0.9, 1.7] {
                let h = 1e-6;
                let f = |a| code.shift(a, 1.5, -0.7);
                let d1 = (f(alpha + h).value - f(alpha - h).value) / (2.0 * h);
                let d2 = (f(alpha + h).d1 - f(alpha - h).d1) / (2.0 * h);
                assert!((d1 - f(alpha).d1).abs() < 1e-6, "{code:?} α={alpha}");
                assert!((d2 - f(alpha).d2).abs() < 1e-5, "{code:?} α={alpha}");
            }
            let gap = code.shift(1.0 + 1e-12, 1.5, -0.7).value - code.shift(1.0, 1.5, -0.7).value;
            assert!(gap.abs() < 1e-9, "{code:?} jumps at α = 1");
        }
    }
}
