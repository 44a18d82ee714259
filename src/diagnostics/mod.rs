//! Diagnostics of the ratio models (DESIGN.md §5): before a fit is trusted, are the networks'
//! ratios real density ratios? Two checks, on events the networks were not trained on:
//! [`calibration`] (reliability curves of s = r/(1+r)) and [`closure`] (reweighted samples
//! against their targets, per feature, per ratio model and per parameter point).
//!
//! Every check is a χ² test with a p-value. A run makes N of them, so at a per-test threshold
//! α a perfect model fails at least one with probability ≈ Nα: `p_threshold` is the
//! *family-wise* level of a run, and each test is held to α/N (Bonferroni).

pub mod calibration;
pub mod closure;
pub mod output;
pub mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::analysis::Analysis;
use crate::data::{Events, RatioCache};
use crate::error::{Error, Result};
use crate::likelihood::data::ChannelData;
use crate::ratio;
use crate::workspace::schema::{EventSourceSpec, UnbinnedChannelSpec};
use crate::workspace::{EnsembleRef, Workspace};
use calibration::{
    member_spread_per_bin, reliability_curve, score, ClassScores, ReliabilityCurve, ScoreBins,
};
pub use closure::ClosureTest;
use closure::{ratio_closure, WeightedSegment};
pub use output::{CalibrationOutput, ClosureOutput};

/// `NAME=FILE` from the command line: held-out events replacing (or, for a shape variation,
/// supplying) the workspace's sample `NAME` — `reference`, a process name, or
/// `PROCESS/SYSTEMATIC:up|down` — optionally prefixed by `CHANNEL/`.
#[derive(Clone, Debug, PartialEq)]
pub struct Holdout {
    pub sample: String,
    pub file: PathBuf,
}

impl Holdout {
    pub fn parse(text: &str) -> Result<Holdout> {
        let (sample, file) = text.split_once('=').ok_or_else(|| {
            Error::Analysis(format!(
                "--holdout: expected NAME=FILE (e.g. reference=ref_heldout.h5), got '{text}'"
            ))
        })?;
        Ok(Holdout {
            sample: sample.trim().to_string(),
            file: PathBuf::from(file.trim()),
        })
    }
}

/// The events of the two classes a ratio model separates: numerator (class c, label 1) and
/// denominator (the reference, or the nominal sample for a shape variation).
pub struct RatioClasses<'w> {
    pub ensemble: EnsembleRef<'w>,
    pub label: String,
    pub numerator: Arc<Events>,
    pub denominator: Arc<Events>,
}

/// The ratio models a diagnostic run looks at, and those it cannot (with the reason).
pub struct Selection<'w> {
    pub classes: Vec<RatioClasses<'w>>,
    pub skipped: Vec<String>,
}

/// Reads each event file once, however many ratio models use it.
struct SampleReader<'a> {
    ws: &'a Workspace,
    holdouts: &'a [Holdout],
    loaded: HashMap<(PathBuf, String, Option<String>), Arc<Events>>,
}

impl SampleReader<'_> {
    /// Sample `name` of `channel`: the held-out file given for it, else `source` from the
    /// workspace, else none. Group and weight column are those of `like`.
    fn read(
        &mut self,
        channel: &UnbinnedChannelSpec,
        name: &str,
        source: Option<&EventSourceSpec>,
        like: &EventSourceSpec,
    ) -> Result<Option<Arc<Events>>> {
        let qualified = format!("{}/{name}", channel.name.value);
        let given = self
            .holdouts
            .iter()
            .rev()
            .find(|h| h.sample == name || h.sample == qualified);
        let file = match (given, source) {
            (Some(h), _) => h.file.clone(),
            (None, Some(s)) => self.ws.resolve(&s.file.value),
            (None, None) => return Ok(None),
        };
        let weight = like.weight.as_ref().map(|w| w.value.clone());
        let key = (file, like.group.value.clone(), weight);
        if let Some(events) = self.loaded.get(&key) {
            return Ok(Some(events.clone()));
        }
        let events = Arc::new(Events::read(
            &key.0,
            &key.1,
            &ratio::feature_names(channel),
            key.2.as_deref(),
        )?);
        self.loaded.insert(key, events.clone());
        Ok(Some(events))
    }
}

