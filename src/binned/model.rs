//! The typed HistFactory model: channels of samples whose per-bin yields are scaled by factors
//! (normfactor, normsys, lumi, shapesys, staterror, shapefactor) and shifted by histosys,
//! every modifier resolved to indices into one flat parameter vector, and one constraint term
//! per constrained parameter however many modifiers share it.
//!
//! Built from a [`BinnedWorkspaceSpec`] with pyhf's rules (`pyhf.Model`): the default inits,
//! bounds and constraints of each modifier type, a parameter shared by several modifiers only
//! where pyhf allows it (their defaults must agree), the measurement's settings on top, and
//! staterror's σ combined over the samples of a channel.

use std::collections::BTreeMap;

use crate::error::{Diagnostic, Error, Result};
use crate::model::interpolation::Variation;
use crate::model::Coefficient;
use crate::workspace::expr::Expr;

use super::schema::{
    BinnedParameterSpec, BinnedWorkspaceSpec, CountsSpec, InterpolationSettings, ModifierSpec,
};

/// One scalar parameter. Per-bin modifiers (staterror, shapesys, shapefactor) give one
/// parameter per bin, named `name[i]` as in pyhf's `config.par_names`.
#[derive(Clone, Debug, PartialEq)]
pub struct BinnedParameter {
    pub name: String,
    pub init: f64,
    pub bounds: (f64, f64),
    pub fixed: bool,
}

/// A constraint term on one parameter; its global observable lives in [`BinnedData::auxdata`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Constraint {
    /// Gauss(aux | θ, σ): normsys, histosys, lumi, staterror.
    Gaussian { parameter: usize, sigma: f64 },
    /// Pois(aux | γ τ): shapesys, with τ = (ν/σ)².
    Poisson { parameter: usize, factor: f64 },
}

impl Constraint {
    pub fn parameter(&self) -> usize {
        match *self {
            Constraint::Gaussian { parameter, .. } | Constraint::Poisson { parameter, .. } => {
                parameter
            }
        }
    }
}

/// A multiplicative modifier of a sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Factor {
    /// The parameter itself (normfactor, lumi).
    Linear { parameter: usize },
    /// Interpolated between the ±1σ factors (normsys).
    Interpolated {
        parameter: usize,
        variation: Variation,
    },
    /// One parameter per bin (shapesys, staterror, shapefactor).
    PerBin { parameters: Vec<usize> },
}

/// An additive histosys shift: Δ⁺ = hi − nominal and Δ⁻ = nominal − lo per bin.
#[derive(Clone, Debug, PartialEq)]
pub struct Shift {
    pub parameter: usize,
    pub delta_up: Vec<f64>,
    pub delta_down: Vec<f64>,
}

/// A sample's expected yield in bin b: f_c(θ) · Π factors · (nominal_b + Σ shifts Δ_b(α)),
/// with f_c = 1 where the sample has no coefficient.
#[derive(Clone, Debug, PartialEq)]
pub struct BinnedSample {
    pub name: String,
    pub nominal: Vec<f64>,
    pub factors: Vec<Factor>,
    pub shifts: Vec<Shift>,
    pub coefficient: Option<Coefficient>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BinnedChannel {
    pub name: String,
    pub samples: Vec<BinnedSample>,
    pub n_bins: usize,
}

/// What a likelihood is evaluated on: counts per bin of each channel and the global
/// observables of the constraints (in the order of [`BinnedModel::constraints`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BinnedData {
    pub counts: Vec<Vec<f64>>,
    pub auxdata: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BinnedModel {
    pub parameters: Vec<BinnedParameter>,
    pub poi: Option<usize>,
    pub channels: Vec<BinnedChannel>,
    pub constraints: Vec<Constraint>,
    pub interpolation: InterpolationSettings,
    /// The observed counts and the nominal global observables.
    pub observed: BinnedData,
}

impl BinnedModel {
    /// Index of the parameter called `name` (`name[i]` for a per-bin component).
    pub fn parameter_index(&self, name: &str) -> Option<usize> {
        self.parameters.iter().position(|p| p.name == name)
    }

