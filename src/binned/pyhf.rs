//! pyhf JSON workspaces (schema version 1.0.0) in and out of the binned YAML form.
//!
//! Import reads the channels, the observations and one measurement (its POI and parameter
//! settings) into a [`BinnedWorkspaceSpec`]; anything this engine does not know is an error
//! naming the JSON path (`channels[2].samples[0].modifiers[3]`), never silently dropped.
//! Export writes the spec back in the same form, which `pyhf.Workspace` loads. pyhf's JSON
//! has no place for interpolation codes (they are `pyhf.Model` options), so export refuses a
//! workspace with codes other than pyhf's defaults rather than change its likelihood.

use serde_json::{json, Map, Value};

use crate::error::Result;
use crate::workspace::expr::Expr;

use super::model::invalid;
use super::schema::{
    BinnedChannelSpec, BinnedKind, BinnedParameterSpec, BinnedSampleSpec, BinnedWorkspaceSpec,
    CountsSpec, InterpolationSettings, ModifierSpec,
};

/// The spec with each sample's coefficient written as pyhf modifiers: a plain product of
/// parameters `a * b * …` is one normfactor per parameter. pyhf has no modifier for any
/// other f_c(θ) (`mu - sqrt(mu)`, a constant factor), so such a coefficient is refused,
/// naming the channel and the sample; so is a product with a parameter in `constrained`
/// (one nsbi constrains, which a normfactor would leave free).
pub fn coefficients_as_normfactors(
    spec: &BinnedWorkspaceSpec,
    constrained: &std::collections::HashSet<String>,
    source: &str,
) -> Result<BinnedWorkspaceSpec> {
    let mut names: Vec<&str> = spec.parameters.iter().map(|p| p.name.as_str()).collect();
    let modifier_names = spec
        .channels
        .iter()
        .flat_map(|c| &c.samples)
        .flat_map(|s| &s.modifiers)
        .map(ModifierSpec::name);
    names.extend(modifier_names);
    let mut out = spec.clone();
    for (c, channel) in out.channels.iter_mut().enumerate() {
        for (s, sample) in channel.samples.iter_mut().enumerate() {
            let Some(text) = sample.coefficient.take() else {
                continue;
            };
            let path = format!("channels[{c}].samples[{s}].coefficient");
            let refuse = |why: String| {
                invalid(
                    source,
                    &path,
                    format!(
                        "channel '{}', sample '{}': coefficient '{text}' {why}; pyhf has no \
                         modifier for a coefficient f_c(θ), only a product of parameters \
                         (`mu`, `mu * k`) can be exported, as normfactors",
                        channel.name, sample.name
                    ),
                )
            };
            let expr = Expr::parse(&text, &names).map_err(|e| refuse(format!("({e})")))?;
            let Some(factors) = expr.product_of_parameters() else {
                return Err(refuse("is not a product of parameters".to_string()));
            };
            for i in factors {
                let name = names[i];
                if constrained.contains(name) {
                    return Err(refuse(format!(
                        "names '{name}', which carries a constraint that a normfactor would drop"
                    )));
                }
                let normfactor = ModifierSpec::Normfactor {
                    name: name.to_string(),
                };
                if sample.modifiers.contains(&normfactor) {
                    return Err(refuse(format!(
                        "repeats the normfactor '{name}' the sample already has"
                    )));
                }
                sample.modifiers.push(normfactor);
            }
        }
    }
    Ok(out)
}

