//! The on-disk ratio cache. Ratios do not depend on the parameters, so each (ensemble, event
//! file) pair is evaluated once and reused by every fit, scan and toy. Entries are keyed by a
//! content hash of everything the numbers depend on — model bytes, standardisation, output
//! settings and the feature values themselves — so a changed input can never be served a
//! stale entry, and an unchanged one costs only the hash. Each entry also stores its key and a
//! checksum of key and numbers, verified on every read, so a damaged or misplaced entry is
//! recomputed (with a warning) rather than served as data. Each column has its own checksum, so
//! that a reader of the ratios alone (every likelihood) neither reads nor hashes the spreads.
//!
//! A farm run (`nsbi batch … --ratios`) writes *parts* beside the entries: the ratios of one
//! range of events of one entry, `<key>.events-<start>-<end>.h5`, with the key, the range and
//! a checksum over all three, so that a part is only ever used for the events of the entry it
//! was computed for. Whoever next reads the entry assembles the parts into it.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Bump when the meaning or layout of cached numbers, or the way keys are made, changes: an
/// entry of another format then has another key and is recomputed, never misread.
/// v2: keys combine per-file and per-ensemble fingerprints (see [`CacheKeyBuilder`]) and name
/// the requested output, not the one a session resolved; the spreads have their own checksum.
const CACHE_FORMAT: &str = "nsbi-ratio-cache-v2";

/// A BLAKE3 content hash identifying one cache entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(pub String);

/// Builds a [`CacheKey`] from the pieces an entry depends on, each length-prefixed so that
/// different splits of the same bytes cannot collide.
pub struct CacheKeyBuilder(blake3::Hasher);

impl Default for CacheKeyBuilder {
    fn default() -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(CACHE_FORMAT.as_bytes());
        CacheKeyBuilder(hasher)
    }
}

impl CacheKeyBuilder {
    pub fn bytes(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        self.0.update(&(label.len() as u64).to_le_bytes());
        self.0.update(label.as_bytes());
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn finish(&self) -> CacheKey {
        CacheKey(self.0.finalize().to_hex().to_string())
    }
}

/// Per-event ensemble ratio and the spread (sample standard deviation) of its members.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedRatios {
    pub ratio: Vec<f64>,
    pub spread: Vec<f64>,
}

/// A folder of cache entries, one HDF5 file each (`<key>.h5`, datasets `ratio` and `spread`,
/// attributes `key`, `checksum` (of the ratios), `spread_checksum` and a human-readable
/// `description`).
#[derive(Clone, Debug)]
pub struct RatioCache {
    dir: PathBuf,
}

