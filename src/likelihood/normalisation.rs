//! Normalisation of the shape systematics: N_c(α), so that the model is a normalised density
//! at every allowed θ.
//!
//! A shape systematic multiplies process c's density by an interpolated per-event factor
//! g_c(x|α) = Π_k f_k(x|α_k) (code 4 inside |α| < 1, its exponential outside, …). Nothing makes
//! g_c average to 1 over p_c away from α = 0, while the yield ν_c(θ) carries only the yield
//! factors: without a correction the event term gains likelihood wherever ⟨g_c⟩ > 1, and fits
//! push shape nuisances outwards (issue 13: an Asimov fit preferred α = 5 by 9 NLL units). The
//! model is therefore
//!
//! ```text
//! p_c(x|α) = p_ref(x) r_c(x) g_c(x|α) / N_c(α),    N_c(α) = Σ_i b_i g_c(x_i|α) / Σ_i b_i
//! ```
//!
//! over process c's own MC events (generator weights b_i, which may be negative), with the
//! shape inputs exactly as the likelihood reads them (the stored single-precision δ± − 1 and
//! ln δ±), so the model is normalised on the MC to rounding. The extended term keeps ν_c; the
//! event sum uses ν̃_c = ν_c / N_c. Processes without shape systematics have N_c ≡ 1.
//!
//! Two ways to get N_c and its first and second derivatives in α, both exact:
//! - **code-4 moments**: code 4 inside |α| < 1 is linear in seven per-event features
//!   ([`code4_features`]) with α-dependent weights, so for K ≤ 2 shape systematics (all code 4,
//!   all |α| < 1) N_c is the same polynomial applied to the features' weighted averages — 7
//!   moments for K = 1, 7 × 7 for K = 2, computed once when the data are built; O(1) per
//!   evaluation.
//! - **exact pass**: everything else (an exponential branch, |α| ≥ 1, codes 0/2/4p, K ≥ 3) sums
//!   b_i g_c(x_i|α) over the MC at every evaluation, four events at a time in AVX2 vectors,
//!   in fixed blocks of events added in block order, so the result does not depend on the
//!   thread count. Its cost, O(N_MC K) (O(N_MC K²) with the Hessian) per evaluation, is what
//!   toys of a process with many shape systematics pay; a memo keeps the latest passes, since
//!   fits evaluate some points twice. (Why no cheaper surrogate replaces it:
//!   `validation/normalisation_surrogate_study.py`.)
//!
//! The two agree to rounding (tests/normalisation.rs checks 1e-12).

use std::collections::VecDeque;
use std::sync::Mutex;

use rayon::prelude::*;
use serde_json::{json, Value};

use super::data::ShapeData;
use super::Order;
use crate::error::{Error, Result};
use crate::model::interpolation::{code4_features, Code4Weights, FactorRows, Quad, ShapeKernel};

/// MC events per block of the exact pass (fixed: it defines the summation order).
const BLOCK: usize = 4096;

/// Features of one code-4 shape systematic ([`code4_features`]).
const FEATURES: usize = 7;

/// How N_c was computed at a parameter point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// No shape systematic: N_c ≡ 1.
    NoShapes,
    /// Averaged code-4 features (K ≤ 2, every |α| < 1).
    Code4Moments,
    /// A pass over the process's MC.
    ExactPass,
    /// Chebyshev series of the exponential branch (K = 1), checked against the exact pass.
    ExponentialTable,
}

impl Method {
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::NoShapes => "none",
            Method::Code4Moments => "code4_moments",
            Method::ExactPass => "exact_pass",
            Method::ExponentialTable => "exponential_table",
        }
    }
}

/// N_c at one α with, as asked, its derivatives in the process's shape systematics' α_k.
#[derive(Clone, Debug, Default)]
pub struct ShapeIntegral {
    pub value: f64,
    /// ∂N/∂α_k, one per shape systematic, in the process's order.
    pub d1: Vec<f64>,
    /// ∂²N/∂α_k∂α_l, K × K row-major.
    pub d2: Vec<f64>,
}

impl ShapeIntegral {
    fn reset(&mut self, k: usize) {
        self.value = 0.0;
        self.d1.clear();
        self.d1.resize(k, 0.0);
        self.d2.clear();
        self.d2.resize(k * k, 0.0);
    }
}

