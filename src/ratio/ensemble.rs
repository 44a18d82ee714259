//! Ratio ensembles: several ONNX networks, each estimating the same density ratio, combined
//! event by event. Evaluation is batched (about 1k events per call is where ONNX Runtime is
//! fastest on CPUs) and the batches run in parallel on rayon's threads, each thread with its
//! own single-threaded session per member, so the numbers do not depend on the thread count.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indicatif::ProgressBar;
use ort::session::Session;
use ort::value::{Outlet, TensorElementType, TensorRef, ValueType};
use rayon::prelude::*;
use serde::Deserialize;

use super::convention::{self, Aggregation, OutputConvention};
use super::runtime;
use crate::data::cache::{CacheKey, CacheKeyBuilder, CachedRatios};
use crate::data::{Events, EventsFingerprint};
use crate::error::{Error, Result};

/// Events per network call.
pub const BATCH_SIZE: usize = 1024;

/// How to read one ratio out of the members' outputs.
#[derive(Clone, Debug)]
pub struct OutputSpec {
    /// Output tensor name; `None` means the model's first output.
    pub name: Option<String>,
    /// Column of a 2-D output.
    pub column: usize,
    pub convention: OutputConvention,
    pub aggregation: Aggregation,
}

/// Per-feature standardisation applied before the networks: x' = (x − mean) / std.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Standardisation {
    #[serde(default)]
    pub features: Option<Vec<String>>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardisation {
    /// Reads the JSON file `{"mean": [...], "std": [...], "features": [...]?}` and checks it
    /// against the channel's feature list.
    pub fn read(path: &Path, features: &[String]) -> Result<Standardisation> {
        let fail = |message: String| Error::Standardisation {
            file: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let s: Standardisation = serde_json::from_str(&text).map_err(|e| {
            fail(format!(
                "not valid (expected {{\"mean\": [...], \"std\": [...]}}): {e}"
            ))
        })?;
        if s.mean.len() != features.len() || s.std.len() != features.len() {
            return Err(fail(format!(
                "standardisation has {} means and {} stds but the channel has {} features",
                s.mean.len(),
                s.std.len(),
                features.len()
            )));
        }
        if let Some(names) = &s.features {
            if names != features {
                return Err(fail(format!(
                    "standardisation was made for features {names:?} but the channel lists {features:?}"
                )));
            }
        }
        if let Some(i) = s.std.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
            return Err(fail(format!(
                "std of feature {} must be finite and > 0, got {}",
                features[i], s.std[i]
            )));
        }
        if let Some(i) = s.mean.iter().position(|x| !x.is_finite()) {
            return Err(fail(format!(
                "mean of feature {} is not finite",
                features[i]
            )));
        }
        Ok(s)
    }
}

/// One ONNX network of an ensemble, with one session per worker thread.
struct Member {
    path: PathBuf,
    input: String,
    output: String,
    column: usize,
    sessions: Vec<Mutex<Session>>,
}

/// Every member's per-event ratio (`members[m][i]`) beside the combined ensemble ratios.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberRatios {
    pub members: Vec<Vec<f64>>,
    pub ensemble: CachedRatios,
}

/// An ensemble of networks estimating one density ratio.
pub struct RatioEnsemble {
    pub label: String,
    members: Vec<Member>,
    spec: OutputSpec,
    standardisation: Option<Standardisation>,
    n_features: usize,
    /// Of the model bytes the sessions were opened from.
    fingerprint: EnsembleFingerprint,
}

/// What an ensemble's ratios depend on besides the events — its networks' bytes, which output
/// is read and how, the standardisation, the batch size (network arithmetic can depend on it)
/// and the ONNX Runtime version — known from the files alone, without opening a session: a
/// command whose entries are all in the cache opens none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnsembleFingerprint {
    models: Vec<blake3::Hash>,
    settings: String,
}

