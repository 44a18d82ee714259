//! Interpolation between the nominal and the ±1σ variations of a systematic, for yields
//! (G_ck(α)) and for per-event shape ratios (g_c(x|α)), with the codes of ROOT's
//! HistFactory and pyhf. Everything here is multiplicative around a nominal of 1: a variation
//! is the pair of factors δ± = up/nominal, down/nominal, so additive codes act on (δ − 1).
//!
//! Each evaluation returns the value and its first and second derivatives in α, which the
//! likelihood needs for analytic gradients and Hessians.

pub use crate::workspace::schema::InterpolationCode;

use std::sync::Arc;

use crate::vecmath::{self, mul_add4};

/// Value, dI/dα and d²I/dα² of an interpolated factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interpolated {
    pub value: f64,
    pub d1: f64,
    pub d2: f64,
}

/// A variation ready for repeated evaluation: code4's polynomial coefficients are solved once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Variation {
    /// code0: 1 + α(δ⁺ − 1) for α ≥ 0, 1 + α(1 − δ⁻) below.
    Linear { up: f64, down: f64 },
    /// code1: (δ⁺)^α for α ≥ 0, (δ⁻)^(−α) below.
    Exponential { ln_up: f64, ln_down: f64 },
    /// code2: quadratic inside |α| ≤ 1, linear outside with matching slope (ROOT's continuous form).
    Quadratic { up: f64, down: f64 },
    /// code4p: additive 6th-order polynomial inside |α| ≤ 1, linear outside.
    Polynomial6Additive { up: f64, down: f64 },
    /// code4: exponential outside |α| > α₀, 1 + Σ a_n αⁿ inside, matching value, first and
    /// second derivatives at ±α₀. The ATLAS NSBI choice and the default.
    Polynomial6Exponential {
        ln_up: f64,
        ln_down: f64,
        alpha0: f64,
        a: [f64; 6],
    },
}

impl Variation {
    /// Prepares the interpolation of factors (δ⁺, δ⁻) with `code`; `alpha0` is code4's boundary.
    pub fn new(code: InterpolationCode, up: f64, down: f64, alpha0: f64) -> Variation {
        match code {
            InterpolationCode::Code0 => Variation::Linear { up, down },
            InterpolationCode::Code1 => Variation::Exponential {
                ln_up: up.ln(),
                ln_down: down.ln(),
            },
            InterpolationCode::Code2 => Variation::Quadratic { up, down },
            InterpolationCode::Code4p => Variation::Polynomial6Additive { up, down },
            InterpolationCode::Code4 => {
                let (ln_up, ln_down) = (up.ln(), down.ln());
                Variation::Polynomial6Exponential {
                    ln_up,
                    ln_down,
                    alpha0,
                    a: code4_coefficients(ln_up, ln_down, alpha0),
                }
            }
        }
    }

    pub fn eval(&self, alpha: f64) -> Interpolated {
        match *self {
            Variation::Linear { up, down } => {
                let slope = if alpha >= 0.0 { up - 1.0 } else { 1.0 - down };
                Interpolated {
                    value: 1.0 + alpha * slope,
                    d1: slope,
                    d2: 0.0,
                }
            }
            Variation::Exponential { ln_up, ln_down } => exponential(alpha, ln_up, ln_down),
            Variation::Quadratic { up, down } => {
                let a = 0.5 * (up + down) - 1.0;
                let b = 0.5 * (up - down);
                if alpha > 1.0 {
                    let slope = b + 2.0 * a;
                    Interpolated {
                        value: up + slope * (alpha - 1.0),
                        d1: slope,
                        d2: 0.0,
                    }
                } else if alpha < -1.0 {
                    let slope = b - 2.0 * a;
                    Interpolated {
                        value: down + slope * (alpha + 1.0),
                        d1: slope,
                        d2: 0.0,
                    }
                } else {
                    Interpolated {
                        value: 1.0 + a * alpha * alpha + b * alpha,
                        d1: 2.0 * a * alpha + b,
                        d2: 2.0 * a,
                    }
                }
            }
            Variation::Polynomial6Additive { up, down } => {
                let (delta_up, delta_down) = (up - 1.0, 1.0 - down);
                if alpha > 1.0 {
                    Interpolated {
                        value: 1.0 + alpha * delta_up,
                        d1: delta_up,
                        d2: 0.0,
                    }
                } else if alpha < -1.0 {
                    Interpolated {
                        value: 1.0 + alpha * delta_down,
                        d1: delta_down,
                        d2: 0.0,
                    }
                } else {
                    // α S + α² A (15 − 10α² + 3α⁴), S = (Δ⁺ + Δ⁻)/2, A = (Δ⁺ − Δ⁻)/16
                    let s = 0.5 * (delta_up + delta_down);
                    let a = 0.0625 * (delta_up - delta_down);
                    let a2 = alpha * alpha;
                    let value = 1.0 + alpha * s + a * a2 * (15.0 - 10.0 * a2 + 3.0 * a2 * a2);
                    let d1 = s + a * alpha * (30.0 - 40.0 * a2 + 18.0 * a2 * a2);
                    let d2 = a * (30.0 - 120.0 * a2 + 90.0 * a2 * a2);
                    Interpolated { value, d1, d2 }
                }
            }
            Variation::Polynomial6Exponential {
                ln_up,
                ln_down,
                alpha0,
                a,
            } => {
                if alpha.abs() >= alpha0 {
                    exponential(alpha, ln_up, ln_down)
                } else {
                    let mut value = 1.0;
                    let (mut d1, mut d2) = (0.0, 0.0);
                    let mut power = 1.0; // alpha^(n-1)
                    let mut power_below = 0.0; // alpha^(n-2)
                    for (i, an) in a.iter().enumerate() {
                        let n = (i + 1) as f64;
                        d2 += an * n * (n - 1.0) * power_below;
                        d1 += an * n * power;
                        power_below = power;
                        power *= alpha;
                        value += an * power;
                    }
                    Interpolated { value, d1, d2 }
                }
            }
        }
    }
}

