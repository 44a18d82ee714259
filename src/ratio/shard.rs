//! Ratio evaluation on a farm. Shard i of N evaluates one range of events of every
//! (ensemble, event file) entry that the cache does not hold yet, and writes it as a *part* of
//! the entry ([`RatioCache::store_part`]); the next command that needs the entry assembles the
//! parts ([`assemble`]), evaluating in its own process only what no valid part covers.
//!
//! Ranges are whole ONNX batches ([`BATCH_SIZE`] events, the last one short), cut where a
//! single process cuts them, so every network call of a shard sees exactly the rows it sees in
//! a single process: the assembled entry is bit for bit the single-process one.

use std::ops::Range;
use std::path::PathBuf;

use super::ensemble::BATCH_SIZE;
use super::{channel_events, load_ensemble, RatioEnsemble};
use crate::data::{CacheKey, CachedRatios, Events, Lookup, RatioCache};
use crate::error::Result;
use crate::workspace::{EventRole, Workspace};

/// The events shard `i` of `n` evaluates in a file of `n_events`: a contiguous run of whole
/// batches, the shards together covering every event once. Shards beyond the number of
/// batches get an empty range.
pub fn shard_events(n_events: usize, (i, n): (usize, usize)) -> Range<usize> {
    let batches = n_events.div_ceil(BATCH_SIZE);
    let bound = |k: usize| (batches * k / n * BATCH_SIZE).min(n_events);
    bound(i)..bound(i + 1)
}

/// What one shard did for one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartOutcome {
    /// The cache holds the whole entry already.
    EntryComplete,
    /// The shard's range of this file is empty (fewer batches than shards).
    NoEvents,
    /// A valid part for the range was there (an earlier run of the shard).
    PartPresent,
    /// Evaluated now and written.
    Evaluated,
}

/// One (ensemble, event file) entry as seen by one shard.
#[derive(Clone, Debug)]
pub struct PartRecord {
    pub ensemble: String,
    pub role: EventRole,
    pub n_events: usize,
    pub events: Range<usize>,
    pub part: PathBuf,
    pub outcome: PartOutcome,
}

/// Shard `shard` = (i, N) of the ratio evaluation of `ws`: writes the part of every entry not
/// complete in `cache`, unless a valid part is there already. A damaged or foreign part under
/// the shard's name is replaced, with a warning naming it.
pub fn evaluate_workspace_shard(
    ws: &Workspace,
    cache: &RatioCache,
    shard: (usize, usize),
) -> Result<Vec<PartRecord>> {
    let mut records = Vec::new();
    for_each_entry(ws, |ensemble, role, events, key| {
        let range = shard_events(events.len(), shard);
        let part = cache.part_path(&key, &range);
        let outcome = if let Lookup::Hit(_) = cache.load(&key, events.len()) {
            PartOutcome::EntryComplete
        } else if range.is_empty() {
            PartOutcome::NoEvents
        } else {
            match cache.load_part(&key, &range) {
                Lookup::Hit(_) => PartOutcome::PartPresent,
                lookup => {
                    if let Lookup::Rejected(reason) = lookup {
                        eprintln!(
                            "warning: ratio cache part {} is refused ({reason}); recomputing it",
                            part.display()
                        );
                    }
                    let values = ensemble.evaluate_range(events, range.clone(), None)?;
                    cache.store_part(&key, &range, &values, &description(ensemble, events))?;
                    PartOutcome::Evaluated
                }
            }
        };
        records.push(PartRecord {
            ensemble: ensemble.label.clone(),
            role: role.clone(),
            n_events: events.len(),
            events: range,
            part,
            outcome,
        });
        Ok(())
    })?;
    Ok(records)
}

/// The number of events of every entry of `ws` that `cache` does not hold complete: what a farm
/// run has to evaluate. Loads every ensemble (so a broken model is found before submitting).
pub fn pending_entries(ws: &Workspace, cache: &RatioCache) -> Result<Vec<usize>> {
    let mut pending = Vec::new();
    for_each_entry(ws, |_, _, events, key| {
        if !matches!(cache.load(&key, events.len()), Lookup::Hit(_)) {
            pending.push(events.len());
        }
        Ok(())
    })?;
    Ok(pending)
}

/// Calls `visit` for every ensemble of `ws` on every event file of its channel, with the
/// entry's cache key, in the order of [`super::evaluate_workspace`]. Each event file is hashed
/// once for all ensembles.
fn for_each_entry(
    ws: &Workspace,
    mut visit: impl FnMut(&RatioEnsemble, &EventRole, &Events, CacheKey) -> Result<()>,
) -> Result<()> {
    let ensembles = ws.ensembles();
    for channel in ws.spec.unbinned_channels() {
        let sources = channel_events(ws, channel)?;
        let fingerprints: Vec<_> = sources.iter().map(|(_, e)| e.fingerprint()).collect();
        for eref in ensembles
            .iter()
            .filter(|e| std::ptr::eq(e.channel, channel))
        {
            let ensemble = load_ensemble(ws, channel, &eref.label(), eref.spec)?;
            for ((role, events), events_fingerprint) in sources.iter().zip(&fingerprints) {
                let key = ensemble.fingerprint().cache_key(events_fingerprint);
                visit(&ensemble, role, events, key)?;
            }
        }
    }
    Ok(())
}

