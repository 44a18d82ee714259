//! A channel's pooled MC laid out for drawing toys: where `nsbi toys` spent most of its time.
//!
//! # Why
//!
//! A toy of ~2 000 events drawn from a pool of 3·10⁵ touches ~2 000 random places of the pool.
//! Drawn from the column-wise pool ([`ChannelData`]), every event costs two cache misses in the
//! alias table (its odds and its alias are separate arrays) and one per per-event column it
//! gathers (a ratio per process, four shape quantities per shape systematic: seven for the
//! example) — on the example two thirds of `nsbi toys`' time, more than the two fits of each
//! toy. Here each pool event is one row of whole cache lines holding every input the likelihood
//! reads, and the alias table holds odds and alias side by side: two misses per drawn event,
//! which the CPU overlaps because the draw first takes all of a toy's random numbers and only
//! then looks the events up.
//!
//! # Same toys
//!
//! [`AliasTable`] is Walker's alias method exactly as `rand_distr::WeightedAliasIndex` 0.5
//! builds and samples it (the same table from the same weights, the same random numbers in the
//! same order: a candidate index, then a uniform number below the weight sum), so a seed gives
//! the toys it gave before; `tests/toy_pool.rs` checks both against the `rand_distr` sampler.

use rand::distr::Uniform;
use rand::Rng;

use crate::likelihood::data::{ChannelData, ProcessData, ShapeData};
use crate::model::interpolation::ShapeVariations;

/// Walker's alias table over the events of a pool (see the module documentation).
pub struct AliasTable {
    entries: Vec<AliasEntry>,
    uniform_index: Uniform<u32>,
    uniform_within_weight_sum: Uniform<f64>,
}

/// One event's column of the alias table: kept with probability `odds / weight sum`, else
/// replaced by `alias`.
#[derive(Clone, Copy)]
struct AliasEntry {
    odds: f64,
    alias: u32,
}

impl AliasTable {
    /// The table of `weights` (finite, non-negative); `None` when they sum to 0, or when there
    /// are none or more than `u32::MAX`, or when one exceeds `f64::MAX / n` (the
    /// `WeightedAliasIndex` refusals).
    pub fn new(weights: &[f64]) -> Option<AliasTable> {
        let n = u32::try_from(weights.len()).ok().filter(|&n| n > 0)?;
        let scale = f64::from(n);
        let largest = f64::MAX / scale;
        if !weights.iter().all(|&w| (0.0..=largest).contains(&w)) {
            return None;
        }
        let weight_sum = pairwise_sum(weights).min(f64::MAX);
        if weight_sum == 0.0 {
            return None;
        }
        let mut odds: Vec<f64> = weights.iter().map(|&w| (w * scale).min(f64::MAX)).collect();
        // Two intrusive stacks (small: odds below the sum; big: the others) threaded through
        // the alias array, as `WeightedAliasIndex` keeps them; the pairing order decides the
        // table, so it is theirs exactly.
        let mut aliases = vec![0u32; n as usize];
        let (mut smalls, mut bigs) = (u32::MAX, u32::MAX);
        let push = |aliases: &mut [u32], head: &mut u32, i: u32| {
            aliases[i as usize] = *head;
            *head = i;
        };
        let pop = |aliases: &[u32], head: &mut u32| -> u32 {
            let popped = *head;
            *head = aliases[popped as usize];
            popped
        };
        for (i, &o) in odds.iter().enumerate() {
            if o < weight_sum {
                push(&mut aliases, &mut smalls, i as u32);
            } else {
                push(&mut aliases, &mut bigs, i as u32);
            }
        }
        while smalls != u32::MAX && bigs != u32::MAX {
            let s = pop(&aliases, &mut smalls);
            let b = pop(&aliases, &mut bigs);
            aliases[s as usize] = b;
            odds[b as usize] = odds[b as usize] - weight_sum + odds[s as usize];
            if odds[b as usize] < weight_sum {
                push(&mut aliases, &mut smalls, b);
            } else {
                push(&mut aliases, &mut bigs, b);
            }
        }
        for head in [&mut smalls, &mut bigs] {
            while *head != u32::MAX {
                odds[pop(&aliases, head) as usize] = weight_sum;
            }
        }
        Some(AliasTable {
            entries: odds
                .into_iter()
                .zip(aliases)
                .map(|(odds, alias)| AliasEntry { odds, alias })
                .collect(),
            uniform_index: Uniform::new(0, n).ok()?,
            uniform_within_weight_sum: Uniform::new(0.0, weight_sum).ok()?,
        })
    }

    /// `n` events drawn with replacement, in drawn order, into `indices` (cleared first).
    pub fn draw_into<R: Rng + ?Sized>(&self, rng: &mut R, n: usize, indices: &mut Vec<usize>) {
        // The random numbers first (their order is the sampler's), then the look-ups, which no
        // longer wait on each other.
        let draws: Vec<(u32, f64)> = (0..n)
            .map(|_| {
                let candidate = rng.sample(self.uniform_index);
                (candidate, rng.sample(self.uniform_within_weight_sum))
            })
            .collect();
        indices.clear();
        indices.extend(draws.iter().map(|&(candidate, u)| {
            let entry = self.entries[candidate as usize];
            if u < entry.odds {
                candidate as usize
            } else {
                entry.alias as usize
            }
        }));
    }
}

/// The sum `WeightedAliasIndex` takes of the weights (pairwise, in halves down to 32 values):
/// the table depends on it to the last bit.
fn pairwise_sum(values: &[f64]) -> f64 {
    if values.len() <= 32 {
        values.iter().sum()
    } else {
        let (a, b) = values.split_at(values.len() / 2);
        pairwise_sum(a) + pairwise_sum(b)
    }
}

