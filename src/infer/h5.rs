//! The HDF5 side of nsbi's toy files (Neyman toys and hypothesis-test toys): one column per
//! record field, a JSON `plan` attribute, written atomically (temporary file + rename), and
//! every read error naming the file and the dataset.

use std::path::Path;

use hdf5::types::VarLenUnicode;
use hdf5::H5Type;

use crate::error::{Error, Result};

fn file_error(path: &Path, message: String) -> Error {
    Error::EventFile {
        file: path.to_path_buf(),
        message,
    }
}

/// Writes the file at `path` atomically: its folder made where missing, the content written by
/// `write` into a [`ToyWriter`] on a temporary name beside it, then renamed (removed on failure).
pub fn write_atomically(path: &Path, write: impl FnOnce(&ToyWriter) -> Result<()>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    crate::report::write_through_temp(path, ".tmp", |tmp| {
        let writer = ToyWriter {
            file: hdf5::File::create(tmp).map_err(|e| file_error(tmp, e.to_string()))?,
            path: tmp,
        };
        write(&writer)?;
        writer
            .file
            .flush()
            .map_err(|e| file_error(tmp, e.to_string()))
    })
}

/// An HDF5 toy file being written.
pub struct ToyWriter<'a> {
    pub file: hdf5::File,
    path: &'a Path,
}

impl ToyWriter<'_> {
    /// A dataset `name` holding `values` (any shape ndarray accepts as data).
    pub fn column<T: H5Type>(&self, name: &str, values: &[T]) -> Result<()> {
        self.file
            .new_dataset_builder()
            .with_data(values)
            .create(name)
            .map(|_| ())
            .map_err(|e| file_error(self.path, format!("dataset '{name}': {e}")))
    }

    /// A 2-D dataset `name` of `width` columns, one row per item of `rows` (each `width` long).
    pub fn matrix<'r>(
        &self,
        name: &str,
        width: usize,
        rows: impl Iterator<Item = &'r [f64]>,
    ) -> Result<()> {
        let values: Vec<f64> = rows.flatten().copied().collect();
        let matrix = ndarray::Array2::from_shape_vec((values.len() / width.max(1), width), values)
            .map_err(|e| file_error(self.path, format!("dataset '{name}': {e}")))?;
        self.file
            .new_dataset_builder()
            .with_data(&matrix)
            .create(name)
            .map(|_| ())
            .map_err(|e| file_error(self.path, format!("dataset '{name}': {e}")))
    }

    /// The `plan` attribute: `header` as JSON text.
    pub fn plan(&self, header: &impl serde::Serialize) -> Result<()> {
        let plan: VarLenUnicode = serde_json::to_string(header)
            .expect("header serialises")
            .parse()
            .map_err(|_| Error::Analysis("toy file header is not valid text".into()))?;
        self.file
            .new_attr::<VarLenUnicode>()
            .create("plan")
            .and_then(|a| a.write_scalar(&plan))
            .map_err(|e| file_error(self.path, e.to_string()))
    }
}

/// An HDF5 toy file being read.
pub struct ToyReader<'a> {
    pub file: hdf5::File,
    path: &'a Path,
}

impl ToyReader<'_> {
    pub fn open(path: &Path) -> Result<ToyReader<'_>> {
        let file = hdf5::File::open(path).map_err(|e| file_error(path, e.to_string()))?;
        Ok(ToyReader { file, path })
    }

    /// The JSON text of the `plan` attribute (refused: a file without one is not nsbi's).
    pub fn plan(&self) -> Result<String> {
        let plan: VarLenUnicode = self
            .file
            .attr("plan")
            .and_then(|a| a.read_scalar())
            .map_err(|_| self.error("not an nsbi toy file (no 'plan' attribute)".into()))?;
        Ok(plan.as_str().to_string())
    }

    /// Dataset `name`'s values, flattened.
    pub fn column<T: H5Type>(&self, name: &str) -> Result<Vec<T>> {
        self.file
            .dataset(name)
            .and_then(|d| d.read_raw::<T>())
            .map_err(|e| self.error(format!("dataset '{name}': {e}")))
    }

    /// An error about this file.
    pub fn error(&self, message: String) -> Error {
        file_error(self.path, message)
    }
}
