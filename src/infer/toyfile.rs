//! Toy files: one HDF5 file per run or shard, and their merge.
//!
//! Layout (readable with h5py): a root attribute `plan` holding JSON (format version, the
//! grid's POIs and the profiled ones, the grid points (and a product grid's axes), toys per
//! point, seed, systematics, parameter names, workspace, the model fingerprint, shard `i/N`
//! and the job range it owns), and one 1-D dataset per record field — `grid_index`,
//! `toy_index`, `t`, `nll_conditional`, `nll_free`, `converged_conditional`, `converged_free`
//! (0/1), `n_events` — plus `poi_true` and `poi_hat` (records × grid POIs) and `theta_hat`
//! (records × parameters).
//! A file is written under a temporary name and renamed when complete, so a killed job
//! leaves no file that could pass for finished.

use std::path::{Path, PathBuf};

use super::h5::{self, ToyReader, ToyWriter};
use serde::{Deserialize, Serialize};

use super::construction::{is_excluded, total_toys, ExcludedPoint, MAX_TOYS};
use super::poi_grid::PoiGrid;
use super::test_stat::TestStatistic;
use super::toys::{shard_range, ToyPlan, ToyRecord};
use crate::analysis::Analysis;
use crate::error::{Error, Result};

/// Bump when the header or the datasets change meaning; older files are refused. 3: the shape
/// systematics are normalised (N_c(α), issue 13), so t of a version-2 file belongs to another
/// likelihood of the same workspace. 5: grid points are POI vectors (`pois`, `points`,
/// `poi_true`, `poi_hat`); a version-4 file (one POI, `mu_true`) is refused rather than read
/// as one: its header does not say which other POIs its fits profiled.
const FORMAT: &str = "nsbi-toys-5";

/// The one-POI format before [`FORMAT`], named in its refusal.
const FORMAT_ONE_POI: &str = "nsbi-toys-4";

/// What defines the model a toy file was made from, as BLAKE3 hashes. Toys are only
/// meaningful against the model that made them, so `neyman`, `coverage` and `merge` compare
/// fingerprints; none of the parts depends on the path the workspace was named by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelFingerprint {
    /// The model the workspace resolves to: parameters (bounds, initial values, constraints),
    /// coefficients, nominal yields, systematics and their interpolation codes.
    pub model: String,
    /// Every ratio entry's cache key: the networks, their settings and the events' features.
    pub ratios: String,
    /// The weights of every event file: they set the default yields and the toys' MC pool.
    pub weights: String,
}

impl ModelFingerprint {
    pub fn of(analysis: &Analysis) -> ModelFingerprint {
        let hash = |bytes: &[u8]| blake3::hash(bytes).to_hex().to_string();
        let mut ratios = blake3::Hasher::new();
        let mut weights = blake3::Hasher::new();
        for channel in analysis.ratios.iter() {
            for ((label, source), key) in &channel.keys {
                ratios
                    .update(format!("{}|{label}|{source}|{}\n", channel.channel, key.0).as_bytes());
            }
            for (role, events) in &channel.sources {
                weights.update(format!("{}|{role}|{}\n", channel.channel, events.len()).as_bytes());
                for w in &events.weights {
                    weights.update(&w.to_le_bytes());
                }
            }
        }
        ModelFingerprint {
            model: hash(format!("{:?}", analysis.model).as_bytes()),
            ratios: ratios.finalize().to_hex().to_string(),
            weights: weights.finalize().to_hex().to_string(),
        }
    }

    /// The parts in which `self` and `other` differ, in words.
    pub(crate) fn differences(&self, other: &ModelFingerprint) -> Vec<String> {
        [
            ("workspace content differs", &self.model, &other.model),
            ("ratio entries differ", &self.ratios, &other.ratios),
            ("event weights differ", &self.weights, &other.weights),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(difference, _, _)| difference.to_string())
        .collect()
    }
}

/// What a toy file says about how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ToyFileHeader {
    pub format: String,
    /// The workspace path as it was given: for people; files are matched by `fingerprint`.
    pub workspace: String,
    /// The POIs a grid point fixes, in the order of its values.
    pub pois: Vec<String>,
    /// The POIs the statistic profiles; the model's other POIs were held at their initial
    /// values.
    pub profiled: Vec<String>,
    pub grid: PoiGrid,
    pub n_toys: usize,
    pub seed: u64,
    pub systematics: bool,
    /// The statistic the records' `t` holds.
    pub test_stat: TestStatistic,
    pub parameters: Vec<String>,
    pub fingerprint: ModelFingerprint,
    /// (index, count) of the shard; (0, 1) for a whole run or a merged file.
    pub shard: (usize, usize),
    /// The (grid, toy) job indices the file holds: `jobs.0..jobs.1`, less those of the
    /// excluded grid points.
    pub jobs: (usize, usize),
    /// The grid points where the model is not a density: no toys were made there (every
    /// shard finds the same ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<ExcludedPoint>,
}

