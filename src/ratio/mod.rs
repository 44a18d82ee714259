//! Per-event density ratios from ONNX ensembles: evaluated once per (ensemble, event file),
//! cached on disk, and handed to the likelihood (which never runs a network).

pub mod convention;
pub mod ensemble;
pub mod runtime;
pub mod shard;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::data::{CacheKey, CachedRatios, Events, EventsFingerprint, Lookup, RatioCache};
use crate::error::{Error, Result};
use crate::workspace::schema::{EventSourceSpec, RatioSpec, UnbinnedChannelSpec};
use crate::workspace::{EventRole, Workspace};
pub use ensemble::{EnsembleFingerprint, MemberRatios, OutputSpec, RatioEnsemble, Standardisation};

/// Builds the ensemble a workspace entry describes (resolving globs and standardisation).
pub fn load_ensemble(
    ws: &Workspace,
    channel: &UnbinnedChannelSpec,
    label: &str,
    spec: &RatioSpec,
) -> Result<RatioEnsemble> {
    EnsembleRecipe::of(ws, channel, label, spec)?.load()
}

/// What loading an ensemble takes (its networks' files, output settings, standardisation),
/// resolved from the workspace, without the networks' sessions: kept by a [`ChannelRatios`] to
/// re-evaluate an entry found damaged when it is read.
#[derive(Clone, Debug)]
pub struct EnsembleRecipe {
    label: String,
    paths: Vec<PathBuf>,
    output: OutputSpec,
    standardisation: Option<Standardisation>,
    n_features: usize,
}

impl EnsembleRecipe {
    /// The recipe of the workspace entry `spec` of `channel`.
    pub fn of(
        ws: &Workspace,
        channel: &UnbinnedChannelSpec,
        label: &str,
        spec: &RatioSpec,
    ) -> Result<EnsembleRecipe> {
        let paths = ws
            .model_paths(spec)
            .map_err(|d| Error::Workspace(vec![d]))?;
        let features = feature_names(channel);
        let standardisation = match &spec.standardisation {
            Some(file) => Some(Standardisation::read(&ws.resolve(&file.value), &features)?),
            None => None,
        };
        Ok(EnsembleRecipe {
            label: label.to_string(),
            paths,
            output: output_spec(spec),
            standardisation,
            n_features: features.len(),
        })
    }

    /// The ensemble, with its networks' sessions open.
    pub fn load(&self) -> Result<RatioEnsemble> {
        RatioEnsemble::load(
            self.label.clone(),
            &self.paths,
            self.output.clone(),
            self.standardisation.clone(),
            self.n_features,
        )
    }

    /// What the ensemble's ratios depend on besides the events, from its model files' bytes
    /// and settings: no session is opened (an entry found in the cache needs none).
    pub fn fingerprint(&self) -> Result<EnsembleFingerprint> {
        EnsembleFingerprint::of_files(&self.paths, &self.output, self.standardisation.as_ref())
    }

    /// The ensemble, loaded for an entry keyed by `fingerprint`: refused if its model files
    /// changed since the key was made (the entry would be stored under a key that does not
    /// describe its numbers).
    fn load_as(&self, fingerprint: &EnsembleFingerprint) -> Result<RatioEnsemble> {
        let ensemble = self.load()?;
        if ensemble.fingerprint() != fingerprint {
            return Err(Error::Analysis(format!(
                "the networks of {} changed while this command ran: run it again",
                self.label
            )));
        }
        Ok(ensemble)
    }

