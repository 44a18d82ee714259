//! `nsbi._nsbi`: the engine for Python, on the same library as the CLI. Results cross as the
//! CLI's JSON text (the serialisation of the same typed structs), which `python/nsbi` wraps in
//! objects; likelihoods cross as numpy arrays.
//!
//! Long calls release the GIL and run in the workspace's rayon pool (`threads=`) on a thread
//! of their own, while the caller's thread answers Ctrl-C ([`interruptible`]).

use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use numpy::ndarray::Array2;
use numpy::{AllowTypeChange, IntoPyArray, PyArray1, PyArray2, PyArrayLike1};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use nsbi::analysis::{self, Analysis};
use nsbi::diagnostics;
use nsbi::infer::test_stat::TestStatistic;
use nsbi::infer::{run, test_run};
use nsbi::likelihood::{Likelihood as EngineLikelihood, Order};
use nsbi::results::FitOutput;

create_exception!(
    _nsbi,
    NsbiError,
    PyException,
    "An error of the nsbi engine, with the CLI's located message (file, field, expected)."
);

fn engine_error(e: nsbi::Error) -> PyErr {
    NsbiError::new_err(e.to_string())
}

fn to_json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| NsbiError::new_err(e.to_string()))
}

/// A rayon pool of `threads` threads, or the global pool (all cores) for None.
fn thread_pool(threads: Option<usize>) -> PyResult<Option<Arc<rayon::ThreadPool>>> {
    match threads {
        None => Ok(None),
        Some(0) => Err(PyValueError::new_err("threads must be at least 1")),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map(|pool| Some(Arc::new(pool)))
            .map_err(|e| NsbiError::new_err(format!("cannot start {n} threads: {e}"))),
    }
}

/// Runs `work` without the GIL on a thread of its own (in `pool` where one is given), while
/// this thread waits and checks for Ctrl-C every 50 ms: KeyboardInterrupt returns at once,
/// and the engine finishes the abandoned call in the background (its result is dropped). An
/// engine panic becomes NsbiError rather than a crashed interpreter.
fn interruptible<T: Send + 'static>(
    py: Python<'_>,
    pool: &Option<Arc<rayon::ThreadPool>>,
    work: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let pool = pool.clone();
    std::thread::spawn(move || {
        let out = match pool {
            Some(pool) => pool.install(work),
            None => work(),
        };
        let _ = sender.send(out);
    });
    let mut receiver = receiver;
    loop {
        // The receiver crosses into the GIL-free closure and back (it is Send, not Sync).
        let (back, received) = py.detach(move || {
            let received = receiver.recv_timeout(Duration::from_millis(50));
            (receiver, received)
        });
        receiver = back;
        match received {
            Ok(out) => return Ok(out),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(NsbiError::new_err(
                    "the engine stopped without a result (an internal error; please report it)",
                ))
            }
        }
    }
}

/// Runs `work` without the GIL, in `pool` where one is given: for short calls.
fn detached<T: Send>(
    py: Python<'_>,
    pool: &Option<Arc<rayon::ThreadPool>>,
    work: impl FnOnce() -> T + Send,
) -> T {
    py.detach(|| match pool {
        Some(pool) => pool.install(work),
        None => work(),
    })
}

/// A workspace: its YAML is read at load; its model and ratios (the expensive part: ONNX
/// evaluation, or the cache) are built on first use and kept.
#[pyclass(module = "nsbi._nsbi", frozen)]
struct Workspace {
    path: PathBuf,
    cache_dir: Option<PathBuf>,
    pool: Option<Arc<rayon::ThreadPool>>,
    analysis: OnceLock<Arc<Analysis>>,
}

impl Workspace {
    /// The analysis, loaded (and its ratios evaluated or read from the cache) once.
    fn analysis(&self, py: Python<'_>) -> PyResult<Arc<Analysis>> {
        if let Some(analysis) = self.analysis.get() {
            return Ok(analysis.clone());
        }
        let (path, cache_dir) = (self.path.clone(), self.cache_dir.clone());
        let loaded = interruptible(py, &self.pool, move || {
            Analysis::open(&path, cache_dir, false).map(Arc::new)
        })?
        .map_err(engine_error)?;
        Ok(self.analysis.get_or_init(|| loaded).clone())
    }