/// The sample names `--holdout` may use: `reference` and each ratio model's numerator (a
/// process, or `PROCESS/SYSTEMATIC:up|down`), bare or prefixed by their channel.
fn sample_names(ws: &Workspace) -> Vec<String> {
    let mut names = Vec::new();
    for channel in ws.spec.unbinned_channels() {
        let prefix = format!("{}/", channel.name.value);
        let mut bare = vec!["reference".to_string()];
        for e in ws.ensembles() {
            if std::ptr::eq(e.channel, channel) {
                bare.push(e.label()[prefix.len()..].to_string());
            }
        }
        for name in bare {
            names.push(format!("{prefix}{name}"));
            names.push(name);
        }
    }
    names
}

/// The ratio models of `processes` (all if empty) with their held-out classes. Shape
/// variations take part only when `--holdout` supplies their varied sample.
pub fn select<'w>(
    ws: &'w Workspace,
    processes: &[String],
    holdouts: &[Holdout],
) -> Result<Selection<'w>> {
    let known = sample_names(ws);
    if let Some(h) = holdouts.iter().find(|h| !known.contains(&h.sample)) {
        let listed: Vec<&str> = known
            .iter()
            .filter(|k| !k.contains('/') || k.contains(':'))
            .map(String::as_str)
            .collect();
        return Err(Error::Analysis(format!(
            "--holdout {}={}: no sample '{}' in the workspace (samples: {})",
            h.sample,
            h.file.display(),
            h.sample,
            listed.join(", ")
        )));
    }
    let all: Vec<&str> = ws
        .spec
        .unbinned_channels()
        .flat_map(|c| c.processes.iter().map(|p| p.name.value.as_str()))
        .collect();
    if let Some(p) = processes.iter().find(|p| !all.contains(&p.as_str())) {
        return Err(Error::Analysis(format!(
            "--process {p}: no such process (processes: {})",
            all.join(", ")
        )));
    }
    let mut reader = SampleReader {
        ws,
        holdouts,
        loaded: HashMap::new(),
    };
    let mut selection = Selection {
        classes: Vec::new(),
        skipped: Vec::new(),
    };
    for ensemble in ws.ensembles() {
        if !processes.is_empty() && !processes.iter().any(|p| p == ensemble.process) {
            continue;
        }
        let channel = ensemble.channel;
        let process = channel
            .processes
            .iter()
            .find(|p| p.name.value == ensemble.process)
            .expect("ensembles come from processes");
        let label = ensemble.label();
        let (numerator, denominator) = match ensemble.variation {
            None => {
                let Some(reference) = &channel.reference else {
                    selection.skipped.push(format!(
                        "{label}: channel {} has no `reference:` sample (give --holdout reference=FILE)",
                        channel.name.value
                    ));
                    continue;
                };
                let own = &process.samples;
                (
                    reader.read(channel, ensemble.process, Some(own), own)?,
                    reader.read(channel, "reference", Some(reference), reference)?,
                )
            }
            Some((systematic, direction)) => {
                let own = &process.samples;
                let name = format!("{}/{systematic}:{direction}", ensemble.process);
                (
                    reader.read(channel, &name, None, own)?,
                    reader.read(channel, ensemble.process, Some(own), own)?,
                )
            }
        };
        match (numerator, denominator) {
            (Some(numerator), Some(denominator)) => selection.classes.push(RatioClasses {
                ensemble,
                label,
                numerator,
                denominator,
            }),
            _ => selection.skipped.push(format!(
                "{label}: no held-out events of the varied sample (give --holdout {}=FILE)",
                &label[channel.name.value.len() + 1..]
            )),
        }
    }
    Ok(selection)
}

/// The per-test threshold of a family of `n` tests at family-wise level `p_threshold`.
pub fn bonferroni(p_threshold: f64, n: usize) -> f64 {
    p_threshold / n.max(1) as f64
}

