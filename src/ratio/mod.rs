//! Per-event density ratios from ONNX ensembles: evaluated once per (ensemble, event file),
//! cached on disk, and handed to the likelihood (which never runs a network).

pub mod convention;
pub mod ensemble;
pub mod runtime;
pub mod shard;

use std::collections::BTreeMap;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::data::{CacheKey, CachedRatios, Events, Lookup, RatioCache};
use crate::error::{Error, Result};
use crate::workspace::schema::{ChannelSpec, EventSourceSpec, RatioSpec};
use crate::workspace::{EnsembleRef, EventRole, Workspace};
pub use ensemble::{MemberRatios, OutputSpec, RatioEnsemble, Standardisation};

/// Builds the ensemble a workspace entry describes (resolving globs and standardisation).
pub fn load_ensemble(
    ws: &Workspace,
    channel: &ChannelSpec,
    label: &str,
    spec: &RatioSpec,
) -> Result<RatioEnsemble> {
    let paths = ws
        .model_paths(spec)
        .map_err(|d| Error::Workspace(vec![d]))?;
    let features = feature_names(channel);
    let standardisation = match &spec.standardisation {
        Some(file) => Some(Standardisation::read(&ws.resolve(&file.value), &features)?),
        None => None,
    };
    RatioEnsemble::load(
        label,
        &paths,
        output_spec(spec),
        standardisation,
        features.len(),
    )
}

pub fn output_spec(spec: &RatioSpec) -> OutputSpec {
    OutputSpec {
        name: spec.output.as_ref().map(|o| o.value.clone()),
        column: spec.column.as_ref().map_or(0, |c| c.value),
        convention: spec.convention.value,
        aggregation: spec
            .aggregation
            .as_ref()
            .map(|a| a.value)
            .unwrap_or_default(),
    }
}

pub fn feature_names(channel: &ChannelSpec) -> Vec<String> {
    channel
        .features
        .value
        .iter()
        .map(|f| f.value.clone())
        .collect()
}

/// Reads the events of one source of a channel.
pub fn read_events(
    ws: &Workspace,
    channel: &ChannelSpec,
    source: &EventSourceSpec,
) -> Result<Events> {
    Events::read(
        &ws.resolve(&source.file.value),
        &source.group.value,
        &feature_names(channel),
        source.weight.as_ref().map(|w| w.value.as_str()),
    )
}

/// The event files of one channel and every ensemble's ratios on each of them.
pub struct ChannelRatios {
    pub channel: String,
    pub sources: Vec<(EventRole, Events)>,
    /// Keyed by (ensemble label, index into `sources`).
    pub ratios: BTreeMap<(String, usize), CachedRatios>,
    /// The cache key of each entry of `ratios`: what the numbers were computed from.
    pub keys: BTreeMap<(String, usize), CacheKey>,
}

/// What happened to one (ensemble, event file) pair: for the summary table.
#[derive(Clone, Debug)]
pub struct RatioRecord {
    pub ensemble: String,
    pub role: EventRole,
    pub file: PathBuf,
    pub n_events: usize,
    pub n_members: usize,
    pub from_cache: bool,
    /// Farm parts assembled into the entry now (0: none; see [`shard`]).
    pub from_parts: usize,
    pub cache_entry: PathBuf,
    pub mean_ratio: f64,
    pub min_ratio: f64,
    pub max_ratio: f64,
    pub mean_spread: f64,
}

/// Every ratio of a workspace, with a record per (ensemble, event file).
pub struct WorkspaceRatios {
    pub channels: Vec<ChannelRatios>,
    pub records: Vec<RatioRecord>,
}

/// Every event file of `channel` with its role (observed data, a process's MC), read.
pub fn channel_events(ws: &Workspace, channel: &ChannelSpec) -> Result<Vec<(EventRole, Events)>> {
    ws.event_sources(channel)
        .into_iter()
        .map(|(role, spec)| read_events(ws, channel, spec).map(|events| (role, events)))
        .collect()
}