impl RatioCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RatioCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn entry_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.h5", key.0))
    }

    /// The entry for `key` if it exists, was written for `key`, holds `n_events` finite ratios
    /// and matches its checksum. Anything else is never served as data: a damaged, altered or
    /// misplaced entry is [`Lookup::Rejected`] with the reason (it will be recomputed and
    /// replaced); an entry of an older nsbi, which has no checksum, counts as absent.
    pub fn load(&self, key: &CacheKey, n_events: usize) -> Lookup {
        read_checked(&self.entry_path(key), key, None, n_events)
    }

    /// The ratios of the entry for `key`, checked like [`RatioCache::load`] checks them, its
    /// spreads neither read nor checked: what a likelihood needs, at half the reading.
    pub fn load_ratio(&self, key: &CacheKey, n_events: usize) -> Lookup<Vec<f64>> {
        let path = self.entry_path(key);
        match open_checked(&path, key, None) {
            Ok(file) => checked_column(&file, key, None, Column::Ratio, n_events),
            Err(refused) => refused,
        }
    }

    /// Whether the entry for `key` looks servable without reading its numbers: it exists, has
    /// a checksum, was written for `key`, and its `ratio` and `spread` datasets hold `n_events`
    /// values each. A command that reads entries on demand checks this when it starts (an
    /// entry that fails is recomputed then, with [`RatioCache::load`]'s warning); the numbers
    /// and their checksum are verified when they are read.
    pub fn present(&self, key: &CacheKey, n_events: usize) -> bool {
        let Ok(file) = hdf5::File::open(self.entry_path(key)) else {
            return false;
        };
        let size = |name: &str| file.dataset(name).map(|d| d.size()).ok();
        text_attribute(&file, Column::Ratio.checksum_attribute()).is_some()
            && text_attribute(&file, "key").as_deref() == Some(key.0.as_str())
            && size("ratio") == Some(n_events)
            && size("spread") == Some(n_events)
    }

    /// The file of the part of `key` that holds events `events`.
    pub fn part_path(&self, key: &CacheKey, events: &Range<usize>) -> PathBuf {
        self.dir.join(format!(
            "{}.events-{}-{}.h5",
            key.0, events.start, events.end
        ))
    }

    /// The part of `key` for `events`, checked like an entry ([`RatioCache::load`]) and also
    /// for its range: a part made for other events, or for another entry, is rejected.
    pub fn load_part(&self, key: &CacheKey, events: &Range<usize>) -> Lookup {
        read_checked(
            &self.part_path(key, events),
            key,
            Some(events),
            events.len(),
        )
    }

    /// The parts of `key` in the cache folder, by the event range their names claim (sorted).
    pub fn parts(&self, key: &CacheKey) -> Vec<Range<usize>> {
        let prefix = format!("{}.events-", key.0);
        let mut ranges: Vec<Range<usize>> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let (start, end) = name
                    .strip_prefix(&prefix)?
                    .strip_suffix(".h5")?
                    .split_once('-')?;
                Some(start.parse().ok()?..end.parse().ok()?)
            })
            .filter(|r: &Range<usize>| r.start < r.end)
            .collect();
        ranges.sort_by_key(|r| (r.start, r.end));
        ranges
    }

    /// Removes every part of `key` (once its entry is complete); a part another process removed
    /// first is not an error.
    pub fn remove_parts(&self, key: &CacheKey) {
        for events in self.parts(key) {
            let _ = std::fs::remove_file(self.part_path(key, &events));
        }
    }

    /// Writes an entry atomically (a temporary file in the cache folder, renamed into place and
    /// removed on any failure), with its key and the checksum [`RatioCache::load`] verifies.
    /// Failing to write is an error that names the folder and says how to choose another one.
    pub fn store(
        &self,
        key: &CacheKey,
        ratios: &CachedRatios,
        description: &str,
    ) -> Result<PathBuf> {
        self.write(&self.entry_path(key), key, None, ratios, description)
    }

    /// Writes the part of `key` holding events `events` (`ratios` has one value per event of
    /// the range), atomically like [`RatioCache::store`]: a shard killed while writing leaves
    /// no part, only a hidden temporary file that nothing reads.
    pub fn store_part(
        &self,
        key: &CacheKey,
        events: &Range<usize>,
        ratios: &CachedRatios,
        description: &str,
    ) -> Result<PathBuf> {
        self.write(
            &self.part_path(key, events),
            key,
            Some(events),
            ratios,
            description,
        )
    }

    fn write(
        &self,
        path: &Path,
        key: &CacheKey,
        events: Option<&Range<usize>>,
        ratios: &CachedRatios,
        description: &str,
    ) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("cannot create folder {}", self.dir.display()), e))
            .and_then(|()| {
                crate::report::write_through_temp(path, ".tmp", |tmp| {
                    write_entry(tmp, key, events, ratios, description)
                })
            })
            .map_err(|e| self.unwritable(e))?;
        Ok(path.to_path_buf())
    }

    /// The error for a cache folder that cannot take a new entry.
    fn unwritable(&self, cause: Error) -> Error {
        Error::Cache {
            path: self.dir.clone(),
            message: format!(
                "the cache folder cannot be written ({cause}), and a ratio entry is missing \
                 there; give a writable folder with --cache-dir DIR or the NSBI_CACHE_DIR \
                 environment variable"
            ),
        }
    }
}

