//! The toys of a hypothesis test (the toy calculator of `hypotest`, `limit` and
//! `significance`), made in one process or by the shards of a farm, and their files.
//!
//! A test at the tested values μ_1 … μ_K of the POI draws toys at generation points: each tested
//! hypothesis μ_k, whose toys give CLs+b at μ_k, and the other hypothesis (the background μ = 0
//! for limits, the signal for q₀), whose toys give CLb and the expected band at every μ_k. The
//! other hypothesis' toys are the same for every tested value: each is drawn and fitted free
//! once, then fitted with the POI fixed at each μ_k.
//!
//! Every fit of a toy starts from its generation point (the conditional fit with the POI set to
//! the tested value), and toy t of generation point g draws from the stream keyed by (seed, g's
//! POI values, t). So a toy's statistic at μ_k depends neither on the other tested values nor on
//! the shard, thread or process that makes it: a limit's CLs at μ equals a hypotest's at μ, and
//! the union of a farm's shards gives the in-process run's numbers bit for bit.
//!
//! File layout (HDF5, readable with h5py): a root attribute `plan` holding JSON
//! ([`TestToyHeader`]: format, workspace, POIs, statistic, tested values, the other hypothesis,
//! the generation points with every parameter's value and the tested values their toys are
//! evaluated at, toys per generation point, seed, systematics, parameter names, the model
//! fingerprint, shard `i/N` and its job range), and one 1-D dataset per record field:
//! `generation`, `toy_index`, `tested` (indices into the header's lists), `q`, `poi_hat`,
//! `converged` (0/1: both fits of the toy). POI values are vectors (one POI today).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::construction::{total_toys, MAX_TOYS};
use super::h5::{self, ToyReader, ToyWriter};
use super::test_stat::{ProfileRatio, TestStatistic};
use super::toyfile::{read_one_run, ModelFingerprint};
use super::toys::{nll_at_minimum, shard_range, ToySource, TOY_EDM_TOLERANCE};
use crate::analysis::Analysis;
use crate::error::{Error, Result};
use crate::fit::{minimise, FitOptions};
use crate::likelihood::Likelihood;

/// Bump when the header or the datasets change meaning; other versions are refused.
pub const FORMAT: &str = "nsbi-test-toys-1";

/// A hypothesis the toys are drawn at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationPoint {
    /// The POIs' values of the hypothesis.
    pub poi: Vec<f64>,
    /// Every parameter at the generation point: the POIs at `poi`, the nuisances at their
    /// conditional fit to the data there (θ̂̂).
    pub theta: Vec<f64>,
    /// The tested values (indices into [`TestToyPlan::tested`]) its toys are evaluated at.
    pub tested: Vec<usize>,
}

/// What toys a hypothesis test makes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestToyPlan {
    /// The POIs' names, in the order of every POI vector.
    pub pois: Vec<String>,
    /// The statistic the records' `q` holds.
    pub test_stat: TestStatistic,
    pub tested: Vec<Vec<f64>>,
    /// The hypothesis whose toys give CLb and the expected band (the background's POI, or the
    /// signal's for q₀).
    pub other: Vec<f64>,
    pub generations: Vec<GenerationPoint>,
    /// Toys per generation point.
    pub n_toys: usize,
    pub seed: u64,
    /// Whether nuisance parameters float (false: `--no-syst`).
    pub systematics: bool,
}

/// One toy's statistic at one tested value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestToyRecord {
    pub generation: usize,
    pub toy_index: usize,
    pub tested: usize,
    pub q: f64,
    /// The POI at the toy's free fit.
    pub poi_hat: f64,
    /// Whether both the free and the conditional fit converged.
    pub converged: bool,
}

/// A toy's free fit, which every tested value of its generation point shares.
#[derive(Clone, Copy, Debug)]
pub struct FreeFit {
    nll: f64,
    poi_hat: f64,
    converged: bool,
}

/// The free fits made so far, by (stream key of the generation point, toy): an in-process
/// test reuses the other hypothesis' ones at each tested value.
pub type FreeFits = HashMap<(u64, usize), FreeFit>;

