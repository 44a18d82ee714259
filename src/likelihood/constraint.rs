//! One constraint term −ln p(a | θ) of a parameter and its first two derivatives in θ.

use crate::model::{ConstraintPdf, ConstraintTerm};

/// ½ ln 2π.
const HALF_LN_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// (value, d/dθ, d²/dθ²) of −ln p(a | θ), without the pdf's normalisation unless
/// `term.normalised`; `None` where a Poisson rate θτ is not positive with a > 0 (no
/// likelihood there).
pub fn nll_terms(term: &ConstraintTerm, theta: f64, a: f64) -> Option<(f64, f64, f64)> {
    match term.pdf {
        ConstraintPdf::Gaussian { sigma } => {
            let z = (theta - a) / sigma;
            let constant = if term.normalised {
                sigma.ln() + HALF_LN_TWO_PI
            } else {
                0.0
            };
            Some((0.5 * z * z + constant, z / sigma, 1.0 / (sigma * sigma)))
        }
        ConstraintPdf::Poisson { factor } => {
            let rate = theta * factor;
            if a == 0.0 {
                return (rate >= 0.0).then_some((rate, factor, 0.0));
            }
            // Not `rate <= 0.0`: a NaN rate has no likelihood either.
            if rate.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return None;
            }
            let constant = if term.normalised {
                libm::lgamma(a + 1.0)
            } else {
                0.0
            };
            Some((
                rate - a * rate.ln() + constant,
                factor - a / theta,
                a / (theta * theta),
            ))
        }
    }
}