/// What the cache holds for a key (all of an entry, or a column of it).
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup<T = CachedRatios> {
    Hit(T),
    /// No entry, or one from an nsbi that stored no checksum.
    Absent,
    /// An entry that must not be used, and why.
    Rejected(String),
}

/// The two columns of an entry or part.
#[derive(Clone, Copy, Debug)]
enum Column {
    Ratio,
    Spread,
}

impl Column {
    fn dataset(self) -> &'static str {
        match self {
            Column::Ratio => "ratio",
            Column::Spread => "spread",
        }
    }

    /// The attribute holding the column's checksum.
    fn checksum_attribute(self) -> &'static str {
        match self {
            Column::Ratio => "checksum",
            Column::Spread => "spread_checksum",
        }
    }
}

/// BLAKE3 of the key, the event range of a part, the column's name and its numbers: binds the
/// numbers to the entry (and events) they were written for, so a flipped bit or a file copied
/// under another name is caught on reading. A whole entry hashes no range.
fn column_checksum(
    key: &CacheKey,
    events: Option<&Range<usize>>,
    column: Column,
    values: &[f64],
) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(key.0.as_bytes());
    if let Some(events) = events {
        hasher.update(range_text(events).as_bytes());
    }
    hasher.update(column.dataset().as_bytes());
    hasher.update(&(values.len() as u64).to_le_bytes());
    hash_le_bytes(&mut hasher, values, |x| x.to_le_bytes());
    hasher.finalize().to_hex().to_string()
}

/// Feeds `values` to `hasher` as their little-endian bytes (`bytes` of each), a few thousand
/// values at a time through a buffer on the stack: the same hash as one update with all the
/// bytes, without a copy of the whole array (16 MB per entry of 10⁶ events).
pub(crate) fn hash_le_bytes<T: Copy, const W: usize>(
    hasher: &mut blake3::Hasher,
    values: &[T],
    bytes: impl Fn(T) -> [u8; W],
) {
    const BUFFER: usize = 32 * 1024;
    let mut buffer = [0u8; BUFFER];
    for chunk in values.chunks(BUFFER / W) {
        for (slot, &x) in buffer.chunks_exact_mut(W).zip(chunk) {
            slot.copy_from_slice(&bytes(x));
        }
        hasher.update(&buffer[..chunk.len() * W]);
    }
}

/// How a part's `events` attribute spells its range.
fn range_text(events: &Range<usize>) -> String {
    format!("events {}..{}", events.start, events.end)
}

/// Reads the entry (`events: None`) or part at `path` and checks it was written for `key` (and
/// `events`), holds `n_events` finite positive ratios and `n_events` spreads, and matches its
/// checksums.
fn read_checked(
    path: &Path,
    key: &CacheKey,
    events: Option<&Range<usize>>,
    n_events: usize,
) -> Lookup {
    let file = match open_checked(path, key, events) {
        Ok(file) => file,
        Err(refused) => return refused,
    };
    let ratio = match checked_column(&file, key, events, Column::Ratio, n_events) {
        Lookup::Hit(ratio) => ratio,
        Lookup::Absent => return Lookup::Absent,
        Lookup::Rejected(reason) => return Lookup::Rejected(reason),
    };
    match checked_column(&file, key, events, Column::Spread, n_events) {
        Lookup::Hit(spread) => Lookup::Hit(CachedRatios { ratio, spread }),
        Lookup::Absent => Lookup::Absent,
        Lookup::Rejected(reason) => Lookup::Rejected(reason),
    }
}