fn exponential(alpha: f64, ln_up: f64, ln_down: f64) -> Interpolated {
    // δ⁺^α = exp(α ln δ⁺); δ⁻^(−α) = exp(−α ln δ⁻)
    let rate = if alpha >= 0.0 { ln_up } else { -ln_down };
    let value = vecmath::exp(alpha * rate);
    Interpolated {
        value,
        d1: rate * value,
        d2: rate * rate * value,
    }
}

/// [`exponential_factors`] out of line: inlined into [`ShapeKernel::eval_quads`], its code
/// disturbed the vector code of the code-4 path around it.
#[inline(never)]
fn exponential_quad(alpha: f64, v: [Quad; 4]) -> QuadFactors {
    exponential_factors(alpha, v)
}

/// [`exponential`] for four events (the same operations lane by lane, so the same bits).
#[inline(always)]
fn exponential_factors(alpha: f64, v: [Quad; 4]) -> QuadFactors {
    let [_, _, ln_up, ln_down] = v;
    let rate = if alpha >= 0.0 {
        ln_up
    } else {
        std::array::from_fn(|l| -ln_down[l])
    };
    let value = vecmath::exp4(std::array::from_fn(|l| alpha * rate[l]));
    QuadFactors {
        value,
        d1: std::array::from_fn(|l| rate[l] * value[l]),
        d2: std::array::from_fn(|l| rate[l] * rate[l] * value[l]),
    }
}

/// One kind of shape interpolation, prepared at one α, whose factors for a quad of events the
/// likelihood's event loop computes inline, in registers: code 4 inside |α| < 1
/// ([`Code4Quad`]) and the exponential of code 1 and of code 4 beyond ([`ExponentialQuad`]).
pub trait QuadInterpolation: Copy + Default {
    /// This kind's form of `kernel`, if `kernel` is of this kind.
    fn of(kernel: &ShapeKernel) -> Option<Self>;

    /// The factors of four events with inputs `v` (δ± − 1, ln δ±); the derivatives where
    /// asked for (zero otherwise). The same operations as [`ShapeKernel::eval`], lane by lane.
    fn factors(&self, v: [Quad; 4], gradient: bool, hessian: bool) -> QuadFactors;
}

/// Code 4 inside |α| < 1: the weights of the factor and of its two derivatives.
#[derive(Clone, Copy, Debug, Default)]
pub struct Code4Quad([Code4Weights; 3]);

impl QuadInterpolation for Code4Quad {
    #[inline(always)]
    fn of(kernel: &ShapeKernel) -> Option<Self> {
        kernel.code4_inside().map(Code4Quad)
    }

    #[inline(always)]
    fn factors(&self, v: [Quad; 4], gradient: bool, hessian: bool) -> QuadFactors {
        code4_quad(&self.0, v, gradient, hessian)
    }
}

/// δ⁺^α for α ≥ 0, δ⁻^(−α) below: code 1, and code 4 beyond |α| = 1.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExponentialQuad {
    alpha: f64,
}

impl QuadInterpolation for ExponentialQuad {
    #[inline(always)]
    fn of(kernel: &ShapeKernel) -> Option<Self> {
        match *kernel {
            ShapeKernel::Exponential { alpha } => Some(ExponentialQuad { alpha }),
            _ => None,
        }
    }

    /// Always all three: the derivatives are two multiplications on the exponential.
    #[inline(always)]
    fn factors(&self, v: [Quad; 4], _gradient: bool, _hessian: bool) -> QuadFactors {
        exponential_factors(self.alpha, v)
    }
}

/// Code 4 inside |α| < 1 or the exponential, decided systematic by systematic: a process whose
/// α lie some inside ±1 and some beyond (or whose codes are 4 and 1) keeps the one-pass event
/// loop. The branch is on the systematic, not the event, so it is the same for every quad.
#[derive(Clone, Copy, Debug)]
pub enum MixedQuad {
    Code4(Code4Quad),
    Exponential(ExponentialQuad),
}

impl Default for MixedQuad {
    fn default() -> Self {
        MixedQuad::Exponential(ExponentialQuad::default())
    }
}

impl QuadInterpolation for MixedQuad {
    #[inline(always)]
    fn of(kernel: &ShapeKernel) -> Option<Self> {
        Code4Quad::of(kernel)
            .map(MixedQuad::Code4)
            .or_else(|| ExponentialQuad::of(kernel).map(MixedQuad::Exponential))
    }

    #[inline(always)]
    fn factors(&self, v: [Quad; 4], gradient: bool, hessian: bool) -> QuadFactors {
        match self {
            MixedQuad::Code4(kind) => kind.factors(v, gradient, hessian),
            MixedQuad::Exponential(kind) => kind.factors(v, gradient, hessian),
        }
    }
}

