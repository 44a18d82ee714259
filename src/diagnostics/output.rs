//! Typed results of `nsbi calibrate` and `nsbi closure`: `calibration.json` and `closure.json`
//! are their serialisation, the Python package returns them, and their JSON Schemas in
//! `schemas/` are generated from them ([`crate::results::schemas`]).
//!
//! Numbers that are undefined (an empty bin's observed fraction, a bin without a pull) are
//! null: `Option<f64>` here, never a NaN in the file.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

use super::calibration::{ReliabilityCurve, MIN_EFFECTIVE_ENTRIES};
use super::closure::{ClosureTest, FeatureClosure};
use super::{CalibrationReport, ClosureReport, ModelCalibration};
use crate::data::Events;

/// NaN (an empty bin) as null.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// `nsbi calibrate`'s `calibration.json`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CalibrationOutput {
    pub settings: CalibrationSettings,
    /// Whether every ensemble's reliability curve passes its χ² test.
    pub pass: bool,
    pub ensembles: Vec<EnsembleCalibration>,
    /// The ratio models left out, each with the reason.
    pub skipped: Vec<String>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CalibrationSettings {
    /// Equal bins of s = r/(1+r) over the range the predictions cover.
    pub bins: usize,
    /// The family-wise p-value threshold of the run.
    pub p_threshold: f64,
    /// p_threshold / (number of ensembles) (Bonferroni).
    pub per_test_threshold: f64,
    /// Bins with fewer effective entries are left out of the χ² test.
    pub min_effective_entries: f64,
    pub class_priors: &'static str,
}

/// The calibration of one ratio model (an ensemble of networks).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct EnsembleCalibration {
    /// The ratio model's label (`SR/S`, `SR/B/alpha_shape:up`).
    pub ensemble: String,
    pub pass: bool,
    pub numerator: SampleOutput,
    pub denominator: SampleOutput,
    /// The ensemble's reliability curve.
    pub curve: CurveOutput,
    /// Each member network's curve, with its ONNX file.
    pub members: Vec<MemberCurve>,
    pub member_ece: MemberEce,
    pub spread: SpreadOutput,
}

/// An event file a diagnostic read.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SampleOutput {
    pub file: PathBuf,
    pub n_events: usize,
    pub sum_of_weights: f64,
}

/// A reliability curve and its summary numbers.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CurveOutput {
    /// Expected calibration error: Σ_b W_b |observed_b − predicted_b| / Σ_b W_b.
    #[schemars(with = "Option<f64>")]
    pub ece: f64,
    pub max_abs_pull: f64,
    pub max_pull_bin: Option<usize>,
    pub chi2: f64,
    pub ndf: usize,
    pub p_value: f64,
    /// The bins whose |pull| exceeds 3, worst first.
    pub bins_beyond_3_sigma: Vec<usize>,
    pub bins: Vec<ReliabilityBinOutput>,
}

/// One bin of predicted probability s.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ReliabilityBinOutput {
    pub low: f64,
    pub high: f64,
    /// Balanced weight in the bin (each class sums to 1 over all bins).
    pub weight: f64,
    /// Null for an empty bin (as `observed` and `error`).
    pub mean_predicted: Option<f64>,
    /// Weighted fraction of numerator-class events.
    pub observed: Option<f64>,
    pub error: Option<f64>,
    pub effective_entries: f64,
    pub n_numerator: usize,
    pub n_denominator: usize,
    /// (observed − mean_predicted) / error; null outside the test.
    pub pull: Option<f64>,
    pub in_test: bool,
}

/// A member network's reliability curve.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MemberCurve {
    #[serde(flatten)]
    pub curve: CurveOutput,
    /// The member's ONNX file.
    pub model: PathBuf,
}

/// The members' ECEs: their mean, sample standard deviation and values.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MemberEce {
    #[schemars(with = "Option<f64>")]
    pub mean: f64,
    #[schemars(with = "Option<f64>")]
    pub std: f64,
    #[schemars(with = "Vec<Option<f64>>")]
    pub values: Vec<f64>,
}

/// How much the members disagree: the weighted mean of their standard deviation of s, over
/// all events and per bin of the ensemble's s (null for an empty bin).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SpreadOutput {
    #[schemars(with = "Option<f64>")]
    pub mean: f64,
    pub per_bin: Vec<Option<f64>>,
}

impl CurveOutput {
    fn new(curve: &ReliabilityCurve) -> CurveOutput {
        CurveOutput {
            ece: curve.ece,
            max_abs_pull: curve.max_abs_pull,
            max_pull_bin: curve.max_pull_bin,
            chi2: curve.chi2,
            ndf: curve.ndf,
            p_value: curve.p_value,
            bins_beyond_3_sigma: curve.bad_bins(),
            bins: curve
                .bins
                .iter()
                .map(|b| ReliabilityBinOutput {
                    low: b.low,
                    high: b.high,
                    weight: b.weight,
                    mean_predicted: finite(b.mean_predicted),
                    observed: finite(b.observed),
                    error: finite(b.error),
                    effective_entries: b.effective_entries,
                    n_numerator: b.n_numerator,
                    n_denominator: b.n_denominator,
                    pull: b.pull,
                    in_test: b.pull.is_some(),
                })
                .collect(),
        }
    }
}

impl SampleOutput {
    fn new(events: &Events) -> SampleOutput {
        SampleOutput {
            file: events.file.clone(),
            n_events: events.len(),
            sum_of_weights: events.total_weight(),
        }
    }
}

