//! Toy files: one HDF5 file per run or shard, and their merge.
//!
//! Layout (readable with h5py): a root attribute `plan` holding JSON (format version, POI,
//! grid, toys per point, seed, systematics, parameter names, workspace, shard `i/N` and the
//! job range it owns), and one 1-D dataset per record field — `grid_index`, `toy_index`,
//! `mu_true`, `t`, `mu_hat`, `nll_conditional`, `nll_free`, `converged_conditional`,
//! `converged_free` (0/1), `n_events` — plus `theta_hat` (records × parameters).
//! A file is written under a temporary name and renamed when complete, so a killed job
//! leaves no file that could pass for finished.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use serde::{Deserialize, Serialize};

use super::toys::{shard_range, ToyPlan, ToyRecord};
use crate::error::{Error, Result};

const FORMAT: &str = "nsbi-toys-1";

/// What a toy file says about how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyFileHeader {
    pub format: String,
    pub workspace: String,
    pub poi: String,
    pub grid: Vec<f64>,
    pub n_toys: usize,
    pub seed: u64,
    pub systematics: bool,
    pub parameters: Vec<String>,
    /// (index, count) of the shard; (0, 1) for a whole run or a merged file.
    pub shard: (usize, usize),
    /// The (grid, toy) job indices the file holds: `jobs.0..jobs.1`.
    pub jobs: (usize, usize),
}

impl ToyFileHeader {
    pub fn new(
        workspace: &Path,
        plan: &ToyPlan,
        parameters: Vec<String>,
        shard: (usize, usize),
    ) -> ToyFileHeader {
        let range = plan.shard(shard.0, shard.1);
        ToyFileHeader {
            format: FORMAT.into(),
            workspace: workspace.display().to_string(),
            poi: parameters[plan.poi].clone(),
            grid: plan.grid.clone(),
            n_toys: plan.n_toys,
            seed: plan.seed,
            systematics: plan.systematics,
            parameters,
            shard,
            jobs: (range.start, range.end),
        }
    }

    /// Whether two files belong to the same construction (everything but the shard).
    fn same_run(&self, other: &ToyFileHeader) -> bool {
        let strip = |h: &ToyFileHeader| ToyFileHeader {
            shard: (0, 1),
            jobs: (0, 0),
            ..h.clone()
        };
        strip(self) == strip(other)
    }
}

/// A toy file's contents.
#[derive(Clone, Debug, PartialEq)]
pub struct ToyFile {
    pub header: ToyFileHeader,
    pub records: Vec<ToyRecord>,
}

fn h5_error(path: &Path) -> impl Fn(hdf5::Error) -> Error + '_ {
    move |e| Error::EventFile {
        file: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl ToyFile {
    /// Writes the file atomically (temporary name in the same folder, then rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{name}.{}.tmp", crate::report::unique_suffix()));
        let written = self.write_to(&tmp);
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return written;
        }
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::io(format!("cannot move {} into place", path.display()), e))
    }

    fn write_to(&self, path: &Path) -> Result<()> {
        let err = h5_error(path);
        let file = hdf5::File::create(path).map_err(&err)?;
        let r = &self.records;
        let column = |name: &str, values: Vec<f64>| -> Result<()> {
            file.new_dataset_builder()
                .with_data(values.as_slice())
                .create(name)
                .map(|_| ())
                .map_err(&err)
        };
        let counts = |name: &str, values: Vec<u64>| -> Result<()> {
            file.new_dataset_builder()
                .with_data(values.as_slice())
                .create(name)
                .map(|_| ())
                .map_err(&err)
        };
        counts(
            "grid_index",
            r.iter().map(|x| x.grid_index as u64).collect(),
        )?;
        counts("toy_index", r.iter().map(|x| x.toy_index as u64).collect())?;
        column("mu_true", r.iter().map(|x| x.mu_true).collect())?;
        column("t", r.iter().map(|x| x.t).collect())?;
        column("mu_hat", r.iter().map(|x| x.mu_hat).collect())?;
        column(
            "nll_conditional",
            r.iter().map(|x| x.nll_conditional).collect(),
        )?;
        column("nll_free", r.iter().map(|x| x.nll_free).collect())?;
        let flag = |b: bool| u64::from(b);
        counts(
            "converged_conditional",
            r.iter().map(|x| flag(x.converged_conditional)).collect(),
        )?;
        counts(
            "converged_free",
            r.iter().map(|x| flag(x.converged_free)).collect(),
        )?;
        counts("n_events", r.iter().map(|x| x.n_events as u64).collect())?;
        let n_par = self.header.parameters.len();
        let theta: Vec<f64> = r.iter().flat_map(|x| x.theta_hat.clone()).collect();
        let theta = ndarray::Array2::from_shape_vec((r.len(), n_par), theta)
            .map_err(|e| Error::Analysis(format!("toy records: {e}")))?;
        file.new_dataset_builder()
            .with_data(&theta)
            .create("theta_hat")
            .map_err(&err)?;
        let plan: VarLenUnicode = serde_json::to_string(&self.header)
            .expect("header serialises")
            .parse()
            .map_err(|_| Error::Analysis("toy file header is not valid text".into()))?;
        file.new_attr::<VarLenUnicode>()
            .create("plan")
            .and_then(|a| a.write_scalar(&plan))
            .map_err(&err)?;
        file.flush().map_err(&err)?;
        Ok(())
    }

    pub fn read(path: &Path) -> Result<ToyFile> {
        let err = h5_error(path);
        let file = hdf5::File::open(path).map_err(&err)?;
        let plan: VarLenUnicode =
            file.attr("plan")
                .and_then(|a| a.read_scalar())
                .map_err(|_| Error::EventFile {
                    file: path.to_path_buf(),
                    message: "not an nsbi toy file (no 'plan' attribute)".into(),
                })?;
        let header: ToyFileHeader =
            serde_json::from_str(plan.as_str()).map_err(|e| Error::EventFile {
                file: path.to_path_buf(),
                message: format!("unreadable 'plan' attribute: {e}"),
            })?;
        if header.format != FORMAT {
            return Err(Error::EventFile {
                file: path.to_path_buf(),
                message: format!("toy file format {} (expected {FORMAT})", header.format),
            });
        }
        let floats = |name: &str| -> Result<Vec<f64>> {
            file.dataset(name)
                .and_then(|d| d.read_raw::<f64>())
                .map_err(|e| Error::EventFile {
                    file: path.to_path_buf(),
                    message: format!("dataset '{name}': {e}"),
                })
        };
        let ints = |name: &str| -> Result<Vec<u64>> {
            file.dataset(name)
                .and_then(|d| d.read_raw::<u64>())
                .map_err(|e| Error::EventFile {
                    file: path.to_path_buf(),
                    message: format!("dataset '{name}': {e}"),
                })
        };
        let (grid_index, toy_index) = (ints("grid_index")?, ints("toy_index")?);
        let (mu_true, t, mu_hat) = (floats("mu_true")?, floats("t")?, floats("mu_hat")?);
        let (nll_c, nll_f) = (floats("nll_conditional")?, floats("nll_free")?);
        let (conv_c, conv_f) = (ints("converged_conditional")?, ints("converged_free")?);
        let n_events = ints("n_events")?;
        let theta = floats("theta_hat")?;
        let n = grid_index.len();
        let n_par = header.parameters.len();
        let lengths = [
            toy_index.len(),
            mu_true.len(),
            t.len(),
            mu_hat.len(),
            nll_c.len(),
            nll_f.len(),
            conv_c.len(),
            conv_f.len(),
            n_events.len(),
        ];
        if lengths.iter().any(|&l| l != n) || theta.len() != n * n_par {
            return Err(Error::EventFile {
                file: path.to_path_buf(),
                message: format!("record datasets of different lengths ({n} grid indices)"),
            });
        }
        let records = (0..n)
            .map(|i| ToyRecord {
                grid_index: grid_index[i] as usize,
                toy_index: toy_index[i] as usize,
                mu_true: mu_true[i],
                t: t[i],
                mu_hat: mu_hat[i],
                nll_conditional: nll_c[i],
                nll_free: nll_f[i],
                converged_conditional: conv_c[i] != 0,
                converged_free: conv_f[i] != 0,
                n_events: n_events[i] as usize,
                theta_hat: theta[i * n_par..(i + 1) * n_par].to_vec(),
            })
            .collect();
        Ok(ToyFile { header, records })
    }
}