    /// `work` on an analysis of its own (hypothesis tests and constructions give the POI their
    /// statistic's bounds, so they cannot share the loaded one; the ratios come from the cache),
    /// with the GIL released and Ctrl-C honoured.
    fn on_own_analysis<T: Send + 'static>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut Analysis) -> nsbi::Result<T> + Send + 'static,
    ) -> PyResult<T> {
        let (path, cache_dir) = (self.path.clone(), self.cache_dir.clone());
        interruptible(py, &self.pool, move || {
            work(&mut Analysis::open(&path, cache_dir, false)?)
        })?
        .map_err(engine_error)
    }
}

/// The Neyman toy files `toys` (paths or patterns), merged and checked.
fn merged_toys(toys: &[String]) -> PyResult<nsbi::infer::toyfile::ToyFile> {
    let paths = run::toy_paths(toys).map_err(engine_error)?;
    nsbi::infer::toyfile::merge(&paths).map_err(engine_error)
}

/// The likelihood of the observed data, or of the Asimov set at `asimov`.
fn likelihood_of<'a>(
    analysis: &'a Analysis,
    asimov: Option<&str>,
) -> nsbi::Result<EngineLikelihood<'a>> {
    analysis.likelihood(&analysis.dataset(asimov)?)
}

#[pymethods]
impl Workspace {
    /// Reads the workspace YAML (or pyhf JSON) at `path`; ratios are cached in `cache_dir`
    /// (default: `.nsbi-cache` beside the workspace, or $NSBI_CACHE_DIR); `threads` sets the
    /// rayon pool of every call (default: all cores).
    #[staticmethod]
    #[pyo3(signature = (path, cache_dir=None, threads=None))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        cache_dir: Option<PathBuf>,
        threads: Option<usize>,
    ) -> PyResult<Workspace> {
        let read = path.clone();
        py.detach(|| nsbi::workspace::Workspace::load(&read))
            .map_err(engine_error)?;
        Ok(Workspace {
            path,
            cache_dir,
            pool: thread_pool(threads)?,
            analysis: OnceLock::new(),
        })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// `nsbi validate`: the summary as JSON text, or NsbiError.
    fn _validate(&self, py: Python<'_>) -> PyResult<String> {
        let summary = detached(py, &self.pool, || nsbi::validate::validate(&self.path))
            .map_err(engine_error)?;
        let warnings: Vec<String> = summary.warnings.iter().map(|w| w.as_warning()).collect();
        Ok(serde_json::json!({
            "channels": summary.channels, "event_files": summary.event_files,
            "events": summary.events, "ensembles": summary.ensembles, "models": summary.models,
            "warnings": warnings,
        })
        .to_string())
    }

    /// `nsbi ratios --json`: every ratio set, evaluated or read from the cache.
    fn _ratios(&self, py: Python<'_>) -> PyResult<String> {
        let (path, cache_dir) = (self.path.clone(), self.cache_dir.clone());
        let records = interruptible(py, &self.pool, move || -> nsbi::Result<_> {
            let ws = nsbi::workspace::Workspace::load(&path)?;
            let dir = cache_dir.unwrap_or_else(|| analysis::default_cache_dir(&ws));
            let cache = nsbi::data::RatioCache::new(dir);
            Ok(nsbi::ratio::evaluate_workspace(&ws, &cache, false)?.records)
        })?
        .map_err(engine_error)?;
        Ok(nsbi::report::ratio_records_json(&records).to_string())
    }

    /// `nsbi fit --json` as JSON text.
    #[pyo3(signature = (asimov=None, fix=None, set_init=None, minos=true))]
    fn _fit(
        &self,
        py: Python<'_>,
        asimov: Option<String>,
        fix: Option<String>,
        set_init: Option<String>,
        minos: bool,
    ) -> PyResult<String> {
        let analysis = self.analysis(py)?;
        let output = interruptible(py, &self.pool, move || -> nsbi::Result<FitOutput> {
            let like = likelihood_of(&analysis, asimov.as_deref())?;
            let options = analysis.fit_options(&like, set_init.as_deref(), fix.as_deref())?;
            let report = analysis::fit_with_intervals(&like, &options, minos);
            Ok(FitOutput::new(&report, &analysis.model))
        })?
        .map_err(engine_error)?;
        to_json(&output)
    }

    /// `nsbi scan --json` as JSON text: `pois` names, `ranges` (low, high) and `points` one
    /// per POI (or one for all).
    #[pyo3(signature = (pois, ranges, points, stat_only=false, asimov=None, fix=None))]
    #[allow(clippy::too_many_arguments)]
    fn _scan(
        &self,
        py: Python<'_>,
        pois: Vec<String>,
        ranges: Vec<(f64, f64)>,
        points: Vec<usize>,
        stat_only: bool,
        asimov: Option<String>,
        fix: Option<String>,
    ) -> PyResult<String> {
        let analysis = self.analysis(py)?;
        let output = interruptible(py, &self.pool, move || -> nsbi::Result<_> {
            let names: Vec<&str> = pois.iter().map(String::as_str).collect();
            let request =
                analysis::ScanRequest::new(&analysis.model, &names, &ranges, &points, stat_only)?;
            let like = likelihood_of(&analysis, asimov.as_deref())?;
            let options = analysis.fit_options(&like, None, fix.as_deref())?;
            Ok(analysis::scan_report(&like, &options, &request, false)?.0)
        })?
        .map_err(engine_error)?;
        to_json(&output)
    }

    /// `nsbi calibrate`'s `calibration.json` as JSON text: the ratio models of `process` (all
    /// if empty) on held-out events (`NAME=FILE` in `holdout`).
    #[pyo3(signature = (process, holdout, bins, p_threshold))]
    fn _calibrate(
        &self,
        py: Python<'_>,
        process: Vec<String>,
        holdout: Vec<String>,
        bins: usize,
        p_threshold: f64,
    ) -> PyResult<String> {
        let path = self.path.clone();
        let output = interruptible(py, &self.pool, move || -> nsbi::Result<_> {
            let (ws, holdouts) = diagnostics::open(&path, bins, p_threshold, &holdout)?;
            let selection = diagnostics::select(&ws, &process, &holdouts)?;
            Ok(diagnostics::calibrate(&ws, &selection, bins, p_threshold)?.output())
        })?
        .map_err(engine_error)?;
        to_json(&output)
    }

    /// `nsbi closure`'s `closure.json` as JSON text: per ratio model (of `process`), and per
    /// POI value in `mu` against the MC mixture at `mu_ref` — or, where `at` names points
    /// (`c1=0.5,c2=-0.3`, any number of POIs), per point against the mixture at `at_ref`.
    #[pyo3(signature = (process, holdout, bins, p_threshold, mu, mu_ref, at, at_ref))]
    #[allow(clippy::too_many_arguments)]
    fn _closure(
        &self,
        py: Python<'_>,
        process: Vec<String>,
        holdout: Vec<String>,
        bins: usize,
        p_threshold: f64,
        mu: Vec<f64>,
        mu_ref: f64,
        at: Vec<String>,
        at_ref: Option<String>,
    ) -> PyResult<String> {
        let (path, cache_dir) = (self.path.clone(), self.cache_dir.clone());
        let output = interruptible(py, &self.pool, move || -> nsbi::Result<_> {
            let (ws, holdouts) = diagnostics::open(&path, bins, p_threshold, &holdout)?;
            let dir = cache_dir.unwrap_or_else(|| analysis::default_cache_dir(&ws));
            let cache = nsbi::data::RatioCache::new(dir);
            let selection = diagnostics::select(&ws, &process, &holdouts)?;
            let mut tests = diagnostics::ratio_closures(&ws, &selection, &cache, bins)?;
            let skipped = selection.skipped;
            let analysis = Analysis::from_workspace(ws, &cache, false)?;
            tests.extend(match at.is_empty() {
                true => diagnostics::poi_closures(&analysis, &mu, mu_ref, bins)?,
                false => diagnostics::point_closures(&analysis, &at, at_ref.as_deref(), bins)?,
            });
            let report = diagnostics::ClosureReport {
                tests,
                skipped,
                bins,
                p_threshold,
            };
            Ok(report.output())
        })?
        .map_err(engine_error)?;
        to_json(&output)
    }

    /// `nsbi hypotest --json` as JSON text.
    #[pyo3(signature = (value, test_stat, signal, request))]
    fn _hypotest(
        &self,
        py: Python<'_>,
        value: f64,
        test_stat: String,
        signal: f64,
        request: TestOptions,
    ) -> PyResult<String> {
        let statistic = test_run::hypotest_statistic(&test_stat).map_err(engine_error)?;
        to_json(&self.on_own_analysis(py, move |analysis| {
            test_run::hypotest(analysis, &request.0, statistic, value, signal)
        })?)
    }

    /// `nsbi limit --json` as JSON text.
    #[pyo3(signature = (cl, range, points, test_stat, request))]
    fn _limit(
        &self,
        py: Python<'_>,
        cl: f64,
        range: Option<String>,
        points: usize,
        test_stat: String,
        request: TestOptions,
    ) -> PyResult<String> {
        let statistic = test_run::limit_statistic(&test_stat).map_err(engine_error)?;
        let scan = test_run::LimitRequest { cl, range, points };
        to_json(&self.on_own_analysis(py, move |analysis| {
            test_run::limit(analysis, &request.0, statistic, &scan)
        })?)
    }

    /// `nsbi significance --json` as JSON text.
    #[pyo3(signature = (value, signal, request))]
    fn _significance(
        &self,
        py: Python<'_>,
        value: f64,
        signal: f64,
        request: TestOptions,
    ) -> PyResult<String> {
        to_json(&self.on_own_analysis(py, move |analysis| {
            test_run::significance(analysis, &request.0, value, signal)
        })?)
    }

    /// `nsbi toys`: makes the toys of the plan (or of `shard` "i/N" of it) and writes them to
    /// `out` (HDF5, atomically); returns the file's header as JSON text and the toys written.
    #[pyo3(signature = (mu_grid, toys, seed, out, poi, no_syst, test_stat, shard))]
    #[allow(clippy::too_many_arguments)]
    fn _toys(
        &self,
        py: Python<'_>,
        mu_grid: String,
        toys: usize,
        seed: u64,
        out: PathBuf,
        poi: Option<String>,
        no_syst: bool,
        test_stat: String,
        shard: Option<String>,
    ) -> PyResult<(String, usize)> {
        let path = self.path.clone();
        let file = self.on_own_analysis(py, move |analysis| {
            let shard = shard
                .as_deref()
                .map(nsbi::batch::parse_shard)
                .transpose()?
                .unwrap_or((0, 1));
            let request = run::ToyRequest {
                poi,
                grid: run::GridRequest::MuGrid(mu_grid),
                profile: Vec::new(),
                n_toys: toys,
                seed,
                no_syst,
                statistic: TestStatistic::parse(&test_stat)?,
            };
            let plan = run::toy_plan(analysis, &request)?;
            let file = run::make_toy_file(analysis, &plan, &path, shard, &|| {})?;
            file.write(&out)?;
            Ok(file)
        })?;
        Ok((to_json(&file.header)?, file.records.len()))
    }

    /// `nsbi neyman --json` as JSON text, from the toy files `toys` (paths or patterns).
    fn _neyman(&self, py: Python<'_>, toys: Vec<String>, cl: Vec<f64>) -> PyResult<String> {
        // The toys first, as the CLI reads them: a bad file is refused before any fit.
        let merged = merged_toys(&toys)?;
        let result = self.on_own_analysis(py, move |analysis| {
            let levels = run::confidence_levels(&cl)?;
            run::neyman(analysis, &merged, &toys.join(" "), &levels)
        })?;
        match result {
            run::NeymanReport::Intervals(intervals) => to_json(&intervals),
            run::NeymanReport::Regions(regions) => to_json(&regions),
        }
    }

    /// `nsbi coverage --json` as JSON text.
    #[pyo3(signature = (toys, mu_true, n, seed, cl))]
    fn _coverage(
        &self,
        py: Python<'_>,
        toys: Vec<String>,
        mu_true: f64,
        n: usize,
        seed: u64,
        cl: Vec<f64>,
    ) -> PyResult<String> {
        let merged = merged_toys(&toys)?;
        to_json(&self.on_own_analysis(py, move |analysis| {
            let request = run::CoverageRequest {
                point: run::TruePoint::Mu(mu_true),
                n_toys: n,
                seed,
                levels: run::confidence_levels(&cl)?,
            };
            run::coverage(analysis, &merged, &toys.join(" "), &request, &|| {})
        })?)
    }

    /// The likelihood of the observed data, or of the Asimov set at `asimov`
    /// (`name=value,...`).
    #[pyo3(signature = (asimov=None))]
    fn likelihood(&self, py: Python<'_>, asimov: Option<String>) -> PyResult<Likelihood> {
        let analysis = self.analysis(py)?;
        let cell = interruptible(py, &self.pool, move || {
            LikelihoodCell::try_new(analysis, |a| likelihood_of(a, asimov.as_deref()))
        })?
        .map_err(engine_error)?;
        Ok(Likelihood {
            cell,
            pool: self.pool.clone(),
        })
    }
}