/// One event's inputs of a shape interpolation: δ⁺ − 1, δ⁻ − 1, ln δ⁺ and ln δ⁻.
pub type EventVariation = [f64; 4];

/// The inputs of a shape interpolation for one event with ±1σ ratios δ± (in full precision).
pub fn event_variation(up: f64, down: f64) -> EventVariation {
    [up - 1.0, down - 1.0, up.ln(), down.ln()]
}

/// Per-event inputs of a shape interpolation for a set of events: δ± − 1 and ln δ± (stored so
/// that no logarithm is taken inside the likelihood's event loop), one array per quantity so
/// that the event loops read contiguous memory and vectorise.
///
/// Precision policy: these four numbers are *stored* in single precision and widened to f64
/// when read; every operation on them is in f64. They are the bulk of the event data (16 of
/// 40 bytes per event and process for each systematic), and the event loop over 10⁶ events is
/// limited by how fast memory delivers them, so halving them nearly halves its time. Nothing
/// measurable is lost: δ± come from float32 network outputs (DESIGN §3), already rounded at
/// 2⁻²⁴ ≈ 6·10⁻⁸ relative, while rounding δ± − 1 (not δ± itself) and ln δ± adds at most 2⁻²⁴
/// of the *deviation* from 1 — for a 10 % variation 6·10⁻⁹ on the factor, ten times below the
/// networks' own rounding. The stored values define the model exactly: the likelihood is a
/// smooth f64 function of θ, and the same for every evaluation, thread count and toy.
///
/// Storage: the four arrays live behind an [`Arc`], and a `ShapeVariations` is a view of a
/// range of their events. The pooled MC of an Asimov set holds a systematic's inputs on every
/// process's MC; the normalisation N_c(α) needs the same numbers on process c's own MC, and
/// takes them as a view ([`ShapeVariations::events`]) instead of a second copy (issue 13: at
/// 10⁶ MC events per process and 10 shape systematics on 3 processes that copy was 0.5 GB).
#[derive(Clone, Debug, Default)]
pub struct ShapeVariations {
    columns: Arc<VariationColumns>,
    /// The view's first event in `columns`.
    offset: usize,
    /// The view's number of events.
    len: usize,
}

/// The stored per-event inputs of [`ShapeVariations`], one array per quantity.
#[derive(Debug, Default)]
struct VariationColumns {
    up: Vec<f32>,
    down: Vec<f32>,
    ln_up: Vec<f32>,
    ln_down: Vec<f32>,
}

impl VariationColumns {
    fn with_capacity(n: usize) -> VariationColumns {
        VariationColumns {
            up: Vec::with_capacity(n),
            down: Vec::with_capacity(n),
            ln_up: Vec::with_capacity(n),
            ln_down: Vec::with_capacity(n),
        }
    }

    /// Appends the inputs of events with ±1σ shape ratios `up`, `down` (rounded to f32 here).
    fn push_ratios(&mut self, up: &[f64], down: &[f64]) {
        fn stored(column: &mut Vec<f32>, v: &[f64], f: fn(f64) -> f64) {
            column.extend(v.iter().map(|&x| f(x) as f32));
        }
        stored(&mut self.up, up, |u| u - 1.0);
        stored(&mut self.down, down, |d| d - 1.0);
        stored(&mut self.ln_up, up, f64::ln);
        stored(&mut self.ln_down, down, f64::ln);
    }

    fn into_variations(self) -> ShapeVariations {
        let len = self.up.len();
        ShapeVariations {
            columns: Arc::new(self),
            offset: 0,
            len,
        }
    }
}

/// Two views are equal when they hold the same inputs, wherever those are stored.
impl PartialEq for ShapeVariations {
    fn eq(&self, other: &ShapeVariations) -> bool {
        self.up() == other.up()
            && self.down() == other.down()
            && self.ln_up() == other.ln_up()
            && self.ln_down() == other.ln_down()
    }
}

impl ShapeVariations {
    /// From the per-event ±1σ shape ratios δ± = r±/r.
    pub fn from_ratios(up: &[f64], down: &[f64]) -> ShapeVariations {
        ShapeVariations::from_ratio_parts([(up, down)])
    }

