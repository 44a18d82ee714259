//! The event sums of one channel's NLL over a block of events:
//!
//! ```text
//! Σ w ln s,   Σ (w/s) q_a,   Σ (w/s) ∂²s/∂α_p∂α_p',   Σ (w/s²) u_a u_b
//! ```
//!
//! with s = Σ_c ν_c t_c the per-event density, t_c = r_c Π_k I_ck(α_k), q = (t_c; ∂t_c/∂α_k)
//! and u = (t_c; ∂s/∂α_p) — the yields contracted with the shape derivatives per event, so
//! that the Hessian's sums grow with the number P of distinct shape parameters, not with the
//! Σ_c K_c shape systematics of all processes ([`Layout`]).
//!
//! Events go four at a time ([`Quad`]), lane by lane, in sub-blocks of [`SUB`] events whose
//! per-quad rows (densities, q, weights) stay in the L1/L2 cache. For each sub-block:
//! 1. each process adds ν_c t_c to the densities, writes its q rows and (Hessian) adds
//!    ν_c ∂t_c and ν_c ∂²t_c to the rows of ∂s and ∂²s — in one pass with
//!    everything in registers when its shape systematics (up to 15) are of the vectorised
//!    kinds, code 4 inside |α| < 1 and the exponential, mixed or not ([`process_terms`]), a
//!    pass per step otherwise (codes 0, 2 and 4p);
//! 2. each event's ln s, w/s, w/s² and, for a small q, every first-order sum in registers in
//!    one more pass ([`sums_in_one_pass`]); for a large q, rows of weights and a pass per sum;
//! 3. (Hessian) the sums of ∂²s and of u uᵀ ([`hessian_sums`]), the latter in registers for
//!    a small u.
//!
//! The fast and the general forms make the same operations in the same order (tested bit for
//! bit). Sums go into one accumulator per lane (event i into lane i mod 4), added in a fixed
//! order at the end of the block: every bit of the result is the same whatever the vector
//! width the machine offers and whatever the thread count. Multiply-adds are fused exactly
//! where the code says `mul_add` (a single rounding, the same in hardware and in the library
//! routine a CPU without FMA falls back to), and nowhere else.
//!
//! A note for whoever changes this file: the hot loops must inline completely into the
//! AVX2+FMA instance ([`event_block_avx2`]). A function pointer, an array `map`, or a closure
//! the compiler decides not to inline is compiled out of line for the baseline target (fused
//! multiply-adds then become library calls): each has cost 1.5–13× here. Benchmark every
//! change, and look for stray symbols with `perf report`.

use std::cell::RefCell;

use super::data::ChannelData;
use super::Order;
use crate::model::interpolation::{
    Code4Quad, ExponentialQuad, FactorRows, MixedQuad, Quad, QuadFactors, QuadInterpolation,
    ShapeKernel, VariationRun,
};
use crate::vecmath::{ln4, ln4x2, mul_add4};

/// Layout of the per-event vectors whose weighted sums give gradient and Hessian:
/// - q = (t_c for each process; ∂t_c/∂α_k for each shape systematic of each process), whose
///   sums Σ (w/s) q_a give the gradient (and the Hessian's ∂ν̃_c ⊗ ∂t_c terms);
/// - u = (t_c for each process; ∂s/∂α_p = Σ_c ν̃_c ∂t_c/∂α_p for each distinct shape
///   parameter p): ∂s/∂θ_j = Σ_c (∂ν̃_c/∂θ_j) t_c + ∂s/∂α_j is linear in u with coefficients
///   that do not depend on the event, so the Hessian needs Σ (w/s²) u uᵀ — (n_c + P)² / 2
///   sums, not the (n_c + Σ_c K_c)² / 2 of q qᵀ — and Σ (w/s) ∂²s/∂α_p∂α_p' (P(P+1)/2, not
///   Σ_c K_c²): the yields are contracted with the shape terms before the products, per event.
#[derive(Clone, Debug, Default)]
pub(super) struct Layout {
    pub n_processes: usize,
    /// Offset in q of process c's shape derivatives.
    pub shape_offset: Vec<usize>,
    /// The distinct shape parameters (indices in θ), increasing: slot p of u's derivatives.
    pub shape_parameters: Vec<usize>,
    /// The slot in `shape_parameters` of q's entry `n_processes + i` (process by process).
    pub shape_slot: Vec<usize>,
    pub dim: usize,
    /// The length of u: `n_processes + shape_parameters.len()`.
    pub u_dim: usize,
    /// Σ (w/s) ∂²s/∂α_p∂α_p' for p ≤ p' (upper triangle, row by row).
    pub n_second: usize,
}

impl Layout {
    /// Lays out the sums of `data`, reusing this layout's arrays.
    pub fn fill(&mut self, data: &ChannelData) {
        self.n_processes = data.processes.len();
        self.shape_offset.clear();
        self.shape_parameters.clear();
        let mut dim = self.n_processes;
        for p in &data.processes {
            self.shape_offset.push(dim);
            dim += p.shapes.len();
            self.shape_parameters
                .extend(p.shapes.iter().map(|shape| shape.parameter));
        }
        self.shape_parameters.sort_unstable();
        self.shape_parameters.dedup();
        self.shape_slot.clear();
        for shape in data.processes.iter().flat_map(|p| &p.shapes) {
            let slot = self.shape_parameters.binary_search(&shape.parameter);
            self.shape_slot
                .push(slot.expect("every shape parameter has a slot"));
        }
        let n_shape = self.shape_parameters.len();
        self.dim = dim;
        self.u_dim = self.n_processes + n_shape;
        self.n_second = n_shape * (n_shape + 1) / 2;
    }

    /// Sums: [Σ w ln s | Σ w q/s (dim) | Σ w ∂²s/∂α∂α'/s (n_second) | Σ w u uᵀ/s² (upper
    /// triangle)]
    pub fn size(&self, order: Order) -> usize {
        match order {
            Order::Value => 1,
            Order::Gradient => 1 + self.dim,
            Order::Hessian => 1 + self.dim + self.n_second + self.u_dim * (self.u_dim + 1) / 2,
        }
    }

    /// The index among the second-derivative sums of slots p ≤ p'.
    pub fn second_index(&self, p: usize, p2: usize) -> usize {
        p * self.shape_parameters.len() - p * (p + 1) / 2 + p2
    }

    /// The row (in the scratch array of q) of u's entry `a`: ∂s/∂α_p follow q.
    fn u_row(&self, a: usize) -> usize {
        if a < self.n_processes {
            a
        } else {
            self.dim + a - self.n_processes
        }
    }

