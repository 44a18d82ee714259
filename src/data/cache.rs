//! The on-disk ratio cache. Ratios do not depend on the parameters, so each (ensemble, event
//! file) pair is evaluated once and reused by every fit, scan and toy. Entries are keyed by a
//! content hash of everything the numbers depend on — model bytes, standardisation, output
//! settings and the feature values themselves — so a changed input can never be served a
//! stale entry, and an unchanged one costs only the hash. Each entry also stores its key and a
//! checksum of key and numbers, verified on every read, so a damaged or misplaced entry is
//! recomputed (with a warning) rather than served as data.
//!
//! A farm run (`nsbi batch … --ratios`) writes *parts* beside the entries: the ratios of one
//! range of events of one entry, `<key>.events-<start>-<end>.h5`, with the key, the range and
//! a checksum over all three, so that a part is only ever used for the events of the entry it
//! was computed for. Whoever next reads the entry assembles the parts into it.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Bump when the meaning or layout of cached numbers changes.
const CACHE_FORMAT: &str = "nsbi-ratio-cache-v1";

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
/// attributes `key`, `checksum` and a human-readable `description`).
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

    /// Whether the entry for `key` looks servable without reading its numbers: it exists, has
    /// a checksum, was written for `key`, and its `ratio` and `spread` datasets hold `n_events`
    /// values each. A command that reads entries on demand checks this when it starts (an
    /// entry that fails is recomputed then, with [`RatioCache::load`]'s warning); the numbers
    /// and their checksum are verified when they are read.
    pub fn present(&self, key: &CacheKey, n_events: usize) -> bool {
        let Ok(file) = hdf5::File::open(self.entry_path(key)) else {
            return false;
        };
        let text_attr = |name: &str| -> Option<String> {
            let value: hdf5::types::VarLenUnicode = file.attr(name).ok()?.read_scalar().ok()?;
            Some(value.as_str().to_string())
        };
        let size = |name: &str| file.dataset(name).map(|d| d.size()).ok();
        text_attr("checksum").is_some()
            && text_attr("key").as_deref() == Some(key.0.as_str())
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

/// What the cache holds for a key.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    Hit(CachedRatios),
    /// No entry, or one from an nsbi that stored no checksum.
    Absent,
    /// An entry that must not be used, and why.
    Rejected(String),
}

/// BLAKE3 of the key, the event range of a part, and the stored numbers: binds the numbers to
/// the entry (and events) they were written for, so a flipped bit or a file copied under
/// another name is caught on reading. A whole entry hashes no range.
fn content_checksum(
    key: &CacheKey,
    events: Option<&Range<usize>>,
    ratios: &CachedRatios,
) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(key.0.as_bytes());
    if let Some(events) = events {
        hasher.update(range_text(events).as_bytes());
    }
    for column in [&ratios.ratio, &ratios.spread] {
        hasher.update(&(column.len() as u64).to_le_bytes());
        let bytes: Vec<u8> = column.iter().flat_map(|x| x.to_le_bytes()).collect();
        hasher.update(&bytes);
    }
    hasher.finalize().to_hex().to_string()
}

/// How a part's `events` attribute spells its range.
fn range_text(events: &Range<usize>) -> String {
    format!("events {}..{}", events.start, events.end)
}

/// Reads the entry (`events: None`) or part at `path` and checks it was written for `key` (and
/// `events`), holds `n_events` finite positive ratios, and matches its checksum.
fn read_checked(
    path: &Path,
    key: &CacheKey,
    events: Option<&Range<usize>>,
    n_events: usize,
) -> Lookup {
    if !path.exists() {
        return Lookup::Absent;
    }
    let Ok(file) = hdf5::File::open(path) else {
        return Lookup::Rejected("not a readable HDF5 file".into());
    };
    let text_attr = |name: &str| -> Option<String> {
        let value: hdf5::types::VarLenUnicode = file.attr(name).ok()?.read_scalar().ok()?;
        Some(value.as_str().to_string())
    };
    let Some(checksum) = text_attr("checksum") else {
        return match events {
            None => Lookup::Absent,
            Some(_) => Lookup::Rejected("has no checksum".into()),
        };
    };
    let stored_key = text_attr("key").unwrap_or_default();
    if stored_key != key.0 {
        return Lookup::Rejected(format!(
            "holds the ratios of another entry (key {stored_key})"
        ));
    }
    if let Some(events) = events {
        let stored = text_attr("events").unwrap_or_default();
        if stored != range_text(events) {
            return Lookup::Rejected(format!("holds {stored:?}, not {}", range_text(events)));
        }
    }
    let column = |name: &str| file.dataset(name).and_then(|d| d.read_raw::<f64>()).ok();
    let (Some(ratio), Some(spread)) = (column("ratio"), column("spread")) else {
        return Lookup::Rejected("the 'ratio' or 'spread' dataset cannot be read".into());
    };
    let ratios = CachedRatios { ratio, spread };
    if content_checksum(key, events, &ratios) != checksum {
        return Lookup::Rejected("checksum mismatch: the stored ratios were altered".into());
    }
    if ratios.ratio.len() != n_events || ratios.spread.len() != n_events {
        return Lookup::Rejected(format!(
            "holds {} ratios for {n_events} events",
            ratios.ratio.len()
        ));
    }
    if !ratios.ratio.iter().all(|r| r.is_finite() && *r > 0.0) {
        return Lookup::Rejected("holds a ratio that is not finite and positive".into());
    }
    Lookup::Hit(ratios)
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
    let mut attributes = vec![
        ("description", text(description)),
        ("key", text(&key.0)),
        ("checksum", text(&content_checksum(key, events, ratios))),
    ];
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