    /// From the ±1σ shape ratios of consecutive sets of events (the pooled MC of several
    /// processes), into one allocation of exactly their size.
    pub fn from_ratio_parts<'a>(
        parts: impl IntoIterator<Item = (&'a [f64], &'a [f64])> + Clone,
    ) -> ShapeVariations {
        let n = parts.clone().into_iter().map(|(up, _)| up.len()).sum();
        let mut columns = VariationColumns::with_capacity(n);
        for (up, down) in parts {
            columns.push_ratios(up, down);
        }
        columns.into_variations()
    }

    /// From the stored float32 quantities of each event (δ⁺ − 1, δ⁻ − 1, ln δ⁺, ln δ⁻), as
    /// [`ShapeVariations::event`] gives them back: the toys' rows (`infer::toy_pool`).
    pub fn from_stored(
        up: Vec<f32>,
        down: Vec<f32>,
        ln_up: Vec<f32>,
        ln_down: Vec<f32>,
    ) -> ShapeVariations {
        VariationColumns {
            up,
            down,
            ln_up,
            ln_down,
        }
        .into_variations()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The events `range` of this view, sharing its storage (no copy).
    pub fn events(&self, range: std::ops::Range<usize>) -> ShapeVariations {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "events {range:?} of a view of {} events",
            self.len
        );
        ShapeVariations {
            columns: Arc::clone(&self.columns),
            offset: self.offset + range.start,
            len: range.len(),
        }
    }

    /// Whether `self` and `other` are views of one allocation.
    pub fn shares_storage(&self, other: &ShapeVariations) -> bool {
        Arc::ptr_eq(&self.columns, &other.columns)
    }

    fn up(&self) -> &[f32] {
        &self.columns.up[self.offset..self.offset + self.len]
    }

    fn down(&self) -> &[f32] {
        &self.columns.down[self.offset..self.offset + self.len]
    }

    fn ln_up(&self) -> &[f32] {
        &self.columns.ln_up[self.offset..self.offset + self.len]
    }

    fn ln_down(&self) -> &[f32] {
        &self.columns.ln_down[self.offset..self.offset + self.len]
    }

    /// Event i's inputs, as stored.
    pub fn event(&self, i: usize) -> EventVariation {
        assert!(i < self.len, "event {i} of a view of {} events", self.len);
        let c = &self.columns;
        let j = self.offset + i;
        [c.up[j], c.down[j], c.ln_up[j], c.ln_down[j]].map(f64::from)
    }

    /// The inputs of events i..i+4 (i + 4 may pass the end: the padding events get no
    /// variation), one quad per quantity.
    #[inline(always)]
    pub fn quad(&self, i: usize) -> [Quad; 4] {
        match self.run(i, 1) {
            Some(run) => run.quad(0),
            None => self.quad_past_end(i),
        }
    }

    /// The last, incomplete quad, padded with zeros (no variation): out of line, so that the
    /// vector loads of all the others stay plain vector loads.
    #[cold]
    #[inline(never)]
    fn quad_past_end(&self, i: usize) -> [Quad; 4] {
        let widen = |v: &[f32]| -> Quad {
            std::array::from_fn(|l| v.get(i + l).copied().map_or(0.0, f64::from))
        };
        [
            widen(self.up()),
            widen(self.down()),
            widen(self.ln_up()),
            widen(self.ln_down()),
        ]
    }

    /// The events `start..start + 4 * n_quads`, if all are there: for reading them a quad at
    /// a time without checking each quad against the end.
    #[inline(always)]
    pub fn run(&self, start: usize, n_quads: usize) -> Option<VariationRun<'_>> {
        let end = start + 4 * n_quads;
        if end > self.len {
            return None;
        }
        let (start, end) = (self.offset + start, self.offset + end);
        let c = &self.columns;
        Some(VariationRun {
            up: c.up.get(start..end)?,
            down: c.down.get(start..end)?,
            ln_up: c.ln_up.get(start..end)?,
            ln_down: c.ln_down.get(start..end)?,
        })
    }

    /// The events at `indices` (repeats allowed), in that order, in a new allocation.
    pub fn select(&self, indices: &[usize]) -> ShapeVariations {
        let pick = |v: &[f32]| indices.iter().map(|&i| v[i]).collect();
        VariationColumns {
            up: pick(self.up()),
            down: pick(self.down()),
            ln_up: pick(self.ln_up()),
            ln_down: pick(self.ln_down()),
        }
        .into_variations()
    }
}

/// A run of whole quads of events of [`ShapeVariations`] (see [`ShapeVariations::run`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct VariationRun<'a> {
    up: &'a [f32],
    down: &'a [f32],
    ln_up: &'a [f32],
    ln_down: &'a [f32],
}

impl VariationRun<'_> {
    /// The inputs of the run's quad j, one quad per quantity.
    #[inline(always)]
    pub fn quad(&self, j: usize) -> [Quad; 4] {
        let widen = |v: &[f32]| -> Quad {
            let four = &v[4 * j..4 * j + 4];
            [
                four[0].into(),
                four[1].into(),
                four[2].into(),
                four[3].into(),
            ]
        };
        [
            widen(self.up),
            widen(self.down),
            widen(self.ln_up),
            widen(self.ln_down),
        ]
    }
}

/// One value per event for four consecutive events (the likelihood's unit of vector work).
pub type Quad = [f64; 4];

/// Interpolated factors of four events, with their first and second derivatives in α where
/// asked for (zero otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuadFactors {
    pub value: Quad,
    pub d1: Quad,
    pub d2: Quad,
}

/// A shape interpolation prepared for one value of α, applied to every event.
///
/// For code 4 inside |α| < 1 the interpolated factor is linear in six per-event quantities
/// (the even and odd parts of value, slope and curvature at ±1), so the α-dependent polynomial
/// weights are computed once per evaluation and each event costs a few multiply-adds, with
/// no branch, no exp and no log. Other codes fall back to [`Variation`].
#[derive(Clone, Copy, Debug)]
pub enum ShapeKernel {
    Code4Inside {
        value: Code4Weights,
        d1: Code4Weights,
        d2: Code4Weights,
    },
    Exponential {
        alpha: f64,
    },
    Other {
        code: InterpolationCode,
        alpha: f64,
    },
}