/// Reads a pyhf workspace; `measurement` picks one by name (default: the first, as pyhf).
/// `source` names the file in errors.
pub fn import(
    json: &Value,
    measurement: Option<&str>,
    source: &str,
) -> Result<BinnedWorkspaceSpec> {
    let reader = Reader { source };
    let top = reader.object(
        json,
        "",
        &["channels", "observations", "measurements", "version"],
    )?;
    if let Some(version) = top.get("version") {
        if version.as_str() != Some("1.0.0") {
            return Err(invalid(
                source,
                "version",
                format!("pyhf schema version {version} is not supported (expected \"1.0.0\")"),
            ));
        }
    }
    let observations = reader.observations(top.get("observations"))?;
    let channels_json = reader.array(top.get("channels"), "channels")?;
    let mut channels = Vec::new();
    for (c, channel) in channels_json.iter().enumerate() {
        channels.push(reader.channel(channel, c, &observations)?);
    }
    if let Some((name, _)) = observations
        .iter()
        .find(|(name, _)| !channels.iter().any(|c| &c.name == name))
    {
        return Err(invalid(
            source,
            "observations",
            format!("observation '{name}' has no channel"),
        ));
    }
    let (name, parameters) = reader.measurement(top.get("measurements"), measurement)?;
    Ok(BinnedWorkspaceSpec {
        name: Some(name),
        interpolation: InterpolationSettings::default(),
        parameters,
        channels,
    })
}

/// The pyhf JSON of a binned workspace. pyhf keeps interpolation codes outside the JSON, so a
/// workspace with codes other than pyhf's defaults is refused rather than exported into one
/// that pyhf would read differently; a workspace without a POI is refused (pyhf needs one).
pub fn export(spec: &BinnedWorkspaceSpec, source: &str) -> Result<Value> {
    if let Some((c, s)) = spec.channels.iter().enumerate().find_map(|(c, channel)| {
        let s = channel
            .samples
            .iter()
            .position(|s| s.coefficient.is_some())?;
        Some((c, s))
    }) {
        return Err(invalid(
            source,
            &format!("channels[{c}].samples[{s}].coefficient"),
            "pyhf has no modifier for a coefficient f_c(θ); write it as normfactors first \
             (`coefficients_as_normfactors`)",
        ));
    }
    if spec.interpolation != InterpolationSettings::default() {
        return Err(invalid(source, "interpolation", format!(
            "pyhf JSON cannot carry interpolation codes (normsys {}, histosys {}): pyhf would read the workspace with its defaults code4 / code4p; pass `modifier_settings` to pyhf.Model yourself or use the default codes",
            spec.interpolation.normsys.pyhf_name(), spec.interpolation.histosys.pyhf_name())));
    }
    let Some(poi) = spec.parameters.iter().find(|p| p.poi) else {
        return Err(invalid(
            source,
            "parameters",
            "pyhf needs a POI among the binned channels' parameters: mark one with `poi: true`, \
             or name one with `nsbi export pyhf --poi NAME`",
        ));
    };
    let channels: Vec<Value> = spec
        .channels
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "samples": c.samples.iter().map(export_sample).collect::<Vec<_>>(),
            })
        })
        .collect();
    let observations: Vec<Value> = spec
        .channels
        .iter()
        .map(|c| json!({"name": c.name, "data": c.data}))
        .collect();
    let parameters: Vec<Value> = spec
        .parameters
        .iter()
        .filter_map(export_parameter)
        .collect();
    Ok(json!({
        "channels": channels,
        "observations": observations,
        "measurements": [{
            "name": spec.name.clone().unwrap_or_else(|| "measurement".to_string()),
            "config": {"poi": poi.name, "parameters": parameters},
        }],
        "version": "1.0.0",
    }))
}

fn export_sample(sample: &BinnedSampleSpec) -> Value {
    let modifiers: Vec<Value> = sample
        .modifiers
        .iter()
        .map(|m| {
            let data = match m {
                ModifierSpec::Normfactor { .. }
                | ModifierSpec::Shapefactor { .. }
                | ModifierSpec::Lumi { .. } => Value::Null,
                ModifierSpec::Normsys { hi, lo, .. } => json!({"hi": hi, "lo": lo}),
                ModifierSpec::Histosys { hi, lo, .. } => json!({"hi_data": hi, "lo_data": lo}),
                ModifierSpec::Shapesys { uncertainties, .. }
                | ModifierSpec::Staterror { uncertainties, .. } => json!(uncertainties),
            };
            json!({"name": m.name(), "type": m.kind(), "data": data})
        })
        .collect();
    json!({"name": sample.name, "data": sample.yields, "modifiers": modifiers})
}