impl EnsembleFingerprint {
    /// From each member's model bytes (hashed) and the settings the workspace gives.
    pub fn new(
        model_hashes: Vec<blake3::Hash>,
        spec: &OutputSpec,
        standardisation: Option<&Standardisation>,
    ) -> EnsembleFingerprint {
        // The requested output name (None: the first output, which the model bytes fix).
        let settings = format!(
            "{:?}|{}|{:?}|{:?}|{:?}|{}|{}",
            spec.name,
            spec.column,
            spec.convention,
            spec.aggregation,
            standardisation.map(|s| (&s.mean, &s.std)),
            BATCH_SIZE,
            runtime::ORT_VERSION
        );
        EnsembleFingerprint {
            models: model_hashes,
            settings,
        }
    }

    /// Hashes the model files at `paths` (missing or unreadable: an error naming the file).
    pub fn of_files(
        paths: &[PathBuf],
        spec: &OutputSpec,
        standardisation: Option<&Standardisation>,
    ) -> Result<EnsembleFingerprint> {
        let hashes = paths
            .iter()
            .map(|path| model_bytes(path).map(|bytes| blake3::hash(&bytes)))
            .collect::<Result<Vec<_>>>()?;
        Ok(EnsembleFingerprint::new(hashes, spec, standardisation))
    }

    /// The cache key of these networks' ratios on the events of `events`.
    pub fn cache_key(&self, events: &EventsFingerprint) -> CacheKey {
        let mut key = CacheKeyBuilder::default();
        for model in &self.models {
            key.bytes("model", model.as_bytes());
        }
        key.bytes("settings", self.settings.as_bytes());
        key.bytes("events", events.0.as_bytes());
        key.finish()
    }
}

/// The bytes of a model file; a missing or unreadable one is an error naming it.
fn model_bytes(path: &Path) -> Result<Vec<u8>> {
    if !path.is_file() {
        return Err(Error::model(path, "model file not found"));
    }
    std::fs::read(path).map_err(|e| Error::model(path, format!("cannot read: {e}")))
}

/// What a model file says about its interface, read without running it.
pub struct ModelInterface {
    pub input: String,
    pub output: String,
    pub column: usize,
}

/// Opens `path` in ONNX Runtime and checks that it takes one float32 input of width
/// `n_features` and has the requested output (and column). Nothing is run.
pub fn inspect_model(
    path: &Path,
    n_features: usize,
    spec: &OutputSpec,
) -> Result<(Session, ModelInterface)> {
    let session = open_session(path)?;
    let interface = check_interface(path, &session, n_features, spec)?;
    Ok((session, interface))
}

pub(crate) fn open_session(path: &Path) -> Result<Session> {
    if !path.is_file() {
        return Err(Error::model(path, "model file not found"));
    }
    let environment = runtime::environment()?;
    Session::builder(&environment)
        .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| Error::model(path, format!("ONNX Runtime cannot load it: {e}")))
}

fn check_interface(
    path: &Path,
    session: &Session,
    n_features: usize,
    spec: &OutputSpec,
) -> Result<ModelInterface> {
    let fail = |message: String| Error::model(path, message);
    let [input] = session.inputs() else {
        return Err(fail(format!(
            "expected exactly one input (the [N, {n_features}] feature matrix), found {}",
            session.inputs().len()
        )));
    };
    check_matrix_input(
        path,
        input,
        n_features,
        &format!("the workspace lists {n_features} features"),
    )?;
    let output = check_output(path, session, spec.name.as_deref(), spec.column)?;
    Ok(ModelInterface {
        input: input.name().to_string(),
        output,
        column: spec.column,
    })
}