    pub fn inits(&self) -> Vec<f64> {
        self.parameters.iter().map(|p| p.init).collect()
    }

    /// Builds the model; errors name `source` (the file) and the path inside it.
    pub fn from_spec(spec: &BinnedWorkspaceSpec, source: &str) -> Result<BinnedModel> {
        Builder::new(spec, source).build()
    }
}

/// The error for a problem at `path` of the workspace `source`.
pub(crate) fn invalid(source: &str, path: &str, message: impl std::fmt::Display) -> Error {
    let message = if path.is_empty() {
        format!("{source}: {message}")
    } else {
        format!("{source}: {path}: {message}")
    };
    Error::Workspace(vec![Diagnostic {
        location: None,
        message,
    }])
}

/// How a parameter set is constrained, as pyhf's paramset types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConstraintKind {
    Unconstrained,
    Normal,
    Poisson,
}

/// The defaults a modifier type requires of its parameter set (pyhf's `required_parset`).
/// Modifiers sharing a parameter must require the same; `None` means "from the settings".
#[derive(Clone, Debug, PartialEq)]
struct ParameterSet {
    constraint: ConstraintKind,
    /// Scalar sets are named `name`, the others `name[i]`.
    scalar: bool,
    n: usize,
    inits: Option<Vec<f64>>,
    bounds: Option<Vec<[f64; 2]>>,
    fixed: Vec<bool>,
    auxdata: Option<Vec<f64>>,
    sigmas: Option<Vec<f64>>,
    factors: Option<Vec<f64>>,
    /// Whether the Gaussian has widths other than 1: lumi and staterror do (pyhf's `sigmas`),
    /// normsys and histosys are unit Gaussians.
    has_sigmas: bool,
}

impl ParameterSet {
    fn free(n: usize, scalar: bool) -> ParameterSet {
        ParameterSet {
            constraint: ConstraintKind::Unconstrained,
            scalar,
            n,
            inits: Some(vec![1.0; n]),
            bounds: Some(vec![[0.0, 10.0]; n]),
            fixed: vec![false; n],
            auxdata: None,
            sigmas: None,
            factors: None,
            has_sigmas: false,
        }
    }

    /// A parameter only sample coefficients name: free, unbounded unless its settings say
    /// otherwise (a coefficient like `1 + 0.1 * k` may take any k).
    fn coefficient() -> ParameterSet {
        ParameterSet {
            bounds: Some(vec![[f64::NEG_INFINITY, f64::INFINITY]]),
            ..ParameterSet::free(1, true)
        }
    }

    /// normsys and histosys: unit Gaussian around 0 (the two may share a parameter).
    fn unit_gaussian() -> ParameterSet {
        ParameterSet {
            constraint: ConstraintKind::Normal,
            scalar: true,
            n: 1,
            inits: Some(vec![0.0]),
            bounds: Some(vec![[-5.0, 5.0]]),
            fixed: vec![false],
            auxdata: Some(vec![0.0]),
            sigmas: None,
            factors: None,
            has_sigmas: false,
        }
    }

    /// lumi: everything from the measurement's settings.
    fn lumi() -> ParameterSet {
        ParameterSet {
            constraint: ConstraintKind::Normal,
            scalar: true,
            n: 1,
            inits: None,
            bounds: None,
            fixed: vec![false],
            auxdata: None,
            sigmas: None,
            factors: None,
            has_sigmas: true,
        }
    }

    /// shapesys: Poisson with τ_b = (ν_b/σ_b)²; bins without yield or uncertainty are fixed
    /// γ = 1 with τ = 1.
    fn shapesys(nominal: &[f64], uncertainties: &[f64]) -> ParameterSet {
        let valid: Vec<bool> = nominal
            .iter()
            .zip(uncertainties)
            .map(|(&nu, &sigma)| nu > 0.0 && sigma > 0.0)
            .collect();
        let tau: Vec<f64> = valid
            .iter()
            .zip(nominal.iter().zip(uncertainties))
            .map(|(&ok, (&nu, &sigma))| if ok { nu * nu / (sigma * sigma) } else { 1.0 })
            .collect();
        let n = nominal.len();
        ParameterSet {
            constraint: ConstraintKind::Poisson,
            scalar: false,
            n,
            inits: Some(vec![1.0; n]),
            bounds: Some(vec![[1e-10, 10.0]; n]),
            fixed: valid.iter().map(|ok| !ok).collect(),
            auxdata: Some(tau.clone()),
            sigmas: None,
            factors: Some(tau),
            has_sigmas: false,
        }
    }