/// The entry or part at `path`, opened, if it has a checksum and was written for `key` (and
/// `events`). An entry without a checksum (of an older nsbi) is absent; a part without one is
/// rejected.
fn open_checked<T>(
    path: &Path,
    key: &CacheKey,
    events: Option<&Range<usize>>,
) -> std::result::Result<hdf5::File, Lookup<T>> {
    if !path.exists() {
        return Err(Lookup::Absent);
    }
    let Ok(file) = hdf5::File::open(path) else {
        return Err(Lookup::Rejected("not a readable HDF5 file".into()));
    };
    if text_attribute(&file, Column::Ratio.checksum_attribute()).is_none() {
        return Err(match events {
            None => Lookup::Absent,
            Some(_) => Lookup::Rejected("has no checksum".into()),
        });
    }
    let stored_key = text_attribute(&file, "key").unwrap_or_default();
    if stored_key != key.0 {
        return Err(Lookup::Rejected(format!(
            "holds the ratios of another entry (key {stored_key})"
        )));
    }
    if let Some(events) = events {
        let stored = text_attribute(&file, "events").unwrap_or_default();
        if stored != range_text(events) {
            return Err(Lookup::Rejected(format!(
                "holds {stored:?}, not {}",
                range_text(events)
            )));
        }
    }
    Ok(file)
}

/// Column `column` of an opened entry or part, if it matches its checksum, holds `n_events`
/// values and (the ratios) every one finite and positive.
fn checked_column(
    file: &hdf5::File,
    key: &CacheKey,
    events: Option<&Range<usize>>,
    column: Column,
    n_events: usize,
) -> Lookup<Vec<f64>> {
    let Ok(values) = file
        .dataset(column.dataset())
        .and_then(|d| d.read_raw::<f64>())
    else {
        return Lookup::Rejected(format!("the '{}' dataset cannot be read", column.dataset()));
    };
    let Some(checksum) = text_attribute(file, column.checksum_attribute()) else {
        return Lookup::Rejected(format!("has no checksum of its '{}'", column.dataset()));
    };
    if column_checksum(key, events, column, &values) != checksum {
        return Lookup::Rejected(format!(
            "checksum mismatch: the stored '{}' values were altered",
            column.dataset()
        ));
    }
    if values.len() != n_events {
        return Lookup::Rejected(format!(
            "holds {} {} values for {n_events} events",
            values.len(),
            column.dataset()
        ));
    }
    if let Column::Ratio = column {
        if !values.iter().all(|r| r.is_finite() && *r > 0.0) {
            return Lookup::Rejected("holds a ratio that is not finite and positive".into());
        }
    }
    Lookup::Hit(values)
}

/// A text attribute of an entry or part, if it has one.
fn text_attribute(file: &hdf5::File, name: &str) -> Option<String> {
    let value: hdf5::types::VarLenUnicode = file.attr(name).ok()?.read_scalar().ok()?;
    Some(value.as_str().to_string())
}

fn write_entry(
    path: &Path,
    key: &CacheKey,
    events: Option<&Range<usize>>,
    ratios: &CachedRatios,
    description: &str,
) -> Result<()> {
    let cache_error = |e: hdf5::Error| Error::Cache {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = hdf5::File::create(path).map_err(cache_error)?;
    file.new_dataset_builder()
        .with_data(ratios.ratio.as_slice())
        .create("ratio")
        .map_err(cache_error)?;
    file.new_dataset_builder()
        .with_data(ratios.spread.as_slice())
        .create("spread")
        .map_err(cache_error)?;
    let text = |s: &str| -> hdf5::types::VarLenUnicode {
        s.parse()
            .unwrap_or_else(|_| "unprintable description".parse().expect("ASCII parses"))
    };
    let mut attributes = vec![("description", text(description)), ("key", text(&key.0))];
    for (column, values) in [
        (Column::Ratio, &ratios.ratio),
        (Column::Spread, &ratios.spread),
    ] {
        let checksum = column_checksum(key, events, column, values);
        attributes.push((column.checksum_attribute(), text(&checksum)));
    }
    if let Some(events) = events {
        attributes.push(("events", text(&range_text(events))));
    }
    for (name, value) in attributes {
        file.new_attr::<hdf5::types::VarLenUnicode>()
            .create(name)
            .and_then(|a| a.write_scalar(&value))
            .map_err(cache_error)?;
    }
    file.flush().map_err(cache_error)
}
