//! `nsbi validate`: everything that can be checked without running a network — the YAML is
//! consistent, event files, groups and columns exist and hold finite numbers, model files
//! exist and take as many features as the channel lists, standardisation files match. Every
//! problem is reported (not just the first), each at the YAML line it comes from.

use crate::data::Events;
use crate::error::{Diagnostic, Error, Result};
use crate::fit::inner_bounds;
use crate::model::{Model, Parameter};
use crate::ratio::{self, ensemble, Standardisation};
use crate::workspace::schema::UnbinnedChannelSpec;
use crate::workspace::{EventRole, Workspace};

/// What a successful validation looked at.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ValidationSummary {
    pub channels: usize,
    pub event_files: usize,
    pub events: usize,
    pub ensembles: usize,
    pub models: usize,
    /// What is allowed but likely a mistake: coefficients undefined somewhere inside the
    /// bounds, constrained nuisances that nothing uses.
    pub warnings: Vec<Diagnostic>,
}

/// Validates the workspace at `path`. Returns what was checked, or every problem found.
pub fn validate(path: &std::path::Path) -> Result<ValidationSummary> {
    let ws = Workspace::load(path)?;
    let mut problems = Vec::new();
    let mut summary = ValidationSummary {
        channels: ws.spec.channels.len(),
        warnings: ws.unused_constrained_parameters(),
        ..Default::default()
    };
    summary.warnings.extend(coefficient_domain_warnings(&ws)?);
    for channel in ws.spec.unbinned_channels() {
        for (role, source) in ws.event_sources(channel) {
            match ratio::read_events(&ws, channel, source) {
                Ok(events) => {
                    summary.event_files += 1;
                    summary.events += events.len();
                    if events.is_empty() {
                        problems.push(
                            ws.diagnostic(&source.file, format!("{role} file holds no events")),
                        );
                    }
                    if let Some(problem) = non_positive_default_yield(channel, &role, &events) {
                        problems.push(ws.diagnostic(&source.file, problem));
                    }
                }
                Err(e) => problems.push(ws.diagnostic(&source.file, format!("{role}: {e}"))),
            }
        }
    }
    let n_features_of = |name: &str| {
        ws.spec
            .unbinned_channels()
            .find(|c| c.name.value == name)
            .map_or(0, |c| c.features.value.len())
    };
    for eref in ws.ensembles() {
        summary.ensembles += 1;
        let features = ratio::feature_names(eref.channel);
        let label = eref.label();
        if let Some(file) = &eref.spec.standardisation {
            if let Err(e) = Standardisation::read(&ws.resolve(&file.value), &features) {
                problems.push(ws.diagnostic(file, format!("ensemble {label}: {e}")));
            }
        }
        let paths = match ws.model_paths(eref.spec) {
            Ok(paths) => paths,
            Err(d) => {
                problems.push(d);
                continue;
            }
        };
        let spec = ratio::output_spec(eref.spec);
        let n_features = n_features_of(&eref.channel.name.value);
        for model in paths {
            summary.models += 1;
            if let Err(e) = ensemble::inspect_model(&model, n_features, &spec) {
                let location = match (&e, &eref.spec.output) {
                    (Error::Model { message, .. }, Some(output)) if message.contains("output") => {
                        ws.location(output)
                    }
                    _ => ws.location(&eref.spec.models),
                };
                problems.push(Diagnostic {
                    location,
                    message: format!("ensemble {label}: {e}"),
                });
            }
        }
    }
    match problems.is_empty() {
        true => Ok(summary),
        false => Err(Error::Workspace(problems)),
    }
}

