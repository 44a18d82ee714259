//! Binned channels inside a general workspace: their HistFactory model built with pyhf's rules
//! ([`BinnedModel::from_spec`]) and then placed on the workspace's one parameter vector, so
//! that a parameter named in an unbinned channel and in a binned modifier is one parameter with
//! one constraint term.
//!
//! The likelihood sees a [`BinnedPart`]: the binned channels with their modifiers indexing the
//! global parameters, and no constraint terms of their own (the model holds every constraint
//! once, [`crate::model::ConstraintTerm`]). It is a channel kind ([`crate::channel::binned`]).

use crate::error::{Error, Result};
use crate::model::Coefficient;
use crate::workspace::schema::{ConstraintKind, ParameterSpec};
use crate::workspace::Workspace;

use super::model::{BinnedChannel, BinnedData, BinnedModel, BinnedParameter, Constraint, Factor};
use super::schema::{BinnedParameterSpec, BinnedWorkspaceSpec, CountsSpec};

/// The binned channels of a workspace on its global parameter vector.
#[derive(Clone, Debug)]
pub struct BinnedPart {
    /// Channels and modifiers indexing the global parameters; `constraints` empty.
    pub model: BinnedModel,
    /// Observed counts per bin of each binned channel.
    pub observed: Vec<Vec<f64>>,
}

/// The binned model of a workspace's binned channels alone (its own parameter indices), or
/// `None` without binned channels. The workspace's `parameters` entries of the binned
/// modifiers' parameters are its measurement settings.
pub fn local_model(ws: &Workspace) -> Result<Option<BinnedModel>> {
    binned_spec(ws)?
        .map(|spec| BinnedModel::from_spec(&spec, &ws.path.display().to_string()))
        .transpose()
}

/// The binned part of a workspace as a binned workspace of its own (what pyhf export
/// writes), with counts given as HDF5 datasets read, or `None` without binned channels.
pub fn binned_spec(ws: &Workspace) -> Result<Option<BinnedWorkspaceSpec>> {
    let mut channels: Vec<_> = ws.spec.binned_channels().cloned().collect();
    if channels.is_empty() {
        return Ok(None);
    }
    for channel in &mut channels {
        if let CountsSpec::Dataset(source) = &channel.data {
            let counts =
                crate::data::events::read_counts(&ws.resolve(&source.file), &source.dataset)
                    .map_err(|e| {
                        Error::Analysis(format!(
                            "{}: channel '{}': observed counts: {e}",
                            ws.path.display(),
                            channel.name
                        ))
                    })?;
            channel.data = CountsSpec::Inline(counts);
        }
    }
    let names = ws.binned_parameter_names();
    let coefficient_names = ws.binned_coefficient_names();
    let parameters = ws
        .spec
        .parameters
        .iter()
        .filter_map(|p| {
            let name = p.name.value.as_str();
            if names.contains(name) {
                Some(setting(p))
            } else if coefficient_names.contains(name) {
                Some(coefficient_setting(p))
            } else {
                None
            }
        })
        .collect();
    Ok(Some(BinnedWorkspaceSpec {
        name: ws.spec.name.clone(),
        interpolation: ws.spec.interpolation,
        parameters,
        channels,
    }))
}

/// A `parameters` entry as pyhf's measurement setting of a binned parameter.
fn setting(p: &ParameterSpec) -> BinnedParameterSpec {
    BinnedParameterSpec {
        name: p.name.value.clone(),
        poi: p.poi,
        inits: p
            .inits
            .as_ref()
            .map(|i| i.value.clone())
            .or_else(|| p.init.as_ref().map(|i| vec![i.value])),
        bounds: p.bounds.as_ref().and_then(|b| b.value.pairs()),
        fixed: p.fixed.then_some(true),
        auxdata: p.auxdata.as_ref().map(|a| a.value.clone()),
        sigmas: p.sigmas.as_ref().map(|s| s.value.clone()),
        factors: p.factors.as_ref().map(|f| f.value.clone()),
    }
}

