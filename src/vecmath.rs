//! Arithmetic on four lanes at once — natural logarithm, exponential, fused multiply-add —
//! written so that the compiler vectorises it at whatever width the function it is inlined
//! into allows (4-wide in the AVX2 build of the event loop). One logarithm per event is the
//! event loop's costliest operation, and code 4 beyond |α| = 1 takes one exponential per event
//! and systematic; a library routine is a call per event, and compiled for the baseline target.
//!
//! ## ln
//! The algorithm is fdlibm's `log` (as in musl): reduce x = 2^k (1 + f) with 1 + f in
//! [√2/2, √2), then ln(1 + f) = f − f²/2 + s (f²/2 + R(s²)) with s = f/(2 + f) and R a
//! degree-14 minimax polynomial; error below 1 ulp. Only plain arithmetic and integer bit
//! operations — no fused multiply-add, no branch — so every lane gives the same bits at every
//! vector width. Inputs must be positive normal numbers (the likelihood only takes logarithms
//! of valid densities).

use crate::model::interpolation::Quad;

// fdlibm's constants, by their bit patterns.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const LG1: f64 = f64::from_bits(0x3fe5_5555_5555_5593);
const LG2: f64 = f64::from_bits(0x3fd9_9999_9997_fa04);
const LG3: f64 = f64::from_bits(0x3fd2_4924_9422_9359);
const LG4: f64 = f64::from_bits(0x3fcc_71c5_1d8e_78af);
const LG5: f64 = f64::from_bits(0x3fc7_4664_96cb_03de);
const LG6: f64 = f64::from_bits(0x3fc3_9a09_d078_c69f);
const LG7: f64 = f64::from_bits(0x3fc2_f112_df3e_5244);

/// 2^52 as a double: adding a small integer's bits to its pattern converts the integer exactly.
const TWO52_BITS: u64 = 0x4330_0000_0000_0000;
const TWO52: f64 = 4_503_599_627_370_496.0;

/// ln of each lane; the lanes must be positive normal numbers.
#[inline(always)]
pub fn ln4(x: Quad) -> Quad {
    std::array::from_fn(|l| ln_lane(x[l]))
}

/// ln of two quads at once, their operations interleaved step by step: the logarithm is a long
/// chain of dependent operations, and two chains side by side keep the arithmetic units busy
/// where one leaves them waiting on latencies. Lane by lane the same as [`ln4`].
#[inline(always)]
pub fn ln4x2(x: [Quad; 2]) -> [Quad; 2] {
    let lanes: [f64; 8] = std::array::from_fn(|l| ln_lane(x[l / 4][l % 4]));
    [
        [lanes[0], lanes[1], lanes[2], lanes[3]],
        [lanes[4], lanes[5], lanes[6], lanes[7]],
    ]
}

#[inline(always)]
fn ln_lane(x: f64) -> f64 {
    let bits = x.to_bits();
    // High word shifted so that mantissas above √2 carry into the exponent.
    let high = (bits >> 32) + (0x3ff0_0000 - 0x3fe6_a09e);
    let k_biased = (high >> 20) + 1024 - 0x3ff; // k + 1024 ≥ 0
    let reduced_high = (high & 0x000f_ffff) + 0x3fe6_a09e;
    let m = f64::from_bits((reduced_high << 32) | (bits & 0xffff_ffff));
    let k = f64::from_bits(TWO52_BITS + k_biased) - (TWO52 + 1024.0);
    let f = m - 1.0;
    let half_f2 = 0.5 * f * f;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    s * (half_f2 + r) + k * LN2_LO - half_f2 + f + k * LN2_HI
}

// fdlibm's exp constants.
const LN2_HI_EXP: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO_EXP: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const INV_LN2: f64 = f64::from_bits(0x3ff7_1547_652b_82fe);
const P1: f64 = f64::from_bits(0x3fc5_5555_5555_553e);
const P2: f64 = f64::from_bits(0xbf66_c16c_16be_bd93);
const P3: f64 = f64::from_bits(0x3f11_566a_af25_de2c);
const P4: f64 = f64::from_bits(0xbebb_bd41_c5d2_6bf1);
const P5: f64 = f64::from_bits(0x3e66_3769_72be_a4d0);
/// 1.5 · 2^52: adding and subtracting it rounds to the nearest integer.
const ROUND: f64 = 6_755_399_441_055_744.0;
/// Arguments where the branch-free form is exact to fdlibm's accuracy (2^k stays a normal
/// number); beyond it the library exp is used.
const EXP_RANGE: f64 = 700.0;

/// e^x of each lane (within 1 ulp of libm).
///
/// fdlibm's algorithm (as in musl): x = k ln2 + r with |r| ≤ ln2/2, r = hi − lo in two parts,
/// e^r = 1 + r + r c(r)/(2 − c(r)) with c a degree-10 minimax polynomial in r, and 2^k put in
/// by the exponent bits. Lanes beyond ±700 (where 2^k would leave the normal range; no factor
/// of a fit comes near) get the library routine's value, as from [`exp`].
#[inline(always)]
pub fn exp4(x: Quad) -> Quad {
    // `from_fn`, not `map`: the compiler keeps `map` out of line, one lane per call.
    let mut y: Quad = std::array::from_fn(|l| exp_lane(x[l]));
    if !x.iter().all(|v| v.abs() <= EXP_RANGE) {
        exp_out_of_range(x, &mut y);
    }
    y
}

