//! Negative MC generator weights made non-negative for the bootstrap, by cell resampling
//! (J. R. Andersen and A. Maier, "Unbiased elimination of negative weights in Monte Carlo
//! samples", Eur. Phys. J. C 82 (2022) 433, arXiv:2109.07851).
//!
//! # Why toys need it
//!
//! A toy is a set of unweighted events drawn from the model ν p(x|θ) (see [`super::toys`]).
//! The pool reaches the model through its MC weights b_i; NLO generators give some events
//! b_i < 0. Drawing ∝ |b_i| samples the |b|-density, not the process's density, and drawing
//! ∝ |b_i| with the sign carried gives toys with signed weights, whose variance is Σ|w| instead
//! of Σw. Neither is a pseudo-experiment of the model.
//!
//! # What is done
//!
//! Each process's MC sample, on its own and before pooling, has its weights replaced by
//! non-negative weights b̃_i with the same sum over every *cell*: for each negative-weight
//! event (the seed, taken in index order), the cell is the seed and its nearest neighbours,
//! added in order of distance (ties by index) until the cell's summed weight is ≥ 0; every
//! event j of the cell then gets `b̃_j = |b_j| Σ_cell b / Σ_cell |b|`. Every cell sum is kept,
//! so Σ_i b̃_i h(x_i) = Σ_i b_i h(x_i) for any h constant across each cell, and differs from it
//! by h's variation across cells otherwise: the resampled sample is an unbiased estimate of
//! the process's density for every observable smooth on the scale of the cells, which shrink
//! as the sample grows. The process's total is kept exactly.
//!
//! # The metric
//!
//! The likelihood sees an event only through its per-event features — the process ratios
//! r_c(x) and the shape variations δ±(x) — so toys need to be right in that space, and the
//! cells are built there: the coordinates are ln r_c of every process of the channel and
//! ln δ⁺, ln δ⁻ of every shape systematic, each divided by its standard deviation over the
//! process's sample (columns constant over it are left out). Neighbours come from a k-d tree
//! (exact k-nearest-neighbour search, queried in parallel; the cells are then built in one
//! deterministic pass), so the result does not depend on the thread count.
//!
//! # What is refused
//!
//! * A process whose MC weights do not sum to a positive number: no set of non-negative weights
//!   keeps a non-positive total.
//! * A region where the process's weights sum negative (an "all-negative" region): its cells
//!   would have to reach far outside it, smearing the deficit over a non-local neighbourhood.
//!   A cell that needs more than [`cell_limit`] events is refused with the seed named.
//!
//! The Asimov sets and the fits keep the signed weights (they are right in expectation); only
//! the toys' draw uses the resampled ones.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::likelihood::ChannelData;
use crate::model::Channel;
use crate::ratio::ChannelRatios;
use crate::workspace::EventRole;

/// Points in a standardised feature space: `n × dim`, row-major, float32 (the neighbour search
/// needs order, not precision).
#[derive(Clone, Debug)]
pub struct Features {
    n: usize,
    dim: usize,
    values: Vec<f32>,
}