/// The settings of a parameter that only binned coefficients (and perhaps unbinned channels)
/// name: which is the POI, where fits start, bounds, fixed. Its constraint is nsbi's, held by
/// the general model ([`crate::model::Model::from_workspace`]), so no global observable or
/// width goes to the binned model.
fn coefficient_setting(p: &ParameterSpec) -> BinnedParameterSpec {
    BinnedParameterSpec {
        name: p.name.value.clone(),
        poi: p.poi,
        inits: p.init.as_ref().map(|i| vec![i.value]),
        bounds: p.bounds.as_ref().and_then(|b| b.value.pairs()),
        fixed: p.fixed.then_some(true),
        ..Default::default()
    }
}

/// The kind of constraint a binned parameter has, by the binned model's constraint list.
pub fn constraint_of(model: &BinnedModel, parameter: usize) -> Option<&Constraint> {
    model
        .constraints
        .iter()
        .find(|c| c.parameter() == parameter)
}

/// Checks that a declared `constraint:` agrees with what the binned modifiers need.
pub fn check_declared_constraint(
    ws: &Workspace,
    declared: &ParameterSpec,
    binned: Option<&Constraint>,
) -> Result<()> {
    let Some(kind) = &declared.constraint else {
        return Ok(());
    };
    let agrees = matches!(
        (kind.value, binned),
        (ConstraintKind::None, None)
            | (ConstraintKind::Gaussian, Some(Constraint::Gaussian { .. }))
    );
    if agrees {
        return Ok(());
    }
    let needed = match binned {
        None => "no constraint (a normfactor or shapefactor is free)",
        Some(Constraint::Gaussian { .. }) => {
            "a Gaussian constraint (normsys, histosys, lumi, staterror)"
        }
        Some(Constraint::Poisson { .. }) => "a Poisson constraint (shapesys)",
    };
    Err(Error::Workspace(vec![ws.diagnostic(
        kind,
        format!(
            "parameter '{}' drives binned modifiers that need {needed}; remove its \
             `constraint:` or make it agree",
            declared.name.value
        ),
    )]))
}

impl BinnedPart {
    /// `local` with its parameter indices replaced by `global[i]` over `n_global` parameters.
    pub fn on_global(
        local: &BinnedModel,
        global: &[usize],
        parameters: Vec<BinnedParameter>,
    ) -> BinnedPart {
        let channels = local
            .channels
            .iter()
            .map(|c| remap_channel(c, global))
            .collect();
        BinnedPart {
            model: BinnedModel {
                parameters,
                poi: None,
                channels,
                constraints: Vec::new(),
                interpolation: local.interpolation,
                observed: BinnedData {
                    counts: local.observed.counts.clone(),
                    auxdata: Vec::new(),
                },
            },
            observed: local.observed.counts.clone(),
        }
    }

    /// Expected counts per bin of each channel at θ (the Asimov counts).
    pub fn expected(&self, theta: &[f64]) -> Vec<Vec<f64>> {
        self.model.expected_counts(theta)
    }
}

fn remap_channel(channel: &BinnedChannel, global: &[usize]) -> BinnedChannel {
    let mut out = channel.clone();
    for sample in &mut out.samples {
        for factor in &mut sample.factors {
            match factor {
                Factor::Linear { parameter } | Factor::Interpolated { parameter, .. } => {
                    *parameter = global[*parameter]
                }
                Factor::PerBin { parameters } => {
                    for p in parameters {
                        *p = global[*p];
                    }
                }
            }
        }
        for shift in &mut sample.shifts {
            shift.parameter = global[shift.parameter];
        }
        if let Some(c) = &mut sample.coefficient {
            *c = Coefficient::new(&c.text, c.expr.map_parameters(global));
        }
    }
    out
}