/// `SR/B/alpha_shape:up` → `SR_B_alpha_shape_up`, `SR/mu=1.7` → `SR_mu_1p7`: a file stem
/// (no dot, which would read as an extension).
pub fn file_stem(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else if c == '.' {
                'p'
            } else {
                '_'
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Calibration
// ---------------------------------------------------------------------------------------------

/// The calibration of one ratio model: the ensemble's curve, each member's, and their spread.
pub struct ModelCalibration {
    pub label: String,
    pub models: Vec<PathBuf>,
    pub numerator: Arc<Events>,
    pub denominator: Arc<Events>,
    pub ensemble: ReliabilityCurve,
    pub members: Vec<ReliabilityCurve>,
    /// Per bin of the ensemble's s: mean standard deviation of the members' s.
    pub spread_per_bin: Vec<f64>,
    pub mean_spread: f64,
}

pub struct CalibrationReport {
    pub models: Vec<ModelCalibration>,
    pub skipped: Vec<String>,
    pub bins: usize,
    pub p_threshold: f64,
}

fn class_scores(ensemble: &ratio::RatioEnsemble, events: &Events) -> Result<ClassScores> {
    let evaluated = ensemble.evaluate_members(events, None)?;
    Ok(ClassScores {
        ensemble: evaluated.ensemble.ratio.iter().map(|&r| score(r)).collect(),
        members: evaluated
            .members
            .iter()
            .map(|m| m.iter().map(|&r| score(r)).collect())
            .collect(),
        weights: events.weights.clone(),
    })
}

/// Reliability curves of every selected ratio model, in `bins` equal bins of s.
pub fn calibrate(
    ws: &Workspace,
    selection: &Selection<'_>,
    bins: usize,
    p_threshold: f64,
) -> Result<CalibrationReport> {
    let mut models = Vec::new();
    for classes in &selection.classes {
        let ensemble = ratio::load_ensemble(
            ws,
            classes.ensemble.channel,
            &classes.label,
            classes.ensemble.spec,
        )?;
        let one = class_scores(&ensemble, &classes.numerator)?;
        let zero = class_scores(&ensemble, &classes.denominator)?;
        let edges = ScoreBins::spanning(&[&one.ensemble, &zero.ensemble], bins);
        let curve =
            |a: &[f64], b: &[f64]| reliability_curve(a, &one.weights, b, &zero.weights, edges);
        let members = one
            .members
            .iter()
            .zip(&zero.members)
            .map(|(a, b)| curve(a, b))
            .collect();
        let (spread_per_bin, mean_spread) = member_spread_per_bin([&one, &zero], edges);
        models.push(ModelCalibration {
            label: classes.label.clone(),
            models: ensemble
                .model_paths()
                .iter()
                .map(|p| p.to_path_buf())
                .collect(),
            numerator: classes.numerator.clone(),
            denominator: classes.denominator.clone(),
            ensemble: curve(&one.ensemble, &zero.ensemble),
            members,
            spread_per_bin,
            mean_spread,
        });
    }
    Ok(CalibrationReport {
        models,
        skipped: selection.skipped.clone(),
        bins,
        p_threshold,
    })
}

impl CalibrationReport {
    /// Each ensemble's reliability curve is one test of the family.
    pub fn per_test_threshold(&self) -> f64 {
        bonferroni(self.p_threshold, self.models.len())
    }

    pub fn passes(&self, model: &ModelCalibration) -> bool {
        model.ensemble.p_value >= self.per_test_threshold()
    }

    pub fn all_pass(&self) -> bool {
        self.models.iter().all(|m| self.passes(m))
    }

    /// The typed result (`calibration.json`).
    pub fn output(&self) -> CalibrationOutput {
        CalibrationOutput::new(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Closure
// ---------------------------------------------------------------------------------------------

pub struct ClosureReport {
    pub tests: Vec<ClosureTest>,
    pub skipped: Vec<String>,
    pub bins: usize,
    pub p_threshold: f64,
}

/// Per ratio model: the denominator reweighted by its ratio against the numerator.
pub fn ratio_closures(
    ws: &Workspace,
    selection: &Selection<'_>,
    cache: &RatioCache,
    bins: usize,
) -> Result<Vec<ClosureTest>> {
    let mut tests = Vec::new();
    for classes in &selection.classes {
        let channel = classes.ensemble.channel;
        let ensemble = ratio::load_ensemble(ws, channel, &classes.label, classes.ensemble.spec)?;
        let (ratios, _, _) =
            ratio::cached_or_evaluated(&ensemble, &classes.denominator, cache, None)?;
        let segments = ratio_closure(&classes.numerator, &classes.denominator, &ratios.ratio);
        tests.push(ClosureTest::new(
            classes.label.clone(),
            format!(
                "{} reweighted by r = {} against {}",
                classes.denominator.file.display(),
                classes.label,
                classes.numerator.file.display()
            ),
            &ratio::feature_names(channel),
            &segments,
            bins,
        ));
    }
    Ok(tests)
}

/// Per parameter point: the weighted MC mixture at `reference` reweighted event by event by
/// p(x|θ)/p(x|θ_ref) · ν(θ)/ν(θ_ref) against the mixture at θ (both from the same MC pool, so
/// shared events are counted once in the errors).
pub fn parameter_closure(
    analysis: &Analysis,
    reference: &[f64],
    theta: &[f64],
    name: &str,
    bins: usize,
) -> Result<Vec<ClosureTest>> {
    let mut tests = Vec::new();
    for (channel, ratios) in analysis.model.channels.iter().zip(analysis.ratios.iter()) {
        let at_ref = ChannelData::mc_mixture(channel, ratios, reference)?;
        let at_theta = ChannelData::mc_mixture(channel, ratios, theta)?;
        let d_ref = at_ref.model_density(channel, reference);
        let d_theta = at_ref.model_density(channel, theta);
        let mut reweighted = Vec::with_capacity(d_ref.len());
        for (i, ((w, a), b)) in at_ref.weights.iter().zip(&d_ref).zip(&d_theta).enumerate() {
            if *w == 0.0 {
                reweighted.push(0.0);
            } else if *a > 0.0 {
                reweighted.push(w * b / a);
            } else {
                return Err(Error::Analysis(format!(
                    "closure at {name}: the model density at the reference point is {a:e} ≤ 0 at pooled MC event {i} of channel {}: cannot reweight from it",
                    channel.name
                )));
            }
        }
        // The pooled events in Asimov order: each process's MC sample in turn.
        let mut segments = Vec::new();
        let mut offset = 0;
        for process in &channel.processes {
            let events = ratios
                .sources
                .iter()
                .find(|(role, _)| {
                    *role == crate::workspace::EventRole::Process(process.name.clone())
                })
                .map(|(_, e)| e)
                .ok_or_else(|| {
                    Error::Analysis(format!("no MC sample for process {}", process.name))
                })?;
            let range = offset..offset + events.len();
            segments.push(WeightedSegment {
                events,
                target: at_theta.weights[range.clone()].to_vec(),
                reweighted: reweighted[range].to_vec(),
            });
            offset += events.len();
        }
        let features = segments
            .first()
            .map(|s| s.events.features.clone())
            .unwrap_or_default();
        tests.push(ClosureTest::new(
            format!("{}/{name}", channel.name),
            format!(
                "weighted MC mixture at the reference point reweighted by p(x|{name})/p(x|reference) against the MC mixture at {name} (channel {})",
                channel.name
            ),
            &features,
            &segments,
            bins,
        ));
    }
    Ok(tests)
}

impl ClosureReport {
    /// Each feature histogram is one test of the family.
    pub fn per_test_threshold(&self) -> f64 {
        let n = self.tests.iter().map(|t| t.features.len()).sum();
        bonferroni(self.p_threshold, n)
    }

    pub fn all_pass(&self) -> bool {
        let threshold = self.per_test_threshold();
        self.tests.iter().all(|t| t.passes(threshold))
    }

    /// The typed result (`closure.json`).
    pub fn output(&self) -> ClosureOutput {
        ClosureOutput::new(self)
    }
}

/// Where the diagnostics of `workspace` go by default: `nsbi-diagnostics/<workspace stem>`
/// beside the workspace file.
pub fn default_output_dir(workspace: &Path) -> PathBuf {
    let stem = workspace
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workspace".into());
    workspace
        .parent()
        .unwrap_or(Path::new("."))
        .join("nsbi-diagnostics")
        .join(stem)
}

/// Refuses a binning or a family-wise threshold no diagnostics run can use.
/// The workspace a diagnostics command looks at, with the held-out samples `holdouts`
/// (`PROCESS:FILE:GROUP` each) parsed, after checking `bins` and `p_threshold`: what
/// `nsbi calibrate`, `nsbi closure` and their Python calls start from.
pub fn open(
    path: &std::path::Path,
    bins: usize,
    p_threshold: f64,
    holdouts: &[String],
) -> Result<(Workspace, Vec<Holdout>)> {
    check_settings(bins, p_threshold)?;
    let ws = Workspace::load(path)?;
    let holdouts = holdouts
        .iter()
        .map(|h| Holdout::parse(h))
        .collect::<Result<Vec<_>>>()?;
    Ok((ws, holdouts))
}

pub fn check_settings(bins: usize, p_threshold: f64) -> Result<()> {
    if bins < 2 {
        return Err(Error::Analysis("--bins must be at least 2".into()));
    }
    if !(p_threshold > 0.0 && p_threshold < 1.0) {
        return Err(Error::Analysis(format!(
            "--p-threshold must lie in (0, 1), got {p_threshold}"
        )));
    }
    Ok(())
}

/// Per parameter point of `at` (`c1=0.5,c2=-0.3`: parameters by name, as `coverage --at`;
/// every other parameter at its `init`), for a model of any number of POIs: the
/// parameter-point closure tests of the MC mixture at `reference` (of the same form; `None`:
/// every parameter at its `init`) reweighted to it. Each test is named by its point
/// (`SR/c1=0.5,c2=-0.3`).
pub fn point_closures(
    analysis: &Analysis,
    at: &[String],
    reference: Option<&str>,
    bins: usize,
) -> Result<Vec<ClosureTest>> {
    let point = |text: &str, option: &str| -> Result<(Vec<f64>, String)> {
        let mut theta = analysis.model.init();
        let mut label = Vec::new();
        for (i, v) in analysis.assignments(text, option)? {
            theta[i] = v;
            label.push(format!("{}={v}", analysis.model.parameters[i].name));
        }
        if label.is_empty() {
            return Err(Error::Analysis(format!(
                "{option} '{text}': give the point as name=value,… (e.g. c1=0.5,c2=-0.3)"
            )));
        }
        Ok((theta, label.join(",")))
    };
    let reference = match reference {
        Some(text) => point(text, "--at-ref")?.0,
        None => analysis.model.init(),
    };
    let mut tests = Vec::new();
    for text in at {
        let (theta, label) = point(text, "--at")?;
        tests.extend(parameter_closure(
            analysis, &reference, &theta, &label, bins,
        )?);
    }
    Ok(tests)
}

/// Per value of the POI in `mu`: the parameter-point closure tests of the MC mixture at
/// `mu_ref` (other parameters at their `init`) reweighted to it.
pub fn poi_closures(
    analysis: &Analysis,
    mu: &[f64],
    mu_ref: f64,
    bins: usize,
) -> Result<Vec<ClosureTest>> {
    if mu.is_empty() {
        return Ok(Vec::new());
    }
    let pois = analysis.model.pois();
    let [poi] = pois.as_slice() else {
        return Err(Error::Analysis(format!(
            "--mu needs a model with exactly one POI (this one has {}): give its points with \
             --at NAME=VALUE,…",
            pois.len()
        )));
    };
    let name = &analysis.model.parameters[*poi].name;
    let point = |value: f64| -> Result<Vec<f64>> {
        let mut theta = analysis.model.init();
        for (i, v) in analysis.assignments(&format!("{name}={value}"), "--mu")? {
            theta[i] = v;
        }
        Ok(theta)
    };
    let reference = point(mu_ref)?;
    let mut tests = Vec::new();
    for &value in mu {
        let label = format!("{name}={value}");
        tests.extend(parameter_closure(
            analysis,
            &reference,
            &point(value)?,
            &label,
            bins,
        )?);
    }
    Ok(tests)
}