impl Features {
    /// From per-event feature columns (each of the same length): every column divided by its
    /// standard deviation, and columns that do not vary (or are not finite) left out.
    pub fn standardised(columns: &[Vec<f64>]) -> Features {
        let n = columns.first().map_or(0, Vec::len);
        let mut kept: Vec<(&[f64], f64, f64)> = Vec::new();
        for column in columns {
            let mean = column.iter().sum::<f64>() / n as f64;
            let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            let sd = var.sqrt();
            if sd > 0.0 && sd.is_finite() {
                kept.push((column, mean, sd));
            }
        }
        let dim = kept.len();
        let mut values = vec![0.0_f32; n * dim];
        for (d, (column, mean, sd)) in kept.iter().enumerate() {
            for (i, v) in column.iter().enumerate() {
                values[i * dim + d] = ((v - mean) / sd) as f32;
            }
        }
        Features { n, dim, values }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// The outcome of resampling one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Resampled {
    /// The non-negative weights b̃_i, in the sample's order.
    pub weights: Vec<f64>,
    /// Number of cells built.
    pub cells: usize,
    /// Events in the largest cell.
    pub largest_cell: usize,
    /// Largest distance of a cell's farthest event from its seed (standardised units).
    pub largest_radius: f64,
}

/// Why a sample could not be resampled.
#[derive(Clone, Debug, PartialEq)]
pub enum CellFailure {
    /// The weights sum to `total` ≤ 0.
    TotalNotPositive { total: f64 },
    /// The cell of negative-weight event `seed` would need more than `limit` events.
    NotLocal { seed: usize, limit: usize },
}

/// The most events one cell may take: 1 % of the sample, at least 1000 (whole samples of fewer
/// events). A statistical cell at a negative fraction f needs ~1/(1 − 2f)² events (a hundred at
/// f = 0.45); a cell beyond the limit means the negative weight is not compensated nearby.
pub fn cell_limit(n_events: usize) -> usize {
    (n_events / 100).max(1000)
}

/// Neighbours asked for first per seed; a cell that needs more asks again for four times as
/// many.
const FIRST_NEIGHBOURS: usize = 8;

/// Cell resampling of `weights` (one process's MC weights) in the feature space `features`:
/// see the module documentation.
pub fn cell_resample(
    features: Features,
    weights: &[f64],
) -> std::result::Result<Resampled, CellFailure> {
    let total: f64 = weights.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return Err(CellFailure::TotalNotPositive { total });
    }
    let mut resampled = Resampled {
        weights: weights.to_vec(),
        cells: 0,
        largest_cell: 0,
        largest_radius: 0.0,
    };
    let seeds: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] < 0.0).collect();
    if seeds.is_empty() {
        return Ok(resampled);
    }
    let tree = KdTree::new(features);
    let limit = cell_limit(weights.len()).min(weights.len());
    let first = FIRST_NEIGHBOURS.min(weights.len());
    // Queried in the tree's order, for locality; results put back in seed order.
    let mut by_place: Vec<usize> = (0..seeds.len()).collect();
    by_place.sort_by_key(|&s| tree.position[seeds[s]]);
    let found: Vec<Vec<Neighbour>> = by_place
        .par_iter()
        .map(|&s| tree.nearest(tree.event(seeds[s]), first))
        .collect();
    let mut neighbours = vec![Vec::new(); seeds.len()];
    for (s, near) in by_place.into_iter().zip(found) {
        neighbours[s] = near;
    }
    for (&seed, near) in seeds.iter().zip(neighbours) {
        if resampled.weights[seed] >= 0.0 {
            continue; // already made non-negative by an earlier cell
        }
        let (cell, radius2) = grow_cell(&tree, seed, near, &resampled.weights, limit)?;
        spread_cell(&cell, &mut resampled.weights);
        resampled.cells += 1;
        resampled.largest_cell = resampled.largest_cell.max(cell.len());
        resampled.largest_radius = resampled.largest_radius.max(f64::from(radius2).sqrt());
    }
    Ok(resampled)
}

/// The cell of `seed`: the seed and its neighbours in order until the summed current weight is
/// ≥ 0, with the squared radius. `near` is the first neighbour list; more are asked for while
/// the cell stays negative, up to `limit` events.
fn grow_cell(
    tree: &KdTree,
    seed: usize,
    mut near: Vec<Neighbour>,
    weights: &[f64],
    limit: usize,
) -> std::result::Result<(Vec<usize>, f32), CellFailure> {
    loop {
        let mut cell = vec![seed];
        let mut sum = weights[seed];
        for n in near.iter().filter(|n| n.index as usize != seed) {
            if cell.len() == limit {
                break;
            }
            cell.push(n.index as usize);
            sum += weights[n.index as usize];
            if sum >= 0.0 {
                return Ok((cell, n.distance2));
            }
        }
        if near.len() >= limit || cell.len() == limit {
            return Err(CellFailure::NotLocal { seed, limit });
        }
        let more = (near.len() * 4).min(limit + 1).min(weights.len());
        let more = more.max(near.len() + 1);
        near = tree.nearest(tree.event(seed), more);
    }
}