/// The options every hypothesis test shares, from Python's `(poi, calculator, toys, seed,
/// no_syst, toys_from)`.
struct TestOptions(test_run::TestRequest);

impl<'a, 'py> FromPyObject<'a, 'py> for TestOptions {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let (poi, calculator, n_toys, seed, no_syst, toys_from) = ob.extract()?;
        Ok(TestOptions(test_run::TestRequest {
            poi,
            calculator,
            n_toys,
            seed,
            no_syst,
            toys_from,
        }))
    }
}

self_cell::self_cell!(
    /// A likelihood with the analysis it borrows from.
    struct LikelihoodCell {
        owner: Arc<Analysis>,
        #[covariant]
        dependent: EngineLikelihood,
    }
);

/// −log L(θ) of a dataset, with its gradient and Hessian, for users' own minimisers and
/// samplers. θ is a numpy array in the order of `parameter_names`.
#[pyclass(module = "nsbi._nsbi", frozen)]
struct Likelihood {
    cell: LikelihoodCell,
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl Likelihood {
    fn evaluate(
        &self,
        py: Python<'_>,
        theta: PyArrayLike1<'_, f64, AllowTypeChange>,
        order: Order,
    ) -> PyResult<nsbi::likelihood::Evaluation> {
        let like = self.cell.borrow_dependent();
        let theta = theta.as_slice()?.to_vec();
        if theta.len() != like.n_parameters() {
            return Err(PyValueError::new_err(format!(
                "expected {} parameter values ({}), got {}",
                like.n_parameters(),
                self.names().join(", "),
                theta.len()
            )));
        }
        Ok(detached(py, &self.pool, || like.evaluate(&theta, order)))
    }

    fn names(&self) -> Vec<String> {
        let model = &self.cell.borrow_owner().model;
        model.parameters.iter().map(|p| p.name.clone()).collect()
    }
}

#[pymethods]
impl Likelihood {
    /// −log L at `theta` (+inf where the model is invalid, e.g. a negative density).
    fn nll(&self, py: Python<'_>, theta: PyArrayLike1<'_, f64, AllowTypeChange>) -> PyResult<f64> {
        Ok(self.evaluate(py, theta, Order::Value)?.nll)
    }