/// The toys' statistics at one tested value, in toy order.
#[derive(Clone, Debug)]
pub struct TestedToys {
    /// Under the tested hypothesis (CLs+b).
    pub tested: Vec<f64>,
    /// Under the other hypothesis (CLb, the expected band).
    pub other: Vec<f64>,
    /// Toys among both whose fits did not converge.
    pub failed_fits: usize,
}

/// Whether two POI vectors are the same hypothesis (bit for bit: a file's values are read back
/// exactly).
fn same_point(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The random-stream key of a generation point: the bits of its POI value (of the hash of its
/// values, for several POIs).
fn stream_key(poi: &[f64]) -> u64 {
    match poi {
        [single] => single.to_bits(),
        _ => {
            let mut hasher = blake3::Hasher::new();
            for x in poi {
                hasher.update(&x.to_le_bytes());
            }
            let bytes = hasher.finalize();
            u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
        }
    }
}

impl TestToyPlan {
    /// The plan of `n_toys` toys per hypothesis at `tested`, with `generation_point(poi)` the
    /// full parameter point of each hypothesis: the other one first, then each tested value
    /// that is not the other one.
    pub fn new(
        pois: Vec<String>,
        test_stat: TestStatistic,
        tested: Vec<Vec<f64>>,
        other: Vec<f64>,
        (n_toys, seed, systematics): (usize, u64, bool),
        mut generation_point: impl FnMut(&[f64]) -> Result<Vec<f64>>,
    ) -> Result<TestToyPlan> {
        let mut hypotheses: Vec<Vec<f64>> = vec![other.clone()];
        for value in &tested {
            if !hypotheses.iter().any(|h| same_point(h, value)) {
                hypotheses.push(value.clone());
            }
        }
        let mut generations = Vec::with_capacity(hypotheses.len());
        for poi in hypotheses {
            let evaluated = (0..tested.len())
                .filter(|&k| same_point(&poi, &other) || same_point(&poi, &tested[k]))
                .collect();
            generations.push(GenerationPoint {
                theta: generation_point(&poi)?,
                poi,
                tested: evaluated,
            });
        }
        let plan = TestToyPlan {
            pois,
            test_stat,
            tested,
            other,
            generations,
            n_toys,
            seed,
            systematics,
        };
        if total_toys(plan.generations.len(), n_toys).is_none() {
            return Err(Error::Analysis(format!(
                "--toys {n_toys} at {} hypotheses is more than {MAX_TOYS} toys in all",
                plan.generations.len()
            )));
        }
        Ok(plan)
    }

    /// Number of (generation point, toy) jobs.
    pub fn n_jobs(&self) -> usize {
        self.generations.len() * self.n_toys
    }

    /// The index of the tested value `value`, if the plan has it.
    pub fn tested_index(&self, value: &[f64]) -> Option<usize> {
        self.tested.iter().position(|t| same_point(t, value))
    }

    fn generation_of(&self, poi: &[f64]) -> usize {
        self.generations
            .iter()
            .position(|g| same_point(&g.poi, poi))
            .expect("every tested value and the other hypothesis have a generation point")
    }

    /// The statistics at tested value `k` of `records` (complete, as a run or a merge makes
    /// them).
    pub fn tested_toys(&self, records: &[TestToyRecord], k: usize) -> TestedToys {
        let own = self.generation_of(&self.tested[k]);
        let other = self.generation_of(&self.other);
        let mut out = TestedToys {
            tested: vec![f64::NAN; self.n_toys],
            other: vec![f64::NAN; self.n_toys],
            failed_fits: 0,
        };
        for r in records.iter().filter(|r| r.tested == k) {
            if r.generation == own {
                out.tested[r.toy_index] = r.q;
            }
            if r.generation == other {
                out.other[r.toy_index] = r.q;
            }
            if !r.converged && (r.generation == own || r.generation == other) {
                out.failed_fits += 1;
            }
        }
        out
    }

    /// The plan's POIs as parameter indices of `analysis`.
    fn poi_indices(&self, analysis: &Analysis) -> Result<Vec<usize>> {
        self.pois
            .iter()
            .map(|name| {
                analysis.model.parameter_index(name).ok_or_else(|| {
                    Error::Analysis(format!("the toys' POI '{name}' is not in this workspace"))
                })
            })
            .collect()
    }
}

/// The fit settings of a toy (those of the Neyman construction's toys,
/// [`super::toys::toy_fits`]), from `start`.
fn toy_options(like: &Likelihood, systematics: bool, start: &[f64]) -> FitOptions {
    let mut options = FitOptions::new(like);
    options.init = start.to_vec();
    options.edm_tolerance = TOY_EDM_TOLERANCE;
    options.final_hessian = false;
    if !systematics {
        for (k, p) in like.model.parameters.iter().enumerate() {
            if !p.poi {
                options.fixed[k] = true;
            }
        }
    }
    options
}

/// Makes the toys `jobs` (indices into the plan's (generation point, toy) list) and their
/// statistics at each tested value of their generation point, in job order. `free_fits` holds the free
/// fits made before (filled here).
pub fn make_toys(
    analysis: &Analysis,
    plan: &TestToyPlan,
    jobs: std::ops::Range<usize>,
    free_fits: &mut FreeFits,
) -> Result<Vec<TestToyRecord>> {
    let pois = plan.poi_indices(analysis)?;
    // The statistic is of one POI (the first); several POIs are held at their tested values.
    let poi = pois[0];
    let mut records = Vec::new();
    for (g, generation) in plan.generations.iter().enumerate() {
        let own = g * plan.n_toys..(g + 1) * plan.n_toys;
        let toys = jobs.start.max(own.start)..jobs.end.min(own.end);
        if toys.is_empty() {
            continue;
        }
        let source = ToySource::asimov(analysis, &generation.theta)?;
        let key = stream_key(&generation.poi);
        let known: &FreeFits = free_fits;
        let outcomes: Vec<(FreeFit, Vec<TestToyRecord>)> = toys
            .into_par_iter()
            .map(|job| {
                let t = job - own.start;
                let like = source.draw(plan.seed, key as usize, t, plan.systematics);
                let free = known.get(&(key, t)).copied().unwrap_or_else(|| {
                    let options = toy_options(&like, plan.systematics, &generation.theta);
                    let fit = minimise(&like, &options);
                    FreeFit {
                        nll: nll_at_minimum(&fit),
                        poi_hat: fit.theta[poi],
                        converged: fit.converged,
                    }
                });
                let records = generation
                    .tested
                    .iter()
                    .map(|&k| {
                        let mut start = generation.theta.clone();
                        let mut options = toy_options(&like, plan.systematics, &start);
                        for (&p, &value) in pois.iter().zip(&plan.tested[k]) {
                            start[p] = value;
                            options.fixed[p] = true;
                        }
                        options.init = start;
                        let conditional = minimise(&like, &options);
                        let ratio = ProfileRatio {
                            tested: plan.tested[k][0],
                            nll_conditional: nll_at_minimum(&conditional),
                            nll_free: free.nll,
                            poi_hat: free.poi_hat,
                        };
                        TestToyRecord {
                            generation: g,
                            toy_index: t,
                            tested: k,
                            q: plan.test_stat.value(&ratio),
                            poi_hat: free.poi_hat,
                            converged: conditional.converged && free.converged,
                        }
                    })
                    .collect();
                (free, records)
            })
            .collect();
        let first = own.start.max(jobs.start) - own.start;
        for (i, (free, mut made)) in outcomes.into_iter().enumerate() {
            free_fits.insert((key, first + i), free);
            records.append(&mut made);
        }
    }
    Ok(records)
}

/// What a hypothesis test's toy file says about how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestToyHeader {
    pub format: String,
    /// The workspace path as it was given: for people; files are matched by `fingerprint`.
    pub workspace: String,
    #[serde(flatten)]
    pub plan: TestToyPlan,
    pub parameters: Vec<String>,
    pub fingerprint: ModelFingerprint,
    /// (index, count) of the shard; (0, 1) for a whole run or a merged file.
    pub shard: (usize, usize),
    /// The (generation point, toy) job indices the file holds: `jobs.0..jobs.1`.
    pub jobs: (usize, usize),
}

impl TestToyHeader {
    pub fn new(
        workspace: &Path,
        plan: TestToyPlan,
        analysis: &Analysis,
        shard: (usize, usize),
    ) -> TestToyHeader {
        let range = shard_range(plan.n_jobs(), shard.0, shard.1);
        TestToyHeader {
            format: FORMAT.into(),
            workspace: workspace.display().to_string(),
            plan,
            parameters: analysis
                .model
                .parameters
                .iter()
                .map(|p| p.name.clone())
                .collect(),
            fingerprint: ModelFingerprint::of(analysis),
            shard,
            jobs: (range.start, range.end),
        }
    }

    /// How two files fail to belong to the same run, in words (empty when they do).
    fn run_differences(&self, other: &TestToyHeader) -> Vec<String> {
        let mut out = Vec::new();
        let (a, b) = (&self.plan, &other.plan);
        let settings = [
            ("POIs", format!("{:?}", a.pois), format!("{:?}", b.pois)),
            (
                "test statistic",
                a.test_stat.to_string(),
                b.test_stat.to_string(),
            ),
            (
                "tested values",
                format!("{:?}", a.tested),
                format!("{:?}", b.tested),
            ),
            (
                "other hypothesis",
                format!("{:?}", a.other),
                format!("{:?}", b.other),
            ),
            ("toys", a.n_toys.to_string(), b.n_toys.to_string()),
            ("seed", a.seed.to_string(), b.seed.to_string()),
            (
                "systematics",
                a.systematics.to_string(),
                b.systematics.to_string(),
            ),
        ];
        for (name, x, y) in settings {
            if x != y {
                out.push(format!("{name} {x} vs {y}"));
            }
        }
        if out.is_empty() {
            out.extend(generation_differences(&a.generations, &b.generations));
        }
        if self.parameters != other.parameters {
            out.push(format!(
                "parameter lists differ: {:?} vs {:?}",
                self.parameters, other.parameters
            ));
        }
        out.extend(self.fingerprint.differences(&other.fingerprint));
        out
    }

    /// Refuses toys (from `files`) not made from the model of `analysis`, or for another test
    /// than `expected` asks for, saying which part differs.
    pub fn require(&self, analysis: &Analysis, expected: &TestToyPlan, files: &str) -> Result<()> {
        let mut differences = Vec::new();
        let parameters: Vec<String> = analysis
            .model
            .parameters
            .iter()
            .map(|p| p.name.clone())
            .collect();
        if self.parameters != parameters {
            differences.push(format!(
                "parameter lists differ: {:?} vs {parameters:?}",
                self.parameters
            ));
        }
        differences.extend(
            self.fingerprint
                .differences(&ModelFingerprint::of(analysis)),
        );
        if !differences.is_empty() {
            return Err(Error::Analysis(format!(
                "toy file {files} was made from another model than {}: {}; make the toys again \
                 from this workspace",
                analysis.workspace.path.display(),
                differences.join("; ")
            )));
        }
        let (a, b) = (&self.plan, expected);
        let settings = [
            ("POIs", format!("{:?}", a.pois), format!("{:?}", b.pois)),
            (
                "test statistic",
                a.test_stat.to_string(),
                b.test_stat.to_string(),
            ),
            (
                "other hypothesis",
                format!("{:?}", a.other),
                format!("{:?}", b.other),
            ),
            (
                "systematics",
                a.systematics.to_string(),
                b.systematics.to_string(),
            ),
        ];
        for (name, x, y) in settings {
            if x != y {
                differences.push(format!("{name}: the toys have {x}, this test {y}"));
            }
        }
        differences.extend(generation_differences(&a.generations, &b.generations));
        if differences.is_empty() {
            return Ok(());
        }
        Err(Error::Analysis(format!(
            "toy file {files} was made for another test: {}; make the toys with this \
             test's options",
            differences.join("; ")
        )))
    }
}

/// How two lists of generation points differ. The nuisances' conditional fits may differ in
/// their last digits between machines (10⁻⁸ relative is allowed); the hypotheses may not.
fn generation_differences(a: &[GenerationPoint], b: &[GenerationPoint]) -> Vec<String> {
    let close = |x: &f64, y: &f64| (x - y).abs() <= 1e-8 * x.abs().max(y.abs()).max(1.0);
    let mut out = Vec::new();
    for ga in a {
        match b.iter().find(|gb| same_point(&ga.poi, &gb.poi)) {
            Some(gb)
                if ga.theta.len() == gb.theta.len()
                    && ga.theta.iter().zip(&gb.theta).all(|(x, y)| close(x, y)) => {}
            Some(gb) => out.push(format!(
                "the generation point at POI {:?} differs: {:?} vs {:?}",
                ga.poi, ga.theta, gb.theta
            )),
            None => out.push(format!(
                "generation point at POI {:?} present in one and not the other",
                ga.poi
            )),
        }
    }
    out
}

/// A hypothesis test's toy file.
#[derive(Clone, Debug, PartialEq)]
pub struct TestToyFile {
    pub header: TestToyHeader,
    pub records: Vec<TestToyRecord>,
}

/// The `format` of the toy file at `path`, if it is an HDF5 file with nsbi's `plan`.
pub fn file_format(path: &Path) -> Option<String> {
    let plan = ToyReader::open(path).ok()?.plan().ok()?;
    let value: serde_json::Value = serde_json::from_str(&plan).ok()?;
    value["format"].as_str().map(str::to_string)
}

impl TestToyFile {
    /// Writes the file atomically (temporary name in the same folder, then rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        h5::write_atomically(path, |out| self.write_to(out))
    }

    fn write_to(&self, out: &ToyWriter) -> Result<()> {
        let r = &self.records;
        let counts = |name: &str, values: Vec<u64>| out.column(name, &values);
        let floats = |name: &str, values: Vec<f64>| out.column(name, &values);
        counts(
            "generation",
            r.iter().map(|x| x.generation as u64).collect(),
        )?;
        counts("toy_index", r.iter().map(|x| x.toy_index as u64).collect())?;
        counts("tested", r.iter().map(|x| x.tested as u64).collect())?;
        floats("q", r.iter().map(|x| x.q).collect())?;
        floats("poi_hat", r.iter().map(|x| x.poi_hat).collect())?;
        counts(
            "converged",
            r.iter().map(|x| u64::from(x.converged)).collect(),
        )?;
        out.plan(&self.header)
    }

    pub fn read(path: &Path) -> Result<TestToyFile> {
        let file = ToyReader::open(path)?;
        let not_ours = |message: String| file.error(message);
        let plan = file.plan()?;
        let value: serde_json::Value = serde_json::from_str(&plan)
            .map_err(|e| not_ours(format!("unreadable 'plan' attribute: {e}")))?;
        let format = value["format"].as_str().unwrap_or("(none)");
        if format != FORMAT {
            let what = if format.starts_with("nsbi-toys-") {
                "a Neyman construction's toy file (`nsbi toys`), not the toys of a hypothesis \
                 test"
            } else {
                "not a toy file this nsbi reads"
            };
            return Err(not_ours(format!(
                "toy file format {format}: {what}; hypothesis tests read {FORMAT}, written by \
                 `nsbi hypotest|limit|significance --calculator toys --out`"
            )));
        }
        let header: TestToyHeader = serde_json::from_value(value)
            .map_err(|e| not_ours(format!("unreadable 'plan' attribute: {e}")))?;
        if total_toys(header.plan.generations.len(), header.plan.n_toys).is_none() {
            return Err(not_ours(format!(
                "the 'plan' attribute claims more than {MAX_TOYS} toys: the file is damaged or \
                 was not written by nsbi"
            )));
        }
        let floats = |name: &str| file.column::<f64>(name);
        let ints = |name: &str| file.column::<u64>(name);
        let (generation, toy_index, tested) =
            (ints("generation")?, ints("toy_index")?, ints("tested")?);
        let (q, poi_hat, converged) = (floats("q")?, floats("poi_hat")?, ints("converged")?);
        let n = generation.len();
        let lengths = [
            toy_index.len(),
            tested.len(),
            q.len(),
            poi_hat.len(),
            converged.len(),
        ];
        if lengths.iter().any(|&l| l != n) {
            return Err(not_ours(format!(
                "record datasets of different lengths ({n} generation indices)"
            )));
        }
        let records = (0..n)
            .map(|i| TestToyRecord {
                generation: generation[i] as usize,
                toy_index: toy_index[i] as usize,
                tested: tested[i] as usize,
                q: q[i],
                poi_hat: poi_hat[i],
                converged: converged[i] != 0,
            })
            .collect();
        Ok(TestToyFile { header, records })
    }
}