/// A process without `yield:` whose MC weights do not sum to a positive number: its default
/// yield Σw would be a negative expected count (the fit refuses it too).
fn non_positive_default_yield(
    channel: &UnbinnedChannelSpec,
    role: &EventRole,
    events: &Events,
) -> Option<String> {
    let EventRole::Process(name) = role else {
        return None;
    };
    let process = channel.processes.iter().find(|p| p.name.value == *name)?;
    let sum = events.total_weight();
    (process.nominal_yield.is_none() && !events.is_empty() && sum <= 0.0).then(|| {
        format!(
            "{role}: the weights of process '{name}' sum to {sum}: without `yield:` the yield \
             is this sum and must be positive; fix the weights or give a positive `yield:`"
        )
    })
}

/// Warnings for process coefficients that are not finite (with their first derivatives)
/// somewhere inside the declared bounds, like `sqrt(mu)` with μ ∈ [−1, 5]: a fit that reaches
/// such a point rejects it, and one that cannot avoid them stops with an error. Each
/// coefficient is evaluated on a grid of the parameters it uses (the other parameters at their
/// `init`), as close to the bounds as fits go.
fn coefficient_domain_warnings(ws: &Workspace) -> Result<Vec<Diagnostic>> {
    let model = Model::from_workspace(ws)?;
    let mut warnings = Vec::new();
    for (channel, spec) in model.channels.iter().zip(ws.spec.unbinned_channels()) {
        for (process, process_spec) in channel.processes.iter().zip(&spec.processes) {
            let coefficient = &process.coefficient;
            let used = coefficient.expr.parameters();
            let per_parameter = match used.len() {
                0..=3 => 7,
                4..=6 => 3,
                _ => 2,
            };
            let probes: Vec<Vec<f64>> = used
                .iter()
                .map(|&j| probe_values(&model.parameters[j], per_parameter))
                .collect();
            let mut theta = model.init();
            let undefined = grid_points(&probes).find(|point| {
                for (&j, &v) in used.iter().zip(point) {
                    theta[j] = v;
                }
                let defined = |v: f64| v.is_finite();
                !(defined(coefficient.expr.eval(&theta))
                    && coefficient
                        .gradient
                        .iter()
                        .all(|(_, d)| defined(d.eval(&theta))))
            });
            if let Some(point) = undefined {
                let at: Vec<String> = used
                    .iter()
                    .zip(&point)
                    .map(|(&j, v)| format!("{} = {v}", model.parameters[j].name))
                    .collect();
                warnings.push(ws.diagnostic(
                    &process_spec.coefficient,
                    format!(
                        "coefficient '{}' of process {} in channel {} is not finite (or has \
                         an infinite derivative) at {}, inside the declared bounds: fits \
                         reject such points, and stop with an error if they cannot avoid \
                         them; narrow the bounds to where it is defined",
                        coefficient.text,
                        process.name,
                        channel.name,
                        at.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(warnings)
}

/// Values of one parameter to evaluate coefficients at: `n` evenly spaced over its bounds
/// (pulled in by the fit's margin), or, towards an infinite bound, steps out to 10³.
fn probe_values(parameter: &Parameter, n: usize) -> Vec<f64> {
    let (lo, hi) = inner_bounds(parameter.bounds);
    let steps = [0.0, 0.5, 1.0, 10.0, 1e3];
    match (lo.is_finite(), hi.is_finite()) {
        (true, true) => (0..n)
            .map(|k| lo + (hi - lo) * k as f64 / (n - 1) as f64)
            .collect(),
        (true, false) => steps.iter().map(|d| lo + d).collect(),
        (false, true) => steps.iter().map(|d| hi - d).collect(),
        (false, false) => steps.iter().flat_map(|d| [-d, *d]).collect(),
    }
}

/// Every combination of one value per axis.
fn grid_points(axes: &[Vec<f64>]) -> impl Iterator<Item = Vec<f64>> + '_ {
    let total: usize = axes.iter().map(Vec::len).product();
    (0..total).map(move |mut k| {
        axes.iter()
            .map(|axis| {
                let v = axis[k % axis.len()];
                k /= axis.len();
                v
            })
            .collect()
    })
}