/// Checks that `input` is a float32 matrix [N, width] with a dynamic first axis; `why` says
/// where the width comes from, for the message.
pub(crate) fn check_matrix_input(
    path: &Path,
    input: &Outlet,
    width: usize,
    why: &str,
) -> Result<()> {
    let fail = |message: String| Error::model(path, message);
    match input.dtype() {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } => {
            let found = shape.get(1).copied();
            if shape.len() != 2 || found.is_some_and(|w| w >= 0 && w as usize != width) {
                return Err(fail(format!(
                    "input '{}' has shape {shape} but {why}: expected [N, {width}]",
                    input.name()
                )));
            }
            // Rows are fed in batches of any size, the last one short: a model exported
            // with a fixed first axis would fail at the first batch, after the others ran.
            if let Some(batch) = shape.first().copied().filter(|&b| b >= 0) {
                return Err(fail(format!(
                    "input '{}' has shape {shape}, a fixed batch size {batch}: export the model \
                     with a dynamic first axis, [N, {width}] (e.g. dynamic_axes={{'{}': {{0: 'N'}}}} \
                     in torch.onnx.export)",
                    input.name(),
                    input.name()
                )));
            }
            Ok(())
        }
        other => Err(fail(format!(
            "input '{}' must be a float32 tensor, found {other:?}",
            input.name()
        ))),
    }
}

/// Checks that the model has the output `name` (default: its first) as a float tensor [N] or
/// [N, k] with column `column`; returns the output's name.
pub(crate) fn check_output(
    path: &Path,
    session: &Session,
    name: Option<&str>,
    column: usize,
) -> Result<String> {
    let fail = |message: String| Error::model(path, message);
    let output = match name {
        Some(name) => session
            .outputs()
            .iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
                fail(format!(
                    "has no output '{name}' (outputs: {})",
                    names.join(", ")
                ))
            })?,
        None => session
            .outputs()
            .first()
            .ok_or_else(|| fail("has no outputs".into()))?,
    };
    match output.dtype() {
        ValueType::Tensor {
            ty: TensorElementType::Float32 | TensorElementType::Float64,
            shape,
            ..
        } => {
            let width = if shape.len() == 2 { shape[1] } else { 1 };
            if shape.len() > 2 || (width >= 0 && column >= width as usize) {
                return Err(fail(format!(
                    "output '{}' has shape {shape}: column {column} does not exist",
                    output.name(),
                )));
            }
        }
        other => {
            return Err(fail(format!(
                "output '{}' must be a float tensor, found {other:?} (for sklearn models export with zipmap disabled)",
                output.name()
            )));
        }
    }
    Ok(output.name().to_string())
}

impl RatioEnsemble {
    /// Loads every member, checks its interface, and prepares one session per rayon thread.
    pub fn load(
        label: impl Into<String>,
        paths: &[PathBuf],
        spec: OutputSpec,
        standardisation: Option<Standardisation>,
        n_features: usize,
    ) -> Result<RatioEnsemble> {
        let workers = rayon::current_num_threads().max(1);
        let mut members = Vec::with_capacity(paths.len());
        let mut hashes = Vec::with_capacity(paths.len());
        for path in paths {
            let (first, interface) = inspect_model(path, n_features, &spec)?;
            hashes.push(blake3::hash(&model_bytes(path)?));
            let mut sessions = vec![Mutex::new(first)];
            for _ in 1..workers {
                sessions.push(Mutex::new(open_session(path)?));
            }
            members.push(Member {
                path: path.clone(),
                input: interface.input,
                output: interface.output,
                column: interface.column,
                sessions,
            });
        }
        let fingerprint = EnsembleFingerprint::new(hashes, &spec, standardisation.as_ref());
        Ok(RatioEnsemble {
            label: label.into(),
            members,
            spec,
            standardisation,
            n_features,
            fingerprint,
        })
    }

    /// What this ensemble's ratios depend on besides the events (of the model bytes read when
    /// its sessions were opened).
    pub fn fingerprint(&self) -> &EnsembleFingerprint {
        &self.fingerprint
    }

    pub fn n_members(&self) -> usize {
        self.members.len()
    }

    pub fn model_paths(&self) -> Vec<&Path> {
        self.members.iter().map(|m| m.path.as_path()).collect()
    }