/// Combines the toy files of one hypothesis test: checks they come from the same run, that
/// every (generation point, toy, tested value) record is present exactly once, and orders
/// the records by job. The error names missing jobs by the shard that owns them, and files
/// that do not belong.
pub fn merge(paths: &[PathBuf]) -> Result<TestToyFile> {
    let files = read_one_run(
        paths,
        TestToyFile::read,
        "hypothesis test's toys",
        |a, b| a.header.run_differences(&b.header),
    )?;
    let (_, first) = &files[0];
    let plan = &first.header.plan;
    // Slot of (generation g, toy t, tested value k): the generation's block, then the toy's
    // row of its tested values.
    let mut offsets = Vec::with_capacity(plan.generations.len());
    let mut n_slots = 0;
    for g in &plan.generations {
        offsets.push(n_slots);
        n_slots += plan.n_toys * g.tested.len();
    }
    let mut slots: Vec<Option<TestToyRecord>> = vec![None; n_slots];
    for (path, file) in &files {
        for r in &file.records {
            let place = plan.generations.get(r.generation).and_then(|g| {
                let column = g.tested.iter().position(|&k| k == r.tested)?;
                (r.toy_index < plan.n_toys)
                    .then(|| offsets[r.generation] + r.toy_index * g.tested.len() + column)
            });
            let Some(slot) = place else {
                return Err(Error::Analysis(format!(
                    "{}: record (generation {}, toy {}, tested {}) lies outside the plan",
                    path.display(),
                    r.generation,
                    r.toy_index,
                    r.tested
                )));
            };
            if slots[slot].replace(*r).is_some() {
                return Err(Error::Analysis(format!(
                    "{}: toy (generation {}, toy {}) at tested value {} appears in more than \
                     one file",
                    path.display(),
                    r.generation,
                    r.toy_index,
                    r.tested
                )));
            }
        }
    }
    let n_jobs = plan.n_jobs();
    let missing_jobs: Vec<usize> = (0..plan.generations.len())
        .flat_map(|g| (0..plan.n_toys).map(move |t| (g, t)))
        .filter(|&(g, t)| {
            let width = plan.generations[g].tested.len();
            let row = offsets[g] + t * width;
            slots[row..row + width].iter().any(Option::is_none)
        })
        .map(|(g, t)| g * plan.n_toys + t)
        .collect();
    if !missing_jobs.is_empty() {
        let count = first.header.shard.1;
        let shards: Vec<String> = (0..count)
            .filter(|&i| {
                missing_jobs
                    .iter()
                    .any(|j| shard_range(n_jobs, i, count).contains(j))
            })
            .map(|i| format!("{i}/{count}"))
            .collect();
        return Err(Error::Analysis(format!(
            "{} of {n_jobs} toys are missing; shards without their file: {}",
            missing_jobs.len(),
            shards.join(", ")
        )));
    }
    let mut header = first.header.clone();
    header.shard = (0, 1);
    header.jobs = (0, n_jobs);
    Ok(TestToyFile {
        header,
        records: slots.into_iter().flatten().collect(),
    })
}
