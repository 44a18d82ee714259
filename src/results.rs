//! Typed results of `nsbi fit` and `nsbi scan`. The `--json` files are their serialisation,
//! the CLI prints from them and the Python package returns them, so the three cannot drift;
//! the JSON Schemas in `schemas/` are generated from these types ([`schemas`]).
//!
//! Maps keep the order of the model's parameters (`IndexMap`), as the files always had.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::analysis::{BinnedChannelReport, FitReport};
use crate::fit::{self, EvaluationCounts};
use crate::model::Model;

/// `nsbi fit --json`: the fit's status, its MINOS intervals, every parameter and the
/// correlations.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FitOutput {
    pub status: FitStatus,
    pub minos: Vec<MinosOutput>,
    pub nll: f64,
    pub twice_nll: f64,
    /// Every parameter by name, in the workspace's order.
    pub parameters: IndexMap<String, ParameterOutput>,
    /// Row by column; null without a covariance (a Hessian that is not positive definite).
    pub correlation: Option<IndexMap<String, IndexMap<String, f64>>>,
    /// The shape normalisation at the best fit
    /// ([`crate::likelihood::normalisation::report`]).
    pub normalisation: Value,
    pub binned_channels: Vec<BinnedChannelReport>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FitStatus {
    pub converged: bool,
    /// `ok`, `not_converged`, ... ([`fit::FitResult::verdict`]).
    pub verdict: String,
    /// `positive_definite` or `not_positive_definite`.
    pub hessian: String,
    pub message: String,
    pub n_eval: usize,
    pub evaluations: EvaluationCounts,
    pub iterations: usize,
    pub edm: f64,
}

/// One parameter of a fit. Errors are null where the Hessian gives none (not positive
/// definite, or the parameter at a bound).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ParameterOutput {
    /// (θ̂ − a)/σ for a constrained parameter (global observable a, width σ).
    pub pull: Option<f64>,
    /// σ̂/σ for a constrained parameter.
    pub constraint: Option<f64>,
    pub value: f64,
    pub error: Option<f64>,
    /// The MINOS distances below and above the value (the Hessian error without MINOS).
    pub error_low: Option<f64>,
    pub error_high: Option<f64>,
    /// Null for an infinite bound.
    pub bounds: [Option<f64>; 2],
    pub fixed: bool,
    pub poi: bool,
    pub constrained: bool,
    pub at_bound: bool,
}

/// The profile-likelihood interval search of one POI (its ends are in `parameters`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MinosOutput {
    pub parameter: String,
    pub conditional_fits: usize,
    pub n_eval: usize,
    pub evaluations: EvaluationCounts,
    pub notes: Vec<String>,
}

impl FitOutput {
    pub fn new(report: &FitReport, model: &Model) -> FitOutput {
        let r = &report.result;
        let parameters = model
            .parameters
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), parameter_output(report, model, i)))
            .collect();
        // No correlations without a covariance (a Hessian that is not positive definite).
        let has_covariance = r.hessian == fit::HessianStatus::PositiveDefinite;
        FitOutput {
            status: FitStatus {
                converged: r.converged,
                verdict: r.verdict().to_string(),
                hessian: r.hessian.as_str().to_string(),
                message: r.message.clone(),
                n_eval: r.n_eval,
                evaluations: r.evaluations,
                iterations: r.iterations,
                edm: r.edm,
            },
            minos: report
                .intervals
                .iter()
                .map(|interval| MinosOutput {
                    parameter: model.parameters[interval.parameter].name.clone(),
                    conditional_fits: interval.conditional_fits,
                    n_eval: interval.n_eval,
                    evaluations: interval.evaluations,
                    notes: interval.notes.clone(),
                })
                .collect(),
            nll: r.nll,
            twice_nll: 2.0 * r.nll,
            parameters,
            correlation: has_covariance.then(|| correlation(r, model)),
            normalisation: report.normalisation.clone(),
            binned_channels: report.binned_channels.clone(),
        }
    }

    /// The parameters at the minimum that lies on one of their bounds.
    pub fn at_bound(&self) -> Vec<&str> {
        self.parameters
            .iter()
            .filter(|(_, p)| p.at_bound)
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

fn parameter_output(report: &FitReport, model: &Model, i: usize) -> ParameterOutput {
    let (r, p) = (&report.result, &model.parameters[i]);
    let error = r.hesse_error(i);
    let (low, high) = report
        .intervals
        .iter()
        .find(|interval| interval.parameter == i)
        .map_or((error, error), |interval| {
            (
                interval.low.map(|lo| r.theta[i] - lo),
                interval.high.map(|hi| hi - r.theta[i]),
            )
        });
    // Pull (θ̂ − a)/σ and constraint σ̂/σ in units of the constraint's width σ around its
    // global observable a.
    let (pull, constraint) =
        model
            .constraints
            .iter()
            .find(|c| c.parameter == i)
            .map_or((None, None), |c| {
                let (centre, width) = c.centre_and_width();
                (
                    Some((r.theta[i] - centre) / width),
                    error.map(|e| e / width),
                )
            });
    let finite = |x: f64| x.is_finite().then_some(x);
    ParameterOutput {
        pull,
        constraint,
        value: r.theta[i],
        error,
        error_low: low,
        error_high: high,
        bounds: [finite(p.bounds.0), finite(p.bounds.1)],
        fixed: r.fixed[i],
        poi: p.poi,
        constrained: p.constrained,
        at_bound: r.at_bound[i],
    }
}

fn correlation(r: &fit::FitResult, model: &Model) -> IndexMap<String, IndexMap<String, f64>> {
    let n = r.theta.len();
    let names = || model.parameters.iter().map(|p| p.name.clone()).enumerate();
    names()
        .map(|(i, row)| {
            let columns = names()
                .map(|(j, column)| {
                    let denom = r.error(i) * r.error(j);
                    // The diagonal is 1 by definition (cov_ii / σ_i² can round to 1 ± 1 ulp).
                    let c = if i == j {
                        1.0
                    } else if denom > 0.0 {
                        r.covariance[i * n + j] / denom
                    } else {
                        0.0
                    };
                    (column, c)
                })
                .collect();
            (row, columns)
        })
        .collect()
}

/// `nsbi scan --json`: the main curve (stat+syst, or stat-only without free nuisance
/// parameters), and the stat-only curve when asked for.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ScanOutput {
    #[serde(flatten)]
    pub curve: ScanCurve,
    /// Whether the main curve profiles free nuisance parameters.
    pub systematics: bool,
    /// The scanned parameter of a 1-D scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poi: Option<String>,
    /// The scanned parameters of a 2-D scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pois: Option<Vec<String>>,
    pub best_fit: ScanBestFit,
    pub best_nll: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat_only: Option<ScanCurve>,
    pub warnings: Vec<String>,
}