impl MemberEce {
    fn new(model: &ModelCalibration) -> MemberEce {
        let values: Vec<f64> = model.members.iter().map(|c| c.ece).collect();
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let std = (values.iter().map(|e| (e - mean).powi(2)).sum::<f64>()
            / (values.len().max(2) - 1) as f64)
            .sqrt();
        MemberEce { mean, std, values }
    }
}

impl CalibrationOutput {
    pub fn new(report: &CalibrationReport) -> CalibrationOutput {
        let ensembles = report
            .models
            .iter()
            .map(|m| EnsembleCalibration {
                ensemble: m.label.clone(),
                pass: report.passes(m),
                numerator: SampleOutput::new(&m.numerator),
                denominator: SampleOutput::new(&m.denominator),
                curve: CurveOutput::new(&m.ensemble),
                members: m
                    .members
                    .iter()
                    .zip(&m.models)
                    .map(|(c, path)| MemberCurve {
                        curve: CurveOutput::new(c),
                        model: path.clone(),
                    })
                    .collect(),
                member_ece: MemberEce::new(m),
                spread: SpreadOutput {
                    mean: m.mean_spread,
                    per_bin: m.spread_per_bin.iter().map(|&s| finite(s)).collect(),
                },
            })
            .collect();
        CalibrationOutput {
            settings: CalibrationSettings {
                bins: report.bins,
                p_threshold: report.p_threshold,
                per_test_threshold: report.per_test_threshold(),
                min_effective_entries: MIN_EFFECTIVE_ENTRIES,
                class_priors: "balanced (each class weighted to total 1)",
            },
            pass: report.all_pass(),
            ensembles,
            skipped: report.skipped.clone(),
        }
    }
}

/// `nsbi closure`'s `closure.json`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ClosureOutput {
    pub settings: ClosureSettings,
    /// Whether every feature of every test passes its χ² test.
    pub pass: bool,
    pub tests: Vec<ClosureTestOutput>,
    /// The ratio models left out, each with the reason.
    pub skipped: Vec<String>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ClosureSettings {
    /// Bins per feature.
    pub bins: usize,
    pub binning: &'static str,
    /// The family-wise p-value threshold of the run.
    pub p_threshold: f64,
    /// p_threshold / (number of feature histograms) (Bonferroni).
    pub per_test_threshold: f64,
    pub errors: &'static str,
}

/// One closure test: a named comparison over every feature.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ClosureTestOutput {
    /// The ratio model's label (`SR/S`) or the parameter point (`SR/mu=1.7`).
    pub name: String,
    pub description: String,
    pub pass: bool,
    pub target_total: f64,
    pub reweighted_total: f64,
    pub features: Vec<FeatureOutput>,
}

/// One feature's histograms, target against reweighted.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FeatureOutput {
    pub feature: String,
    pub chi2: f64,
    pub ndf: usize,
    pub chi2_per_ndf: f64,
    pub p_value: f64,
    pub pass: bool,
    /// The bins whose |pull| exceeds 3, worst first.
    pub bins_beyond_3_sigma: Vec<BadBin>,
    pub edges: Vec<f64>,
    pub target: Vec<f64>,
    pub target_error: Vec<f64>,
    pub reweighted: Vec<f64>,
    pub reweighted_error: Vec<f64>,
    /// √Σ(t − u)² per bin: the error of target − reweighted.
    pub difference_error: Vec<f64>,
    /// (target − reweighted)/difference_error per bin; null for a bin without events.
    pub pull: Vec<Option<f64>>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct BadBin {
    pub bin: usize,
    pub low: f64,
    pub high: f64,
    pub pull: f64,
}

impl FeatureOutput {
    fn new(f: &FeatureClosure, per_test_threshold: f64) -> FeatureOutput {
        let h = &f.histogram;
        FeatureOutput {
            feature: f.feature.clone(),
            chi2: f.chi2,
            ndf: f.ndf,
            chi2_per_ndf: f.chi2 / f.ndf.max(1) as f64,
            p_value: f.p_value,
            pass: f.p_value >= per_test_threshold,
            bins_beyond_3_sigma: f
                .bad_bins()
                .into_iter()
                .map(|(bin, pull)| BadBin {
                    bin,
                    low: h.edges[bin],
                    high: h.edges[bin + 1],
                    pull,
                })
                .collect(),
            edges: h.edges.clone(),
            target: h.target.clone(),
            target_error: h.target_error.clone(),
            reweighted: h.reweighted.clone(),
            reweighted_error: h.reweighted_error.clone(),
            difference_error: h.difference_error.clone(),
            pull: h.pulls(),
        }
    }
}

impl ClosureTestOutput {
    /// The test judged against `per_test_threshold`.
    fn new(test: &ClosureTest, per_test_threshold: f64) -> ClosureTestOutput {
        ClosureTestOutput {
            name: test.name.clone(),
            description: test.description.clone(),
            pass: test.passes(per_test_threshold),
            target_total: test.target_total,
            reweighted_total: test.reweighted_total,
            features: test
                .features
                .iter()
                .map(|f| FeatureOutput::new(f, per_test_threshold))
                .collect(),
        }
    }
}

impl ClosureOutput {
    pub fn new(report: &ClosureReport) -> ClosureOutput {
        let threshold = report.per_test_threshold();
        ClosureOutput {
            settings: ClosureSettings {
                bins: report.bins,
                binning: "quantiles of the weighted events, per feature",
                p_threshold: report.p_threshold,
                per_test_threshold: threshold,
                errors: "per bin sqrt(sum (t - u)^2) over events with target weight t and \
                         reweighted weight u",
            },
            pass: report.all_pass(),
            tests: report
                .tests
                .iter()
                .map(|t| ClosureTestOutput::new(t, threshold))
                .collect(),
            skipped: report.skipped.clone(),
        }
    }
}