#[cold]
#[inline(never)]
fn exp_out_of_range(x: Quad, y: &mut Quad) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = exp(x);
    }
}

/// e^x of one number: [`exp_lane`] in its range, the library routine beyond (overflow,
/// underflow and NaN as libm). Scalar code that must give the bits of [`exp4`] calls this.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    if x.abs() <= EXP_RANGE {
        exp_lane(x)
    } else {
        x.exp()
    }
}

/// e^x for |x| ≤ 700 (any other input gives a meaningless number, never a panic).
#[inline(always)]
fn exp_lane(x: f64) -> f64 {
    let k = (x * INV_LN2 + ROUND) - ROUND;
    let hi = x - k * LN2_HI_EXP;
    let lo = k * LN2_LO_EXP;
    let r = hi - lo;
    let r2 = r * r;
    let c = r - r2 * (P1 + r2 * (P2 + r2 * (P3 + r2 * (P4 + r2 * P5))));
    let y = 1.0 + (r * c / (2.0 - c) - lo + hi);
    // 2^k from its bits: k is an integer-valued double with |k| ≤ 1010.
    let k_bits = (k + ROUND).to_bits().wrapping_sub(ROUND.to_bits());
    y * f64::from_bits((k_bits.wrapping_add(1023)) << 52)
}

/// Whether this CPU runs the AVX2+FMA instances of the hot loops (the likelihood's event
/// blocks, the normalisation's exact pass).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// a·b + c lane by lane, with one rounding.
#[inline(always)]
pub fn mul_add4(a: Quad, b: Quad, c: Quad) -> Quad {
    [
        a[0].mul_add(b[0], c[0]),
        a[1].mul_add(b[1], c[1]),
        a[2].mul_add(b[2], c[2]),
        a[3].mul_add(b[3], c[3]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn within_an_ulp_of_libm_over_the_normal_range() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Random exponent over the whole normal range, random mantissa.
            let exponent = 1 + state % 2046;
            let x = f64::from_bits((exponent << 52) | (state >> 12));
            let got = ln4([x; 4])[0];
            let want = x.ln();
            assert_eq!(ln4x2([[1.0; 4], [x; 4]])[1][2].to_bits(), got.to_bits());
            assert!(ulps(got, want) <= 1, "ln({x:e}) = {got:e}, libm {want:e}");
        }
    }

    #[test]
    fn exact_points_and_edges() {
        let got = ln4([1.0, std::f64::consts::E, 2.0, f64::MIN_POSITIVE]);
        assert_eq!(got[0], 0.0);
        assert!(ulps(got[1], 1.0) <= 1);
        assert_eq!(got[2], std::f64::consts::LN_2);
        assert!(ulps(got[3], f64::MIN_POSITIVE.ln()) <= 1);
        assert!(ulps(ln4([f64::MAX; 4])[0], f64::MAX.ln()) <= 1);
        for x in [
            0.999_999_999,
            1.000_000_001,
            std::f64::consts::FRAC_1_SQRT_2,
            std::f64::consts::SQRT_2,
            1.0e-5,
        ] {
            assert!(ulps(ln4([x; 4])[0], x.ln()) <= 1, "{x}");
        }
    }

    #[test]
    fn exp_within_an_ulp_of_libm() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            // Most draws where fit factors live (|x| < 3), the rest over the whole fast range.
            let x = if i % 4 == 0 {
                1400.0 * (unit - 0.5)
            } else {
                6.0 * (unit - 0.5)
            };
            let got = exp4([x; 4])[0];
            let want = x.exp();
            assert!(ulps(got, want) <= 1, "exp({x:e}) = {got:e}, libm {want:e}");
            assert_eq!(got.to_bits(), exp(x).to_bits());
        }
    }

    #[test]
    fn exp_exact_points_and_out_of_range_lanes() {
        assert_eq!(exp4([0.0; 4])[0], 1.0);
        assert_eq!(exp4([-0.0; 4])[0], 1.0);
        assert!(ulps(exp4([1.0; 4])[0], std::f64::consts::E) <= 1);
        assert!(ulps(exp4([1e-300; 4])[0], 1.0) <= 1);
        // Lanes beyond the fast range get libm's value (overflow and underflow as libm); the
        // others are as in range.
        let got = exp4([800.0, -800.0, 1.0, 710.0]);
        assert_eq!(got[0], f64::INFINITY);
        assert_eq!(got[1], 0.0);
        assert_eq!(got[2], exp(1.0));
        assert_eq!(got[3], 710.0_f64.exp());
        assert!(exp4([f64::NAN; 4])[0].is_nan());
    }
}