/// Code 4 inside |α| < 1 as a function of one event's δ± − 1, ln δ±:
///
/// ```text
/// constant + up·(δ⁺−1) + down·(δ⁻−1) + δ⁺ln δ⁺ (slope_up + curve_up ln δ⁺) + δ⁻ln δ⁻ (slope_down + curve_down ln δ⁻)
/// ```
///
/// the weights of the boundary data (δ± − 1, δ± ln δ±, δ± ln² δ±) regrouped so that an event
/// costs six fused multiply-adds per output (value, or a derivative) after the two products
/// δ± ln δ± that all outputs share.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Code4Weights {
    constant: f64,
    up: f64,
    down: f64,
    slope_up: f64,
    slope_down: f64,
    curve_up: f64,
    curve_down: f64,
}

/// δ ln δ from δ − 1 and ln δ: (δ − 1) ln δ + ln δ, one fused multiply-add (the same in
/// [`Code4Weights::quad`]'s lanes).
#[inline(always)]
fn x_ln_x(deviation: f64, ln: f64) -> f64 {
    deviation.mul_add(ln, ln)
}

/// The seven per-event features code 4 inside |α| < 1 is linear in, in the order of
/// [`Code4Weights::coefficients`]: (1, δ⁺−1, δ⁻−1, δ⁺ln δ⁺, δ⁻ln δ⁻, δ⁺ln²δ⁺, δ⁻ln²δ⁻), from
/// one event's stored inputs with the same operations as [`Code4Weights::event`]. Their
/// weighted averages over a process's MC make the average of the factor a polynomial in α
/// (see `likelihood::normalisation`).
pub fn code4_features(v: EventVariation) -> [f64; 7] {
    let [up, down, ln_up, ln_down] = v;
    let (p_up, p_down) = (x_ln_x(up, ln_up), x_ln_x(down, ln_down));
    [1.0, up, down, p_up, p_down, ln_up * p_up, ln_down * p_down]
}

impl Code4Weights {
    /// The weights of [`code4_features`]: the factor (or derivative) is their dot product.
    pub fn coefficients(&self) -> [f64; 7] {
        [
            self.constant,
            self.up,
            self.down,
            self.slope_up,
            self.slope_down,
            self.curve_up,
            self.curve_down,
        ]
    }

    /// From the weights w of the boundary data and the output's value at δ± = 1 (1 for the
    /// factor itself, 0 for its derivatives).
    fn new(w: [f64; 6], at_nominal: f64) -> Code4Weights {
        Code4Weights {
            constant: at_nominal,
            up: w[0],
            down: w[1],
            slope_up: w[2],
            slope_down: w[3],
            curve_up: w[4],
            curve_down: w[5],
        }
    }

    /// One event; `p_up` = δ⁺ ln δ⁺ and `p_down` = δ⁻ ln δ⁻ (see [`x_ln_x`]).
    #[inline(always)]
    fn event(&self, v: EventVariation, p_up: f64, p_down: f64) -> f64 {
        let [up, down, ln_up, ln_down] = v;
        let x = self.up.mul_add(up, self.constant);
        let x = self.down.mul_add(down, x);
        let x = self.curve_up.mul_add(ln_up, self.slope_up).mul_add(p_up, x);
        self.curve_down
            .mul_add(ln_down, self.slope_down)
            .mul_add(p_down, x)
    }

    /// Four events at once: the operations of [`Code4Weights::event`], each applied to the
    /// four lanes before the next (the form the compiler turns into vector instructions).
    #[inline(always)]
    fn quad(&self, v: [Quad; 4], p_up: Quad, p_down: Quad) -> Quad {
        let [up, down, ln_up, ln_down] = v;
        let x = mul_add4([self.up; 4], up, [self.constant; 4]);
        let x = mul_add4([self.down; 4], down, x);
        let slope_up = mul_add4([self.curve_up; 4], ln_up, [self.slope_up; 4]);
        let x = mul_add4(slope_up, p_up, x);
        let slope_down = mul_add4([self.curve_down; 4], ln_down, [self.slope_down; 4]);
        mul_add4(slope_down, p_down, x)
    }
}

impl ShapeKernel {
    pub fn new(code: InterpolationCode, alpha: f64) -> ShapeKernel {
        match code {
            InterpolationCode::Code4 if alpha.abs() < CODE4_SHAPE_ALPHA0 => {
                // Weights of the per-event boundary data (see `even_odd`) in value − 1,
                // and in its derivatives.
                let mut value = [0.0; 6];
                let mut d1 = [0.0; 6];
                let mut d2 = [0.0; 6];
                for j in 0..6 {
                    let mut unit = [0.0; 6];
                    unit[j] = 1.0;
                    let b = code4_polynomial(even_odd(unit));
                    let (v, g, h) = polynomial(&b, alpha);
                    value[j] = v;
                    d1[j] = g;
                    d2[j] = h;
                }
                ShapeKernel::Code4Inside {
                    value: Code4Weights::new(value, 1.0),
                    d1: Code4Weights::new(d1, 0.0),
                    d2: Code4Weights::new(d2, 0.0),
                }
            }
            InterpolationCode::Code4 | InterpolationCode::Code1 => {
                ShapeKernel::Exponential { alpha }
            }
            code => ShapeKernel::Other { code, alpha },
        }
    }