/// What N_c of one process is computed from: its shape systematics over its own MC events.
#[derive(Debug, Default)]
pub struct ProcessNormalisation {
    shapes: Vec<ShapeData>,
    /// b_i / Σ b over the process's MC.
    weights: Vec<f64>,
    /// Averaged products of code-4 features (7 for K = 1, 7 × 7 row-major for K = 2), where
    /// every shape systematic is code 4 and K ≤ 2.
    moments: Option<Vec<f64>>,
    /// K = 1 of code 1 or 4: N on the exponential branch as Chebyshev series, built on first
    /// use there (toys from one pool share them) and kept only where they reproduce the exact
    /// pass ([`ExponentialTables`]).
    tables: std::sync::OnceLock<Option<ExponentialTables>>,
    /// The latest exact passes (a pass is deterministic, so a recalled result has the bits a
    /// new pass would give: results do not depend on what the memo holds).
    memo: Mutex<VecDeque<MemoEntry>>,
}

/// One exact pass kept by [`ProcessNormalisation::recall`]'s memo.
#[derive(Clone, Debug)]
struct MemoEntry {
    key: Vec<u64>,
    order: Order,
    integral: ShapeIntegral,
}

impl Clone for ProcessNormalisation {
    fn clone(&self) -> Self {
        ProcessNormalisation {
            shapes: self.shapes.clone(),
            weights: self.weights.clone(),
            moments: self.moments.clone(),
            tables: self.tables.clone(),
            memo: Mutex::default(),
        }
    }
}