/// Gives every event of `cell` the cell's summed weight in proportion to |b|.
fn spread_cell(cell: &[usize], weights: &mut [f64]) {
    let sum: f64 = cell.iter().map(|&j| weights[j]).sum();
    let sum_abs: f64 = cell.iter().map(|&j| weights[j].abs()).sum();
    for &j in cell {
        weights[j] = weights[j].abs() * sum / sum_abs;
    }
}

/// A neighbour found by the tree, ordered by (squared distance, index).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Neighbour {
    distance2: f32,
    index: u32,
}

impl Eq for Neighbour {}

impl Ord for Neighbour {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance2
            .total_cmp(&other.distance2)
            .then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for Neighbour {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Events per leaf of the k-d tree.
const LEAF_SIZE: usize = 16;

enum Node {
    Leaf(Range<usize>),
    /// Points of `left` have coordinate `dim` ≤ `value`, those of `right` ≥ `value`.
    Split {
        dim: usize,
        value: f32,
        left: usize,
        right: usize,
    },
}

/// A k-d tree over a set of points for exact k-nearest-neighbour queries.
struct KdTree {
    dim: usize,
    /// Event indices, permuted so that every node covers a contiguous range.
    order: Vec<u32>,
    /// Each event's place in `order`.
    position: Vec<u32>,
    /// The points in `order`, kept so while building, so that a node's points are contiguous
    /// in memory (scattered reads made building and queries ten times slower at 10⁶ events).
    points: Vec<f32>,
    nodes: Vec<Node>,
}

impl KdTree {
    /// The tree over `features`, whose points it takes over (reordered).
    fn new(features: Features) -> KdTree {
        let mut tree = KdTree {
            dim: features.dim,
            order: (0..features.n as u32).collect(),
            position: vec![0; features.n],
            points: features.values,
            nodes: Vec::new(),
        };
        tree.build(0..features.n);
        for (place, &i) in tree.order.iter().enumerate() {
            tree.position[i as usize] = place as u32;
        }
        tree
    }

    /// The point of event `i`.
    fn event(&self, i: usize) -> &[f32] {
        self.point(self.position[i] as usize)
    }

    /// The point at `place` of the tree's order.
    fn point(&self, place: usize) -> &[f32] {
        let dim = self.dim;
        &self.points[place * dim..(place + 1) * dim]
    }

    /// Builds the node over `range` of `order` (median split on the widest coordinate, ties by
    /// event index) and returns its index.
    fn build(&mut self, range: Range<usize>) -> usize {
        let widest = self.widest_coordinate(range.clone());
        let node = self.nodes.len();
        let Some(dim) = widest.filter(|_| range.len() > LEAF_SIZE) else {
            self.nodes.push(Node::Leaf(range));
            return node;
        };
        let mid = range.len() / 2;
        let mut keys: Vec<(f32, u32, usize)> = range
            .clone()
            .map(|place| (self.point(place)[dim], self.order[place], place))
            .collect();
        keys.select_nth_unstable_by(mid, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let value = keys[mid].0;
        self.reorder(range.start, &keys);
        self.nodes.push(Node::Leaf(0..0)); // placeholder until the children exist
        let left = self.build(range.start..range.start + mid);
        let right = self.build(range.start + mid..range.end);
        self.nodes[node] = Node::Split {
            dim,
            value,
            left,
            right,
        };
        node
    }

    /// Puts the points of `keys` (key, event, old place) at `start..` in the keys' order.
    fn reorder(&mut self, start: usize, keys: &[(f32, u32, usize)]) {
        let dim = self.dim;
        let mut rows = Vec::with_capacity(keys.len() * dim);
        for &(_, _, place) in keys {
            rows.extend_from_slice(self.point(place));
        }
        self.points[start * dim..(start + keys.len()) * dim].copy_from_slice(&rows);
        for (k, &(_, event, _)) in keys.iter().enumerate() {
            self.order[start + k] = event;
        }
    }

    /// The coordinate with the largest spread over `range`, `None` when all points coincide.
    fn widest_coordinate(&self, range: Range<usize>) -> Option<usize> {
        let dim = self.dim;
        let (mut lo, mut hi) = (vec![f32::INFINITY; dim], vec![f32::NEG_INFINITY; dim]);
        // A large node's spread from about a thousand of its points is as good a choice.
        let step = (range.len() / 1024).max(1);
        for place in range.step_by(step) {
            for (d, &v) in self.point(place).iter().enumerate() {
                lo[d] = lo[d].min(v);
                hi[d] = hi[d].max(v);
            }
        }
        (0..dim)
            .map(|d| (d, hi[d] - lo[d]))
            .filter(|&(_, spread)| spread > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(d, _)| d)
    }

    /// The `k` points nearest to `query`, by (squared distance, index).
    fn nearest(&self, query: &[f32], k: usize) -> Vec<Neighbour> {
        let mut search = Search {
            query,
            k,
            heap: BinaryHeap::with_capacity(k + 1),
            offsets: vec![0.0; query.len()],
        };
        if k > 0 && !self.nodes.is_empty() {
            self.search(0, &mut search, 0.0);
        }
        search.heap.into_sorted_vec()
    }

    /// Visits `node`, whose box lies at squared distance ≥ `box_distance2` from the query
    /// (the sum of the squared per-coordinate offsets of the splits crossed, Arya & Mount),
    /// nearer child first, and the farther one only if its box can still hold a point nearer
    /// than the k-th found so far.
    fn search(&self, node: usize, s: &mut Search, box_distance2: f32) {
        let Search { query, k, heap, .. } = s;
        match &self.nodes[node] {
            Node::Leaf(range) => {
                for place in range.clone() {
                    let i = self.order[place];
                    let distance2 = self
                        .point(place)
                        .iter()
                        .zip(query.iter())
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum();
                    let candidate = Neighbour {
                        distance2,
                        index: i,
                    };
                    if heap.len() < *k {
                        heap.push(candidate);
                    } else if heap.peek().is_some_and(|worst| candidate < *worst) {
                        heap.pop();
                        heap.push(candidate);
                    }
                }
            }
            &Node::Split {
                dim,
                value,
                left,
                right,
            } => {
                let offset = query[dim] - value;
                let (near, far) = if offset <= 0.0 {
                    (left, right)
                } else {
                    (right, left)
                };
                self.search(near, s, box_distance2);
                let previous = s.offsets[dim];
                let far_distance2 = box_distance2 - previous * previous + offset * offset;
                // The margin keeps float32 rounding of the box distance from pruning a tie.
                let reachable = s.heap.len() < s.k
                    || s.heap
                        .peek()
                        .is_none_or(|worst| far_distance2 * (1.0 - 1e-5) <= worst.distance2);
                if reachable {
                    s.offsets[dim] = offset;
                    self.search(far, s, far_distance2);
                    s.offsets[dim] = previous;
                }
            }
        }
    }
}

/// The state of one k-nearest-neighbour query.
struct Search<'q> {
    query: &'q [f32],
    k: usize,
    /// The k nearest so far, farthest on top.
    heap: BinaryHeap<Neighbour>,
    /// Per coordinate, the offset of the query from the box of the node being visited.
    offsets: Vec<f32>,
}

/// One process's MC sample inside a channel's pool.
struct PooledSample {
    process: String,
    file: PathBuf,
    range: Range<usize>,
    raw_weights: Vec<f64>,
}

/// The MC samples of `channel`'s pool ([`ChannelData::asimov`]), in pooling order.
fn pooled_samples(channel: &Channel, ratios: &ChannelRatios) -> Result<Vec<PooledSample>> {
    let mut start = 0;
    let mut out = Vec::new();
    for process in &channel.processes {
        let role = EventRole::Process(process.name.clone());
        let (_, events) = ratios
            .sources
            .iter()
            .find(|(r, _)| *r == role)
            .ok_or_else(|| {
                Error::Analysis(format!(
                    "channel {}: no {role} among its event files",
                    channel.name
                ))
            })?;
        out.push(PooledSample {
            process: process.name.clone(),
            file: events.file.clone(),
            range: start..start + events.len(),
            raw_weights: events.weights.clone(),
        });
        start += events.len();
    }
    Ok(out)
}

/// The likelihood's per-event features of the pooled events `range`: ln r_c of every process,
/// ln δ⁺ and ln δ⁻ of every shape systematic, standardised.
pub fn likelihood_features(pool: &ChannelData, range: Range<usize>) -> Features {
    // A ratio of 0 would give −∞: floor it far below any ratio a model produces.
    let ln = |r: f64| r.max(1e-30).ln();
    let mut columns = Vec::new();
    for process in &pool.processes {
        columns.push(
            process.ratio[range.clone()]
                .iter()
                .map(|&r| ln(r))
                .collect(),
        );
        for shape in &process.shapes {
            for k in [2, 3] {
                let column = range.clone().map(|i| shape.variations.event(i)[k]);
                columns.push(column.map(|v| v.max(-69.0)).collect());
            }
        }
    }
    Features::standardised(&columns)
}

/// The toy-drawing MC weights of every channel's pool: each process's generator weights cell
/// resampled when some are negative (unchanged otherwise), normalised within the process as
/// the pool's `mc_weights` are. `pools` are the channels' Asimov sets at any θ (the features
/// do not depend on θ).
pub fn toy_mc_weights(
    channels: &[Channel],
    ratios: &[ChannelRatios],
    pools: &[ChannelData],
) -> Result<Vec<Vec<f64>>> {
    let mut out = Vec::with_capacity(pools.len());
    for ((channel, ratios), pool) in channels.iter().zip(ratios).zip(pools) {
        let samples = pooled_samples(channel, ratios)?;
        if samples.last().map_or(0, |s| s.range.end) != pool.weights.len() {
            return Err(Error::Analysis(format!(
                "channel {}: the pool's events are not its processes' samples",
                channel.name
            )));
        }
        let mut weights = Vec::with_capacity(pool.weights.len());
        for sample in samples {
            let raw = &sample.raw_weights;
            let resampled = if raw.iter().any(|&w| w < 0.0) {
                let features = likelihood_features(pool, sample.range.clone());
                cell_resample(features, raw)
                    .map_err(|failure| refusal(&channel.name, &sample, failure))?
                    .weights
            } else {
                raw.clone()
            };
            let total: f64 = raw.iter().sum();
            weights.extend(resampled.iter().map(|w| w / total));
        }
        out.push(weights);
    }
    Ok(out)
}

/// The error for a sample that cannot be resampled, naming the process and its file.
fn refusal(channel: &str, sample: &PooledSample, failure: CellFailure) -> Error {
    let what = match failure {
        CellFailure::TotalNotPositive { total } => format!(
            "the generator weights of process '{}' (channel {channel}) sum to {total}: \
             negative weights can be resampled for the bootstrap toys only when the process's \
             total weight is positive",
            sample.process
        ),
        CellFailure::NotLocal { seed, limit } => format!(
            "the negative generator weight of event {seed} of process '{}' (channel \
             {channel}) is not compensated by nearby positive weights: its cell needs more than \
             {limit} of the {} events (nearest in the likelihood's features). The sample has a \
             region whose weights sum negative, which no density has; the bootstrap toys refuse \
             it — check the sample (veto or merge the region)",
            sample.process,
            sample.raw_weights.len()
        ),
    };
    Error::event_file(&sample.file, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(values: &[f64]) -> Features {
        Features::standardised(&[values.to_vec()])
    }

    #[test]
    fn cells_keep_their_sum_and_end_non_negative() {
        let x = [0.0, 1.0, 2.0, 2.5, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let w = [1.0, 1.0, -1.5, 1.0, 1.0, 1.0, -0.5, 1.0, 1.0, 1.0];
        let r = cell_resample(line(&x), &w).unwrap();
        // Event 2's cell: 2, then its nearest 3 (sum −0.5), then 1 (sum 0.5 ≥ 0).
        let cell_sum = 0.5;
        let cell_abs = 3.5;
        assert_eq!(r.weights[2], 1.5 * cell_sum / cell_abs);
        assert_eq!(r.weights[1], cell_sum / cell_abs);
        assert_eq!(r.weights[3], cell_sum / cell_abs);
        assert!(r.weights.iter().all(|&w| w >= 0.0));
        let (a, b): (f64, f64) = (w.iter().sum(), r.weights.iter().sum());
        assert!((a - b).abs() < 1e-12);
        assert_eq!(r.cells, 2);
    }

    #[test]
    fn tree_finds_the_exact_nearest_neighbours() {
        let n = 2000;
        let cols: Vec<Vec<f64>> = (0..3)
            .map(|d| {
                (0..n)
                    .map(|i| ((i * (7 + 3 * d) + d) % 101) as f64 + 0.001 * i as f64)
                    .collect()
            })
            .collect();
        let f = Features::standardised(&cols);
        let tree = KdTree::new(f);
        for q in [0, 17, 999, 1999] {
            let mut brute: Vec<Neighbour> = (0..n)
                .map(|j| Neighbour {
                    distance2: tree
                        .event(q)
                        .iter()
                        .zip(tree.event(j))
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum(),
                    index: j as u32,
                })
                .collect();
            brute.sort();
            assert_eq!(tree.nearest(tree.event(q), 40), brute[..40].to_vec());
        }
    }

    #[test]
    fn non_positive_totals_and_non_local_cells_are_refused() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let w = [1.0, -1.0, 1.0, -2.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(
            cell_resample(line(&x), &w),
            Err(CellFailure::TotalNotPositive { total: -0.5 })
        );
        // 3000 negative events on [0, 1), 20 000 positive ones on [1, 21): the cell of event 0
        // must take in every negative event and as many positive ones.
        let n = 23_000;
        let x: Vec<f64> = (0..n).map(|i| i as f64 / 3000.0).collect();
        let w: Vec<f64> = (0..n).map(|i| if i < 3000 { -1.0 } else { 1.0 }).collect();
        assert_eq!(
            cell_resample(line(&x), &w),
            Err(CellFailure::NotLocal {
                seed: 0,
                limit: 1000
            })
        );
    }
}

#[cfg(test)]
mod scale {
    use super::*;

    /// 10⁶ events with 15 % negative weights in the 63 features of 3 processes with 10 shape
    /// systematics each: seconds (run by hand: `cargo test --release --lib a_million --
    /// --ignored --nocapture`).
    #[test]
    #[ignore]
    fn a_million_events_resample_in_seconds() {
        let n = 1_000_000;
        let mut state = 1_u64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let latent: Vec<Vec<f64>> = (0..3)
            .map(|_| (0..n).map(|_| uniform()).collect())
            .collect();
        // The shape: 3 process ratios and 10 shape systematics on each of 3
        // processes (63 features), all smooth functions of 3 event variables.
        let cols: Vec<Vec<f64>> = (0..63)
            .map(|j| {
                let a = 1.0 + j as f64 / 7.0;
                (0..n)
                    .map(|i| {
                        (a * latent[j % 3][i] + latent[(j + 1) % 3][i] / a).tanh()
                            + 0.1 * ((1 + j % 3) as f64 * latent[(j + 2) % 3][i]).sin()
                    })
                    .collect()
            })
            .collect();
        let w: Vec<f64> = (0..n)
            .map(|i| match (latent[0][i] < 0.3, i % 2) {
                (false, _) => 1.0,
                (true, 0) => 3.0,
                (true, _) => -1.0,
            })
            .collect();
        let start = std::time::Instant::now();
        let f = Features::standardised(&cols);
        let r = cell_resample(f, &w).unwrap();
        let negative = w.iter().filter(|&&w| w < 0.0).count();
        eprintln!(
            "{negative} negative, {} cells, largest {} events, radius {:.3}: {:?}",
            r.cells,
            r.largest_cell,
            r.largest_radius,
            start.elapsed()
        );
        assert!(r.weights.iter().all(|&w| w >= 0.0));
    }
}