/// One cache line of a [`PoolRows`] table.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct CacheLine([u32; WORDS_PER_LINE]);

const WORDS_PER_LINE: usize = 16;

/// A channel's pooled events, one row of whole cache lines per event holding, in 32-bit words,
/// every process's ratio r_c (a float64 as two words) followed by its shape systematics' four
/// stored float32 quantities (δ⁺ − 1, δ⁻ − 1, ln δ⁺, ln δ⁻): the per-event inputs of the
/// likelihood, bit for bit, at the pool's own precision.
pub struct PoolRows {
    lines: Vec<CacheLine>,
    lines_per_row: usize,
    /// The pool without its events: name, nominal yields, shape parameters and codes, the
    /// normalisation — what a toy's [`ChannelData`] shares with its pool.
    template: ChannelData,
}

/// The widest row worth a second copy of the pool: rows save a cache miss per gathered column,
/// which matters where the fits are cheap (few shape systematics: the example's row is one
/// line). A pool with many shape systematics per process has wide rows (the issue-13 target,
/// 3 processes × 10 systematics: 9 lines, +1.5 GB for 3·10⁶ events), and its toys' fits cost
/// 10⁴× a gather: there the toys gather the pool's columns (the same toys, bit for bit).
const MAX_LINES_PER_ROW: usize = 2;

/// 32-bit words of one event's row of `pool`.
fn words_per_row(pool: &ChannelData) -> usize {
    pool.processes.iter().map(|p| 2 + 4 * p.shapes.len()).sum()
}

impl PoolRows {
    /// Whether rows of `pool` are narrow enough to keep beside it ([`MAX_LINES_PER_ROW`]).
    pub fn worth_keeping(pool: &ChannelData) -> bool {
        words_per_row(pool).div_ceil(WORDS_PER_LINE) <= MAX_LINES_PER_ROW
    }

    /// The rows of `pool`'s events.
    pub fn new(pool: &ChannelData) -> PoolRows {
        let words = words_per_row(pool);
        let lines_per_row = words.div_ceil(WORDS_PER_LINE).max(1);
        let n = pool.weights.len();
        let mut lines = vec![CacheLine::default(); n * lines_per_row];
        let mut row = Vec::with_capacity(words);
        for i in 0..n {
            row.clear();
            for process in &pool.processes {
                let bits = process.ratio[i].to_bits();
                row.extend([bits as u32, (bits >> 32) as u32]);
                for shape in &process.shapes {
                    // Stored as float32: widened and narrowed back exactly.
                    row.extend(shape.variations.event(i).map(|v| (v as f32).to_bits()));
                }
            }
            let first = i * lines_per_row;
            for (k, &word) in row.iter().enumerate() {
                lines[first + k / WORDS_PER_LINE].0[k % WORDS_PER_LINE] = word;
            }
        }
        PoolRows {
            lines,
            lines_per_row,
            template: pool.select(&[]),
        }
    }

    /// The events at `indices` (repeats allowed), in that order, with unit weights: what
    /// [`ChannelData::select`] makes of the pool, from one row per event.
    pub fn select(&self, indices: &[usize]) -> ChannelData {
        let n = indices.len();
        let mut processes: Vec<ProcessData> = self
            .template
            .processes
            .iter()
            .map(|p| ProcessData {
                nominal_yield: p.nominal_yield,
                ratio: Vec::with_capacity(n),
                shapes: Vec::new(),
            })
            .collect();
        let mut shape_columns: Vec<Vec<[Vec<f32>; 4]>> = self
            .template
            .processes
            .iter()
            .map(|p| {
                p.shapes
                    .iter()
                    .map(|_| std::array::from_fn(|_| Vec::with_capacity(n)))
                    .collect()
            })
            .collect();
        // The rows first, in a tight loop whose loads do not wait on each other (the cache
        // misses overlap), then the columns from these rows, now in cache.
        let per_row = self.lines_per_row;
        let mut gathered = Vec::with_capacity(n * per_row);
        for &i in indices {
            // Line by line: a `memcpy` call per row would stand between the loads.
            for line in &self.lines[i * per_row..(i + 1) * per_row] {
                gathered.push(*line);
            }
        }
        for line in gathered.chunks_exact(per_row) {
            let word = |k: usize| line[k / WORDS_PER_LINE].0[k % WORDS_PER_LINE];
            let mut k = 0;
            for (process, columns) in processes.iter_mut().zip(&mut shape_columns) {
                let bits = u64::from(word(k)) | (u64::from(word(k + 1)) << 32);
                process.ratio.push(f64::from_bits(bits));
                k += 2;
                for quantities in columns.iter_mut() {
                    for column in quantities.iter_mut() {
                        column.push(f32::from_bits(word(k)));
                        k += 1;
                    }
                }
            }
        }
        for ((process, columns), pooled) in processes
            .iter_mut()
            .zip(shape_columns)
            .zip(&self.template.processes)
        {
            process.shapes = columns
                .into_iter()
                .zip(&pooled.shapes)
                .map(|([up, down, ln_up, ln_down], s)| ShapeData {
                    parameter: s.parameter,
                    code: s.code,
                    variations: ShapeVariations::from_stored(up, down, ln_up, ln_down),
                })
                .collect();
        }
        ChannelData {
            weights: vec![1.0; n],
            processes,
            ..self.template.clone()
        }
    }
}