impl ProcessNormalisation {
    /// From the process's shape systematics evaluated on its own MC events, whose generator
    /// weights are `mc_weights`. Refused where the weights do not sum to a positive number
    /// (then N_c = Σ b g / Σ b is undefined) or the lengths disagree.
    pub fn new(shapes: Vec<ShapeData>, mc_weights: &[f64]) -> Result<ProcessNormalisation> {
        if shapes.is_empty() {
            return Ok(ProcessNormalisation::default());
        }
        let total: f64 = mc_weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(Error::Analysis(format!(
                "the MC weights of a process with shape systematics sum to {total}: its \
                 normalisation N(α) = Σ b g(α) / Σ b needs a positive sum"
            )));
        }
        if let Some(s) = shapes
            .iter()
            .find(|s| s.variations.len() != mc_weights.len())
        {
            return Err(Error::Analysis(format!(
                "shape systematic on parameter {} has {} events, the process's MC {}",
                s.parameter,
                s.variations.len(),
                mc_weights.len()
            )));
        }
        let weights: Vec<f64> = mc_weights.iter().map(|b| b / total).collect();
        let moments = code4_moments(&shapes, &weights);
        Ok(ProcessNormalisation {
            shapes,
            weights,
            moments,
            tables: std::sync::OnceLock::new(),
            memo: Mutex::default(),
        })
    }

    /// The number of shape systematics K.
    pub fn n_shapes(&self) -> usize {
        self.shapes.len()
    }

    /// The shape systematics N_c is computed from, on the process's own MC events.
    pub fn shapes(&self) -> &[ShapeData] {
        &self.shapes
    }

    /// The process's MC weights b_i / Σ b, in the events' order of [`Self::shapes`].
    pub fn mc_weights(&self) -> &[f64] {
        &self.weights
    }

    /// N_c at θ into `out` (derivatives as `order` asks, zero otherwise), by the cheapest
    /// exact method; returns the method. Allocates nothing on the code-4 moments path once
    /// `out` has its size.
    pub fn evaluate(&self, theta: &[f64], order: Order, out: &mut ShapeIntegral) -> Method {
        let k = self.shapes.len();
        out.reset(k);
        if k == 0 {
            out.value = 1.0;
            return Method::NoShapes;
        }
        if let Some(moments) = &self.moments {
            let weights: [Option<[Code4Weights; 3]>; 2] = std::array::from_fn(|j| {
                self.shapes
                    .get(j)
                    .and_then(|s| ShapeKernel::new(s.code, theta[s.parameter]).code4_inside())
            });
            if let [Some(w0), w1] = weights {
                match w1 {
                    None if k == 1 => {
                        one_shape_moments(&w0, moments, order, out);
                        return Method::Code4Moments;
                    }
                    Some(w1) => {
                        two_shape_moments(&w0, &w1, moments, order, out);
                        return Method::Code4Moments;
                    }
                    None => {}
                }
            }
        }
        if let Some(tables) = self.exponential_tables() {
            let alpha = theta[self.shapes[0].parameter];
            if let Some(at) = tables.eval(alpha) {
                out.value = at[0];
                out.d1[0] = at[1];
                out.d2[0] = at[2];
                return Method::ExponentialTable;
            }
        }
        if !self.recall(theta, order, out) {
            self.exact_pass(theta, order, out);
            self.remember(theta, order, out);
        }
        Method::ExactPass
    }

    /// The α of the process's shape systematics at θ, bit for bit (the memo's key).
    fn key(&self, theta: &[f64]) -> Vec<u64> {
        self.shapes
            .iter()
            .map(|s| theta[s.parameter].to_bits())
            .collect()
    }

    /// N at θ from the memo of recent exact passes, if one was made at the same α to at
    /// least `order`: a fit evaluates the same point more than once (the value after the
    /// Hessian at its last step), and every toy's fits start from the same point.
    fn recall(&self, theta: &[f64], order: Order, out: &mut ShapeIntegral) -> bool {
        let key = self.key(theta);
        let memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        let Some(hit) = memo.iter().find(|m| m.order >= order && m.key == key) else {
            return false;
        };
        out.value = hit.integral.value;
        if order >= Order::Gradient {
            out.d1.copy_from_slice(&hit.integral.d1);
        }
        if order == Order::Hessian {
            out.d2.copy_from_slice(&hit.integral.d2);
        }
        true
    }

    /// Keeps an exact pass in the memo (the oldest entry goes when it is full).
    fn remember(&self, theta: &[f64], order: Order, integral: &ShapeIntegral) {
        let capacity = (4 * rayon::current_num_threads()).max(8);
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if memo.len() >= capacity {
            memo.pop_front();
        }
        memo.push_back(MemoEntry {
            key: self.key(theta),
            order,
            integral: integral.clone(),
        });
    }

    /// The Chebyshev tables of a K = 1 process of code 1 or 4 (built on first call).
    fn exponential_tables(&self) -> Option<&ExponentialTables> {
        use crate::model::interpolation::InterpolationCode::{Code1, Code4};
        let [shape] = self.shapes.as_slice() else {
            return None;
        };
        let inner = match shape.code {
            Code4 => crate::model::interpolation::CODE4_SHAPE_ALPHA0,
            Code1 => 0.0,
            _ => return None,
        };
        self.tables
            .get_or_init(|| ExponentialTables::build(self, shape.parameter, inner))
            .as_ref()
    }

    /// N_c at θ by a pass over the MC (the reference every other method is checked against).
    pub fn exact_pass(&self, theta: &[f64], order: Order, out: &mut ShapeIntegral) {
        let k = self.shapes.len();
        out.reset(k);
        if k == 0 {
            out.value = 1.0;
            return;
        }
        let kernels: Vec<ShapeKernel> = self
            .shapes
            .iter()
            .map(|s| ShapeKernel::new(s.code, theta[s.parameter]))
            .collect();
        let n_blocks = self.weights.len().div_ceil(BLOCK);
        let blocks: Vec<Vec<f64>> = (0..n_blocks)
            .into_par_iter()
            .map(|b| self.block_sums(&kernels, b, order))
            .collect();
        let mut sums = vec![0.0; 1 + k + k * k];
        for block in &blocks {
            for (s, x) in sums.iter_mut().zip(block) {
                *s += x;
            }
        }
        out.value = sums[0];
        out.d1.copy_from_slice(&sums[1..1 + k]);
        out.d2.copy_from_slice(&sums[1 + k..]);
    }

    /// Σ b g, Σ b ∂g/∂α_k and Σ b ∂²g/∂α_k∂α_l (K × K) over block `block` of the MC.
    ///
    /// On CPUs with AVX2 and FMA the same code is compiled for 4-wide vectors (the fused
    /// multiply-adds of the code-4 kernels are then instructions, not library calls: 10× here).
    fn block_sums(&self, kernels: &[ShapeKernel], block: usize, order: Order) -> Vec<f64> {
        #[cfg(target_arch = "x86_64")]
        if crate::vecmath::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { self.block_sums_avx2(kernels, block, order) };
        }
        self.block_sums_portable(kernels, block, order)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn block_sums_avx2(&self, kernels: &[ShapeKernel], block: usize, order: Order) -> Vec<f64> {
        self.block_sums_portable(kernels, block, order)
    }

    /// The block's events go four at a time, one per lane ([`Quad`]), in sub-blocks of
    /// [`SUB_QUADS`] quads whose factor rows stay in cache. g = Π_k f_k, so with prefix and
    /// suffix products (no division: a factor may be 0) a derivative costs O(1) per event.
    /// The Hessian's K(K − 1)/2 terms off the diagonal, b Π_{u≠s,t} f_u f'_s f'_t, are
    /// u_s u_t / (b g) with u_s = b f'_s Π_{u≠s} f_u the gradient's terms: per sub-block a
    /// product of the rows u and v = u/(b g), summed in registers ([`add_pair_products`]),
    /// where a product of pairs per event cost four operations and a trip through memory
    /// per pair. A quad with a lane where b g = 0 but b ≠ 0 (a factor 0) takes the pairs one by
    /// one instead. Each sum has one accumulator per lane (event i in lane i mod 4), the lanes
    /// added in order at the end: the same bits whatever the vector width and the thread
    /// count.
    #[inline(always)]
    fn block_sums_portable(&self, kernels: &[ShapeKernel], block: usize, order: Order) -> Vec<f64> {
        let k = kernels.len();
        let start = block * BLOCK;
        let end = (start + BLOCK).min(self.weights.len());
        let (gradient, hessian) = (order >= Order::Gradient, order == Order::Hessian);
        let rows = |wanted: bool| vec![[0.0; 4]; if wanted { k * SUB_QUADS } else { 0 }];
        let (mut value, mut d1, mut d2): (Vec<Quad>, Vec<Quad>, Vec<Quad>) =
            (rows(true), rows(gradient), rows(hessian));
        let (mut prefix, mut suffix) = (vec![[0.0; 4]; k], vec![[0.0; 4]; k]);
        let (mut pair_u, mut pair_v) = (rows(hessian), rows(hessian));
        let mut acc = vec![[0.0; 4]; 1 + k + k * k];
        for sub in (start..end).step_by(4 * SUB_QUADS) {
            let n_quads = (end - sub).div_ceil(4).min(SUB_QUADS);
            for (s, kernel) in kernels.iter().enumerate() {
                let part = s * SUB_QUADS..s * SUB_QUADS + n_quads;
                kernel.eval_quads(
                    &self.shapes[s].variations,
                    sub,
                    FactorRows {
                        value: &mut value[part.clone()],
                        d1: gradient.then(|| &mut d1[part.clone()]),
                        d2: hessian.then(|| &mut d2[part]),
                    },
                );
            }
            for j in 0..n_quads {
                let first = sub + 4 * j;
                let b: Quad = std::array::from_fn(|l| {
                    if first + l < end {
                        self.weights[first + l]
                    } else {
                        0.0
                    }
                });
                let at = |rows: &[Quad], s: usize| rows[s * SUB_QUADS + j];
                if !gradient {
                    let g = (0..k).fold(b, |g, s| mul4(g, at(&value, s)));
                    acc[0] = add4(acc[0], g);
                    continue;
                }
                prefix[0] = [1.0; 4];
                for s in 1..k {
                    prefix[s] = mul4(prefix[s - 1], at(&value, s - 1));
                }
                suffix[k - 1] = b;
                for s in (0..k - 1).rev() {
                    suffix[s] = mul4(suffix[s + 1], at(&value, s + 1));
                }
                // b g = prefix · f · suffix (the suffix products carry b).
                let bg = mul4(mul4(prefix[k - 1], at(&value, k - 1)), b);
                acc[0] = add4(acc[0], bg);
                for s in 0..k {
                    let term = mul4(mul4(prefix[s], at(&d1, s)), suffix[s]);
                    acc[1 + s] = add4(acc[1 + s], term);
                    if hessian {
                        pair_u[s * SUB_QUADS + j] = term;
                    }
                }
                if hessian {
                    let second = &mut acc[1 + k..];
                    for s in 0..k {
                        let diagonal = mul4(mul4(prefix[s], at(&d2, s)), suffix[s]);
                        second[s * k + s] = add4(second[s * k + s], diagonal);
                    }
                    // 1/(b g); 0 in lanes without weight (past the end: their u are 0 too).
                    let inverse: Quad =
                        std::array::from_fn(|l| if b[l] == 0.0 { 0.0 } else { 1.0 / bg[l] });
                    if inverse.iter().all(|x| x.is_finite()) {
                        for s in 0..k {
                            let row = s * SUB_QUADS + j;
                            pair_v[row] = mul4(pair_u[row], inverse);
                        }
                        continue;
                    }
                    for s in 0..k {
                        pair_u[s * SUB_QUADS + j] = [0.0; 4];
                        pair_v[s * SUB_QUADS + j] = [0.0; 4];
                        // Π_{u<s} f_u · f'_s · Π_{s<u<t} f_u, extended one factor at a time.
                        let mut left = mul4(prefix[s], at(&d1, s));
                        for t in s + 1..k {
                            let term = mul4(mul4(left, at(&d1, t)), suffix[t]);
                            second[s * k + t] = add4(second[s * k + t], term);
                            left = mul4(left, at(&value, t));
                        }
                    }
                }
            }
            if hessian {
                add_pair_products(&pair_u, &pair_v, k, n_quads, &mut acc[1 + k..]);
            }
        }
        let mut sums: Vec<f64> = acc.iter().map(|a| ((a[0] + a[1]) + a[2]) + a[3]).collect();
        let second = &mut sums[1 + k..];
        for s in 0..k {
            for t in s + 1..k {
                second[t * k + s] = second[s * k + t];
            }
        }
        sums
    }
}