    /// ∂(−log L)/∂θ at `theta`.
    fn grad<'py>(
        &self,
        py: Python<'py>,
        theta: PyArrayLike1<'_, f64, AllowTypeChange>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(self
            .evaluate(py, theta, Order::Gradient)?
            .gradient
            .into_pyarray(py))
    }

    /// ∂²(−log L)/∂θ∂θ at `theta` (n × n).
    fn hessian<'py>(
        &self,
        py: Python<'py>,
        theta: PyArrayLike1<'_, f64, AllowTypeChange>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let n = self.cell.borrow_dependent().n_parameters();
        let hessian = self.evaluate(py, theta, Order::Hessian)?.hessian;
        let matrix = Array2::from_shape_vec((n, n), hessian)
            .map_err(|e| NsbiError::new_err(e.to_string()))?;
        Ok(matrix.into_pyarray(py))
    }

    #[getter]
    fn parameter_names(&self) -> Vec<String> {
        self.names()
    }

    /// (n, 2): each parameter's lower and upper bound (±inf where unbounded).
    #[getter]
    fn bounds<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let model = &self.cell.borrow_owner().model;
        let flat: Vec<f64> = model
            .parameters
            .iter()
            .flat_map(|p| [p.bounds.0, p.bounds.1])
            .collect();
        let matrix = Array2::from_shape_vec((model.parameters.len(), 2), flat)
            .expect("two bounds per parameter");
        matrix.into_pyarray(py)
    }

    /// Each parameter's starting value (`init` in the workspace).
    #[getter]
    fn init<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.cell.borrow_owner().model.init().into_pyarray(py)
    }

    /// Which parameters are POIs.
    #[getter]
    fn pois(&self) -> Vec<bool> {
        let model = &self.cell.borrow_owner().model;
        model.parameters.iter().map(|p| p.poi).collect()
    }
}