    /// The weights of code 4 inside |α| < 1 — factor, first and second derivative — as
    /// [`Code4Quad`] uses them; `None` for the other kernels.
    #[inline(always)]
    pub fn code4_inside(&self) -> Option<[Code4Weights; 3]> {
        match *self {
            ShapeKernel::Code4Inside { value, d1, d2 } => Some([value, d1, d2]),
            _ => None,
        }
    }

    #[inline]
    pub fn eval(&self, v: &EventVariation) -> Interpolated {
        let [up, down, ln_up, ln_down] = *v;
        match self {
            ShapeKernel::Code4Inside { value, d1, d2 } => {
                let (p_up, p_down) = (x_ln_x(up, ln_up), x_ln_x(down, ln_down));
                Interpolated {
                    value: value.event(*v, p_up, p_down),
                    d1: d1.event(*v, p_up, p_down),
                    d2: d2.event(*v, p_up, p_down),
                }
            }
            ShapeKernel::Exponential { alpha } => exponential(*alpha, ln_up, ln_down),
            ShapeKernel::Other { code, alpha } => {
                Variation::new(*code, 1.0 + up, 1.0 + down, CODE4_SHAPE_ALPHA0).eval(*alpha)
            }
        }
    }

    /// The factors of a run of quads of events into `out.value[j]` (and `out.d1[j]`,
    /// `out.d2[j]` when asked for), quad j being `events` from `first + 4 j` (one lane per
    /// event). The kind of interpolation is decided once for the whole run: code 4 inside
    /// |α| < 1 and the exponential are then straight-line arithmetic on the four lanes, which
    /// the compiler turns into vector instructions (the same operations as
    /// [`ShapeKernel::eval`], so the same bits); the other codes go event by event.
    #[inline(always)]
    pub fn eval_quads(&self, events: &ShapeVariations, first: usize, out: FactorRows<'_>) {
        let FactorRows {
            value,
            mut d1,
            mut d2,
        } = out;
        let (gradient, hessian) = (d1.is_some(), d2.is_some());
        // A loop, not a closure per kind: a closure the compiler keeps out of line is compiled
        // for the baseline target, where the code-4 fused multiply-adds are library calls.
        for (j, v) in value.iter_mut().enumerate() {
            let quad = events.quad(first + 4 * j);
            let at = match self {
                ShapeKernel::Code4Inside {
                    value: v,
                    d1: g,
                    d2: h,
                } => code4_quad(&[*v, *g, *h], quad, gradient, hessian),
                ShapeKernel::Exponential { alpha } => exponential_quad(*alpha, quad),
                ShapeKernel::Other { .. } => self.eval_lanes(quad),
            };
            *v = at.value;
            if let Some(d1) = d1.as_deref_mut() {
                d1[j] = at.d1;
            }
            if let Some(d2) = d2.as_deref_mut() {
                d2[j] = at.d2;
            }
        }
    }

    /// Four events one by one (codes 0, 2 and 4p: no vector form of their own).
    #[inline(never)]
    fn eval_lanes(&self, v: [Quad; 4]) -> QuadFactors {
        let at: [Interpolated; 4] =
            std::array::from_fn(|l| self.eval(&[v[0][l], v[1][l], v[2][l], v[3][l]]));
        QuadFactors {
            value: std::array::from_fn(|l| at[l].value),
            d1: std::array::from_fn(|l| at[l].d1),
            d2: std::array::from_fn(|l| at[l].d2),
        }
    }
}

/// Code 4 inside |α| < 1 for a quad of events with inputs `v` (δ± − 1, ln δ±): the factor
/// and, where asked, its derivatives (zero otherwise), with the weights `[value, d1, d2]` of
/// [`ShapeKernel::code4_inside`]. The same operations as [`ShapeKernel::eval`], lane by lane.
#[inline(always)]
fn code4_quad(
    weights: &[Code4Weights; 3],
    v: [Quad; 4],
    gradient: bool,
    hessian: bool,
) -> QuadFactors {
    let [up, down, ln_up, ln_down] = v;
    let (p_up, p_down) = (mul_add4(up, ln_up, ln_up), mul_add4(down, ln_down, ln_down));
    let mut out = QuadFactors {
        value: weights[0].quad(v, p_up, p_down),
        ..QuadFactors::default()
    };
    if gradient {
        out.d1 = weights[1].quad(v, p_up, p_down);
    }
    if hessian {
        out.d2 = weights[2].quad(v, p_up, p_down);
    }
    out
}

/// Where [`ShapeKernel::eval_quads`] writes: one entry per quad; derivatives only where given.
pub struct FactorRows<'a> {
    pub value: &'a mut [Quad],
    pub d1: Option<&'a mut [Quad]>,
    pub d2: Option<&'a mut [Quad]>,
}

/// Boundary of code 4 for per-event shapes (α₀ = 1, as in the ATLAS NSBI analysis).
pub const CODE4_SHAPE_ALPHA0: f64 = 1.0;

/// The boundary data of one event are the value − 1, slope and curvature of the exponential
/// extrapolation at α = +1 and −1 (in |α|): (δ⁺ − 1, δ⁻ − 1, δ⁺ ln δ⁺, δ⁻ ln δ⁻, δ⁺ ln² δ⁺,
/// δ⁻ ln² δ⁻). Code 4's inner polynomial is linear in these six numbers ([`Code4Weights`]).
///
/// (e0, e1, e2, o0, o1, o2): even and odd parts of the boundary data.
fn even_odd(b: [f64; 6]) -> [f64; 6] {
    [
        0.5 * (b[0] + b[1]),
        0.5 * (b[2] + b[3]),
        0.5 * (b[4] + b[5]),
        0.5 * (b[0] - b[1]),
        0.5 * (b[2] - b[3]),
        0.5 * (b[4] - b[5]),
    ]
}