/// Quads of MC events per sub-block of the exact pass: K rows of factors (and derivatives)
/// of this many quads stay in the L1/L2 cache.
const SUB_QUADS: usize = 64;

#[inline(always)]
fn mul4(a: Quad, b: Quad) -> Quad {
    [a[0] * b[0], a[1] * b[1], a[2] * b[2], a[3] * b[3]]
}

#[inline(always)]
fn add4(a: Quad, b: Quad) -> Quad {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
}

/// a · b + c, lane by lane, rounded once.
#[inline(always)]
fn fma4(a: Quad, b: Quad, c: Quad) -> Quad {
    std::array::from_fn(|l| a[l].mul_add(b[l], c[l]))
}

/// `second[s·k + t]` += Σ_j u_s[j] v_t[j] for every s < t over the first `n_quads` quads of
/// the rows (row s at `s·SUB_QUADS`), each sum taken in quad order. Rows go in pairs, the
/// columns beyond them in tiles of up to four: eight sums stay in registers while the rows
/// stream from cache.
#[inline(always)]
fn add_pair_products(u: &[Quad], v: &[Quad], k: usize, n_quads: usize, second: &mut [Quad]) {
    let rows = Rows { u, v, k, n_quads };
    let mut s = 0;
    while s + 1 < k {
        rows.add_tile::<1, 1>((s, s + 1), second);
        let mut t = s + 2;
        while t < k {
            match k - t {
                1 => rows.add_tile::<2, 1>((s, t), second),
                2 => rows.add_tile::<2, 2>((s, t), second),
                3 => rows.add_tile::<2, 3>((s, t), second),
                _ => rows.add_tile::<2, 4>((s, t), second),
            }
            t += (k - t).min(4);
        }
        s += 2;
    }
}

