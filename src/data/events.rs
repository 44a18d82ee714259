//! Events from HDF5 files: a group holding one 1-D dataset per column (a flat ntuple), the
//! layout `h5py`, `uproot`-converted ntuples and pandas' `to_hdf` users can all write.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::error::{Error, Result};

/// A set of events: the feature matrix the networks take and the per-event weights.
#[derive(Debug, Clone)]
pub struct Events {
    pub file: PathBuf,
    /// Column names, in the order of `values`' columns.
    pub features: Vec<String>,
    /// `[n_events, n_features]`, float32 because that is what the networks take.
    pub values: Array2<f32>,
    /// Per-event weights (1 where the file has no weight column).
    pub weights: Vec<f64>,
}

impl Events {
    /// Reads `features` (and the optional `weight` column) from `group` of `file`. Every value
    /// must be finite: a NaN in an event is reported with its column and event index, because
    /// it would otherwise silently poison every likelihood it enters.
    pub fn read(
        file: &Path,
        group: &str,
        features: &[String],
        weight: Option<&str>,
    ) -> Result<Events> {
        let group = open_group(file, group)?;
        let mut columns = Vec::with_capacity(features.len());
        for name in features {
            columns.push(read_column(file, &group, name)?);
        }
        let n = match columns.first() {
            Some(c) => c.len(),
            None => return Err(Error::event_file(file, "no feature columns requested")),
        };
        let weights = match weight {
            Some(name) => read_column(file, &group, name)?,
            None => vec![1.0; n],
        };
        let names: Vec<&str> = features.iter().map(String::as_str).chain(weight).collect();
        for (name, column) in names.iter().zip(columns.iter().chain([&weights])) {
            if column.len() != n {
                return Err(Error::event_file(
                    file,
                    format!(
                        "column '{name}' has {} entries but '{}' has {n}: all columns must have one entry per event",
                        column.len(),
                        features[0]
                    ),
                ));
            }
            if let Some(i) = column.iter().position(|x| !x.is_finite()) {
                return Err(Error::event_file(
                    file,
                    format!(
                        "column '{name}' holds a non-finite value ({}) at event {i}",
                        column[i]
                    ),
                ));
            }
        }
        let mut values = Array2::<f32>::zeros((n, features.len()));
        for (j, column) in columns.iter().enumerate() {
            for (i, x) in column.iter().enumerate() {
                values[[i, j]] = as_network_input(file, &features[j], i, *x)?;
            }
        }
        Ok(Events {
            file: file.to_path_buf(),
            features: features.to_vec(),
            values,
            weights,
        })
    }

    /// The first `n` events (all of them if there are fewer): for quick looks and benchmarks.
    pub fn head(&self, n: usize) -> Events {
        let n = n.min(self.len());
        Events {
            file: self.file.clone(),
            features: self.features.clone(),
            values: self.values.slice(ndarray::s![..n, ..]).to_owned(),
            weights: self.weights[..n].to_vec(),
        }
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Sum of weights: the nominal yield of an MC sample.
    pub fn total_weight(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// The content hash of what the networks see of these events: the feature names and the
    /// float32 feature values (not the file's name, its weights or its other columns, which no
    /// ratio depends on). Every cache key on these events contains it; a command computes it
    /// once per event file and combines it with each ensemble's fingerprint (hashing the
    /// values once per (ensemble, file) pair cost most of a second of every command at 10⁶
    /// events per file and 63 ensembles).
    pub fn fingerprint(&self) -> EventsFingerprint {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&(self.features.len() as u64).to_le_bytes());
        for name in &self.features {
            hasher.update(&(name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
        }
        let values = self
            .values
            .as_slice()
            .expect("event matrices are contiguous");
        hasher.update(&(values.len() as u64).to_le_bytes());
        crate::data::cache::hash_le_bytes(&mut hasher, values, |x| x.to_le_bytes());
        EventsFingerprint(hasher.finalize())
    }
}

/// [`Events::fingerprint`]: a BLAKE3 hash of the feature names and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventsFingerprint(pub blake3::Hash);

/// A feature value as the float32 the networks take; a value beyond float32's range would
/// reach the networks as infinity, so it is blamed here, on the event file.
fn as_network_input(file: &Path, column: &str, event: usize, x: f64) -> Result<f32> {
    let narrowed = x as f32;
    if narrowed.is_finite() {
        return Ok(narrowed);
    }
    Err(Error::event_file(
        file,
        format!(
            "column '{column}' holds {x:e} at event {event}, beyond the float32 range \
             (±{:e}) of the networks' inputs: fix or rescale this feature",
            f32::MAX
        ),
    ))
}

/// The observed counts of a binned channel: the 1-D dataset `dataset` (a path inside the file,
/// e.g. `CR_low/counts`) of the HDF5 file `file`.
pub fn read_counts(file: &Path, dataset: &str) -> Result<Vec<f64>> {
    if !file.exists() {
        return Err(Error::event_file(file, "counts file not found"));
    }
    let h5 = hdf5::File::open(file)
        .map_err(|e| Error::event_file(file, format!("cannot open as HDF5: {e}")))?;
    let data = h5.dataset(dataset).map_err(|_| {
        let available = h5.member_names().unwrap_or_default().join(", ");
        Error::event_file(
            file,
            format!("no dataset '{dataset}' of counts (top-level members: {available})"),
        )
    })?;
    if data.ndim() != 1 {
        return Err(Error::event_file(
            file,
            format!(
                "counts '{dataset}' must be a 1-D dataset with one count per bin, found shape {:?}",
                data.shape()
            ),
        ));
    }
    data.read_raw::<f64>().map_err(|e| {
        Error::event_file(
            file,
            format!("counts '{dataset}' cannot be read as numbers: {e}"),
        )
    })
}

fn open_group(file: &Path, group: &str) -> Result<hdf5::Group> {
    if !file.exists() {
        return Err(Error::event_file(file, "event file not found"));
    }
    let h5 = hdf5::File::open(file)
        .map_err(|e| Error::event_file(file, format!("cannot open as HDF5: {e}")))?;
    h5.group(group).map_err(|_| {
        let available = h5.member_names().unwrap_or_default().join(", ");
        Error::event_file(
            file,
            format!("no group '{group}' (top-level members: {available})"),
        )
    })
}

fn read_column(file: &Path, group: &hdf5::Group, name: &str) -> Result<Vec<f64>> {
    if group.group(name).is_ok() {
        return Err(Error::event_file(
            file,
            format!(
                "column '{name}' in group '{}' is an HDF5 group, not a dataset: each column \
                 must be a 1-D dataset with one number per event (point the workspace at the \
                 dataset inside it)",
                group.name()
            ),
        ));
    }
    let dataset = group.dataset(name).map_err(|_| {
        let available = group.member_names().unwrap_or_default().join(", ");
        Error::event_file(
            file,
            format!(
                "missing column '{name}' in group '{}' (available: {available})",
                group.name()
            ),
        )
    })?;
    if dataset.ndim() != 1 {
        return Err(Error::event_file(
            file,
            format!(
                "column '{name}' must be a 1-D dataset, found shape {:?}",
                dataset.shape()
            ),
        ));
    }
    dataset.read_raw::<f64>().map_err(|e| {
        Error::event_file(
            file,
            format!("column '{name}' cannot be read as numbers: {e}"),
        )
    })
}