/// b₁…b₆ of 1 + Σ bₙ tⁿ on [−1, 1] from the even/odd boundary data (e0, e1, e2, o0, o1, o2):
/// two 3×3 systems with closed-form solutions.
fn code4_polynomial(eo: [f64; 6]) -> [f64; 6] {
    let [e0, e1, e2, o0, o1, o2] = eo;
    let b6 = (8.0 * e0 - 5.0 * e1 + e2) / 8.0;
    let b4 = 0.5 * (e1 - 2.0 * e0) - 2.0 * b6;
    let b2 = e0 - b4 - b6;
    let b5 = (3.0 * o0 - 3.0 * o1 + o2) / 8.0;
    let b3 = 0.5 * (o1 - o0) - 2.0 * b5;
    let b1 = o0 - b3 - b5;
    [b1, b2, b3, b4, b5, b6]
}

/// Σ bₙ αⁿ (n = 1..6) with first and second derivatives.
fn polynomial(b: &[f64; 6], alpha: f64) -> (f64, f64, f64) {
    let (mut value, mut d1, mut d2) = (0.0, 0.0, 0.0);
    for (i, bn) in b.iter().enumerate() {
        let n = (i + 1) as i32;
        value += bn * alpha.powi(n);
        d1 += bn * n as f64 * alpha.powi(n - 1);
        if n >= 2 {
            d2 += bn * (n * (n - 1)) as f64 * alpha.powi(n - 2);
        }
    }
    (value, d1, d2)
}