/// The rows [`add_pair_products`] multiplies.
struct Rows<'a> {
    u: &'a [Quad],
    v: &'a [Quad],
    k: usize,
    n_quads: usize,
}

impl Rows<'_> {
    /// The R × C tile of sums at rows s.., columns t.. .
    #[inline(always)]
    fn add_tile<const R: usize, const C: usize>(
        &self,
        (s, t): (usize, usize),
        second: &mut [Quad],
    ) {
        let (k, n) = (self.k, self.n_quads);
        let us: [&[Quad]; R] = std::array::from_fn(|r| &self.u[(s + r) * SUB_QUADS..][..n]);
        let vs: [&[Quad]; C] = std::array::from_fn(|c| &self.v[(t + c) * SUB_QUADS..][..n]);
        let mut sums: [[Quad; C]; R] =
            std::array::from_fn(|r| std::array::from_fn(|c| second[(s + r) * k + t + c]));
        for j in 0..n {
            for r in 0..R {
                let x = us[r][j];
                for c in 0..C {
                    sums[r][c] = fma4(x, vs[c][j], sums[r][c]);
                }
            }
        }
        for (r, row) in sums.iter().enumerate() {
            second[(s + r) * k + t..][..C].copy_from_slice(row);
        }
    }
}

/// Largest |α| the exponential tables cover (the usual ±5 bounds); beyond, the exact pass.
const TABLE_REACH: f64 = 5.0;

/// Chebyshev nodes per side of the exponential branch.
const TABLE_NODES: usize = 40;

/// N(α) = E_b[δ^α] of one shape systematic on the exponential branch — [inner, 5] with δ⁺ and
/// [−5, −inner] with δ⁻ (inner = 1 for code 4, 0 for code 1) — as Chebyshev series in α with
/// their derivative series. N is a moment generating function there: analytic, so the series
/// converge geometrically; the nodes are exact passes. The tables are kept only if, at points
/// between the nodes, value, first and second derivative reproduce the exact pass to 1e-12,
/// 1e-10 and 1e-8 relative to themselves or to N, whichever is larger (else the exact pass is
/// used everywhere).
#[derive(Clone, Debug)]
struct ExponentialTables {
    sides: [ChebyshevSeries; 2],
}

impl ExponentialTables {
    fn build(
        norm: &ProcessNormalisation,
        parameter: usize,
        inner: f64,
    ) -> Option<ExponentialTables> {
        let mut theta = vec![0.0; parameter + 1];
        let mut exact = |alpha: f64, order: Order| {
            theta[parameter] = alpha;
            let mut out = ShapeIntegral::default();
            norm.exact_pass(&theta, order, &mut out);
            out
        };
        let sides = [(inner, TABLE_REACH), (-TABLE_REACH, -inner)]
            .map(|(lo, hi)| ChebyshevSeries::fit(lo, hi, |a| exact(a, Order::Value).value));
        let tables = ExponentialTables { sides };
        for side in &tables.sides {
            for j in 0..7 {
                let alpha = side.lo + (side.hi - side.lo) * (j as f64 + 0.37) / 7.0;
                let (table, truth) = (side.eval(alpha), exact(alpha, Order::Hessian));
                // Relative to N where a derivative passes through 0.
                let scale = truth.value.abs();
                let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * b.abs().max(scale);
                if !(close(table[0], truth.value, 1e-12)
                    && close(table[1], truth.d1[0], 1e-10)
                    && close(table[2], truth.d2[0], 1e-8))
                {
                    return None;
                }
            }
        }
        Some(tables)
    }