    /// The cache key of this ensemble's ratios on `events` ([`EnsembleFingerprint::cache_key`]).
    pub fn cache_key(&self, events: &Events) -> CacheKey {
        self.fingerprint.cache_key(&events.fingerprint())
    }

    /// Per-event ratios and ensemble spreads for `events`. A member output that is not finite,
    /// or a ratio that is not positive, is an error naming the model, the file and the event.
    pub fn evaluate(
        &self,
        events: &Events,
        progress: Option<&ProgressBar>,
    ) -> Result<CachedRatios> {
        Ok(self.evaluate_members(events, progress)?.ensemble)
    }

    /// [`RatioEnsemble::evaluate`] for events `events` only. The range must start on a batch
    /// boundary (a multiple of [`BATCH_SIZE`]) so that every network call sees exactly the rows
    /// it sees when all events are evaluated at once: the numbers are then bit for bit those of
    /// the whole evaluation, whatever the network's arithmetic does with the batch size.
    pub fn evaluate_range(
        &self,
        events: &Events,
        range: std::ops::Range<usize>,
        progress: Option<&ProgressBar>,
    ) -> Result<CachedRatios> {
        assert!(
            range.start.is_multiple_of(BATCH_SIZE) && range.end <= events.len(),
            "event range {range:?} of {} events is not batch-aligned",
            events.len()
        );
        Ok(self.evaluate_members_in(events, range, progress)?.ensemble)
    }

    /// Like [`RatioEnsemble::evaluate`], and also every member's own ratio: the diagnostics
    /// judge each network, not only their combination. Same batches, so the ensemble numbers
    /// are identical to `evaluate`'s.
    pub fn evaluate_members(
        &self,
        events: &Events,
        progress: Option<&ProgressBar>,
    ) -> Result<MemberRatios> {
        self.evaluate_members_in(events, 0..events.len(), progress)
    }

    fn evaluate_members_in(
        &self,
        events: &Events,
        range: std::ops::Range<usize>,
        progress: Option<&ProgressBar>,
    ) -> Result<MemberRatios> {
        if events.features.len() != self.n_features {
            return Err(Error::event_file(
                &events.file,
                format!(
                    "has {} feature columns but ensemble {} takes {}",
                    events.features.len(),
                    self.label,
                    self.n_features
                ),
            ));
        }
        let (n, end) = (range.len(), range.end);
        let batches: Vec<(usize, usize)> = range
            .step_by(BATCH_SIZE)
            .map(|s| (s, (s + BATCH_SIZE).min(end)))
            .collect();
        let results: Vec<Result<MemberRatios>> = batches
            .par_iter()
            .map(|&(start, end)| {
                let out = self.evaluate_batch(events, start, end);
                if let Some(bar) = progress {
                    bar.inc((end - start) as u64);
                }
                out
            })
            .collect();
        let mut all = MemberRatios {
            members: vec![Vec::with_capacity(n); self.members.len()],
            ensemble: CachedRatios {
                ratio: Vec::with_capacity(n),
                spread: Vec::with_capacity(n),
            },
        };
        for batch in results {
            let batch = batch?;
            for (acc, part) in all.members.iter_mut().zip(batch.members) {
                acc.extend(part);
            }
            all.ensemble.ratio.extend(batch.ensemble.ratio);
            all.ensemble.spread.extend(batch.ensemble.spread);
        }
        Ok(all)
    }