/// A toy file's header (dict) and its records as columns (dict of numpy arrays).
#[pyfunction]
fn _read_toys<'py>(py: Python<'py>, path: PathBuf) -> PyResult<(String, Bound<'py, PyDict>)> {
    let file = py
        .detach(|| nsbi::infer::toyfile::ToyFile::read(&path))
        .map_err(engine_error)?;
    let header = to_json(&file.header)?;
    let records = &file.records;
    let columns = PyDict::new(py);
    let float = |f: fn(&nsbi::infer::toys::ToyRecord) -> f64| -> Vec<f64> {
        records.iter().map(f).collect()
    };
    let index = |f: fn(&nsbi::infer::toys::ToyRecord) -> usize| -> Vec<u64> {
        records.iter().map(|r| f(r) as u64).collect()
    };
    let flag = |f: fn(&nsbi::infer::toys::ToyRecord) -> bool| -> Vec<bool> {
        records.iter().map(f).collect()
    };
    columns.set_item("grid_index", index(|r| r.grid_index).into_pyarray(py))?;
    columns.set_item("toy_index", index(|r| r.toy_index).into_pyarray(py))?;
    columns.set_item("t", float(|r| r.t).into_pyarray(py))?;
    columns.set_item(
        "nll_conditional",
        float(|r| r.nll_conditional).into_pyarray(py),
    )?;
    columns.set_item("nll_free", float(|r| r.nll_free).into_pyarray(py))?;
    columns.set_item(
        "converged_conditional",
        flag(|r| r.converged_conditional).into_pyarray(py),
    )?;
    columns.set_item(
        "converged_free",
        flag(|r| r.converged_free).into_pyarray(py),
    )?;
    columns.set_item("n_events", index(|r| r.n_events).into_pyarray(py))?;
    let matrix = |name: &str, width: usize, row: fn(&nsbi::infer::toys::ToyRecord) -> &[f64]| {
        let values: Vec<f64> = records.iter().flat_map(|r| row(r).to_vec()).collect();
        let values = Array2::from_shape_vec((records.len(), width), values)
            .map_err(|e| NsbiError::new_err(format!("{}: {e}", path.display())))?;
        columns.set_item(name, values.into_pyarray(py))
    };
    let n_poi = file.header.pois.len();
    matrix("poi_true", n_poi, |r| &r.poi_true)?;
    matrix("poi_hat", n_poi, |r| &r.poi_hat)?;
    matrix("theta_hat", file.header.parameters.len(), |r| &r.theta_hat)?;
    Ok((header, columns))
}

/// The JSON Schemas of the outputs, by name (`fit`, `scan`, ...), as JSON text.
#[pyfunction]
fn _schemas() -> PyResult<Vec<(String, String)>> {
    nsbi::results::schemas()
        .into_iter()
        .map(|(name, schema)| Ok((name.to_string(), to_json(&schema)?)))
        .collect()
}

#[pymodule]
fn _nsbi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NsbiError", m.py().get_type::<NsbiError>())?;
    m.add_class::<Workspace>()?;
    m.add_class::<Likelihood>()?;
    m.add_function(wrap_pyfunction!(_read_toys, m)?)?;
    m.add_function(wrap_pyfunction!(_schemas, m)?)?;
    Ok(())
}