    /// N, dN/dα, d²N/dα² at α, if a table covers it.
    fn eval(&self, alpha: f64) -> Option<[f64; 3]> {
        self.sides
            .iter()
            .find(|s| s.lo <= alpha && alpha <= s.hi && (alpha != 0.0 || s.lo == 0.0))
            .map(|s| s.eval(alpha))
    }
}

/// A Chebyshev series on [lo, hi] with the series of its first two derivatives.
#[derive(Clone, Debug)]
struct ChebyshevSeries {
    lo: f64,
    hi: f64,
    value: Vec<f64>,
    d1: Vec<f64>,
    d2: Vec<f64>,
}

impl ChebyshevSeries {
    /// Interpolates f at [`TABLE_NODES`] Chebyshev nodes of [lo, hi].
    fn fit(lo: f64, hi: f64, mut f: impl FnMut(f64) -> f64) -> ChebyshevSeries {
        let n = TABLE_NODES;
        let angle = |j: usize| std::f64::consts::PI * (j as f64 + 0.5) / n as f64;
        let at: Vec<f64> = (0..n)
            .map(|j| f(0.5 * (lo + hi) + 0.5 * (hi - lo) * angle(j).cos()))
            .collect();
        let value: Vec<f64> = (0..n)
            .map(|k| {
                let c: f64 = (0..n)
                    .map(|j| at[j] * (k as f64 * angle(j)).cos())
                    .sum::<f64>()
                    * 2.0
                    / n as f64;
                if k == 0 {
                    0.5 * c
                } else {
                    c
                }
            })
            .collect();
        let scale = 2.0 / (hi - lo);
        let d1 = derivative(&value, scale);
        let d2 = derivative(&d1, scale);
        ChebyshevSeries {
            lo,
            hi,
            value,
            d1,
            d2,
        }
    }

    fn eval(&self, alpha: f64) -> [f64; 3] {
        let t = (2.0 * alpha - self.lo - self.hi) / (self.hi - self.lo);
        [
            clenshaw(&self.value, t),
            clenshaw(&self.d1, t),
            clenshaw(&self.d2, t),
        ]
    }
}

/// The coefficients of the derivative of Σ c_k T_k(t(α)), dt/dα = `scale`.
fn derivative(c: &[f64], scale: f64) -> Vec<f64> {
    let n = c.len();
    let mut d = vec![0.0; n];
    for k in (1..n).rev() {
        let above = if k + 1 < n { d[k + 1] } else { 0.0 };
        d[k - 1] = above + 2.0 * k as f64 * c[k];
    }
    d[0] *= 0.5;
    d.iter().map(|x| x * scale).collect()
}

/// Σ c_k T_k(t) by Clenshaw's recurrence.
fn clenshaw(c: &[f64], t: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c.iter().skip(1).rev() {
        let b0 = 2.0 * t * b1 - b2 + ck;
        b2 = b1;
        b1 = b0;
    }
    t * b1 - b2 + c[0]
}

/// The weighted averages of the code-4 features (K = 1) or of their products (K = 2) over
/// the MC, where every shape systematic is code 4; `None` otherwise (7^K grows too fast
/// beyond K = 2). Summed in the exact pass's blocks, added in order: the same numbers on every
/// run, rounded like the exact pass.
fn code4_moments(shapes: &[ShapeData], weights: &[f64]) -> Option<Vec<f64>> {
    use crate::model::interpolation::InterpolationCode::Code4;
    if shapes.len() > 2 || shapes.iter().any(|s| s.code != Code4) {
        return None;
    }
    let size = FEATURES.pow(shapes.len() as u32);
    let mut moments = vec![0.0; size];
    let mut block_moments = vec![0.0; size];
    for start in (0..weights.len()).step_by(BLOCK) {
        block_moments.fill(0.0);
        for (i, b) in weights.iter().enumerate().skip(start).take(BLOCK) {
            add_features(shapes, i, *b, &mut block_moments);
        }
        for (m, x) in moments.iter_mut().zip(&block_moments) {
            *m += x;
        }
    }
    Some(moments)
}