impl ToyFileHeader {
    pub fn new(
        workspace: &Path,
        plan: &ToyPlan,
        parameters: Vec<String>,
        fingerprint: ModelFingerprint,
        shard: (usize, usize),
    ) -> ToyFileHeader {
        let range = plan.shard(shard.0, shard.1);
        let names = |indices: &[usize]| indices.iter().map(|&k| parameters[k].clone()).collect();
        ToyFileHeader {
            format: FORMAT.into(),
            workspace: workspace.display().to_string(),
            pois: names(&plan.pois),
            profiled: names(&plan.profiled),
            grid: plan.grid.clone(),
            n_toys: plan.n_toys,
            seed: plan.seed,
            systematics: plan.systematics,
            test_stat: plan.statistic,
            parameters,
            fingerprint,
            shard,
            jobs: (range.start, range.end),
            excluded: Vec::new(),
        }
    }

    /// How two files fail to belong to the same construction, in words (empty when they do):
    /// everything but the shard and the path the workspace was named by must agree.
    fn run_differences(&self, other: &ToyFileHeader) -> Vec<String> {
        let mut out = Vec::new();
        let settings = [
            (
                "POIs",
                format!("{:?}", self.pois),
                format!("{:?}", other.pois),
            ),
            (
                "profiled POIs",
                format!("{:?}", self.profiled),
                format!("{:?}", other.profiled),
            ),
            (
                "grid",
                format!("{:?}", self.grid),
                format!("{:?}", other.grid),
            ),
            (
                "toys per point",
                self.n_toys.to_string(),
                other.n_toys.to_string(),
            ),
            ("seed", self.seed.to_string(), other.seed.to_string()),
            (
                "systematics",
                self.systematics.to_string(),
                other.systematics.to_string(),
            ),
            (
                "test statistic",
                self.test_stat.to_string(),
                other.test_stat.to_string(),
            ),
        ];
        if self.excluded != other.excluded {
            out.push("excluded grid points differ".into());
        }
        for (name, a, b) in settings {
            if a != b {
                out.push(format!("generation settings differ: {name} {a} vs {b}"));
            }
        }
        out.extend(self.model_differences(&other.parameters, &other.fingerprint));
        out
    }

    /// How the model of this file differs from one with `parameters` and `fingerprint`.
    fn model_differences(
        &self,
        parameters: &[String],
        fingerprint: &ModelFingerprint,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if self.parameters != parameters {
            out.push(format!(
                "parameter lists differ: {:?} vs {parameters:?}",
                self.parameters
            ));
        }
        out.extend(self.fingerprint.differences(fingerprint));
        out
    }

    /// Refuses toys (from `files`) that were not made from the model of `analysis`, saying
    /// which part differs.
    pub fn require_model(&self, analysis: &Analysis, files: &str) -> Result<()> {
        let parameters: Vec<String> = analysis
            .model
            .parameters
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let differences = self.model_differences(&parameters, &ModelFingerprint::of(analysis));
        if differences.is_empty() {
            return Ok(());
        }
        Err(Error::Analysis(format!(
            "toy file {files} was made from another model than {}: {}; make the toys again \
             from this workspace with `nsbi toys`",
            analysis.workspace.path.display(),
            differences.join("; ")
        )))
    }
}

/// A toy file's contents.
#[derive(Clone, Debug, PartialEq)]
pub struct ToyFile {
    pub header: ToyFileHeader,
    pub records: Vec<ToyRecord>,
}

impl ToyFile {
    /// Writes the file atomically (temporary name in the same folder, then rename).
    /// The temporary file is removed on every failure.
    pub fn write(&self, path: &Path) -> Result<()> {
        h5::write_atomically(path, |out| self.write_to(out))
    }

    fn write_to(&self, out: &ToyWriter) -> Result<()> {
        let r = &self.records;
        let counts = |name: &str, values: Vec<u64>| out.column(name, &values);
        let column = |name: &str, values: Vec<f64>| out.column(name, &values);
        counts(
            "grid_index",
            r.iter().map(|x| x.grid_index as u64).collect(),
        )?;
        counts("toy_index", r.iter().map(|x| x.toy_index as u64).collect())?;
        column("t", r.iter().map(|x| x.t).collect())?;
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
        let n_poi = self.header.pois.len();
        out.matrix("poi_true", n_poi, r.iter().map(|x| x.poi_true.as_slice()))?;
        out.matrix("poi_hat", n_poi, r.iter().map(|x| x.poi_hat.as_slice()))?;
        let n_par = self.header.parameters.len();
        out.matrix("theta_hat", n_par, r.iter().map(|x| x.theta_hat.as_slice()))?;
        out.plan(&self.header)
    }

