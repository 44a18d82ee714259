//! The on-disk ratio cache. Ratios do not depend on the parameters, so each (ensemble, event
//! file) pair is evaluated once and reused by every fit, scan and toy. Entries are keyed by a
//! content hash of everything the numbers depend on — model bytes, standardisation, output
//! settings and the feature values themselves — so a changed input can never be served a
//! stale entry, and an unchanged one costs only the hash. Each entry also stores its key and a
//! checksum of key and numbers, verified on every read, so a damaged or misplaced entry is
//! recomputed (with a warning) rather than served as data.

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
        let path = self.entry_path(key);
        if !path.exists() {
            return Lookup::Absent;
        }
        let Ok(file) = hdf5::File::open(&path) else {
            return Lookup::Rejected("not a readable HDF5 file".into());
        };
        let text_attr = |name: &str| -> Option<String> {
            let value: hdf5::types::VarLenUnicode = file.attr(name).ok()?.read_scalar().ok()?;
            Some(value.as_str().to_string())
        };
        let Some(checksum) = text_attr("checksum") else {
            return Lookup::Absent;
        };
        let stored_key = text_attr("key").unwrap_or_default();
        if stored_key != key.0 {
            return Lookup::Rejected(format!(
                "holds the ratios of another entry (key {stored_key})"
            ));
        }
        let column = |name: &str| file.dataset(name).and_then(|d| d.read_raw::<f64>()).ok();
        let (Some(ratio), Some(spread)) = (column("ratio"), column("spread")) else {
            return Lookup::Rejected("the 'ratio' or 'spread' dataset cannot be read".into());
        };
        let ratios = CachedRatios { ratio, spread };
        if content_checksum(key, &ratios) != checksum {
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

    /// Writes an entry atomically (a temporary file in the cache folder, renamed into place and
    /// removed on any failure), with its key and the checksum [`RatioCache::load`] verifies.
    /// Failing to write is an error that names the folder and says how to choose another one.
    pub fn store(
        &self,
        key: &CacheKey,
        ratios: &CachedRatios,
        description: &str,
    ) -> Result<PathBuf> {
        let path = self.entry_path(key);
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("cannot create folder {}", self.dir.display()), e))
            .and_then(|()| {
                crate::report::write_through_temp(&path, ".tmp", |tmp| {
                    write_entry(tmp, key, ratios, description)
                })
            })
            .map_err(|e| self.unwritable(e))?;
        Ok(path)
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

/// BLAKE3 of the key and the stored numbers: binds the numbers to the entry they were written
/// for, so a flipped bit or an entry copied under another name is caught on reading.
fn content_checksum(key: &CacheKey, ratios: &CachedRatios) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(key.0.as_bytes());
    for column in [&ratios.ratio, &ratios.spread] {
        hasher.update(&(column.len() as u64).to_le_bytes());
        let bytes: Vec<u8> = column.iter().flat_map(|x| x.to_le_bytes()).collect();
        hasher.update(&bytes);
    }
    hasher.finalize().to_hex().to_string()
}

fn write_entry(
    path: &Path,
    key: &CacheKey,
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
    let attributes = [
        ("description", text(description)),
        ("key", text(&key.0)),
        ("checksum", text(&content_checksum(key, ratios))),
    ];
    for (name, value) in attributes {
        file.new_attr::<hdf5::types::VarLenUnicode>()
            .create(name)
            .and_then(|a| a.write_scalar(&value))
            .map_err(cache_error)?;
    }
    file.flush().map_err(cache_error)
}