/// b φ(x_i) (K = 1) or b φ₀(x_i) φ₁(x_i)ᵀ (K = 2) added to `moments`.
fn add_features(shapes: &[ShapeData], i: usize, b: f64, moments: &mut [f64]) {
    let features = |s: &ShapeData| code4_features(s.variations.event(i));
    let first = features(&shapes[0]);
    match shapes.get(1) {
        None => {
            for (m, x) in moments.iter_mut().zip(first) {
                *m += b * x;
            }
        }
        Some(second) => {
            let second = features(second);
            for (row, x) in moments.chunks_exact_mut(FEATURES).zip(first) {
                let bx = b * x;
                for (m, y) in row.iter_mut().zip(second) {
                    *m += bx * y;
                }
            }
        }
    }
}

fn dot(a: &[f64; FEATURES], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// K = 1: N = w(α)·E_b[φ], and its derivatives with the derivative weights.
fn one_shape_moments(
    w: &[Code4Weights; 3],
    moments: &[f64],
    order: Order,
    out: &mut ShapeIntegral,
) {
    out.value = dot(&w[0].coefficients(), moments);
    if order >= Order::Gradient {
        out.d1[0] = dot(&w[1].coefficients(), moments);
    }
    if order == Order::Hessian {
        out.d2[0] = dot(&w[2].coefficients(), moments);
    }
}

/// K = 2: N = w₀(α₀)ᵀ M w₁(α₁) with M = E_b[φ₀ φ₁ᵀ]; each derivative swaps in the derivative
/// weights of the systematic it acts on.
fn two_shape_moments(
    w0: &[Code4Weights; 3],
    w1: &[Code4Weights; 3],
    moments: &[f64],
    order: Order,
    out: &mut ShapeIntegral,
) {
    let bilinear = |a: &Code4Weights, b: &Code4Weights| -> f64 {
        let (a, b) = (a.coefficients(), b.coefficients());
        (0..FEATURES)
            .map(|i| a[i] * dot(&b, &moments[i * FEATURES..(i + 1) * FEATURES]))
            .sum()
    };
    out.value = bilinear(&w0[0], &w1[0]);
    if order >= Order::Gradient {
        out.d1[0] = bilinear(&w0[1], &w1[0]);
        out.d1[1] = bilinear(&w0[0], &w1[1]);
    }
    if order == Order::Hessian {
        let mixed = bilinear(&w0[1], &w1[1]);
        out.d2[0] = bilinear(&w0[2], &w1[0]);
        out.d2[1] = mixed;
        out.d2[2] = mixed;
        out.d2[3] = bilinear(&w0[0], &w1[2]);
    }
}

/// N_c of every process of one channel, built once per analysis and shared (through an `Arc`)
/// by the observed data, the Asimov sets and every toy drawn from a pool. An empty list means
/// N_c ≡ 1 for every process (hand-made data without MC).
#[derive(Clone, Debug, Default)]
pub struct ChannelNormalisation {
    pub processes: Vec<ProcessNormalisation>,
}

impl ChannelNormalisation {
    /// N of process `c` at θ into `out` ([`ProcessNormalisation::evaluate`]).
    pub fn evaluate(
        &self,
        c: usize,
        theta: &[f64],
        order: Order,
        out: &mut ShapeIntegral,
    ) -> Method {
        match self.processes.get(c) {
            Some(p) => p.evaluate(theta, order, out),
            None => {
                out.reset(0);
                out.value = 1.0;
                Method::NoShapes
            }
        }
    }

    /// N of process `c` at θ (the value only).
    pub fn value(&self, c: usize, theta: &[f64]) -> f64 {
        let mut out = ShapeIntegral::default();
        self.evaluate(c, theta, Order::Value, &mut out);
        out.value
    }

    /// The parameters of process `c`'s shape systematics, in order (empty if it has none).
    pub fn parameters(&self, c: usize) -> impl Iterator<Item = usize> + Clone + '_ {
        self.processes
            .get(c)
            .into_iter()
            .flat_map(|p| p.shapes.iter().map(|s| s.parameter))
    }
}

/// ν̃ = ν/N and, as `order` asks, its gradient ∂ν̃ = (∂ν − ν ∂ℓ)/N (ℓ = ln N, ∂ℓ = ∂N/N)
/// into `grad_out` (dense). ∂ℓ is non-zero only on the process's shape parameters
/// `parameters` (one per shape systematic, in `integral`'s order; repeats add up), so the
/// correction is sparse. The Hessian's terms are [`add_normalisation_curvature`]'s.
pub fn normalised_yield(
    integral: &ShapeIntegral,
    parameters: impl Iterator<Item = usize>,
    order: Order,
    nu: f64,
    grad: &[f64],
    grad_out: &mut [f64],
) -> f64 {
    let inverse = 1.0 / integral.value;
    if order >= Order::Gradient {
        for (o, g) in grad_out.iter_mut().zip(grad) {
            *o = g * inverse;
        }
        for (k, p) in parameters.enumerate() {
            grad_out[p] -= nu * integral.d1[k] * inverse * inverse;
        }
    }
    nu * inverse
}