    /// For process c's shape systematics k ≤ k2: the second-derivative sum that ∂²t_c/∂α_k∂α_k2
    /// goes into, and how many times (2 where k ≠ k2 share a parameter: both orders).
    fn second_of(&self, c: usize, k: usize, k2: usize) -> (usize, f64) {
        let first = self.shape_offset[c] - self.n_processes;
        let (p, p2) = (self.shape_slot[first + k], self.shape_slot[first + k2]);
        let times = if k != k2 && p == p2 { 2.0 } else { 1.0 };
        (self.second_index(p.min(p2), p.max(p2)), times)
    }

    /// The slot of process c's k-th shape systematic.
    fn slot_of(&self, c: usize, k: usize) -> usize {
        self.shape_slot[self.shape_offset[c] - self.n_processes + k]
    }
}

/// The first event of a block (index, density) where the density is not positive.
pub(super) type InvalidEvent = Option<(usize, f64)>;

/// What every block of an evaluation shares: the channel's events, the layout of the sums,
/// the yields ν_c and the shape interpolations prepared at the evaluated α (`kernels[c][k]`
/// for process c's k-th shape systematic).
pub(super) struct BlockInput<'a> {
    pub data: &'a ChannelData,
    pub layout: &'a Layout,
    pub nu: &'a [f64],
    pub kernels: &'a [Vec<ShapeKernel>],
    pub order: Order,
}

/// Events per sub-block: each process's input arrays are read in runs of this length (long
/// sequential runs are what the hardware prefetchers follow), and the sub-block's terms stay
/// in the L1/L2 cache until they are summed.
const SUB: usize = 512;
const SUB_QUADS: usize = SUB / 4;

/// Per-thread working space, reused from one block (and one evaluation) to the next. Every
/// row holds one entry per quad of the sub-block (SUB_QUADS).
#[derive(Default)]
struct Scratch {
    /// The density s; the ratios r_c of the current process.
    density: Vec<Quad>,
    ratio: Vec<Quad>,
    /// q_a (a-major, dim rows) then, at Hessian order, ∂s/∂α_p (a row per shape parameter);
    /// ∂²s/∂α_p∂α_p' (n_second rows); one ∂²t_c/∂α_k∂α_k' and a running product (the
    /// pass-per-step form's two rows).
    q: Vec<Quad>,
    second: Vec<Quad>,
    d2t: Vec<Quad>,
    /// w ln s, w/s and w/s² (0 for events without a valid density).
    log_term: Vec<Quad>,
    w_over_s: Vec<Quad>,
    w_over_s2: Vec<Quad>,
    /// (w/s²) q_a for the current a of the Hessian's outer products.
    weighted_q: Vec<Quad>,
    /// Interpolated factors of the current process's shape systematics: value, d1, d2 rows
    /// for each.
    factors: Vec<Quad>,
    /// Π_{m<k} I_m, then Π_{m>k} I_m, for each shape systematic k of the current process.
    partial: Vec<Quad>,
    /// One accumulator per lane for every sum (`Layout::size`).
    sums: Vec<Quad>,
}