/// The description stored with an entry or part: what made the numbers.
pub(super) fn description(ensemble: &RatioEnsemble, events: &Events) -> String {
    format!(
        "ensemble {} ({} members: {:?}) on {}",
        ensemble.label,
        ensemble.n_members(),
        ensemble.model_paths(),
        events.file.display()
    )
}

/// An entry put together from farm parts and, where no valid part covers the events, this
/// process's own evaluation.
pub struct Assembled {
    pub ratios: CachedRatios,
    /// The parts used.
    pub parts: usize,
}

/// The entry `key` of `ensemble` on `events`, from the valid parts in `cache` and evaluation of
/// the rest; without parts, simply the whole evaluation. A part that is damaged, written for
/// another entry or other events, or whose range does not fit the file in whole batches, is
/// refused with a warning naming it. `progress` labels a progress bar over the events
/// evaluated here.
pub fn assemble(
    ensemble: &RatioEnsemble,
    events: &Events,
    cache: &RatioCache,
    key: &CacheKey,
    progress: Option<String>,
) -> Result<Assembled> {
    let n = events.len();
    let parts = valid_parts(cache, key, n);
    let covered: usize = parts.iter().map(|(range, _)| range.len()).sum();
    if !parts.is_empty() && covered < n {
        eprintln!(
            "warning: the farm parts of ratio cache entry {} cover {covered} of {n} events; \
             evaluating the other {} here",
            cache.entry_path(key).display(),
            n - covered
        );
    }
    let bar = progress
        .filter(|_| covered < n)
        .map(|label| super::progress_bar(n - covered, &label));
    let mut ratios = CachedRatios {
        ratio: Vec::with_capacity(n),
        spread: Vec::with_capacity(n),
    };
    let mut append = |values: CachedRatios| {
        ratios.ratio.extend(values.ratio);
        ratios.spread.extend(values.spread);
    };
    let mut next = 0;
    let n_parts = parts.len();
    for (range, values) in parts {
        if range.start > next {
            append(ensemble.evaluate_range(events, next..range.start, bar.as_ref())?);
        }
        append(values);
        next = range.end;
    }
    // Without parts, the whole file (also when it is empty: the ensemble checks its columns).
    if next < n || n_parts == 0 {
        append(ensemble.evaluate_range(events, next..n, bar.as_ref())?);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(Assembled {
        ratios,
        parts: n_parts,
    })
}

/// The valid parts of `key` for a file of `n` events that do not overlap, in event order: the
/// first of overlapping parts (from runs with different shard counts) is taken. Refused parts
/// are named in a warning.
fn valid_parts(cache: &RatioCache, key: &CacheKey, n: usize) -> Vec<(Range<usize>, CachedRatios)> {
    let mut parts = Vec::new();
    let mut next = 0;
    for range in cache.parts(key) {
        if range.start < next {
            continue;
        }
        let whole_batches = range.start.is_multiple_of(BATCH_SIZE)
            && (range.end.is_multiple_of(BATCH_SIZE) || range.end == n);
        let lookup = if range.end > n || !whole_batches {
            Lookup::Rejected(format!(
                "events {}..{} are not whole batches of {BATCH_SIZE} of a file of {n} events",
                range.start, range.end
            ))
        } else {
            cache.load_part(key, &range)
        };
        match lookup {
            Lookup::Hit(values) => {
                next = range.end;
                parts.push((range, values));
            }
            Lookup::Rejected(reason) => eprintln!(
                "warning: ratio cache part {} is refused ({reason}); its events are evaluated \
                 here",
                cache.part_path(key, &range).display()
            ),
            Lookup::Absent => {}
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event in exactly one shard, every cut on a batch boundary, for files smaller and
    /// larger than the number of shards in batches.
    #[test]
    fn shards_tile_the_events_in_whole_batches() {
        for n_events in [0, 1, 1023, 1024, 1025, 2023, 5000, 100_000] {
            for n in [1, 2, 3, 7, 200] {
                let ranges: Vec<Range<usize>> =
                    (0..n).map(|i| shard_events(n_events, (i, n))).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[n - 1].end, n_events);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start, "{n_events} events, {n} shards");
                }
                for r in &ranges {
                    assert!(r.start.is_multiple_of(BATCH_SIZE), "{r:?}");
                    assert!(
                        r.end.is_multiple_of(BATCH_SIZE) || r.end == n_events,
                        "{r:?}"
                    );
                }
            }
        }
        assert_eq!(shard_events(5000, (1, 3)), 1024..3072);
    }
}