/// The NLL Hessian's terms in N's derivatives. The extended term keeps ν and the event sums
/// see ν̃, so the Hessian holds ∂²ν − S ∂²ν̃ with S = Σ_i w_i t_c(x_i)/s(x_i) (`in_events`) and
///
/// ```text
/// ∂²ν̃ = (∂²ν − ∂ν ∂ℓᵀ − ∂ℓ ∂νᵀ − ν(∂²ℓ − ∂ℓ ∂ℓᵀ))/N,   ∂²ℓ − ∂ℓ ∂ℓᵀ = ∂²N/N − 2 ∂ℓ ∂ℓᵀ.
/// ```
///
/// The caller adds ∂²ν (1 − S/N) (sparse in ν's own parameters); this adds the rest,
/// S/N (∂ν ∂ℓᵀ + ∂ℓ ∂νᵀ) + S ν/N (∂²N/N − 2 ∂ℓ ∂ℓᵀ), which lives on the rows and columns of
/// the shape parameters only: O(K n) per process, not a dense n × n pass.
pub fn add_normalisation_curvature(
    integral: &ShapeIntegral,
    parameters: impl Iterator<Item = usize> + Clone,
    nu: f64,
    nu_grad: &[f64],
    in_events: f64,
    hessian: &mut [f64],
) {
    let n = nu_grad.len();
    let inverse = 1.0 / integral.value;
    let scale = in_events * inverse;
    let k_shapes = integral.d1.len();
    for (k, p) in parameters.clone().enumerate() {
        let dl = integral.d1[k] * inverse;
        for (j, g) in nu_grad.iter().enumerate() {
            let term = scale * g * dl;
            hessian[j * n + p] += term;
            hessian[p * n + j] += term;
        }
        for (l, q) in parameters.clone().enumerate() {
            let dl_q = integral.d1[l] * inverse;
            let curvature = integral.d2[k * k_shapes + l] * inverse - 2.0 * dl * dl_q;
            hessian[p * n + q] += scale * nu * curvature;
        }
    }
}

/// The fit report's `normalisation` object at θ: per process with shape systematics, the
/// method, N_c(θ) and the method's error — 0 for the exact pass, |N_moments − N_exact pass| at
/// θ (rounding) for the code-4 moments — and the largest error.
pub fn report(
    model: &crate::model::Model,
    channels: &[super::ChannelData],
    theta: &[f64],
) -> Value {
    let mut processes = Vec::new();
    let mut max_error = 0.0f64;
    for (channel, data) in model.channels.iter().zip(channels) {
        for (c, process) in channel.processes.iter().enumerate() {
            let Some(norm) = data.normalisation.processes.get(c) else {
                continue;
            };
            if norm.n_shapes() == 0 {
                continue;
            }
            let (mut fast, mut exact) = (ShapeIntegral::default(), ShapeIntegral::default());
            let method = norm.evaluate(theta, Order::Value, &mut fast);
            let error = if method == Method::ExactPass {
                0.0
            } else {
                norm.exact_pass(theta, Order::Value, &mut exact);
                (fast.value - exact.value).abs()
            };
            max_error = max_error.max(error);
            processes.push(json!({
                "channel": channel.name, "process": process.name,
                "shape_systematics": norm.n_shapes(), "method": method.as_str(),
                "n": fast.value, "error": error,
            }));
        }
    }
    json!({"processes": processes, "max_error": max_error})
}

/// The report's one text line: N_c(θ̂) of each process with shape systematics.
pub fn report_line(report: &Value) -> Option<String> {
    let processes = report["processes"].as_array()?;
    if processes.is_empty() {
        return None;
    }
    let parts: Vec<String> = processes
        .iter()
        .map(|p| {
            format!(
                "{}/{} {:.6} ({})",
                p["channel"].as_str().unwrap_or(""),
                p["process"].as_str().unwrap_or(""),
                p["n"].as_f64().unwrap_or(f64::NAN),
                p["method"].as_str().unwrap_or("")
            )
        })
        .collect();
    Some(format!(
        "shape normalisation N_c(θ̂): {}; max error {:.1e}",
        parts.join(", "),
        report["max_error"].as_f64().unwrap_or(f64::NAN)
    ))
}
