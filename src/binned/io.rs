//! Reading and writing binned workspaces: the YAML form, or a pyhf JSON file directly.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::report::write_atomic;

use super::model::BinnedModel;
use super::schema::BinnedWorkspaceSpec;
use super::{pyhf, yaml};

/// A binned workspace from `path`: pyhf JSON (a `.json` file; `measurement` picks one) or the
/// binned channels of a YAML workspace (with the settings of their parameters). Checked by
/// building its model, so what is returned is usable.
pub fn read_binned_workspace(
    path: &Path,
    measurement: Option<&str>,
) -> Result<(BinnedWorkspaceSpec, BinnedModel)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let source = path.display().to_string();
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let spec = if is_json {
        let json: Value = serde_json::from_str(&text).map_err(|e| Error::YamlSyntax {
            file: path.to_path_buf(),
            message: format!("invalid JSON: {e}"),
        })?;
        pyhf::import(&json, measurement, &source)?
    } else {
        if measurement.is_some() {
            return Err(Error::Analysis(format!(
                "{source}: --measurement applies to pyhf JSON input; a YAML workspace has its settings under `parameters`"
            )));
        }
        let ws = crate::workspace::Workspace::load(path)?;
        super::combine::binned_spec(&ws)?.ok_or_else(|| {
            Error::Analysis(format!("{source}: the workspace has no binned channels"))
        })?
    };
    let model = BinnedModel::from_spec(&spec, &source)?;
    Ok((spec, model))
}

/// The YAML text of the pyhf workspace `text` (read from `path`): what a command given a pyhf
/// JSON file works on.
pub fn pyhf_as_yaml(path: &Path, text: &str) -> Result<String> {
    let json: Value = serde_json::from_str(text).map_err(|e| Error::YamlSyntax {
        file: path.to_path_buf(),
        message: format!("invalid JSON: {e}"),
    })?;
    let spec = pyhf::import(&json, None, &path.display().to_string())?;
    Ok(yaml::to_yaml(&spec))
}

/// `nsbi import pyhf`: the pyhf workspace at `input` as YAML at `out`.
pub fn import_pyhf(input: &Path, measurement: Option<&str>, out: &Path) -> Result<BinnedModel> {
    let (spec, model) = read_binned_workspace(input, measurement)?;
    write_atomic(out, yaml::to_yaml(&spec).as_bytes())?;
    Ok(model)
}

/// The parameters binned coefficients name that nsbi constrains and no binned modifier drives
/// (a Gaussian nuisance of the workspace's `parameters`): none for a pyhf JSON input.
fn constrained_coefficient_parameters(input: &Path) -> Result<HashSet<String>> {
    let is_json = input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        return Ok(HashSet::new());
    }
    let ws = crate::workspace::Workspace::load(input)?;
    let modifiers = ws.binned_parameter_names();
    let coefficients = ws.binned_coefficient_names();
    Ok(ws
        .spec
        .parameters
        .iter()
        .filter(|p| {
            let name = p.name.value.as_str();
            coefficients.contains(name)
                && !modifiers.contains(name)
                && crate::workspace::is_constrained(p)
        })
        .map(|p| p.name.value.clone())
        .collect())
}

/// `nsbi export pyhf`: the binned channels of the workspace at `input` as pyhf JSON at `out`,
/// with `poi` (a parameter of theirs) as the measurement's POI where given — a workspace whose
/// POI acts on its unbinned channels only has none among its binned channels' parameters.
pub fn export_pyhf(input: &Path, out: &Path, poi: Option<&str>) -> Result<BinnedModel> {
    let (mut spec, model) = read_binned_workspace(input, None)?;
    if let Some(name) = poi {
        if model.parameter_index(name).is_none() {
            return Err(Error::Analysis(format!(
                "--poi {name}: not a parameter of the binned channels of {} (they have: {})",
                input.display(),
                model
                    .parameters
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for p in &mut spec.parameters {
            p.poi = p.name == name;
        }
        if !spec.parameters.iter().any(|p| p.name == name) {
            spec.parameters.push(super::schema::BinnedParameterSpec {
                name: name.to_string(),
                poi: true,
                ..Default::default()
            });
        }
    }
    let constrained = constrained_coefficient_parameters(input)?;
    let spec =
        pyhf::coefficients_as_normfactors(&spec, &constrained, &input.display().to_string())?;
    let json = pyhf::export(&spec, &input.display().to_string())?;
    let text = serde_json::to_string_pretty(&json).expect("JSON values always serialise");
    write_atomic(out, text.as_bytes())?;
    Ok(model)
}