/// A parameter's settings in pyhf's form; `None` when it has none (a bare POI).
fn export_parameter(p: &BinnedParameterSpec) -> Option<Value> {
    let mut entry = Map::new();
    entry.insert("name".into(), json!(p.name));
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            entry.insert(key.into(), v);
        }
    };
    put("inits", p.inits.as_ref().map(|v| json!(v)));
    put("bounds", p.bounds.as_ref().map(|v| json!(v)));
    put("fixed", p.fixed.map(|v| json!(v)));
    put("auxdata", p.auxdata.as_ref().map(|v| json!(v)));
    put("sigmas", p.sigmas.as_ref().map(|v| json!(v)));
    put("factors", p.factors.as_ref().map(|v| json!(v)));
    (entry.len() > 1).then_some(Value::Object(entry))
}

struct Reader<'a> {
    source: &'a str,
}

impl Reader<'_> {
    /// `value` as an object whose keys are all in `known`.
    fn object<'v>(
        &self,
        value: &'v Value,
        path: &str,
        known: &[&str],
    ) -> Result<&'v Map<String, Value>> {
        let Some(object) = value.as_object() else {
            return Err(invalid(
                self.source,
                path,
                format!("expected an object, got {}", kind_of(value)),
            ));
        };
        if let Some(key) = object.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(invalid(
                self.source,
                &join(path, key),
                format!(
                    "unsupported pyhf key '{key}' (known here: {})",
                    known.join(", ")
                ),
            ));
        }
        Ok(object)
    }

    fn array<'v>(&self, value: Option<&'v Value>, path: &str) -> Result<&'v Vec<Value>> {
        match value {
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(invalid(
                self.source,
                path,
                format!("expected a list, got {}", kind_of(other)),
            )),
            None => Err(invalid(self.source, path, "missing")),
        }
    }

    fn string(&self, value: Option<&Value>, path: &str) -> Result<String> {
        match value {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(invalid(
                self.source,
                path,
                format!("expected a string, got {}", kind_of(other)),
            )),
            None => Err(invalid(self.source, path, "missing")),
        }
    }

    fn number(&self, value: Option<&Value>, path: &str) -> Result<f64> {
        match value {
            Some(Value::Number(x)) => Ok(x.as_f64().unwrap_or(f64::NAN)),
            Some(other) => Err(invalid(
                self.source,
                path,
                format!("expected a number, got {}", kind_of(other)),
            )),
            None => Err(invalid(self.source, path, "missing")),
        }
    }

    fn numbers(&self, value: Option<&Value>, path: &str) -> Result<Vec<f64>> {
        let items = self.array(value, path)?;
        items
            .iter()
            .enumerate()
            .map(|(i, x)| self.number(Some(x), &format!("{path}[{i}]")))
            .collect()
    }

    /// A list of one number per bin of the channel.
    fn bins(&self, value: Option<&Value>, path: &str, bins: usize) -> Result<Vec<f64>> {
        let values = self.numbers(value, path)?;
        if values.len() != bins {
            return Err(invalid(
                self.source,
                path,
                format!(
                    "expected {bins} values (one per bin of the channel's observation), got {}",
                    values.len()
                ),
            ));
        }
        Ok(values)
    }

    fn null(&self, value: Option<&Value>, path: &str, kind: &str) -> Result<()> {
        match value {
            None | Some(Value::Null) => Ok(()),
            Some(other) => Err(invalid(
                self.source,
                path,
                format!("a {kind} modifier has data null, got {}", kind_of(other)),
            )),
        }
    }

    fn observations(&self, value: Option<&Value>) -> Result<Vec<(String, Vec<f64>)>> {
        let items = self.array(value, "observations")?;
        let mut observations: Vec<(String, Vec<f64>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("observations[{i}]");
            let object = self.object(item, &path, &["name", "data"])?;
            let name = self.string(object.get("name"), &join(&path, "name"))?;
            if observations.iter().any(|(n, _)| *n == name) {
                return Err(invalid(
                    self.source,
                    &path,
                    format!("observation '{name}' repeats"),
                ));
            }
            let data = self.numbers(object.get("data"), &join(&path, "data"))?;
            observations.push((name, data));
        }
        Ok(observations)
    }

    fn channel(
        &self,
        value: &Value,
        c: usize,
        observations: &[(String, Vec<f64>)],
    ) -> Result<BinnedChannelSpec> {
        let path = format!("channels[{c}]");
        let object = self.object(value, &path, &["name", "samples"])?;
        let name = self.string(object.get("name"), &join(&path, "name"))?;
        let Some((_, data)) = observations.iter().find(|(n, _)| *n == name) else {
            return Err(invalid(
                self.source,
                &path,
                format!("channel '{name}' has no entry in `observations`"),
            ));
        };
        let samples_path = join(&path, "samples");
        let samples = self
            .array(object.get("samples"), &samples_path)?
            .iter()
            .enumerate()
            .map(|(s, sample)| self.sample(sample, &format!("{samples_path}[{s}]"), data.len()))
            .collect::<Result<Vec<_>>>()?;
        Ok(BinnedChannelSpec {
            name,
            kind: BinnedKind::Binned,
            observable: None,
            data: CountsSpec::Inline(data.clone()),
            samples,
        })
    }

    /// A sample of a channel with `bins` bins (the length of its observation).
    fn sample(&self, value: &Value, path: &str, bins: usize) -> Result<BinnedSampleSpec> {
        let object = self.object(value, path, &["name", "data", "modifiers"])?;
        let name = self.string(object.get("name"), &join(path, "name"))?;
        let yields = self.bins(object.get("data"), &join(path, "data"), bins)?;
        let modifiers_path = join(path, "modifiers");
        let modifiers = self
            .array(object.get("modifiers"), &modifiers_path)?
            .iter()
            .enumerate()
            .map(|(m, modifier)| self.modifier(modifier, &format!("{modifiers_path}[{m}]"), bins))
            .collect::<Result<Vec<_>>>()?;
        Ok(BinnedSampleSpec {
            name,
            coefficient: None,
            yields,
            modifiers,
        })
    }

    fn modifier(&self, value: &Value, path: &str, bins: usize) -> Result<ModifierSpec> {
        let object = self.object(value, path, &["name", "type", "data"])?;
        let name = self.string(object.get("name"), &join(path, "name"))?;
        let kind = self.string(object.get("type"), &join(path, "type"))?;
        let data = object.get("data");
        let data_path = join(path, "data");
        Ok(match kind.as_str() {
            "normfactor" => {
                self.null(data, &data_path, &kind)?;
                ModifierSpec::Normfactor { name }
            }
            "shapefactor" => {
                self.null(data, &data_path, &kind)?;
                ModifierSpec::Shapefactor { name }
            }
            "lumi" => {
                self.null(data, &data_path, &kind)?;
                ModifierSpec::Lumi { name }
            }
            "normsys" => {
                let d = self.object(data.unwrap_or(&Value::Null), &data_path, &["hi", "lo"])?;
                ModifierSpec::Normsys {
                    name,
                    hi: self.number(d.get("hi"), &join(&data_path, "hi"))?,
                    lo: self.number(d.get("lo"), &join(&data_path, "lo"))?,
                }
            }
            "histosys" => {
                let d = self.object(data.unwrap_or(&Value::Null), &data_path, &["hi_data", "lo_data"])?;
                ModifierSpec::Histosys {
                    name,
                    hi: self.bins(d.get("hi_data"), &join(&data_path, "hi_data"), bins)?,
                    lo: self.bins(d.get("lo_data"), &join(&data_path, "lo_data"), bins)?,
                }
            }
            "shapesys" => ModifierSpec::Shapesys { name, uncertainties: self.bins(data, &data_path, bins)? },
            "staterror" => ModifierSpec::Staterror { name, uncertainties: self.bins(data, &data_path, bins)? },
            other => {
                return Err(invalid(self.source, &join(path, "type"), format!(
                    "unsupported modifier type '{other}' (supported: normfactor, normsys, histosys, shapesys, staterror, shapefactor, lumi)")))
            }
        })
    }

    /// The chosen measurement's name and its parameter settings, the POI marked.
    fn measurement(
        &self,
        value: Option<&Value>,
        wanted: Option<&str>,
    ) -> Result<(String, Vec<BinnedParameterSpec>)> {
        let items = self.array(value, "measurements")?;
        let mut names = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("measurements[{i}]");
            let object = self.object(item, &path, &["name", "config"])?;
            let name = self.string(object.get("name"), &join(&path, "name"))?;
            names.push(name.clone());
            if wanted.is_some_and(|w| w != name) || (wanted.is_none() && i > 0) {
                continue;
            }
            let config_path = join(&path, "config");
            let config = self.object(
                object.get("config").unwrap_or(&Value::Null),
                &config_path,
                &["poi", "parameters"],
            )?;
            let poi = self.string(config.get("poi"), &join(&config_path, "poi"))?;
            let parameters_path = join(&config_path, "parameters");
            let mut parameters = match config.get("parameters") {
                None => Vec::new(),
                some => self
                    .array(some, &parameters_path)?
                    .iter()
                    .enumerate()
                    .map(|(p, parameter)| {
                        self.parameter(parameter, &format!("{parameters_path}[{p}]"))
                    })
                    .collect::<Result<Vec<_>>>()?,
            };
            match parameters.iter_mut().find(|p| p.name == poi) {
                Some(p) => p.poi = true,
                None => parameters.insert(
                    0,
                    BinnedParameterSpec {
                        name: poi,
                        poi: true,
                        ..Default::default()
                    },
                ),
            }
            return Ok((name, parameters));
        }
        let message = match wanted {
            Some(w) => format!("no measurement named '{w}' (found: {})", names.join(", ")),
            None => "the workspace has no measurement".to_string(),
        };
        Err(invalid(self.source, "measurements", message))
    }

    fn parameter(&self, value: &Value, path: &str) -> Result<BinnedParameterSpec> {
        let object = self.object(
            value,
            path,
            &[
                "name", "inits", "bounds", "fixed", "auxdata", "sigmas", "factors",
            ],
        )?;
        let list = |key: &str| -> Result<Option<Vec<f64>>> {
            object
                .get(key)
                .map(|v| self.numbers(Some(v), &join(path, key)))
                .transpose()
        };
        let bounds = match object.get("bounds") {
            None => None,
            Some(v) => {
                let bounds_path = join(path, "bounds");
                let pairs = self.array(Some(v), &bounds_path)?;
                let mut out = Vec::new();
                for (i, pair) in pairs.iter().enumerate() {
                    let pair_path = format!("{bounds_path}[{i}]");
                    match self.numbers(Some(pair), &pair_path)?.as_slice() {
                        [low, high] => out.push([*low, *high]),
                        _ => return Err(invalid(self.source, &pair_path, "expected [low, high]")),
                    }
                }
                Some(out)
            }
        };
        let fixed = match object.get("fixed") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(invalid(
                    self.source,
                    &join(path, "fixed"),
                    format!("expected true or false, got {}", kind_of(other)),
                ))
            }
        };
        Ok(BinnedParameterSpec {
            name: self.string(object.get("name"), &join(path, "name"))?,
            poi: false,
            inits: list("inits")?,
            bounds,
            fixed,
            auxdata: list("auxdata")?,
            sigmas: list("sigmas")?,
            factors: list("factors")?,
        })
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