    pub fn read(path: &Path) -> Result<ToyFile> {
        let file = ToyReader::open(path)?;
        let header = parse_header(path, &file.plan()?)?;
        let floats = |name: &str| file.column::<f64>(name);
        let ints = |name: &str| file.column::<u64>(name);
        let (grid_index, toy_index) = (ints("grid_index")?, ints("toy_index")?);
        let t = floats("t")?;
        let (nll_c, nll_f) = (floats("nll_conditional")?, floats("nll_free")?);
        let (conv_c, conv_f) = (ints("converged_conditional")?, ints("converged_free")?);
        let n_events = ints("n_events")?;
        let (poi_true, poi_hat) = (floats("poi_true")?, floats("poi_hat")?);
        let theta = floats("theta_hat")?;
        let n = grid_index.len();
        let (n_poi, n_par) = (header.pois.len(), header.parameters.len());
        let lengths = [
            toy_index.len(),
            t.len(),
            nll_c.len(),
            nll_f.len(),
            conv_c.len(),
            conv_f.len(),
            n_events.len(),
        ];
        if lengths.iter().any(|&l| l != n)
            || poi_true.len() != n * n_poi
            || poi_hat.len() != n * n_poi
            || theta.len() != n * n_par
        {
            return Err(file.error(format!(
                "record datasets of different lengths ({n} grid indices, {n_poi} POIs, \
                 {n_par} parameters)"
            )));
        }
        let row =
            |values: &[f64], i: usize, width: usize| values[i * width..(i + 1) * width].to_vec();
        let records = (0..n)
            .map(|i| ToyRecord {
                grid_index: grid_index[i] as usize,
                toy_index: toy_index[i] as usize,
                poi_true: row(&poi_true, i, n_poi),
                t: t[i],
                poi_hat: row(&poi_hat, i, n_poi),
                nll_conditional: nll_c[i],
                nll_free: nll_f[i],
                converged_conditional: conv_c[i] != 0,
                converged_free: conv_f[i] != 0,
                n_events: n_events[i] as usize,
                theta_hat: row(&theta, i, n_par),
            })
            .collect();
        Ok(ToyFile { header, records })
    }
}

/// The `plan` attribute of the toy file at `path`, refusing other formats: a file of an older
/// nsbi records no model fingerprint, so nothing could say it belongs to the workspace.
fn parse_header(path: &Path, plan: &str) -> Result<ToyFileHeader> {
    let unreadable = |e: serde_json::Error| Error::EventFile {
        file: path.to_path_buf(),
        message: format!("unreadable 'plan' attribute: {e}"),
    };
    let value: serde_json::Value = serde_json::from_str(plan).map_err(unreadable)?;
    let format = value["format"].as_str().unwrap_or("(none)");
    if format == super::test_toys::FORMAT {
        return Err(Error::EventFile {
            file: path.to_path_buf(),
            message: format!(
                "toy file format {format}: the toys of a hypothesis test (`nsbi hypotest|limit|\
                 significance --out`), not of a Neyman construction; `nsbi merge` them among \
                 themselves and test with them by `--toys-from`"
            ),
        });
    }
    if format == FORMAT_ONE_POI {
        return Err(Error::EventFile {
            file: path.to_path_buf(),
            message: format!(
                "toy file format {format} (one POI) is not read by this nsbi, whose toy files \
                 ({FORMAT}) record the grid's POI vector and the POIs the fits profiled: make \
                 the toys again with `nsbi toys` (the same --mu-grid, --toys and --seed give \
                 the same toys)"
            ),
        });
    }
    if format != FORMAT {
        return Err(Error::EventFile {
            file: path.to_path_buf(),
            message: format!(
                "toy file format {format}, but this nsbi reads {FORMAT} (which records the \
                 model the toys were made from): make the toys again with `nsbi toys`"
            ),
        });
    }
    let header: ToyFileHeader = serde_json::from_value(value).map_err(unreadable)?;
    check_plan_size(path, &header)?;
    check_grid_shape(path, &header)?;
    Ok(header)
}