/// Evaluates (or loads from `cache`) every ensemble of `ws` over every event file of its
/// channel: observed data, the reference sample, and every process's MC.
pub fn evaluate_workspace(
    ws: &Workspace,
    cache: &RatioCache,
    show_progress: bool,
) -> Result<WorkspaceRatios> {
    let mut channels = Vec::new();
    let mut records = Vec::new();
    let ensembles = ws.ensembles();
    for channel in &ws.spec.channels {
        let sources = channel_events(ws, channel)?;
        let mut ratios = BTreeMap::new();
        let mut keys = BTreeMap::new();
        for eref in ensembles
            .iter()
            .filter(|e| std::ptr::eq(e.channel, channel))
        {
            let label = eref.label();
            let ensemble = load_ensemble(ws, channel, &label, eref.spec)?;
            for (index, (role, events)) in sources.iter().enumerate() {
                let key = ensemble.cache_key(events);
                let (values, record) =
                    ratios_for(&ensemble, eref, role, events, cache, &key, show_progress)?;
                records.push(record);
                keys.insert((label.clone(), index), key);
                ratios.insert((label.clone(), index), values);
            }
        }
        channels.push(ChannelRatios {
            channel: channel.name.value.clone(),
            sources,
            ratios,
            keys,
        });
    }
    Ok(WorkspaceRatios { channels, records })
}

fn ratios_for(
    ensemble: &RatioEnsemble,
    eref: &EnsembleRef<'_>,
    role: &EventRole,
    events: &Events,
    cache: &RatioCache,
    key: &CacheKey,
    show_progress: bool,
) -> Result<(CachedRatios, RatioRecord)> {
    let (values, source, entry) = cached_or_evaluated_at(
        ensemble,
        events,
        cache,
        key,
        show_progress.then(|| format!("{} on {role}", eref.label())),
    )?;
    let record = summarise(ensemble, role, events, &values, source, entry);
    Ok((values, record))
}

/// The ensemble's ratios on `events` from `cache`, or evaluated now and stored there; the flag
/// says whether they came from the cache, the path is the cache entry. `progress` labels a
/// progress bar if one is wanted.
pub fn cached_or_evaluated(
    ensemble: &RatioEnsemble,
    events: &Events,
    cache: &RatioCache,
    progress: Option<String>,
) -> Result<(CachedRatios, bool, PathBuf)> {
    let (values, source, entry) = cached_or_evaluated_at(
        ensemble,
        events,
        cache,
        &ensemble.cache_key(events),
        progress,
    )?;
    Ok((values, source.from_cache, entry))
}

/// Where the numbers of an entry came from.
#[derive(Clone, Copy, Debug)]
struct Source {
    /// The whole entry was in the cache.
    from_cache: bool,
    /// Farm parts assembled into it now.
    from_parts: usize,
}

/// [`cached_or_evaluated`] with the entry's key already computed. An entry not in the cache is
/// assembled from the farm parts there (see [`shard`]), evaluating what they do not cover;
/// once the entry is stored, its parts are removed.
fn cached_or_evaluated_at(
    ensemble: &RatioEnsemble,
    events: &Events,
    cache: &RatioCache,
    key: &CacheKey,
    progress: Option<String>,
) -> Result<(CachedRatios, Source, PathBuf)> {
    let entry = cache.entry_path(key);
    match cache.load(key, events.len()) {
        Lookup::Hit(hit) => {
            let source = Source {
                from_cache: true,
                from_parts: 0,
            };
            return Ok((hit, source, entry));
        }
        Lookup::Rejected(reason) => eprintln!(
            "warning: ratio cache entry {} is not used ({reason}); recomputing it",
            entry.display()
        ),
        Lookup::Absent => {}
    }
    let assembled = shard::assemble(ensemble, events, cache, key, progress)?;
    cache.store(
        key,
        &assembled.ratios,
        &shard::description(ensemble, events),
    )?;
    cache.remove_parts(key);
    let source = Source {
        from_cache: false,
        from_parts: assembled.parts,
    };
    Ok((assembled.ratios, source, entry))
}

fn summarise(
    ensemble: &RatioEnsemble,
    role: &EventRole,
    events: &Events,
    values: &CachedRatios,
    source: Source,
    cache_entry: PathBuf,
) -> RatioRecord {
    let n = values.ratio.len().max(1) as f64;
    RatioRecord {
        ensemble: ensemble.label.clone(),
        role: role.clone(),
        file: events.file.clone(),
        n_events: events.len(),
        n_members: ensemble.n_members(),
        from_cache: source.from_cache,
        from_parts: source.from_parts,
        cache_entry,
        mean_ratio: values.ratio.iter().sum::<f64>() / n,
        min_ratio: values.ratio.iter().copied().fold(f64::INFINITY, f64::min),
        max_ratio: values
            .ratio
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max),
        mean_spread: values.spread.iter().sum::<f64>() / n,
    }
}

fn progress_bar(len: usize, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    let style =
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len} events ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(message.to_string());
    bar
}