    fn evaluate_batch(&self, events: &Events, start: usize, end: usize) -> Result<MemberRatios> {
        let input = self.network_input(events, start, end);
        let len = end - start;
        let mut members = Vec::with_capacity(self.members.len());
        for member in &self.members {
            let mut ratios = Vec::with_capacity(len);
            self.run_member(member, &input, events, start, len, &mut ratios)?;
            members.push(ratios);
        }
        let mut ratio = Vec::with_capacity(len);
        let mut spread = Vec::with_capacity(len);
        let mut per_event = Vec::with_capacity(self.members.len());
        let mut scratch = Vec::with_capacity(self.members.len());
        for i in 0..len {
            per_event.clear();
            per_event.extend(members.iter().map(|m| m[i]));
            let r = convention::aggregate(self.spec.aggregation, &per_event, &mut scratch);
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::model(
                    &self.members[0].path,
                    format!(
                        "ensemble {} combines to ratio {r} at event {} of {}: a density ratio must be finite and > 0",
                        self.label,
                        start + i,
                        events.file.display()
                    ),
                ));
            }
            ratio.push(r);
            spread.push(convention::spread(&per_event));
        }
        Ok(MemberRatios {
            members,
            ensemble: CachedRatios { ratio, spread },
        })
    }

    /// The float32 input matrix of one batch, standardised if the ensemble asks for it.
    fn network_input(&self, events: &Events, start: usize, end: usize) -> Vec<f32> {
        let rows = events.values.slice(ndarray::s![start..end, ..]);
        let mut input: Vec<f32> = rows.iter().copied().collect();
        if let Some(s) = &self.standardisation {
            let n_features = s.mean.len();
            for (k, x) in input.iter_mut().enumerate() {
                let j = k % n_features;
                *x = ((*x as f64 - s.mean[j]) / s.std[j]) as f32;
            }
        }
        input
    }

    fn run_member(
        &self,
        member: &Member,
        input: &[f32],
        events: &Events,
        start: usize,
        len: usize,
        out: &mut Vec<f64>,
    ) -> Result<()> {
        let fail = |message: String| Error::model(&member.path, message);
        let slot = rayon::current_thread_index().unwrap_or(0) % member.sessions.len();
        let mut session = member.sessions[slot]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tensor = TensorRef::from_array_view(([len, self.n_features], input))
            .map_err(|e| fail(format!("cannot build input tensor: {e}")))?;
        let outputs = session
            .run(ort::inputs![member.input.as_str() => tensor])
            .map_err(|e| {
                fail(format!(
                    "failed on events {start}..{} of {}: {e}",
                    start + len,
                    events.file.display()
                ))
            })?;
        let value = &outputs[member.output.as_str()];
        let raw = output_column(value, member.column, len).map_err(fail)?;
        for (i, y) in raw.into_iter().enumerate() {
            let r = convention::to_ratio(self.spec.convention, y);
            if !y.is_finite() || !r.is_finite() || r <= 0.0 {
                return Err(fail(format!(
                    "output {y} (ratio {r} under convention {:?}) at event {} of {}: a density ratio must be finite and > 0",
                    self.spec.convention,
                    start + i,
                    events.file.display()
                )));
            }
            out.push(r);
        }
        Ok(())
    }
}

/// Column `column` of a float32 or float64 output of `len` rows, widened to f64.
pub(crate) fn output_column(
    value: &ort::value::DynValue,
    column: usize,
    len: usize,
) -> std::result::Result<Vec<f64>, String> {
    match value.dtype().tensor_type() {
        Some(TensorElementType::Float64) => {
            let (shape, data) = value
                .try_extract_tensor::<f64>()
                .map_err(|e| e.to_string())?;
            select_column(shape, data, column, len)
        }
        _ => {
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| e.to_string())?;
            let wide: Vec<f64> = data.iter().map(|&x| x as f64).collect();
            select_column(shape, &wide, column, len)
        }
    }
}

/// Column `column` of an output of shape [len] or [len, k].
fn select_column(
    shape: &[i64],
    data: &[f64],
    column: usize,
    len: usize,
) -> std::result::Result<Vec<f64>, String> {
    match shape {
        [n] if *n as usize == len => Ok(data.to_vec()),
        [n, k] if *n as usize == len && column < *k as usize => {
            let k = *k as usize;
            Ok((0..len).map(|i| data[i * k + column]).collect())
        }
        _ => Err(format!(
            "output has shape {shape:?}, expected [{len}] or [{len}, k > {column}]"
        )),
    }
}