/// Refuses a header whose grid points do not each hold a value per POI, or whose axes do not
/// make its points: every later step indexes them by the header's word.
fn check_grid_shape(path: &Path, header: &ToyFileHeader) -> Result<()> {
    let n_poi = header.pois.len();
    let damaged = |what: String| Error::EventFile {
        file: path.to_path_buf(),
        message: format!(
            "the 'plan' attribute's grid {what}: the file is damaged or was not written by \
             nsbi; make the toys again with `nsbi toys`"
        ),
    };
    if let Some(g) = header.grid.points.iter().position(|p| p.len() != n_poi) {
        return Err(damaged(format!(
            "point {g} has {} values for {n_poi} POIs",
            header.grid.points[g].len()
        )));
    }
    if let Some(axes) = &header.grid.axes {
        let remade = PoiGrid::product(axes.clone()).ok();
        if axes.len() != n_poi || remade.as_ref() != Some(&header.grid) {
            return Err(damaged("points are not the product of its axes".into()));
        }
    }
    Ok(())
}

/// Refuses a header whose plan holds more than [`MAX_TOYS`] toys (grid points × toys per
/// point), as `nsbi toys` does: `merge` allocates a slot per toy, so a damaged or crafted
/// header would otherwise overflow the count or abort on the allocation.
fn check_plan_size(path: &Path, header: &ToyFileHeader) -> Result<()> {
    let (n_grid, n_toys) = (header.grid.len(), header.n_toys);
    match total_toys(n_grid, n_toys) {
        Some(_) => Ok(()),
        None => Err(Error::EventFile {
            file: path.to_path_buf(),
            message: format!(
                "the 'plan' attribute claims {n_toys} toys on each of {n_grid} grid points, \
                 more than the {MAX_TOYS} toys nsbi makes in all: the file is damaged or was \
                 not written by nsbi; make the toys again with `nsbi toys`"
            ),
        }),
    }
}

/// Reads the toy files `paths` (at least one) with `read`, and refuses any whose run differs
/// from the first's (`differences`, empty when they agree), naming both files and `what` run
/// they should share: the first step of both toy formats' merges.
pub(crate) fn read_one_run<F>(
    paths: &[PathBuf],
    read: fn(&Path) -> Result<F>,
    what: &str,
    differences: impl Fn(&F, &F) -> Vec<String>,
) -> Result<Vec<(PathBuf, F)>> {
    let files: Vec<(PathBuf, F)> = paths
        .iter()
        .map(|p| read(p).map(|f| (p.clone(), f)))
        .collect::<Result<_>>()?;
    let Some((first_path, first)) = files.first() else {
        return Err(Error::Analysis("no toy files to merge".into()));
    };
    for (path, file) in &files[1..] {
        let differences = differences(first, file);
        if !differences.is_empty() {
            return Err(Error::Analysis(format!(
                "{} does not belong to the same {what} as {}: {}",
                path.display(),
                first_path.display(),
                differences.join("; ")
            )));
        }
    }
    Ok(files)
}

/// Combines the toy files of one construction: checks they come from the same run, that every
/// (grid, toy) job is present exactly once, and orders the records by job. The error names
/// missing jobs by the shard that owns them, and files that do not belong.
pub fn merge(paths: &[PathBuf]) -> Result<ToyFile> {
    let files = read_one_run(paths, ToyFile::read, "construction", |a, b| {
        a.header.run_differences(&b.header)
    })?;
    let (first_path, first) = &files[0];
    let header = &first.header;
    let n_jobs = header.grid.len() * header.n_toys;
    if n_jobs == 0 {
        return Err(Error::Analysis(format!(
            "{}: holds no toys (a grid of {} points, {} toys per point): nothing to build a \
             construction from; make toys with a non-empty grid and --toys ≥ 1",
            first_path.display(),
            header.grid.len(),
            header.n_toys
        )));
    }
    let mut slots: Vec<Option<ToyRecord>> = vec![None; n_jobs];
    for (path, file) in &files {
        for r in &file.records {
            if r.grid_index >= header.grid.len() || r.toy_index >= header.n_toys {
                return Err(Error::Analysis(format!(
                    "{}: record (grid {}, toy {}) lies outside the plan",
                    path.display(),
                    r.grid_index,
                    r.toy_index
                )));
            }
            if is_excluded(&header.excluded, r.grid_index) {
                return Err(Error::Analysis(format!(
                    "{}: record (grid {}, toy {}) at a grid point the plan excludes",
                    path.display(),
                    r.grid_index,
                    r.toy_index
                )));
            }
            let job = r.grid_index * header.n_toys + r.toy_index;
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
    let expected = |j: &usize| !is_excluded(&header.excluded, j / header.n_toys);
    let missing: Vec<usize> = (0..n_jobs)
        .filter(expected)
        .filter(|&j| slots[j].is_none())
        .collect();
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