    /// staterror: Gaussian around 1 with the combined relative σ; σ = 0 bins fixed, σ → 1.
    fn staterror(relative_sigmas: &[f64]) -> ParameterSet {
        let n = relative_sigmas.len();
        ParameterSet {
            constraint: ConstraintKind::Normal,
            scalar: false,
            n,
            inits: Some(vec![1.0; n]),
            bounds: Some(vec![[1e-10, 10.0]; n]),
            fixed: relative_sigmas.iter().map(|&s| s == 0.0).collect(),
            auxdata: Some(vec![1.0; n]),
            sigmas: Some(
                relative_sigmas
                    .iter()
                    .map(|&s| if s == 0.0 { 1.0 } else { s })
                    .collect(),
            ),
            factors: None,
            has_sigmas: true,
        }
    }
}

/// A staterror modifier seen on a sample, combined per name once all are known.
struct StaterrorUse {
    channel: usize,
    sample: String,
    uncertainties: Vec<f64>,
    path: String,
}

struct Builder<'a> {
    spec: &'a BinnedWorkspaceSpec,
    source: &'a str,
    /// Parameter sets by name, in order of first use, with the path of that use.
    sets: Vec<(String, ParameterSet, String)>,
    staterrors: BTreeMap<String, Vec<StaterrorUse>>,
}

