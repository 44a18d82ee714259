//! The on-disk ratio cache. Ratios do not depend on the parameters, so each (ensemble, event
//! file) pair is evaluated once and reused by every fit, scan and toy. Entries are keyed by a
//! content hash of everything the numbers depend on — model bytes, standardisation, output
//! settings and the feature values themselves — so a changed input can never be served a
//! stale entry, and an unchanged one costs only the hash.

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

/// A folder of cache entries, one HDF5 file each (`<key>.h5`, datasets `ratio` and `spread`).
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

    /// The entry for `key` if it exists and holds `n_events` finite ratios; a damaged entry is
    /// treated as absent (it will be recomputed and replaced), never as data.
    pub fn load(&self, key: &CacheKey, n_events: usize) -> Option<CachedRatios> {
        let path = self.entry_path(key);
        let file = hdf5::File::open(&path).ok()?;
        let ratio = file.dataset("ratio").ok()?.read_raw::<f64>().ok()?;
        let spread = file.dataset("spread").ok()?.read_raw::<f64>().ok()?;
        let complete = ratio.len() == n_events
            && spread.len() == n_events
            && ratio.iter().all(|r| r.is_finite() && *r > 0.0);
        complete.then_some(CachedRatios { ratio, spread })
    }

    /// Writes an entry atomically: to a temporary file in the cache folder, then renamed, so a
    /// killed process never leaves a half-written entry under the real name.
    pub fn store(
        &self,
        key: &CacheKey,
        ratios: &CachedRatios,
        description: &str,
    ) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            Error::io(
                format!("cannot create cache folder {}", self.dir.display()),
                e,
            )
        })?;
        let path = self.entry_path(key);
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", key.0, crate::report::unique_suffix()));
        let cache_error = |e: hdf5::Error| Error::Cache {
            path: tmp.clone(),
            message: e.to_string(),
        };
        {
            let file = hdf5::File::create(&tmp).map_err(cache_error)?;
            file.new_dataset_builder()
                .with_data(ratios.ratio.as_slice())
                .create("ratio")
                .map_err(cache_error)?;
            file.new_dataset_builder()
                .with_data(ratios.spread.as_slice())
                .create("spread")
                .map_err(cache_error)?;
            let text: hdf5::types::VarLenUnicode = description
                .parse()
                .unwrap_or_else(|_| "unprintable description".parse().expect("ASCII parses"));
            file.new_attr::<hdf5::types::VarLenUnicode>()
                .create("description")
                .and_then(|a| a.write_scalar(&text))
                .map_err(cache_error)?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| {
            Error::io(
                format!("cannot move cache entry into place at {}", path.display()),
                e,
            )
        })?;
        Ok(path)
    }
}