impl Scratch {
    /// Sizes the arrays for this layout. Only the sums need zeroing: every other entry is
    /// written before it is read, so reusing the previous evaluation's arrays as they are
    /// saves clearing tens of kilobytes per evaluation (it matters for small toys).
    fn prepare(&mut self, layout: &Layout, max_k: usize, order: Order) {
        for v in [
            &mut self.density,
            &mut self.ratio,
            &mut self.log_term,
            &mut self.w_over_s,
            &mut self.w_over_s2,
            &mut self.weighted_q,
        ] {
            v.resize(SUB_QUADS, [0.0; 4]);
        }
        self.d2t.resize(2 * SUB_QUADS, [0.0; 4]);
        self.partial.resize(2 * max_k * SUB_QUADS, [0.0; 4]);
        let n_shape = layout.u_dim - layout.n_processes;
        self.q.resize((layout.dim + n_shape) * SUB_QUADS, [0.0; 4]);
        self.second.resize(layout.n_second * SUB_QUADS, [0.0; 4]);
        self.factors.resize(3 * max_k * SUB_QUADS, [0.0; 4]);
        self.sums.clear();
        self.sums.resize(layout.size(order), [0.0; 4]);
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Weighted sums over events `start..end` (`start` a multiple of 4) into `sums`
/// (`Layout::size` of them), and the first event without a valid density.
///
/// On CPUs with AVX2 and FMA the same code is compiled for 4-wide vectors with hardware fused
/// multiply-adds (2-wide otherwise, with the library's exact `fma`). The arithmetic is
/// identical — same operations, same order, same roundings — so the two give the same bits
/// (tested).
pub(super) fn event_block(
    input: &BlockInput<'_>,
    range: (usize, usize),
    sums: &mut [f64],
) -> InvalidEvent {
    SCRATCH.with(|scratch| {
        let scratch = &mut *scratch.borrow_mut();
        #[cfg(target_arch = "x86_64")]
        if crate::vecmath::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { event_block_avx2(input, range, scratch, sums) };
        }
        event_block_portable::<true>(input, range, scratch, sums)
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn event_block_avx2(
    input: &BlockInput<'_>,
    range: (usize, usize),
    scratch: &mut Scratch,
    sums: &mut [f64],
) -> InvalidEvent {
    event_block_portable::<true>(input, range, scratch, sums)
}

/// `ONE_PASS` false keeps every process on the pass-per-step path (the tests' reference for
/// the one-pass path).
#[inline(always)]
fn event_block_portable<const ONE_PASS: bool>(
    input: &BlockInput<'_>,
    (start, end): (usize, usize),
    scratch: &mut Scratch,
    sums: &mut [f64],
) -> InvalidEvent {
    let max_k = input.kernels.iter().map(Vec::len).max().unwrap_or(0);
    scratch.prepare(input.layout, max_k, input.order);
    let mut invalid = None;
    // Sub-blocks of whole quads, then the last few events (fewer than four) on their own, so
    // that only that last quad takes the slower path of a partial quad (`process_terms`).
    // Each lane's sums still receive its events in order, so the bits do not depend on it.
    let whole = start + (end - start) / 4 * 4;
    let sub_blocks = (start..whole)
        .step_by(SUB)
        .map(|i0| (i0, (i0 + SUB).min(whole)));
    for (i0, i1) in sub_blocks.chain((whole < end).then_some((whole, end))) {
        let n_quads = (i1 - i0).div_ceil(4);
        scratch.density[..n_quads].fill([0.0; 4]);
        if input.order == Order::Hessian {
            clear_contracted_rows(input.layout, n_quads, scratch);
        }
        for c in 0..input.data.processes.len() {
            process_terms(input, c, i0, n_quads, scratch, ONE_PASS);
        }
        if !(ONE_PASS && sums_in_one_pass(input, (i0, end), n_quads, scratch, &mut invalid)) {
            per_event_weights_by_pass(input, (i0, end), n_quads, scratch, &mut invalid);
            accumulate(input, n_quads, scratch);
        }
        if input.order == Order::Hessian {
            hessian_sums::<ONE_PASS>(input.layout, n_quads, scratch);
        }
    }
    for (sum, lanes) in sums.iter_mut().zip(&scratch.sums) {
        *sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    }
    invalid
}

/// Zeroes the rows that the processes add their ν̃_c-weighted terms to: ∂s/∂α_p and
/// ∂²s/∂α_p∂α_p'.
#[inline(always)]
fn clear_contracted_rows(layout: &Layout, n_quads: usize, scratch: &mut Scratch) {
    for a in layout.n_processes..layout.u_dim {
        row_mut(&mut scratch.q, layout.u_row(a), n_quads).fill([0.0; 4]);
    }
    for b in 0..layout.n_second {
        row_mut(&mut scratch.second, b, n_quads).fill([0.0; 4]);
    }
}

/// Four consecutive values from `i`, padded with `pad` past the end of the events.
#[inline(always)]
fn load(values: &[f64], i: usize, pad: f64) -> Quad {
    match values.get(i..i + 4) {
        Some(quad) => [quad[0], quad[1], quad[2], quad[3]],
        None => load_last(values, i, pad),
    }
}

/// The last, incomplete quad: out of line, so that the vector loads of all the others stay
/// plain vector loads.
#[cold]
#[inline(never)]
fn load_last(values: &[f64], i: usize, pad: f64) -> Quad {
    std::array::from_fn(|l| values.get(i + l).copied().unwrap_or(pad))
}

#[inline(always)]
fn mul(a: Quad, b: Quad) -> Quad {
    std::array::from_fn(|l| a[l] * b[l])
}

/// The most shape systematics per process of the one-pass path (a real analysis has 5–15).
const MAX_ONE_PASS_K: usize = 15;

/// Adds process c's terms of the sub-block's quads from `i0` to the densities, and fills its
/// q (and second derivatives): in one pass when the process has at most [`MAX_ONE_PASS_K`]
/// shape systematics, each of a [`QuadInterpolation`] kind (code 4 inside |α| < 1, or the
/// exponential: the cases of a fit with codes 4 and 1), the sub-block is whole quads of events
/// and `one_pass` is set; in a pass per step otherwise. Both make the same products in the
/// same order, so they give the same bits.
#[inline(always)]
fn process_terms(
    input: &BlockInput<'_>,
    c: usize,
    i0: usize,
    n_quads: usize,
    scratch: &mut Scratch,
    one_pass: bool,
) {
    let at = (c, i0, n_quads);
    // One kind throughout for K ≤ 3 (the commonest cases: no branch per systematic), the
    // kinds decided per systematic otherwise.
    let done = one_pass
        && match input.kernels[c].len() {
            0 => terms_in_one_pass::<0, Code4Quad>(input, at, scratch),
            1 => {
                terms_in_one_pass::<1, Code4Quad>(input, at, scratch)
                    || terms_in_one_pass::<1, ExponentialQuad>(input, at, scratch)
            }
            2 => {
                terms_in_one_pass::<2, Code4Quad>(input, at, scratch)
                    || terms_in_one_pass::<2, ExponentialQuad>(input, at, scratch)
                    || terms_in_one_pass::<2, MixedQuad>(input, at, scratch)
            }
            3 => {
                terms_in_one_pass::<3, Code4Quad>(input, at, scratch)
                    || terms_in_one_pass::<3, ExponentialQuad>(input, at, scratch)
                    || terms_in_one_pass::<3, MixedQuad>(input, at, scratch)
            }
            4 => terms_in_one_pass::<4, MixedQuad>(input, at, scratch),
            5 => terms_in_one_pass::<5, MixedQuad>(input, at, scratch),
            6 => terms_in_one_pass::<6, MixedQuad>(input, at, scratch),
            7 => terms_in_one_pass::<7, MixedQuad>(input, at, scratch),
            8 => terms_in_one_pass::<8, MixedQuad>(input, at, scratch),
            9 => terms_in_one_pass::<9, MixedQuad>(input, at, scratch),
            10 => terms_in_one_pass::<10, MixedQuad>(input, at, scratch),
            11 => terms_in_one_pass::<11, MixedQuad>(input, at, scratch),
            12 => terms_in_one_pass::<12, MixedQuad>(input, at, scratch),
            13 => terms_in_one_pass::<13, MixedQuad>(input, at, scratch),
            14 => terms_in_one_pass::<14, MixedQuad>(input, at, scratch),
            MAX_ONE_PASS_K => terms_in_one_pass::<MAX_ONE_PASS_K, MixedQuad>(input, at, scratch),
            _ => false,
        };
    if !done {
        process_terms_by_pass(input, c, i0, n_quads, scratch);
    }
}

/// [`one_pass`] at the evaluation's order, for process c's quads from `i0`; false (nothing
/// done) unless the process has K shape systematics, all of kind T, and the events are all
/// there.
#[inline(always)]
fn terms_in_one_pass<const K: usize, T: QuadInterpolation>(
    input: &BlockInput<'_>,
    (c, i0, n_quads): (usize, usize, usize),
    scratch: &mut Scratch,
) -> bool {
    let mut kernels = [T::default(); K];
    for (kind, kernel) in kernels.iter_mut().zip(&input.kernels[c]) {
        match T::of(kernel) {
            Some(k) => *kind = k,
            None => return false,
        }
    }
    let process = &input.data.processes[c];
    let Some(ratio) = process.ratio.get(i0..i0 + 4 * n_quads) else {
        return false;
    };
    let mut shapes = [VariationRun::default(); K];
    for (run, shape) in shapes.iter_mut().zip(&process.shapes) {
        match shape.variations.run(i0, n_quads) {
            Some(events) => *run = events,
            None => return false,
        }
    }
    // Called, not taken as a function pointer: only a direct call is inlined into (and so
    // compiled for) the AVX2+FMA event loop.
    let (k, s) = (&kernels, &shapes);
    match input.order {
        Order::Value => one_pass::<K, T, false, false>(input, c, k, ratio, s, scratch),
        Order::Gradient => one_pass::<K, T, true, false>(input, c, k, ratio, s, scratch),
        Order::Hessian => one_pass::<K, T, true, true>(input, c, k, ratio, s, scratch),
    }
    true
}

/// Process c's terms in one pass over the sub-block, each quad's ratio, factors and products
/// kept in registers; K, the kind of interpolation and which derivatives are made, known at
/// compile time.
#[inline(always)]
fn one_pass<const K: usize, T: QuadInterpolation, const GRADIENT: bool, const HESSIAN: bool>(
    input: &BlockInput<'_>,
    c: usize,
    kernels: &[T; K],
    ratio: &[f64],
    shapes: &[VariationRun<'_>; K],
    scratch: &mut Scratch,
) {
    let nu = [input.nu[c]; 4];
    let layout = input.layout;
    let shape_offset = layout.shape_offset[c];
    // At Hessian order, where ν̃_c ∂t_c/∂α_k goes (the row of ∂s/∂α_p) and where, with which
    // multiple of ν̃_c, ∂²t_c/∂α_k∂α_k2 goes (the row of ∂²s/∂α_p∂α_p'), for k ≤ k2.
    let mut slot = [0; K];
    let mut pair = [[(0, [0.0; 4]); K]; K];
    for (k, (slot, pairs)) in slot.iter_mut().zip(&mut pair).enumerate() {
        if !HESSIAN {
            break;
        }
        *slot = layout.slot_of(c, k);
        for (k2, pair) in pairs.iter_mut().enumerate().skip(k) {
            let (index, times) = layout.second_of(c, k, k2);
            *pair = (index, [times * input.nu[c]; 4]);
        }
    }
    let Scratch {
        density, q, second, ..
    } = scratch;
    // Rows by slices whose lengths the compiler sees, so that the loop has no bounds checks:
    // t_c is row c of q, the ∂t_c/∂α_k rows follow each other from `shape_offset`, the rows
    // of ∂s/∂α_p follow q's.
    let n_quads = (ratio.len() / 4).min(SUB_QUADS);
    let density = &mut density[..n_quads];
    let (t_rows, dt_rows) = q.split_at_mut(shape_offset * SUB_QUADS);
    let t = &mut t_rows[c * SUB_QUADS..][..n_quads];
    let (dt_rows, ds_rows) = dt_rows.split_at_mut(K * SUB_QUADS);
    let ds_rows = &mut ds_rows[(layout.dim - shape_offset - K) * SUB_QUADS..];
    for j in 0..n_quads {
        let r = &ratio[4 * j..4 * j + 4];
        let r = [r[0], r[1], r[2], r[3]];
        let mut f = [QuadFactors::default(); K];
        for k in 0..K {
            f[k] = kernels[k].factors(shapes[k].quad(j), GRADIENT, HESSIAN);
        }
        // t_c = r_c Π_k I_k
        let mut t_j = r;
        for fk in &f {
            t_j = mul(t_j, fk.value);
        }
        t[j] = t_j;
        density[j] = mul_add4(nu, t_j, density[j]);
        // Π_{m<k} I_m and Π_{m>k} I_m: each derivative's product of the other factors in a
        // few multiplications, not a chain of K − 1 (as in `process_terms_by_pass`).
        let mut before = [[1.0; 4]; K];
        let mut after = [[1.0; 4]; K];
        for k in (1..K).filter(|_| GRADIENT) {
            before[k] = mul(before[k - 1], f[k - 1].value);
        }
        for k in (0..K.saturating_sub(1)).rev().filter(|_| GRADIENT) {
            after[k] = mul(after[k + 1], f[k + 1].value);
        }
        // ∂t_c/∂α_k = r_c I'_k Π_{m<k} I_m Π_{m>k} I_m
        for k in (0..K).filter(|_| GRADIENT) {
            let dt = mul(mul(mul(r, f[k].d1), before[k]), after[k]);
            dt_rows[k * SUB_QUADS + j] = dt;
            if HESSIAN {
                let ds = &mut ds_rows[slot[k] * SUB_QUADS + j];
                *ds = mul_add4(nu, dt, *ds);
            }
        }
        // ∂²t_c/∂α_k∂α_k' (as in `process_terms_by_pass`): symmetric, made for k ≤ k' and
        // added, times ν̃_c, to ∂²s/∂α_p∂α_p'.
        for k in (0..K).filter(|_| HESSIAN) {
            let d2t = mul(mul(mul(r, f[k].d2), before[k]), after[k]);
            let (index, times_nu) = pair[k][k];
            let d2s = &mut second[index * SUB_QUADS + j];
            *d2s = mul_add4(times_nu, d2t, *d2s);
            // k < k2: (r_c I'_k Π_{m<k} I_m Π_{k<m<k2} I_m) I'_k2 Π_{m>k2} I_m
            let mut running = mul(mul(r, f[k].d1), before[k]);
            for k2 in k + 1..K {
                let d2t = mul(mul(running, f[k2].d1), after[k2]);
                let (index, times_nu) = pair[k][k2];
                let d2s = &mut second[index * SUB_QUADS + j];
                *d2s = mul_add4(times_nu, d2t, *d2s);
                running = mul(running, f[k2].value);
            }
        }
    }
}

/// [`process_terms`] a step at a time, each step one pass over the sub-block's quads, so that
/// the kind of interpolation and the number of systematics are decided once per sub-block,
/// not per event.
#[inline(always)]
fn process_terms_by_pass(
    input: &BlockInput<'_>,
    c: usize,
    i0: usize,
    n_quads: usize,
    scratch: &mut Scratch,
) {
    let BlockInput {
        data,
        layout,
        nu,
        kernels,
        order,
    } = *input;
    let (gradient, hessian) = (order >= Order::Gradient, order >= Order::Hessian);
    let process = &data.processes[c];
    let k_c = process.shapes.len();
    let Scratch {
        density,
        ratio,
        q,
        second,
        d2t,
        factors,
        partial,
        ..
    } = scratch;
    let ratio = &mut ratio[..n_quads];
    for (j, r) in ratio.iter_mut().enumerate() {
        *r = load(&process.ratio, i0 + 4 * j, 1.0);
    }
    for (k, (shape, kernel)) in process.shapes.iter().zip(&kernels[c]).enumerate() {
        let (value, rest) = factors[3 * k * SUB_QUADS..].split_at_mut(SUB_QUADS);
        let (d1, rest) = rest.split_at_mut(SUB_QUADS);
        let rows = FactorRows {
            value: &mut value[..n_quads],
            d1: gradient.then(|| &mut d1[..n_quads]),
            d2: hessian.then(|| &mut rest[..n_quads]),
        };
        kernel.eval_quads(&shape.variations, i0, rows);
    }
    let factor = |k: usize, derivative: usize| row(factors, 3 * k + derivative, n_quads);
    let value = |k| factor(k, 0);
    // t_c = r_c Π_k I_k
    let t = row_mut(q, c, n_quads);
    t.copy_from_slice(ratio);
    for k in 0..k_c {
        scale(t, value(k));
    }
    for (s, t) in density[..n_quads].iter_mut().zip(t.iter()) {
        *s = mul_add4([nu[c]; 4], *t, *s);
    }
    if !gradient {
        return;
    }
    // Π_{m<k} I_m and Π_{m>k} I_m (as in `one_pass`)
    let (before, after) = partial[..2 * k_c * SUB_QUADS].split_at_mut(k_c * SUB_QUADS);
    for k in 0..k_c {
        let (done, rest) = before.split_at_mut(k * SUB_QUADS);
        let product = &mut rest[..n_quads];
        match k.checked_sub(1) {
            None => product.fill([1.0; 4]),
            Some(m) => {
                product.copy_from_slice(&done[m * SUB_QUADS..][..n_quads]);
                scale(product, value(m));
            }
        }
    }
    for k in (0..k_c).rev() {
        let (rest, done) = after.split_at_mut((k + 1) * SUB_QUADS);
        let product = &mut rest[k * SUB_QUADS..][..n_quads];
        if k + 1 == k_c {
            product.fill([1.0; 4]);
        } else {
            product.copy_from_slice(&done[..n_quads]);
            scale(product, value(k + 1));
        }
    }
    let before = |k: usize| row(before, k, n_quads);
    let after = |k: usize| row(after, k, n_quads);
    // ∂t_c/∂α_k = r_c I'_k Π_{m<k} I_m Π_{m>k} I_m
    for k in 0..k_c {
        let dt = row_mut(q, layout.shape_offset[c] + k, n_quads);
        dt.copy_from_slice(ratio);
        scale(dt, factor(k, 1));
        scale(dt, before(k));
        scale(dt, after(k));
    }
    if !hessian {
        return;
    }
    // ∂s/∂α_p += ν̃_c ∂t_c/∂α_k, the ∂s/∂α_p rows following q's.
    let nu_c = [nu[c]; 4];
    let (q, ds_rows) = q.split_at_mut(layout.dim * SUB_QUADS);
    for k in 0..k_c {
        let dt = row(q, layout.shape_offset[c] + k, n_quads);
        add_scaled(row_mut(ds_rows, layout.slot_of(c, k), n_quads), nu_c, dt);
    }
    // ∂²t_c/∂α_k∂α_k' = r_c I''_k Π_{m≠k} I_m (k = k'), r_c I'_k I'_k' Π_{m≠k,k'} I_m:
    // symmetric, made for k ≤ k' and added, times ν̃_c, to ∂²s/∂α_p∂α_p'.
    let (d2t, running) = d2t.split_at_mut(SUB_QUADS);
    let (d2t, running) = (&mut d2t[..n_quads], &mut running[..n_quads]);
    for k in 0..k_c {
        d2t.copy_from_slice(ratio);
        scale(d2t, factor(k, 2));
        scale(d2t, before(k));
        scale(d2t, after(k));
        let (index, times) = layout.second_of(c, k, k);
        add_scaled(row_mut(second, index, n_quads), [times * nu[c]; 4], d2t);
        // k < k2: (r_c I'_k Π_{m<k} I_m Π_{k<m<k2} I_m) I'_k2 Π_{m>k2} I_m
        running.copy_from_slice(ratio);
        scale(running, factor(k, 1));
        scale(running, before(k));
        for k2 in k + 1..k_c {
            d2t.copy_from_slice(running);
            scale(d2t, factor(k2, 1));
            scale(d2t, after(k2));
            let (index, times) = layout.second_of(c, k, k2);
            add_scaled(row_mut(second, index, n_quads), [times * nu[c]; 4], d2t);
            scale(running, value(k2));
        }
    }
}

/// y ← a·x + y, quad by quad (fused).
#[inline(always)]
fn add_scaled(y: &mut [Quad], a: Quad, x: &[Quad]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = mul_add4(a, *x, *y);
    }
}

/// [`row`], to write.
#[inline(always)]
fn row_mut(v: &mut [Quad], a: usize, n_quads: usize) -> &mut [Quad] {
    &mut v[a * SUB_QUADS..][..n_quads]
}

/// x ← x·f, quad by quad.
#[inline(always)]
fn scale(x: &mut [Quad], f: &[Quad]) {
    for (x, f) in x.iter_mut().zip(f) {
        *x = mul(*x, *f);
    }
}

/// Four densities made safe to take the logarithm of, and the first lane that was not.
struct Densities {
    value: Quad,
    invalid: Option<(usize, f64)>,
}

/// A density the likelihood can take the logarithm of: positive, finite and normal (false for
/// NaN as well; a density below 2.2e-308 counts as zero).
#[inline(always)]
fn is_valid(s: f64) -> bool {
    (f64::MIN_POSITIVE..f64::INFINITY).contains(&s)
}

/// Events without a valid density (and the padding lanes past the end) get density 1 and
/// weight 0, so they add exactly nothing; a real invalid event is reported, and the evaluation
/// as a whole is then invalid.
#[inline(always)]
fn sanitise(density: Quad, weight: Quad, lanes: usize) -> (Densities, Quad) {
    let mut out = Densities {
        value: density,
        invalid: None,
    };
    let mut weight = weight;
    if density.iter().all(|&s| is_valid(s)) {
        return (out, weight);
    }
    for l in 0..4 {
        if !is_valid(density[l]) {
            if l < lanes && out.invalid.is_none() {
                out.invalid = Some((l, density[l]));
            }
            out.value[l] = 1.0;
            weight[l] = 0.0;
        }
    }
    (out, weight)
}

/// The rows of w ln s, w/s and w/s² of the sub-block's quads from `i0` (for [`accumulate`]),
/// two quads at a time with their logarithms side by side ([`ln4x2`]).
#[inline(always)]
fn per_event_weights_by_pass(
    input: &BlockInput<'_>,
    (i0, end): (usize, usize),
    n_quads: usize,
    scratch: &mut Scratch,
    invalid: &mut InvalidEvent,
) {
    for pair in 0..n_quads / 2 {
        let (j, k) = (2 * pair, 2 * pair + 1);
        let (w_j, s_j) = checked_quad(input, (i0 + 4 * j, end), scratch.density[j], invalid);
        let (w_k, s_k) = checked_quad(input, (i0 + 4 * k, end), scratch.density[k], invalid);
        let [ln_j, ln_k] = ln4x2([s_j, s_k]);
        per_event_weights(input.order, j, (w_j, s_j, ln_j), scratch);
        per_event_weights(input.order, k, (w_k, s_k, ln_k), scratch);
    }
    if n_quads % 2 == 1 {
        let j = n_quads - 1;
        let (w_j, s_j) = checked_quad(input, (i0 + 4 * j, end), scratch.density[j], invalid);
        per_event_weights(input.order, j, (w_j, s_j, ln4(s_j)), scratch);
    }
}

/// w ln s, w/s and w/s² of the four events of quad j, from their weights, densities and the
/// densities' logarithms.
#[inline(always)]
fn per_event_weights(
    order: Order,
    j: usize,
    (weight, density, ln_density): (Quad, Quad, Quad),
    scratch: &mut Scratch,
) {
    scratch.log_term[j] = mul(weight, ln_density);
    if order == Order::Value {
        return;
    }
    let ws: Quad = std::array::from_fn(|l| weight[l] / density[l]);
    scratch.w_over_s[j] = ws;
    if order == Order::Hessian {
        scratch.w_over_s2[j] = std::array::from_fn(|l| ws[l] / density[l]);
    }
}

/// Adds the sub-block's terms to the per-lane sums: one sum at a time over the sub-block's
/// quads, so that its accumulator stays in a register (the additions into each lane still
/// come in event order).
#[inline(always)]
fn accumulate(input: &BlockInput<'_>, n_quads: usize, scratch: &mut Scratch) {
    let Scratch {
        q,
        log_term,
        w_over_s,
        sums,
        ..
    } = scratch;
    sum_into(&mut sums[0], log_term[..n_quads].iter().copied());
    if input.order == Order::Value {
        return;
    }
    let dim = input.layout.dim;
    let ws = &w_over_s[..n_quads];
    let first = &mut sums[1..1 + dim];
    for (a, acc) in first.iter_mut().enumerate() {
        let qa = row(q, a, n_quads);
        sum_into(acc, ws.iter().zip(qa).map(|(w, x)| mul(*w, *x)));
    }
}

/// Adds the sub-block's Hessian terms to the per-lane sums: Σ (w/s) ∂²s/∂α_p∂α_p' and
/// Σ (w/s²) u_a u_b (upper triangle, row by row, as `Layout::size` counts them) — the latter
/// with all its accumulators in registers for a u of at most [`MAX_REGISTER_DIM`] entries
/// where `ONE_PASS` is set, a pass per sum otherwise: the same products added in the same
/// order.
#[inline(always)]
fn hessian_sums<const ONE_PASS: bool>(layout: &Layout, n_quads: usize, scratch: &mut Scratch) {
    let Scratch {
        q,
        second,
        w_over_s,
        w_over_s2,
        weighted_q,
        sums,
        ..
    } = scratch;
    let (second_sums, outer) = sums[1 + layout.dim..].split_at_mut(layout.n_second);
    second_derivative_sums(second, &w_over_s[..n_quads], second_sums);
    let ws2 = &w_over_s2[..n_quads];
    let u = |a: usize| row(q, layout.u_row(a), n_quads);
    // Called, not through a function pointer, to stay inlined in the AVX2+FMA loop.
    if ONE_PASS {
        match layout.u_dim {
            1 => return outer_sums::<1>(&std::array::from_fn(u), ws2, outer),
            2 => return outer_sums::<2>(&std::array::from_fn(u), ws2, outer),
            3 => return outer_sums::<3>(&std::array::from_fn(u), ws2, outer),
            4 => return outer_sums::<4>(&std::array::from_fn(u), ws2, outer),
            5 => return outer_sums::<5>(&std::array::from_fn(u), ws2, outer),
            _ => {}
        }
    }
    let weighted_u = &mut weighted_q[..n_quads];
    let mut slots = outer.iter_mut();
    for a in 0..layout.u_dim {
        for (y, (w, x)) in weighted_u.iter_mut().zip(ws2.iter().zip(u(a))) {
            *y = mul(*w, *x);
        }
        for (b, acc) in (a..layout.u_dim).zip(slots.by_ref()) {
            sum_into(acc, weighted_u.iter().zip(u(b)).map(|(y, x)| mul(*y, *x)));
        }
    }
}

/// Σ (w/s) ∂²t into `sums`, one row of second derivatives at a time.
#[inline(always)]
fn second_derivative_sums(second: &[Quad], ws: &[Quad], sums: &mut [Quad]) {
    for (b, acc) in sums.iter_mut().enumerate() {
        let d2t = row(second, b, ws.len());
        sum_into(acc, ws.iter().zip(d2t).map(|(w, x)| mul(*w, *x)));
    }
}

/// The weights and densities of the quad of events from `i` (of a block ending at `end`),
/// made safe by [`sanitise`]; the first real event whose density was not valid is noted in
/// `invalid`.
#[inline(always)]
fn checked_quad(
    input: &BlockInput<'_>,
    (i, end): (usize, usize),
    density: Quad,
    invalid: &mut InvalidEvent,
) -> (Quad, Quad) {
    let weight = load(&input.data.weights, i, 0.0);
    let (density, weight) = sanitise(density, weight, (end - i).min(4));
    if let Some((l, s)) = density.invalid {
        invalid.get_or_insert((i + l, s));
    }
    (weight, density.value)
}

/// The largest q whose sums [`one_pass_sums`] keeps in registers (D gradient accumulators),
/// and the largest u whose D(D+1)/2 outer sums [`outer_sums`] does (15 for D = 5, about what
/// the 16 vector registers and the L1 cache's fast stack slots take without slowing down).
const MAX_REGISTER_DIM: usize = 5;

/// [`one_pass_sums`] where it applies — at value order always, at gradient and Hessian order
/// for a q of at most [`MAX_REGISTER_DIM`] entries — true if done (the Hessian's own sums
/// follow in [`hessian_sums`]).
#[inline(always)]
fn sums_in_one_pass(
    input: &BlockInput<'_>,
    range: (usize, usize),
    n_quads: usize,
    scratch: &mut Scratch,
    invalid: &mut InvalidEvent,
) -> bool {
    let at = (input, range, n_quads);
    // Called, not through a function pointer, to stay inlined in the AVX2+FMA loop.
    match (input.order, input.layout.dim) {
        (Order::Value, _) => one_pass_sums::<0, false, false>(at, scratch, invalid),
        (Order::Gradient, 1) => one_pass_sums::<1, true, false>(at, scratch, invalid),
        (Order::Gradient, 2) => one_pass_sums::<2, true, false>(at, scratch, invalid),
        (Order::Gradient, 3) => one_pass_sums::<3, true, false>(at, scratch, invalid),
        (Order::Gradient, 4) => one_pass_sums::<4, true, false>(at, scratch, invalid),
        (Order::Gradient, 5) => one_pass_sums::<5, true, false>(at, scratch, invalid),
        (Order::Hessian, 1) => one_pass_sums::<1, true, true>(at, scratch, invalid),
        (Order::Hessian, 2) => one_pass_sums::<2, true, true>(at, scratch, invalid),
        (Order::Hessian, 3) => one_pass_sums::<3, true, true>(at, scratch, invalid),
        (Order::Hessian, 4) => one_pass_sums::<4, true, true>(at, scratch, invalid),
        (Order::Hessian, 5) => one_pass_sums::<5, true, true>(at, scratch, invalid),
        _ => return false,
    }
    true
}

/// The sub-block's per-event weights (w ln s, w/s and, with `HESSIAN`, the rows of w/s and
/// w/s² that [`hessian_sums`] reads) and their sums Σ w ln s, Σ (w/s) q_a in one pass over
/// its quads for a q of D entries known at compile time: every accumulator in a
/// register, and the logarithms' long chains of dependent operations interleaved with the
/// sums' independent ones. The same products added in the same order as
/// [`per_event_weights`] and [`accumulate`], so the same bits.
#[inline(always)]
fn one_pass_sums<const D: usize, const GRADIENT: bool, const HESSIAN: bool>(
    (input, (i0, end), n_quads): (&BlockInput<'_>, (usize, usize), usize),
    scratch: &mut Scratch,
    invalid: &mut InvalidEvent,
) {
    let Scratch {
        density,
        q,
        w_over_s,
        w_over_s2,
        sums,
        ..
    } = scratch;
    let n_quads = n_quads.min(SUB_QUADS);
    let density = &density[..n_quads];
    let ws_row = &mut w_over_s[..n_quads];
    let ws2_row = &mut w_over_s2[..n_quads];
    let rows: [&[Quad]; D] = std::array::from_fn(|a| row(q, a, n_quads));
    let (log_sum, rest) = sums.split_at_mut(1);
    let first = &mut rest[..D];
    let mut acc = QSums::<D, HESSIAN> {
        log_term: log_sum[0],
        gradient: [[0.0; 4]; D],
    };
    acc.gradient.copy_from_slice(first);
    // Quads two at a time, their logarithms side by side ([`ln4x2`]); each quad's terms are
    // then added in order, so the bits are those of one quad at a time.
    let pairs = n_quads / 2;
    for pair in 0..pairs {
        let (j, k) = (2 * pair, 2 * pair + 1);
        // Functions, not closures: a closure here is compiled out of line, without AVX2.
        let (w_j, s_j) = checked_quad(input, (i0 + 4 * j, end), density[j], invalid);
        let (w_k, s_k) = checked_quad(input, (i0 + 4 * k, end), density[k], invalid);
        let [ln_j, ln_k] = ln4x2([s_j, s_k]);
        let out_j = (&mut ws_row[j], &mut ws2_row[j]);
        acc.add::<GRADIENT>((w_j, s_j, ln_j), q_row_quad(&rows, j), out_j);
        let out_k = (&mut ws_row[k], &mut ws2_row[k]);
        acc.add::<GRADIENT>((w_k, s_k, ln_k), q_row_quad(&rows, k), out_k);
    }
    if n_quads % 2 == 1 {
        let j = n_quads - 1;
        let (w_j, s_j) = checked_quad(input, (i0 + 4 * j, end), density[j], invalid);
        let out = (&mut ws_row[j], &mut ws2_row[j]);
        acc.add::<GRADIENT>((w_j, s_j, ln4(s_j)), q_row_quad(&rows, j), out);
    }
    log_sum[0] = acc.log_term;
    first.copy_from_slice(&acc.gradient);
}

/// Σ (w/s²) u_a u_b over the sub-block (upper triangle, row by row), all D(D+1)/2
/// accumulators in registers: a pass of its own after [`one_pass_sums`]'s main one, which
/// with these accumulators as well would run out of registers.
#[inline(always)]
fn outer_sums<const D: usize>(rows: &[&[Quad]; D], ws2: &[Quad], outer: &mut [Quad]) {
    let mut sums = [[0.0; 4]; MAX_OUTER];
    sums[..outer.len()].copy_from_slice(outer);
    for (j, w) in ws2.iter().enumerate() {
        let q = q_row_quad(rows, j);
        let mut slot = 0;
        for (a, q_a) in q.iter().enumerate() {
            let y = mul(*w, *q_a);
            for q_b in &q[a..] {
                add(&mut sums[slot], mul(y, *q_b));
                slot += 1;
            }
        }
    }
    outer.copy_from_slice(&sums[..outer.len()]);
}

const MAX_OUTER: usize = MAX_REGISTER_DIM * (MAX_REGISTER_DIM + 1) / 2;

/// The running sums of [`one_pass_sums`]'s main pass, lane by lane: Σ w ln s, Σ (w/s) q_a.
struct QSums<const D: usize, const H: bool> {
    log_term: Quad,
    gradient: [Quad; D],
}

impl<const D: usize, const H: bool> QSums<D, H> {
    /// Adds one quad's terms, from its weights, densities and their logarithms and its q;
    /// with `H`, writes its w/s and w/s² to `rows_out` (for the second-derivative and outer
    /// sums).
    #[inline(always)]
    fn add<const GRADIENT: bool>(
        &mut self,
        (weight, s, ln_s): (Quad, Quad, Quad),
        q: [Quad; D],
        rows_out: (&mut Quad, &mut Quad),
    ) {
        add(&mut self.log_term, mul(weight, ln_s));
        if !GRADIENT {
            return;
        }
        let ws: Quad = std::array::from_fn(|l| weight[l] / s[l]);
        for (sum, q_a) in self.gradient.iter_mut().zip(&q) {
            add(sum, mul(ws, *q_a));
        }
        if H {
            *rows_out.0 = ws;
            *rows_out.1 = std::array::from_fn(|l| ws[l] / s[l]);
        }
    }
}

/// Quad j of each of the rows.
#[inline(always)]
fn q_row_quad<const D: usize>(rows: &[&[Quad]; D], j: usize) -> [Quad; D] {
    std::array::from_fn(|a| rows[a][j])
}

/// The first `n_quads` quads of row `a` of an a-major scratch array.
#[inline(always)]
fn row(v: &[Quad], a: usize, n_quads: usize) -> &[Quad] {
    &v[a * SUB_QUADS..][..n_quads]
}

/// acc += Σ terms, lane by lane in order, with the running sum in a register.
#[inline(always)]
fn sum_into(acc: &mut Quad, terms: impl Iterator<Item = Quad>) {
    let mut running = *acc;
    for x in terms {
        add(&mut running, x);
    }
    *acc = running;
}

#[inline(always)]
fn add(acc: &mut Quad, x: Quad) {
    for (a, x) in acc.iter_mut().zip(x) {
        *a += x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::likelihood::data::{ProcessData, ShapeData};
    use crate::model::interpolation::{InterpolationCode, ShapeVariations};

    use InterpolationCode::{Code1, Code2, Code4};

    /// Three processes with a code-4 and a code-2 shape systematic each.
    const MIXED: &[&[InterpolationCode]] = &[&[Code4, Code2], &[Code4, Code2], &[Code4, Code2]];
    /// Processes with 0, 1 and 3 code-4 systematics (the one-pass path inside |α| < 1), and
    /// one with a code-2 systematic (the pass-per-step path).
    const ONE_PASS: &[&[InterpolationCode]] =
        &[&[], &[Code4], &[Code4, Code4, Code4], &[Code4, Code2]];
    /// A q of five entries (its sums in registers), and of two.
    const SMALL: &[&[InterpolationCode]] = &[&[], &[Code4], &[Code4]];
    /// K = 4 and K = 10 (the one-pass path at any K; kinds mixed where some α lie beyond ±1),
    /// and codes 4 and 1 in one process (kinds mixed inside ±1 too).
    const WIDE: &[&[InterpolationCode]] = &[&[Code4; 4], &[Code4; 10]];
    const MIXED_CODES: &[&[InterpolationCode]] =
        &[&[Code4, Code1, Code4], &[Code1, Code4, Code4, Code1, Code4]];
    const TINY: &[&[InterpolationCode]] = &[&[Code2]];
    /// K = 6 and 7 with codes 4 and 1 (the one-pass path) and a code-2 process (a pass per
    /// step) on the same three parameters, each of them more than once within a process: the
    /// contraction of the yields with ∂t and ∂²t into ∂s and ∂²s.
    const SHARED: &[&[InterpolationCode]] = &[
        &[Code4, Code1, Code4, Code1, Code4, Code4],
        &[Code1, Code4, Code4, Code4, Code1, Code4, Code4],
        &[Code2, Code4, Code2],
    ];

    /// `n` events whose values come from a fixed sequence; process c has a shape systematic of
    /// code `codes[c][k]` on parameter 1 + k mod 3 (systematics beyond the third share one).
    fn channel(n: usize, codes: &[&[InterpolationCode]]) -> ChannelData {
        let mut state = 0x9e3779b97f4a7c15_u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let processes = codes
            .iter()
            .enumerate()
            .map(|(c, codes)| ProcessData {
                nominal_yield: 100.0 * (c + 1) as f64,
                ratio: (0..n).map(|_| 0.2 + 1.6 * next()).collect(),
                shapes: codes
                    .iter()
                    .enumerate()
                    .map(|(k, &code)| {
                        let up: Vec<f64> = (0..n).map(|_| 0.9 + 0.2 * next()).collect();
                        let down: Vec<f64> = (0..n).map(|_| 0.9 + 0.2 * next()).collect();
                        ShapeData {
                            parameter: 1 + k % 3,
                            code,
                            variations: ShapeVariations::from_ratios(&up, &down),
                        }
                    })
                    .collect(),
            })
            .collect();
        ChannelData {
            name: "test".into(),
            weights: (0..n).map(|_| next()).collect(),
            processes,
            mc_weights: None,
            normalisation: Default::default(),
        }
    }

    /// The sums of `data`'s events at θ = (μ, α_0, α_1, α_2) and `order`, by `block`.
    fn sums_by(
        data: &ChannelData,
        theta: &[f64; 4],
        order: Order,
        block: impl Fn(&BlockInput<'_>, (usize, usize), &mut [f64]),
    ) -> Vec<u64> {
        let mut layout = Layout::default();
        layout.fill(data);
        let kernels = data.shape_kernels(theta);
        let input = BlockInput {
            data,
            layout: &layout,
            nu: &[50.0, 20.0, -3.0, 7.0][..data.processes.len()],
            kernels: &kernels,
            order,
        };
        let mut sums = vec![0.0; layout.size(order)];
        block(&input, (0, data.weights.len()), &mut sums);
        assert!(sums.iter().all(|x| x.is_finite()));
        sums.iter().map(|x| x.to_bits()).collect()
    }

    /// θ inside |α| < 1 for every α, outside for one of them, and outside for all.
    const THETAS: [[f64; 4]; 3] = [
        [1.0, 0.3, -0.7, 0.9],
        [1.0, 1.4, 0.2, -0.5],
        [1.0, 1.4, -1.2, 2.0],
    ];
    const ORDERS: [Order; 3] = [Order::Value, Order::Gradient, Order::Hessian];

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_widths_give_identical_bits() {
        if !crate::vecmath::has_avx2_fma() {
            return;
        }
        for (data, theta, order) in cases(
            &[MIXED, ONE_PASS, SMALL, WIDE, MIXED_CODES, SHARED],
            &[1001],
        ) {
            let portable = sums_by(&data, &theta, order, |input, range, sums| {
                event_block_portable::<true>(input, range, &mut Scratch::default(), sums);
            });
            let avx2 = sums_by(&data, &theta, order, |input, range, sums| {
                // SAFETY: AVX2 and FMA support checked above.
                unsafe { event_block_avx2(input, range, &mut Scratch::default(), sums) };
            });
            assert_eq!(portable, avx2, "{order:?} at θ = {theta:?}");
        }
    }

    #[test]
    fn one_pass_gives_the_bits_of_a_pass_per_step() {
        // 1001 events: a partial last quad; 2052: a second, whole-quad sub-block.
        for (data, theta, order) in cases(
            &[ONE_PASS, SMALL, TINY, WIDE, MIXED_CODES, SHARED],
            &[1001, 2052],
        ) {
            let one_pass = sums_by(&data, &theta, order, |input, range, sums| {
                event_block(input, range, sums);
            });
            let by_pass = sums_by(&data, &theta, order, |input, range, sums| {
                event_block_portable::<false>(input, range, &mut Scratch::default(), sums);
            });
            assert_eq!(one_pass, by_pass, "{order:?} at θ = {theta:?}");
        }
    }

    /// Every channel layout × event count × θ × order.
    fn cases(
        layouts: &[&[&[InterpolationCode]]],
        counts: &[usize],
    ) -> Vec<(ChannelData, [f64; 4], Order)> {
        let mut out = Vec::new();
        for codes in layouts {
            for &n in counts {
                for theta in THETAS {
                    for order in ORDERS {
                        out.push((channel(n, codes), theta, order));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn invalid_density_names_the_first_bad_event() {
        for (codes, order) in [MIXED, SMALL]
            .into_iter()
            .flat_map(|codes| ORDERS.map(|order| (codes, order)))
        {
            let mut data = channel(1001, codes);
            for process in &mut data.processes {
                process.ratio[594] = 0.0;
                process.ratio[599] = -1.0;
            }
            let mut layout = Layout::default();
            layout.fill(&data);
            let kernels = data.shape_kernels(&[1.0, 0.1, 0.1]);
            let input = BlockInput {
                data: &data,
                layout: &layout,
                nu: &[1.0, 1.0, 1.0],
                kernels: &kernels,
                order,
            };
            let mut sums = vec![0.0; layout.size(order)];
            let invalid = event_block(&input, (0, 1001), &mut sums);
            assert_eq!(invalid.map(|(i, _)| i), Some(594), "{order:?}");
            assert!(sums.iter().all(|x| x.is_finite()));
        }
    }
}