impl<'a> Builder<'a> {
    fn new(spec: &'a BinnedWorkspaceSpec, source: &'a str) -> Builder<'a> {
        Builder {
            spec,
            source,
            sets: Vec::new(),
            staterrors: BTreeMap::new(),
        }
    }

    fn err(&self, path: &str, message: impl std::fmt::Display) -> Error {
        invalid(self.source, path, message)
    }

    fn build(mut self) -> Result<BinnedModel> {
        self.check_shapes()?;
        self.collect_parameter_sets()?;
        self.combine_staterrors()?;
        self.collect_coefficient_parameters()?;
        self.apply_settings()?;
        let (parameters, offsets, poi) = self.flatten()?;
        let constraints = self.constraints(&offsets);
        let auxdata = self.auxdata();
        let channels = self.channels(&offsets, &parameters)?;
        let counts = self
            .spec
            .channels
            .iter()
            .map(|c| c.data.inline().to_vec())
            .collect();
        Ok(BinnedModel {
            parameters,
            poi,
            channels,
            constraints,
            interpolation: self.spec.interpolation,
            observed: BinnedData { counts, auxdata },
        })
    }

    /// Every per-bin list has the channel's number of bins; yields and counts are finite,
    /// counts and yields not negative; names are unique.
    fn check_shapes(&self) -> Result<()> {
        if self.spec.channels.is_empty() {
            return Err(self.err("channels", "a binned workspace needs at least one channel"));
        }
        let mut channel_names = std::collections::HashSet::new();
        for (c, channel) in self.spec.channels.iter().enumerate() {
            let path = format!("channels[{c}]");
            if !channel_names.insert(channel.name.as_str()) {
                return Err(self.err(&path, format!("channel name '{}' repeats", channel.name)));
            }
            if let CountsSpec::Dataset(d) = &channel.data {
                return Err(self.err(
                    &format!("{path}.data"),
                    format!(
                        "counts from {}:{} are read with the workspace; this model was built \
                         before they were",
                        d.file, d.dataset
                    ),
                ));
            }
            let n = channel.data.inline().len();
            if n == 0 {
                return Err(self.err(&format!("{path}.data"), "a channel needs at least one bin"));
            }
            check_values(
                self,
                &format!("{path}.data"),
                channel.data.inline(),
                n,
                true,
            )?;
            if let Some(obs) = &channel.observable {
                let edges_ok = obs.edges.len() == n + 1
                    && obs.edges.iter().all(|e| e.is_finite())
                    && obs.edges.windows(2).all(|w| w[0] < w[1]);
                if !edges_ok {
                    return Err(self.err(
                        &format!("{path}.observable.edges"),
                        format!(
                            "expected {} increasing finite bin edges for {n} bins",
                            n + 1
                        ),
                    ));
                }
            }
            if channel.samples.is_empty() {
                return Err(self.err(&format!("{path}.samples"), "a channel needs a sample"));
            }
            let mut sample_names = std::collections::HashSet::new();
            for (s, sample) in channel.samples.iter().enumerate() {
                let path = format!("{path}.samples[{s}]");
                if !sample_names.insert(sample.name.as_str()) {
                    return Err(self.err(&path, format!("sample name '{}' repeats", sample.name)));
                }
                check_values(self, &format!("{path}.yields"), &sample.yields, n, false)?;
                let mut keys = std::collections::HashSet::new();
                for (m, modifier) in sample.modifiers.iter().enumerate() {
                    let path = format!("{path}.modifiers[{m}]");
                    if !keys.insert((modifier.kind(), modifier.name())) {
                        return Err(self.err(
                            &path,
                            format!(
                                "{} '{}' appears twice on this sample",
                                modifier.kind(),
                                modifier.name()
                            ),
                        ));
                    }
                    self.check_modifier(&path, modifier, n)?;
                }
            }
        }
        Ok(())
    }

    fn check_modifier(&self, path: &str, modifier: &ModifierSpec, n: usize) -> Result<()> {
        match modifier {
            ModifierSpec::Normsys { hi, lo, .. } => {
                if !(hi.is_finite() && *hi > 0.0 && lo.is_finite() && *lo > 0.0) {
                    return Err(self.err(
                        path,
                        format!(
                            "normsys factors must be positive and finite, got hi = {hi}, lo = {lo}"
                        ),
                    ));
                }
            }
            ModifierSpec::Histosys { hi, lo, .. } => {
                check_values(self, &format!("{path}.hi"), hi, n, false)?;
                check_values(self, &format!("{path}.lo"), lo, n, false)?;
            }
            ModifierSpec::Shapesys { uncertainties, .. }
            | ModifierSpec::Staterror { uncertainties, .. } => {
                check_values(
                    self,
                    &format!("{path}.uncertainties"),
                    uncertainties,
                    n,
                    true,
                )?;
            }
            ModifierSpec::Normfactor { .. }
            | ModifierSpec::Shapefactor { .. }
            | ModifierSpec::Lumi { .. } => {}
        }
        if modifier.name().is_empty() {
            return Err(self.err(path, "a modifier needs a non-empty name"));
        }
        Ok(())
    }

    /// Records what each modifier requires of its parameter set; a name used by modifiers
    /// with different requirements is an error, as in pyhf.
    fn collect_parameter_sets(&mut self) -> Result<()> {
        let spec = self.spec;
        for (c, channel) in spec.channels.iter().enumerate() {
            let n = channel.data.inline().len();
            for (s, sample) in channel.samples.iter().enumerate() {
                for (m, modifier) in sample.modifiers.iter().enumerate() {
                    let path = format!("channels[{c}].samples[{s}].modifiers[{m}]");
                    let set = match modifier {
                        ModifierSpec::Normfactor { .. } => ParameterSet::free(1, true),
                        ModifierSpec::Shapefactor { .. } => ParameterSet::free(n, false),
                        ModifierSpec::Normsys { .. } | ModifierSpec::Histosys { .. } => {
                            ParameterSet::unit_gaussian()
                        }
                        ModifierSpec::Lumi { .. } => ParameterSet::lumi(),
                        ModifierSpec::Shapesys {
                            name,
                            uncertainties,
                        } => {
                            if self.sets.iter().any(|(other, ..)| other == name) {
                                return Err(self.err(
                                    &path,
                                    format!("shapesys '{name}' is used twice: a shapesys parameter belongs to one sample of one channel"),
                                ));
                            }
                            ParameterSet::shapesys(&sample.yields, uncertainties)
                        }
                        ModifierSpec::Staterror {
                            name,
                            uncertainties,
                        } => {
                            self.staterrors
                                .entry(name.clone())
                                .or_default()
                                .push(StaterrorUse {
                                    channel: c,
                                    sample: sample.name.clone(),
                                    uncertainties: uncertainties.clone(),
                                    path: path.clone(),
                                });
                            if !self.sets.iter().any(|(other, ..)| other == name) {
                                // Placeholder in order of first use, replaced once combined.
                                self.sets.push((
                                    name.clone(),
                                    ParameterSet::staterror(&[]),
                                    path.clone(),
                                ));
                            } else {
                                self.require_same_kind(name, "staterror", &path)?;
                            }
                            continue;
                        }
                    };
                    self.require(modifier.name(), modifier.kind(), set, &path)?;
                }
            }
        }
        Ok(())
    }

    fn require(&mut self, name: &str, kind: &str, set: ParameterSet, path: &str) -> Result<()> {
        match self.sets.iter().find(|(other, ..)| other == name) {
            None => {
                self.sets.push((name.to_string(), set, path.to_string()));
                Ok(())
            }
            Some((_, first, first_path)) if *first != set || self.staterrors.contains_key(name) => {
                Err(self.err(
                    path,
                    format!("{kind} '{name}' shares its parameter with the modifier at {first_path}, which needs a different parameter (type, number of bins or defaults); use distinct names"),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    fn require_same_kind(&self, name: &str, kind: &str, path: &str) -> Result<()> {
        if self.staterrors[name].len() == 1 {
            let (_, _, first_path) = self.sets.iter().find(|(other, ..)| other == name).unwrap();
            return Err(self.err(
                path,
                format!("{kind} '{name}' shares its parameter with the modifier at {first_path}, which is not a staterror; use distinct names"),
            ));
        }
        Ok(())
    }

    /// pyhf's staterror: one γ per bin of the channels carrying it (in pyhf's order: channels
    /// sorted by name), σ_b = sqrt(Σ_s σ_sb²) / Σ_s ν_sb over the samples carrying it.
    fn combine_staterrors(&mut self) -> Result<()> {
        let channels = &self.spec.channels;
        for (name, uses) in &self.staterrors {
            let mut in_channels: Vec<usize> = uses.iter().map(|u| u.channel).collect();
            in_channels.sort_by(|&a, &b| channels[a].name.cmp(&channels[b].name));
            in_channels.dedup();
            let samples: std::collections::BTreeSet<&str> =
                uses.iter().map(|u| u.sample.as_str()).collect();
            for sample in &samples {
                let count = uses.iter().filter(|u| u.sample == *sample).count();
                if count != in_channels.len() {
                    let path = &uses.iter().find(|u| u.sample == *sample).unwrap().path;
                    return Err(self.err(
                        path,
                        format!("staterror '{name}' must be on sample '{sample}' in every channel it is used in (pyhf needs the same bins for all its samples)"),
                    ));
                }
            }
            let mut sigmas = Vec::new();
            for &c in &in_channels {
                let channel = &channels[c];
                let nominal_sum: Vec<f64> = (0..channel.data.inline().len())
                    .map(|b| {
                        channel
                            .samples
                            .iter()
                            .filter(|s| samples.contains(s.name.as_str()))
                            .map(|s| s.yields[b])
                            .sum()
                    })
                    .collect();
                for (b, total) in nominal_sum.iter().enumerate() {
                    let variance: f64 = uses
                        .iter()
                        .filter(|u| u.channel == c)
                        .map(|u| {
                            if *total > 0.0 {
                                (u.uncertainties[b] / total).powi(2)
                            } else {
                                0.0
                            }
                        })
                        .sum();
                    sigmas.push(variance.sqrt());
                }
            }
            let entry = self.sets.iter_mut().find(|(n, ..)| n == name).unwrap();
            entry.1 = ParameterSet::staterror(&sigmas);
        }
        Ok(())
    }

    /// Parses the samples' coefficients: they may name the scalar parameters of modifiers and
    /// the parameters listed under `parameters`; a listed one no modifier drives becomes a
    /// free parameter of its own ([`ParameterSet::coefficient`]).
    fn collect_coefficient_parameters(&mut self) -> Result<()> {
        let spec = self.spec;
        let mut names: Vec<&str> = self
            .sets
            .iter()
            .filter(|(_, set, _)| set.scalar)
            .map(|(name, ..)| name.as_str())
            .collect();
        for setting in &spec.parameters {
            if !self.sets.iter().any(|(n, ..)| *n == setting.name) {
                names.push(&setting.name);
            }
        }
        let mut named = Vec::new();
        for (c, channel) in spec.channels.iter().enumerate() {
            for (s, sample) in channel.samples.iter().enumerate() {
                let Some(text) = &sample.coefficient else {
                    continue;
                };
                let path = format!("channels[{c}].samples[{s}].coefficient");
                let expr = Expr::parse(text, &names).map_err(|e| {
                    self.err(
                        &path,
                        format!(
                            "coefficient '{text}' of sample '{}' in channel '{}': {e}",
                            sample.name, channel.name
                        ),
                    )
                })?;
                for i in expr.parameters() {
                    named.push((names[i].to_string(), path.clone()));
                }
            }
        }
        for (name, path) in named {
            if !self.sets.iter().any(|(n, ..)| *n == name) {
                self.sets.push((name, ParameterSet::coefficient(), path));
            }
        }
        Ok(())
    }

    /// The measurement's settings override the defaults (pyhf's `reduce_paramsets_requirements`).
    fn apply_settings(&mut self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (i, setting) in self.spec.parameters.iter().enumerate() {
            let path = format!("parameters[{i}]");
            if !seen.insert(setting.name.as_str()) {
                return Err(self.err(&path, format!("parameter '{}' is set twice", setting.name)));
            }
            let Some(index) = self.sets.iter().position(|(n, ..)| *n == setting.name) else {
                return Err(self.err(
                    &path,
                    format!(
                        "parameter '{}' is not used by any modifier or coefficient",
                        setting.name
                    ),
                ));
            };
            let set = self.sets[index].1.clone();
            let set = apply_setting(set, setting).map_err(|m| self.err(&path, m))?;
            self.sets[index].1 = set;
        }
        Ok(())
    }

    /// One scalar parameter per component; returns them, each set's first index, and the POI.
    #[allow(clippy::type_complexity)]
    fn flatten(&self) -> Result<(Vec<BinnedParameter>, BTreeMap<String, usize>, Option<usize>)> {
        let mut parameters = Vec::new();
        let mut offsets = BTreeMap::new();
        for (name, set, path) in &self.sets {
            let missing: Vec<&str> = [
                ("inits", set.inits.is_none()),
                ("bounds", set.bounds.is_none()),
                (
                    "auxdata",
                    set.constraint != ConstraintKind::Unconstrained && set.auxdata.is_none(),
                ),
                ("sigmas", set.has_sigmas && set.sigmas.is_none()),
            ]
            .iter()
            .filter(|(_, missing)| *missing)
            .map(|(key, _)| *key)
            .collect();
            if !missing.is_empty() {
                return Err(self.err(
                    path,
                    format!(
                        "parameter '{name}' needs {} in its settings (under `parameters`)",
                        missing.join(", ")
                    ),
                ));
            }
            offsets.insert(name.clone(), parameters.len());
            let (inits, bounds) = (set.inits.as_ref().unwrap(), set.bounds.as_ref().unwrap());
            for i in 0..set.n {
                let [low, high] = bounds[i];
                parameters.push(BinnedParameter {
                    name: if set.scalar {
                        name.clone()
                    } else {
                        format!("{name}[{i}]")
                    },
                    init: inits[i],
                    bounds: (low, high),
                    fixed: set.fixed[i],
                });
            }
        }
        let pois: Vec<&BinnedParameterSpec> =
            self.spec.parameters.iter().filter(|p| p.poi).collect();
        let poi = match pois.as_slice() {
            [] => None,
            [one] => {
                let set = &self.sets.iter().find(|(n, ..)| *n == one.name).unwrap().1;
                if set.n != 1 || !set.scalar {
                    return Err(self.err(
                        "parameters",
                        format!(
                            "the POI '{}' has {} components; a POI must be one number",
                            one.name, set.n
                        ),
                    ));
                }
                Some(offsets[&one.name])
            }
            _ => return Err(self.err("parameters", "more than one parameter has `poi: true`")),
        };
        Ok((parameters, offsets, poi))
    }

    fn constraints(&self, offsets: &BTreeMap<String, usize>) -> Vec<Constraint> {
        let mut constraints = Vec::new();
        for (name, set, _) in &self.sets {
            for i in 0..set.n {
                let parameter = offsets[name] + i;
                match set.constraint {
                    ConstraintKind::Unconstrained => {}
                    ConstraintKind::Normal => constraints.push(Constraint::Gaussian {
                        parameter,
                        sigma: set.sigmas.as_ref().map_or(1.0, |s| s[i]),
                    }),
                    ConstraintKind::Poisson => constraints.push(Constraint::Poisson {
                        parameter,
                        factor: set.factors.as_ref().unwrap()[i],
                    }),
                }
            }
        }
        constraints
    }

    fn auxdata(&self) -> Vec<f64> {
        self.sets
            .iter()
            .filter(|(_, set, _)| set.constraint != ConstraintKind::Unconstrained)
            .flat_map(|(_, set, _)| set.auxdata.clone().unwrap())
            .collect()
    }

    fn channels(
        &self,
        offsets: &BTreeMap<String, usize>,
        parameters: &[BinnedParameter],
    ) -> Result<Vec<BinnedChannel>> {
        let code = self.spec.interpolation;
        let staterror_bins = self.staterror_bin_offsets();
        let names: Vec<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
        self.spec
            .channels
            .iter()
            .enumerate()
            .map(|(c, channel)| {
                let n = channel.data.inline().len();
                let per_bin = |first: usize| Factor::PerBin {
                    parameters: (first..first + n).collect(),
                };
                let samples = channel
                    .samples
                    .iter()
                    .enumerate()
                    .map(|(s, sample)| {
                        let coefficient = sample
                            .coefficient
                            .as_ref()
                            .map(|text| {
                                Expr::parse(text, &names)
                                    .map(|expr| Coefficient::new(text, expr))
                                    .map_err(|e| {
                                        self.err(
                                            &format!("channels[{c}].samples[{s}].coefficient"),
                                            e,
                                        )
                                    })
                            })
                            .transpose()?;
                        let mut factors = Vec::new();
                        let mut shifts = Vec::new();
                        for modifier in &sample.modifiers {
                            let first = offsets[modifier.name()];
                            match modifier {
                                ModifierSpec::Normfactor { .. } | ModifierSpec::Lumi { .. } => {
                                    factors.push(Factor::Linear { parameter: first })
                                }
                                ModifierSpec::Normsys { hi, lo, .. } => {
                                    factors.push(Factor::Interpolated {
                                        parameter: first,
                                        variation: code.normsys.variation(*hi, *lo),
                                    })
                                }
                                ModifierSpec::Histosys { hi, lo, .. } => shifts.push(Shift {
                                    parameter: first,
                                    delta_up: hi
                                        .iter()
                                        .zip(&sample.yields)
                                        .map(|(h, n)| h - n)
                                        .collect(),
                                    delta_down: lo
                                        .iter()
                                        .zip(&sample.yields)
                                        .map(|(l, n)| n - l)
                                        .collect(),
                                }),
                                ModifierSpec::Shapesys { .. }
                                | ModifierSpec::Shapefactor { .. } => factors.push(per_bin(first)),
                                ModifierSpec::Staterror { name, .. } => factors
                                    .push(per_bin(first + staterror_bins[&(name.clone(), c)])),
                            }
                        }
                        Ok(BinnedSample {
                            name: sample.name.clone(),
                            nominal: sample.yields.clone(),
                            factors,
                            shifts,
                            coefficient,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(BinnedChannel {
                    name: channel.name.clone(),
                    samples,
                    n_bins: n,
                })
            })
            .collect()
    }

    /// Where a channel's bins start inside a staterror's parameters (channels by name).
    fn staterror_bin_offsets(&self) -> BTreeMap<(String, usize), usize> {
        let channels = &self.spec.channels;
        let mut offsets = BTreeMap::new();
        for (name, uses) in &self.staterrors {
            let mut in_channels: Vec<usize> = uses.iter().map(|u| u.channel).collect();
            in_channels.sort_by(|&a, &b| channels[a].name.cmp(&channels[b].name));
            in_channels.dedup();
            let mut start = 0;
            for c in in_channels {
                offsets.insert((name.clone(), c), start);
                start += channels[c].data.inline().len();
            }
        }
        offsets
    }
}

/// Checks a per-bin list: `n` finite entries, not negative where `non_negative`.
fn check_values(
    builder: &Builder,
    path: &str,
    values: &[f64],
    n: usize,
    non_negative: bool,
) -> Result<()> {
    if values.len() != n {
        return Err(builder.err(
            path,
            format!("expected {n} values (one per bin), got {}", values.len()),
        ));
    }
    if let Some(b) = values
        .iter()
        .position(|v| !v.is_finite() || (non_negative && *v < 0.0))
    {
        let expected = if non_negative {
            "a finite number ≥ 0"
        } else {
            "a finite number"
        };
        return Err(builder.err(
            &format!("{path}[{b}]"),
            format!("expected {expected}, got {}", values[b]),
        ));
    }
    Ok(())
}

/// A parameter's settings on top of its modifier's defaults; the message says what is wrong.
fn apply_setting(
    mut set: ParameterSet,
    setting: &BinnedParameterSpec,
) -> std::result::Result<ParameterSet, String> {
    let n = set.n;
    let length = |key: &str, len: usize| {
        if len == n {
            Ok(())
        } else {
            Err(format!(
                "{key} has {len} entries, the parameter '{}' has {n} components",
                setting.name
            ))
        }
    };
    if let Some(inits) = &setting.inits {
        length("inits", inits.len())?;
        set.inits = Some(inits.clone());
    }
    if let Some(bounds) = &setting.bounds {
        length("bounds", bounds.len())?;
        if let Some([l, h]) = bounds
            .iter()
            .find(|[l, h]| l.is_nan() || h.is_nan() || l > h)
        {
            return Err(format!("bounds [{l}, {h}] are not ordered"));
        }
        set.bounds = Some(bounds.clone());
    }
    if let Some(fixed) = setting.fixed {
        set.fixed = vec![fixed; n];
    }
    let unused = |key: &str| {
        format!(
            "parameter '{}' has no {key}: its modifiers' constraint does not use them",
            setting.name
        )
    };
    if let Some(auxdata) = &setting.auxdata {
        if set.constraint == ConstraintKind::Unconstrained {
            return Err(unused("auxdata"));
        }
        length("auxdata", auxdata.len())?;
        set.auxdata = Some(auxdata.clone());
    }
    if let Some(sigmas) = &setting.sigmas {
        // pyhf: only lumi and staterror carry widths; normsys/histosys are unit Gaussians.
        if !set.has_sigmas {
            return Err(unused("sigmas"));
        }
        length("sigmas", sigmas.len())?;
        if sigmas
            .iter()
            .any(|s| s.is_nan() || *s <= 0.0 || s.is_infinite())
        {
            return Err("sigmas must be positive and finite".to_string());
        }
        set.sigmas = Some(sigmas.clone());
    }
    if let Some(factors) = &setting.factors {
        if set.constraint != ConstraintKind::Poisson {
            return Err(unused("factors"));
        }
        length("factors", factors.len())?;
        set.factors = Some(factors.clone());
    }
    if let (Some(inits), Some(bounds)) = (&set.inits, &set.bounds) {
        if let Some(i) = (0..n).find(|&i| !(bounds[i][0]..=bounds[i][1]).contains(&inits[i])) {
            return Err(format!(
                "init {} lies outside its bounds [{}, {}]",
                inits[i], bounds[i][0], bounds[i][1]
            ));
        }
    }
    Ok(set)
}