/// Combines the toy files of one construction: checks they come from the same run, that every
/// (grid, toy) job is present exactly once, and orders the records by job. The error names
/// missing jobs by the shard that owns them, and files that do not belong.
pub fn merge(paths: &[PathBuf]) -> Result<ToyFile> {
    let files: Vec<(PathBuf, ToyFile)> = paths
        .iter()
        .map(|p| ToyFile::read(p).map(|f| (p.clone(), f)))
        .collect::<Result<_>>()?;
    let Some((first_path, first)) = files.first() else {
        return Err(Error::Analysis("no toy files to merge".into()));
    };
    for (path, file) in &files[1..] {
        if !file.header.same_run(&first.header) {
            return Err(Error::Analysis(format!(
                "{} does not belong to the same construction as {} (seed, grid, toys, POI, \
                 systematics or workspace differ)",
                path.display(),
                first_path.display()
            )));
        }
    }
    let header = &first.header;
    let n_jobs = header.grid.len() * header.n_toys;
    if n_jobs == 0 {
        return Err(Error::Analysis(format!(
            "{}: holds no toys (a grid of {} points, {} toys per point): nothing to build a \
             construction from; make toys with a non-empty --mu-grid and --toys ≥ 1",
            first_path.display(),
            header.grid.len(),
            header.n_toys
        )));
    }
    let mut slots: Vec<Option<ToyRecord>> = vec![None; n_jobs];
    for (path, file) in &files {
        for r in &file.records {
            let job = r.grid_index * header.n_toys + r.toy_index;
            if job >= n_jobs || r.toy_index >= header.n_toys {
                return Err(Error::Analysis(format!(
                    "{}: record (grid {}, toy {}) lies outside the plan",
                    path.display(),
                    r.grid_index,
                    r.toy_index
                )));
            }
            if slots[job].replace(r.clone()).is_some() {
                return Err(Error::Analysis(format!(
                    "{}: toy (grid {}, toy {}) appears in more than one file",
                    path.display(),
                    r.grid_index,
                    r.toy_index
                )));
            }
        }
    }
    let missing: Vec<usize> = (0..n_jobs).filter(|&j| slots[j].is_none()).collect();
    if !missing.is_empty() {
        let count = header.shard.1;
        let shards: Vec<String> = (0..count)
            .filter(|&i| {
                missing
                    .iter()
                    .any(|j| shard_range(n_jobs, i, count).contains(j))
            })
            .map(|i| format!("{i}/{count}"))
            .collect();
        return Err(Error::Analysis(format!(
            "{} of {n_jobs} toys are missing; shards without their file: {}",
            missing.len(),
            shards.join(", ")
        )));
    }
    let mut merged_header = header.clone();
    merged_header.shard = (0, 1);
    merged_header.jobs = (0, n_jobs);
    Ok(ToyFile {
        header: merged_header,
        records: slots.into_iter().flatten().collect(),
    })
}