    pub fn n_members(&self) -> usize {
        self.paths.len()
    }
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

pub fn feature_names(channel: &UnbinnedChannelSpec) -> Vec<String> {
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
    channel: &UnbinnedChannelSpec,
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
///
/// The ratios are read when asked for ([`ChannelRatios::ratio`]), not when the workspace is
/// loaded: a command holds only the entries it uses, for as long as it builds its datasets
/// from them (issue 13: every command held every entry, 3 GB at 3·10⁶ MC events with 60 shape
/// ensembles, and an observed-data fit needs none of the MC's but its processes' own shape
/// inputs).
#[derive(Debug)]
pub struct ChannelRatios {
    pub channel: String,
    pub sources: Vec<(EventRole, Events)>,
    /// Ratios held in memory (inputs built in code), keyed by (ensemble label, index into
    /// `sources`); every other entry of `keys` is read from the cache.
    pub ratios: BTreeMap<(String, usize), CachedRatios>,
    /// The cache key of each entry: what the numbers were computed from.
    pub keys: BTreeMap<(String, usize), CacheKey>,
    /// Where the entries of `keys` are read from, and how to recompute a damaged one.
    stored: Option<StoredRatios>,
    /// The entries read so far (see [`ChannelRatios::entries_read`]).
    read: Mutex<BTreeSet<(String, usize)>>,
}

/// A channel's entries in the ratio cache, with the recipes to recompute them.
#[derive(Debug)]
struct StoredRatios {
    cache: RatioCache,
    /// By ensemble label.
    recipes: BTreeMap<String, EnsembleRecipe>,
}

impl ChannelRatios {
    /// A channel whose ratios are all given in memory, keyed by (ensemble label, index into
    /// `sources`).
    pub fn in_memory(
        channel: impl Into<String>,
        sources: Vec<(EventRole, Events)>,
        ratios: BTreeMap<(String, usize), CachedRatios>,
    ) -> ChannelRatios {
        ChannelRatios {
            channel: channel.into(),
            sources,
            ratios,
            keys: BTreeMap::new(),
            stored: None,
            read: Mutex::new(BTreeSet::new()),
        }
    }

    /// The ratios of ensemble `label` on the events of source `source`: from memory, or read
    /// from the cache (checksum verified; an entry that fails is recomputed with a warning).
    pub fn ratio(&self, label: &str, source: usize) -> Result<Vec<f64>> {
        let id = (label.to_string(), source);
        let missing = || {
            Error::Analysis(format!(
                "ratios of ensemble {label} on event file {source} of channel {} are missing",
                self.channel
            ))
        };
        let values = match (self.ratios.get(&id), &self.stored, self.keys.get(&id)) {
            (Some(held), ..) => held.ratio.clone(),
            (None, Some(stored), Some(key)) => {
                let (_, events) = self.sources.get(source).ok_or_else(missing)?;
                stored.read(label, events, key)?
            }
            _ => return Err(missing()),
        };
        self.read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id);
        Ok(values)
    }

    /// The (ensemble label, source index) of every entry read so far: what a command has
    /// loaded (an observed-data fit reads no entry of the MC pool but each process's own
    /// shape inputs).
    pub fn entries_read(&self) -> BTreeSet<(String, usize)> {
        self.read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl StoredRatios {
    /// Entry `key` (ensemble `label` on `events`) from the cache, or recomputed and stored
    /// again when it is absent or fails its checks.
    fn read(&self, label: &str, events: &Events, key: &CacheKey) -> Result<Vec<f64>> {
        let entry = self.cache.entry_path(key);
        match self.cache.load_ratio(key, events.len()) {
            Lookup::Hit(ratio) => return Ok(ratio),
            Lookup::Rejected(reason) => warn_rejected(&entry, &reason),
            Lookup::Absent => {}
        }
        let recipe = self.recipes.get(label).ok_or_else(|| {
            Error::Analysis(format!(
                "no ensemble {label} to recompute {}",
                entry.display()
            ))
        })?;
        let ensemble = recipe.load()?;
        if ensemble.cache_key(events) != *key {
            return Err(Error::Cache {
                path: entry,
                message: format!(
                    "the networks of {label} or the events of {} changed while this command \
                     ran: run it again",
                    events.file.display()
                ),
            });
        }
        Ok(
            evaluate_and_store(&ensemble, events, &self.cache, key, None)?
                .0
                .ratio,
        )
    }
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
pub fn channel_events(
    ws: &Workspace,
    channel: &UnbinnedChannelSpec,
) -> Result<Vec<(EventRole, Events)>> {
    ws.event_sources(channel)
        .into_iter()
        .map(|(role, spec)| read_events(ws, channel, spec).map(|events| (role, events)))
        .collect()
}

/// Evaluates (or loads from `cache`) every ensemble of `ws` over every event file of its
/// channel: observed data, the reference sample, and every process's MC. Every entry is read
/// and checked (for its record), then let go: the channels read them again when asked.
pub fn evaluate_workspace(
    ws: &Workspace,
    cache: &RatioCache,
    show_progress: bool,
) -> Result<WorkspaceRatios> {
    walk_workspace(ws, cache, show_progress, Check::Numbers)
}

/// What a command that builds likelihoods needs of the cache: every entry there (evaluated
/// now if it is not, or if its header does not match), its numbers left on disk until a
/// dataset reads them ([`ChannelRatios::ratio`]).
pub fn prepare_workspace(
    ws: &Workspace,
    cache: &RatioCache,
    show_progress: bool,
) -> Result<Vec<ChannelRatios>> {
    Ok(walk_workspace(ws, cache, show_progress, Check::Headers)?.channels)
}

/// How much of an entry already in the cache is read when a workspace is walked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Its numbers, checksum verified (and summarised in a record).
    Numbers,
    /// Its header only ([`RatioCache::present`]); the numbers are verified when read.
    Headers,
}

fn walk_workspace(
    ws: &Workspace,
    cache: &RatioCache,
    show_progress: bool,
    check: Check,
) -> Result<WorkspaceRatios> {
    let mut channels = Vec::new();
    let mut records = Vec::new();
    let ensembles = ws.ensembles();
    for channel in ws.spec.unbinned_channels() {
        let sources = channel_events(ws, channel)?;
        // Each event file is hashed once, whatever the number of ensembles reading it.
        let fingerprints: Vec<EventsFingerprint> = sources
            .iter()
            .map(|(_, events)| events.fingerprint())
            .collect();
        let mut keys = BTreeMap::new();
        let mut recipes = BTreeMap::new();
        for eref in ensembles
            .iter()
            .filter(|e| std::ptr::eq(e.channel, channel))
        {
            let label = eref.label();
            let recipe = EnsembleRecipe::of(ws, channel, &label, eref.spec)?;
            let mut ensemble = LazyEnsemble::new(&recipe)?;
            for (index, ((role, events), events_fingerprint)) in
                sources.iter().zip(&fingerprints).enumerate()
            {
                let key = ensemble.fingerprint.cache_key(events_fingerprint);
                if check == Check::Numbers || !cache.present(&key, events.len()) {
                    let (_, record) =
                        ratios_for(&mut ensemble, role, events, cache, &key, show_progress)?;
                    records.push(record);
                }
                keys.insert((label.clone(), index), key);
            }
            recipes.insert(label, recipe);
        }
        channels.push(ChannelRatios {
            channel: channel.name.value.clone(),
            sources,
            ratios: BTreeMap::new(),
            keys,
            stored: Some(StoredRatios {
                cache: cache.clone(),
                recipes,
            }),
            read: Mutex::new(BTreeSet::new()),
        });
    }
    Ok(WorkspaceRatios { channels, records })
}

/// An ensemble whose networks' sessions are opened only when an entry must be evaluated: a
/// command finding every entry in the cache opens none (ONNX Runtime is not even started).
struct LazyEnsemble<'a> {
    recipe: &'a EnsembleRecipe,
    fingerprint: EnsembleFingerprint,
    loaded: Option<RatioEnsemble>,
}

impl<'a> LazyEnsemble<'a> {
    fn new(recipe: &'a EnsembleRecipe) -> Result<LazyEnsemble<'a>> {
        Ok(LazyEnsemble {
            recipe,
            fingerprint: recipe.fingerprint()?,
            loaded: None,
        })
    }

    /// The ensemble with its sessions open (opened on the first call).
    fn sessions(&mut self) -> Result<&RatioEnsemble> {
        if self.loaded.is_none() {
            self.loaded = Some(self.recipe.load_as(&self.fingerprint)?);
        }
        Ok(self.loaded.as_ref().expect("loaded above"))
    }
}

fn ratios_for(
    ensemble: &mut LazyEnsemble<'_>,
    role: &EventRole,
    events: &Events,
    cache: &RatioCache,
    key: &CacheKey,
    show_progress: bool,
) -> Result<(CachedRatios, RatioRecord)> {
    let entry = cache.entry_path(key);
    let (values, source) = match cache.load(key, events.len()) {
        Lookup::Hit(hit) => {
            let source = Source {
                from_cache: true,
                from_parts: 0,
            };
            (hit, source)
        }
        lookup => {
            if let Lookup::Rejected(reason) = lookup {
                warn_rejected(&entry, &reason);
            }
            let progress = show_progress.then(|| format!("{} on {role}", ensemble.recipe.label));
            evaluate_and_store(ensemble.sessions()?, events, cache, key, progress)?
        }
    };
    let record = summarise(ensemble.recipe, role, events, &values, source, entry);
    Ok((values, record))
}

/// The warning for an entry that is in the cache but must not be used.
fn warn_rejected(entry: &std::path::Path, reason: &str) {
    eprintln!(
        "warning: ratio cache entry {} is not used ({reason}); recomputing it",
        entry.display()
    );
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
        Lookup::Rejected(reason) => warn_rejected(&entry, &reason),
        Lookup::Absent => {}
    }
    let (ratios, source) = evaluate_and_store(ensemble, events, cache, key, progress)?;
    Ok((ratios, source, entry))
}

/// Entry `key` assembled from its farm parts and evaluated where they do not cover it, then
/// stored in the cache (and its parts removed).
fn evaluate_and_store(
    ensemble: &RatioEnsemble,
    events: &Events,
    cache: &RatioCache,
    key: &CacheKey,
    progress: Option<String>,
) -> Result<(CachedRatios, Source)> {
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
    Ok((assembled.ratios, source))
}

fn summarise(
    ensemble: &EnsembleRecipe,
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