/// Coefficients a₁…a₆ of code4's inner polynomial 1 + Σ aₙ αⁿ, so that value, first and
/// second derivative match δ⁺^α at +α₀ and δ⁻^(−α) at −α₀. Solved in t = α/α₀ by splitting
/// into even (t², t⁴, t⁶) and odd (t, t³, t⁵) parts, two 3×3 systems with closed-form solutions.
pub fn code4_coefficients(ln_up: f64, ln_down: f64, alpha0: f64) -> [f64; 6] {
    let value_up = (alpha0 * ln_up).exp();
    let value_down = (alpha0 * ln_down).exp();
    // Derivatives in t at t = ±1 (chain rule brings powers of α₀).
    let d_up = alpha0 * ln_up * value_up;
    let d_down = -alpha0 * ln_down * value_down;
    let c_up = alpha0 * alpha0 * ln_up * ln_up * value_up;
    let c_down = alpha0 * alpha0 * ln_down * ln_down * value_down;
    // Even part E: E(1), E'(1), E''(1); odd part O likewise.
    let eo = [
        0.5 * (value_up + value_down) - 1.0,
        0.5 * (d_up - d_down),
        0.5 * (c_up + c_down),
        0.5 * (value_up - value_down),
        0.5 * (d_up + d_down),
        0.5 * (c_up - c_down),
    ];
    let b = code4_polynomial(eo);
    let mut a = [0.0; 6];
    for (n, (an, bn)) in a.iter_mut().zip(b).enumerate() {
        *an = bn / alpha0.powi(n as i32 + 1);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(code: InterpolationCode, up: f64, down: f64, alpha: f64) -> f64 {
        Variation::new(code, up, down, 1.0).eval(alpha).value
    }

    #[test]
    fn design_reference_values() {
        // DESIGN.md §2: code4 with (δ⁻, δ⁺) = (0.9, 1.1)
        assert!((value(InterpolationCode::Code4, 1.1, 0.9, 0.5) - 1.049314915427).abs() < 1e-12);
        assert!((value(InterpolationCode::Code4, 1.1, 0.9, -0.5) - 0.949216905778).abs() < 1e-12);
        // code4p with (lo, nom, hi) = (9, 10, 12): factors 0.9 and 1.2 around nominal 10
        let code4p = |alpha: f64| 10.0 * value(InterpolationCode::Code4p, 1.2, 0.9, alpha);
        assert!((code4p(0.5) - 10.9482421875).abs() < 1e-12);
        assert!((code4p(-0.5) - 9.4482421875).abs() < 1e-12);
        assert!((code4p(2.0) - 14.0).abs() < 1e-12);
    }

    #[test]
    fn every_code_passes_through_the_variations() {
        use InterpolationCode::*;
        for code in [Code0, Code1, Code2, Code4p, Code4] {
            assert!(
                (value(code, 1.3, 0.8, 1.0) - 1.3).abs() < 1e-12,
                "{code:?} at +1"
            );
            assert!(
                (value(code, 1.3, 0.8, -1.0) - 0.8).abs() < 1e-12,
                "{code:?} at -1"
            );
            assert!(
                (value(code, 1.3, 0.8, 0.0) - 1.0).abs() < 1e-12,
                "{code:?} at 0"
            );
        }
    }

    #[test]
    fn derivatives_match_finite_differences_inside_and_outside() {
        use InterpolationCode::*;
        for code in [Code0, Code1, Code2, Code4p, Code4] {
            let v = Variation::new(code, 1.25, 0.85, 1.0);
            for alpha in [-2.3, -0.7, -0.2, 0.3, 0.9, 1.7] {
                let h = 1e-6;
                let at = v.eval(alpha);
                let d1 = (v.eval(alpha + h).value - v.eval(alpha - h).value) / (2.0 * h);
                let d2 = (v.eval(alpha + h).d1 - v.eval(alpha - h).d1) / (2.0 * h);
                assert!(
                    (at.d1 - d1).abs() < 1e-7,
                    "{code:?} d1 at {alpha}: {} vs {d1}",
                    at.d1
                );
                assert!(
                    (at.d2 - d2).abs() < 1e-6,
                    "{code:?} d2 at {alpha}: {} vs {d2}",
                    at.d2
                );
            }
        }
    }

    #[test]
    fn shape_kernel_matches_variation_for_every_code() {
        use InterpolationCode::*;
        for code in [Code0, Code1, Code2, Code4p, Code4] {
            for (up, down) in [(1.25, 0.85), (0.9, 1.07), (1.02, 1.01)] {
                let ev = event_variation(up, down);
                let stored = ShapeVariations::from_ratios(&[up; 8], &[down; 8]);
                let reference = Variation::new(code, up, down, 1.0);
                for alpha in [-2.5, -1.0, -0.6, 0.0, 0.2, 0.99, 1.3] {
                    let (k, r) = (
                        ShapeKernel::new(code, alpha).eval(&ev),
                        reference.eval(alpha),
                    );
                    assert!(
                        (k.value - r.value).abs() < 1e-13,
                        "{code:?} {alpha}: {} vs {}",
                        k.value,
                        r.value
                    );
                    assert!(
                        (k.d1 - r.d1).abs() < 1e-12 && (k.d2 - r.d2).abs() < 1e-11,
                        "{code:?} {alpha}"
                    );
                    let (mut value, mut d1, mut d2) = ([[0.0; 4]; 2], [[0.0; 4]; 2], [[0.0; 4]; 2]);
                    ShapeKernel::new(code, alpha).eval_quads(
                        &stored,
                        0,
                        FactorRows {
                            value: &mut value,
                            d1: Some(&mut d1),
                            d2: Some(&mut d2),
                        },
                    );
                    let k = ShapeKernel::new(code, alpha).eval(&stored.event(0));
                    for j in 0..2 {
                        for l in 0..4 {
                            assert_eq!([value[j][l], d1[j][l], d2[j][l]], [k.value, k.d1, k.d2]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_view_reads_only_its_own_events_of_the_shared_storage() {
        let up: Vec<f64> = (0..12).map(|i| 1.0 + 0.01 * i as f64).collect();
        let down: Vec<f64> = (0..12).map(|i| 1.0 - 0.01 * i as f64).collect();
        let pooled =
            ShapeVariations::from_ratio_parts([(&up[..5], &down[..5]), (&up[5..], &down[5..])]);
        assert_eq!(pooled, ShapeVariations::from_ratios(&up, &down));
        let view = pooled.events(3..9);
        assert!(view.shares_storage(&pooled));
        assert_eq!(view, ShapeVariations::from_ratios(&up[3..9], &down[3..9]));
        assert_eq!(view.event(0), pooled.event(3));
        // Its last quad is padded with no variation, not read from the pooled events past it.
        assert!(view.run(4, 1).is_none());
        assert_eq!(
            view.quad(4)[0],
            [pooled.event(7)[0], pooled.event(8)[0], 0.0, 0.0]
        );
        assert!(!view.select(&[1, 1]).shares_storage(&pooled));
    }

    #[test]
    fn stored_variations_are_rounded_deviations() {
        let (up, down) = ([1.1, 1.0, 0.5, 1.0 + 1e-9], [0.93, 1.0, 2.0, 1.0 - 3e-9]);
        let stored = ShapeVariations::from_ratios(&up, &down);
        let quad = stored.quad(0);
        let past_end = stored.quad(2);
        for i in 0..4 {
            let exact = event_variation(up[i], down[i]);
            let read = stored.event(i);
            for q in 0..4 {
                // Single-precision rounding of each number, relative to itself.
                let bound = exact[q].abs() * f64::from(f32::EPSILON) / 2.0;
                assert!((read[q] - exact[q]).abs() <= bound, "event {i}, input {q}");
                assert_eq!(quad[q][i], read[q]);
                // quad(2) holds events 2, 3 and two padding events.
                if i < 2 {
                    assert_eq!(past_end[q][i], stored.event(i + 2)[q]);
                } else {
                    assert_eq!(past_end[q][i], 0.0, "padding events have no variation");
                }
            }
        }
        assert_eq!(stored.select(&[3, 0, 3]).event(2), stored.event(3));
    }

    #[test]
    fn code4_is_twice_continuously_differentiable_at_the_boundary() {
        for alpha0 in [1.0, 0.5] {
            let v = Variation::new(InterpolationCode::Code4, 1.4, 0.7, alpha0);
            for edge in [alpha0, -alpha0] {
                let (inside, outside) =
                    (v.eval(edge * (1.0 - 1e-12)), v.eval(edge * (1.0 + 1e-12)));
                assert!((inside.value - outside.value).abs() < 1e-9);
                assert!((inside.d1 - outside.d1).abs() < 1e-8);
                assert!((inside.d2 - outside.d2).abs() < 1e-7);
            }
        }
    }
}