/// The global best fit of the scanned parameters: a number for a 1-D scan, by name for 2-D.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ScanBestFit {
    One(f64),
    ByName(IndexMap<String, f64>),
}

/// One curve of a scan: its points and, in 1-D, its intervals by confidence level (`68.27`,
/// `95.45`); in 2-D, the t thresholds of the regions.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ScanCurve {
    pub points: Vec<ScanRow>,
    /// Whether a scan point lay below the global fit (t is measured from it then).
    pub best_fit_from_scan: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intervals: Option<IndexMap<String, Vec<[f64; 2]>>>,
    /// Whether each end of each interval is the grid's edge (the set may go on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_ends: Option<IndexMap<String, Vec<[bool; 2]>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<IndexMap<String, f64>>,
    /// 2-D: the region's boundary at each confidence level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contours: Option<Vec<ContourOutput>>,
    /// 2-D: the grid points where the model has no likelihood (density ≤ 0), left out of the
    /// regions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded_points: Option<Vec<ExcludedPoint>>,
}

/// A 2-D region's boundary at one confidence level: polylines of (x, y) points by marching
/// squares on the grid of t; a closed polyline repeats its first point, an open one ends on
/// the grid's edge or at an excluded point.
#[derive(Clone, Debug, Serialize, serde::Deserialize, JsonSchema)]
pub struct ContourOutput {
    /// Confidence level in %.
    pub cl: f64,
    /// The region is t ≤ threshold (χ²₂ quantile at `cl`).
    pub threshold: f64,
    pub polylines: Vec<Vec<[f64; 2]>>,
    pub closed: Vec<bool>,
}

/// A grid point without a likelihood: the scanned parameters' values by name and why.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ExcludedPoint {
    #[serde(flatten)]
    pub values: IndexMap<String, f64>,
    pub reason: String,
}

/// A scan point: the scanned parameters' values by name, then t = 2ΔNLL and the NLL.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ScanRow {
    #[serde(flatten)]
    pub values: IndexMap<String, f64>,
    /// null at a 2-D grid point without a likelihood (see `excluded_points`).
    #[schemars(with = "Option<f64>")]
    pub t: f64,
    #[schemars(with = "Option<f64>")]
    pub nll: f64,
    pub converged: bool,
    /// The global best fit, put into the curve.
    pub best_fit: bool,
}

impl ScanOutput {
    /// "stat+syst", or "stat-only" for a model without free nuisance parameters.
    pub fn label(&self) -> &'static str {
        if self.systematics {
            "stat+syst"
        } else {
            "stat-only"
        }
    }
}

/// The version of the output schemas, in their `$id`: raised when a key changes meaning or
/// goes away (new keys keep it).
pub const SCHEMA_VERSION: u32 = 1;

/// Every output with a schema, by its file stem in `schemas/` (`fit`, `scan`, `hypotest`,
/// `limit`, `significance`, `calibration`, `closure`, `posterior`, `coverage_bayes`, `neyman`,
/// `neyman_region`,
/// `coverage`, `toys_plan`: a Neyman toy file's `plan` attribute), each with its versioned `$id`.
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    use crate::diagnostics::{CalibrationOutput, ClosureOutput};
    use crate::infer::construction::{CoverageOutput, NeymanOutput};
    use crate::infer::hypotest::{HypotestResult, SignificanceResult};
    use crate::infer::limit::LimitResult;
    use crate::infer::region::NeymanRegionOutput;
    let mut all = vec![
        ("fit", schemars::schema_for!(FitOutput)),
        ("scan", schemars::schema_for!(ScanOutput)),
        ("hypotest", schemars::schema_for!(HypotestResult)),
        ("limit", schemars::schema_for!(LimitResult)),
        ("significance", schemars::schema_for!(SignificanceResult)),
        ("calibration", schemars::schema_for!(CalibrationOutput)),
        ("closure", schemars::schema_for!(ClosureOutput)),
        (
            "posterior",
            schemars::schema_for!(crate::bayes::run::PosteriorReport),
        ),
        (
            "coverage_bayes",
            schemars::schema_for!(crate::bayes::coverage::CoverageBayesResult),
        ),
        ("neyman", schemars::schema_for!(NeymanOutput)),
        ("neyman_region", schemars::schema_for!(NeymanRegionOutput)),
        ("coverage", schemars::schema_for!(CoverageOutput)),
        (
            "toys_plan",
            schemars::schema_for!(crate::infer::toyfile::ToyFileHeader),
        ),
    ];
    for (name, schema) in &mut all {
        let id = format!("https://nsbi.example/schemas/{name}-v{SCHEMA_VERSION}.json");
        schema.insert("$id".into(), Value::String(id));
    }
    all
}
