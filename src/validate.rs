//! `nsbi validate`: everything that can be checked without running a network — the YAML is
//! consistent, event files, groups and columns exist and hold finite numbers, model files
//! exist and take as many features as the channel lists, standardisation files match. Every
//! problem is reported (not just the first), each at the YAML line it comes from.

use crate::data::Events;
use crate::error::{Diagnostic, Error, Result};
use crate::ratio::{self, ensemble, Standardisation};
use crate::workspace::schema::ChannelSpec;
use crate::workspace::{EventRole, Workspace};

/// What a successful validation looked at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ValidationSummary {
    pub channels: usize,
    pub event_files: usize,
    pub events: usize,
    pub ensembles: usize,
    pub models: usize,
}

/// Validates the workspace at `path`. Returns what was checked, or every problem found.
pub fn validate(path: &std::path::Path) -> Result<ValidationSummary> {
    let ws = Workspace::load(path)?;
    let mut problems = Vec::new();
    let mut summary = ValidationSummary {
        channels: ws.spec.channels.len(),
        ..Default::default()
    };
    for channel in &ws.spec.channels {
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
            .channels
            .iter()
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
    channel: &ChannelSpec,
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
