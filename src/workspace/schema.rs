//! The YAML schema of a workspace, as serde types.
//!
//! Fields whose values can be wrong in ways only later checks discover (file paths, names,
//! expressions) are wrapped in [`Spanned`] so that every error can point at the line and
//! column they came from. Unknown fields are rejected: a misspelt key must not be ignored.

use std::cell::RefCell;

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use crate::binned::schema::{BinnedChannelSpec, InterpolationSettings};
pub use crate::channel::spec::ChannelSpec;

/// A whole workspace file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    /// Free-text name of the analysis.
    #[serde(default)]
    pub name: Option<String>,
    /// Free-form YAML to hold anchors (`&name`) for `<<: *name` merges; ignored otherwise.
    #[serde(default)]
    pub templates: Option<serde::de::IgnoredAny>,
    /// Interpolation codes of the binned channels' modifiers, for the whole workspace
    /// (pyhf's defaults: `normsys: code4`, `histosys: code4p`).
    #[serde(default)]
    pub interpolation: InterpolationSettings,
    pub parameters: Vec<ParameterSpec>,
    /// Channels of any kind, told apart by their `type` (default `unbinned`).
    #[serde(deserialize_with = "channels_by_kind")]
    pub channels: Vec<ChannelSpec>,
}

impl WorkspaceSpec {
    /// The unbinned channels, in workspace order (the ones with events, ratios and ensembles).
    pub fn unbinned_channels(&self) -> impl Iterator<Item = &UnbinnedChannelSpec> {
        self.channels.iter().filter_map(|c| match c {
            ChannelSpec::Unbinned(u) => Some(u),
            _ => None,
        })
    }

    /// The binned (histogram) channels, in workspace order.
    pub fn binned_channels(&self) -> impl Iterator<Item = &BinnedChannelSpec> {
        self.channels.iter().filter_map(|c| match c {
            ChannelSpec::Binned(b) => Some(b),
            _ => None,
        })
    }
}

thread_local! {
    /// The `type` of each channel, read by a first pass over the file ([`channel_kinds`]):
    /// a channel's fields can only be deserialised once its kind is known, and serde's
    /// internally tagged enums would buffer the channel and lose the YAML positions its
    /// errors point at.
    static KINDS: RefCell<Vec<Option<String>>> = const { RefCell::new(Vec::new()) };
}

/// The `type` of each channel of the workspace text (`None` where absent), or an empty list
/// when the text does not parse that far (the full parse then reports the error).
pub fn channel_kinds(text: &str) -> Vec<Option<String>> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        channels: Vec<KindProbe>,
    }
    #[derive(Deserialize)]
    struct KindProbe {
        #[serde(rename = "type", default)]
        kind: Option<String>,
    }
    serde_saphyr::from_str::<Probe>(text)
        .map(|p| p.channels.into_iter().map(|c| c.kind).collect())
        .unwrap_or_default()
}

/// Parses a workspace whose channel kinds are `kinds` (from [`channel_kinds`]).
pub fn parse_with_kinds(
    text: &str,
    kinds: Vec<Option<String>>,
) -> std::result::Result<WorkspaceSpec, serde_saphyr::Error> {
    KINDS.with(|k| *k.borrow_mut() = kinds);
    // `bounds` may be one pair or a list of pairs (an untagged enum, read through serde's
    // typeless path): let `.inf` through there as the float it is.
    let options = serde_saphyr::options! {
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
    };
    let parsed = serde_saphyr::from_str_with_options(text, options);
    KINDS.with(|k| k.borrow_mut().clear());
    parsed
}

/// Deserialises `channels`, each entry as the kind its `type` names.
fn channels_by_kind<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<ChannelSpec>, D::Error> {
    struct Channels;
    impl<'de> Visitor<'de> for Channels {
        type Value = Vec<ChannelSpec>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of channels")
        }
        fn visit_seq<A: SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            loop {
                let kind = KINDS.with(|k| k.borrow().get(out.len()).cloned().flatten());
                match seq.next_element_seed(OneChannel {
                    kind,
                    index: out.len(),
                })? {
                    Some(channel) => out.push(channel),
                    None => return Ok(out),
                }
            }
        }
    }
    deserializer.deserialize_seq(Channels)
}

/// One channel, deserialised as `kind` ([`ChannelSpec::deserialize_as`]).
struct OneChannel {
    kind: Option<String>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for OneChannel {
    type Value = ChannelSpec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<ChannelSpec, D::Error> {
        ChannelSpec::deserialize_as(self.kind.as_deref(), self.index, d)
    }
}

/// A parameter of the model: a parameter of interest, a constrained nuisance parameter, or a
/// free normalisation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterSpec {
    pub name: Spanned<String>,
    /// Parameters of interest are reported, scanned and tested; nuisances are profiled.
    #[serde(default)]
    pub poi: bool,
    /// Starting value of fits (default: 0 for constrained nuisances, 1 otherwise).
    #[serde(default)]
    pub init: Option<Spanned<f64>>,
    /// Allowed range `[low, high]` (default: unbounded; for a per-bin parameter of binned
    /// modifiers, one `[low, high]` per bin, or one for all).
    #[serde(default)]
    pub bounds: Option<Spanned<BoundsSpec>>,
    /// Starting values per bin of a per-bin parameter (staterror, shapesys, shapefactor).
    #[serde(default)]
    pub inits: Option<Spanned<Vec<f64>>>,
    /// `gaussian` (unit-width constraint around global observable 0) or `none`.
    /// Default: `none` for POIs, `gaussian` for everything else.
    #[serde(default)]
    pub constraint: Option<Spanned<ConstraintKind>>,
    /// Held constant in every fit.
    #[serde(default)]
    pub fixed: bool,
    /// Global observables of the constraint (per component): the Gaussian's mean, or the
    /// Poisson count of a `shapesys` (default: pyhf's for the modifier, 0 for `gaussian`).
    #[serde(default)]
    pub auxdata: Option<Spanned<Vec<f64>>>,
    /// Widths of a Gaussian constraint (per component; default 1, or pyhf's for `lumi` and
    /// `staterror`).
    #[serde(default)]
    pub sigmas: Option<Spanned<Vec<f64>>>,
    /// Rate factors τ of a `shapesys`'s Poisson constraint Pois(aux | γ τ).
    #[serde(default)]
    pub factors: Option<Spanned<Vec<f64>>>,
}

/// `bounds`: one `[low, high]`, or one per component of a per-bin parameter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum BoundsSpec {
    One(Vec<f64>),
    PerComponent(Vec<Vec<f64>>),
}

impl BoundsSpec {
    /// The single `[low, high]` pair of a scalar parameter (or of every component).
    pub fn single(&self) -> Option<(f64, f64)> {
        match self {
            BoundsSpec::One(b) if b.len() == 2 => Some((b[0], b[1])),
            BoundsSpec::PerComponent(list) if list.len() == 1 && list[0].len() == 2 => {
                Some((list[0][0], list[0][1]))
            }
            _ => None,
        }
    }

    /// Each component's pair, `None` where a pair is not two numbers.
    pub fn pairs(&self) -> Option<Vec<[f64; 2]>> {
        match self {
            BoundsSpec::One(b) => (b.len() == 2).then(|| vec![[b[0], b[1]]]),
            BoundsSpec::PerComponent(list) => list
                .iter()
                .map(|b| (b.len() == 2).then(|| [b[0], b[1]]))
                .collect(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    Gaussian,
    None,
}

/// An unbinned channel: one region of phase space with its own events.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnbinnedChannelSpec {
    pub name: Spanned<String>,
    /// `unbinned` (the default).
    #[serde(rename = "type", default = "default_channel_type")]
    pub kind: Spanned<String>,
    /// Event-file column names, in the order the networks take them.
    pub features: Spanned<Vec<Spanned<String>>>,
    /// The observed events.
    pub data: EventSourceSpec,
    /// Events of the reference hypothesis the ratios are taken against (for diagnostics).
    #[serde(default)]
    pub reference: Option<EventSourceSpec>,
    pub processes: Vec<ProcessSpec>,
}

fn default_channel_type() -> Spanned<String> {
    let unknown = serde_saphyr::Location::UNKNOWN;
    Spanned::new("unbinned".to_string(), unknown, unknown)
}

/// Where a set of events lives: an HDF5 file, a group in it holding one 1-D dataset per
/// column, and optionally the column with per-event weights.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSourceSpec {
    pub file: Spanned<String>,
    /// HDF5 group holding the columns (default: `events`).
    #[serde(default = "default_group")]
    pub group: Spanned<String>,
    /// Column with per-event weights; absent means every event has weight 1.
    #[serde(default)]
    pub weight: Option<Spanned<String>>,
}

fn default_group() -> Spanned<String> {
    let unknown = serde_saphyr::Location::UNKNOWN;
    Spanned::new("events".to_string(), unknown, unknown)
}

/// A physics process contributing to a channel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    pub name: Spanned<String>,
    /// Coefficient f_c(θ) multiplying the nominal yield, e.g. `mu - sqrt(mu)`.
    #[serde(default = "default_coefficient")]
    pub coefficient: Spanned<String>,
    /// The simulated events of this process with their weights.
    pub samples: EventSourceSpec,
    /// Nominal yield ν_c⁰; default: the sum of the sample weights.
    #[serde(default, rename = "yield")]
    pub nominal_yield: Option<Spanned<f64>>,
    /// The ensemble learning r_c(x) = p_c(x) / p_ref(x).
    pub ratio: RatioSpec,
    #[serde(default)]
    pub systematics: Vec<SystematicSpec>,
}

fn default_coefficient() -> Spanned<String> {
    let unknown = serde_saphyr::Location::UNKNOWN;
    Spanned::new("1".to_string(), unknown, unknown)
}

/// An ONNX ensemble and how to read a density ratio from its output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSpec {
    /// Model files: one path, a glob pattern, or a list of either.
    pub models: Spanned<ModelList>,
    /// Name of the output tensor (default: the model's first output).
    #[serde(default)]
    pub output: Option<Spanned<String>>,
    /// Column of a 2-D output (default 0; e.g. 1 for sklearn's class-1 probability).
    #[serde(default)]
    pub column: Option<Spanned<usize>>,
    /// What the output means.
    pub convention: Spanned<OutputConvention>,
    /// How members are combined (default: `mean_ratio`).
    #[serde(default)]
    pub aggregation: Option<Spanned<Aggregation>>,
    /// JSON file with per-feature `mean` and `std`: the networks see (x − mean) / std.
    #[serde(default)]
    pub standardisation: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(untagged)]
pub enum ModelList {
    One(String),
    Many(Vec<String>),
}

impl ModelList {
    pub fn patterns(&self) -> Vec<&str> {
        match self {
            ModelList::One(p) => vec![p.as_str()],
            ModelList::Many(ps) => ps.iter().map(String::as_str).collect(),
        }
    }
}

/// Meaning of a network output y.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum OutputConvention {
    /// Classifier probability s of the process class: r = s / (1 − s).
    Score,
    /// Logit of the classifier: r = exp(y).
    Logit,
    /// Log density ratio: r = exp(y).
    LogRatio,
    /// The density ratio itself: r = y.
    Ratio,
}

/// How the members of an ensemble are combined into one ratio.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Arithmetic mean of the members' ratios.
    #[default]
    MeanRatio,
    /// Mean of ln r (geometric mean of ratios).
    MeanLogit,
    /// Median of the members' scores s = r / (1 + r).
    MedianScore,
}

/// A systematic uncertainty of a process, driven by one nuisance parameter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystematicSpec {
    /// The nuisance parameter (must be declared under `parameters`).
    pub name: Spanned<String>,
    /// Yield factors at α = ±1 (relative to nominal).
    #[serde(default, rename = "yield")]
    pub yield_factors: Option<Spanned<YieldVariation>>,
    /// Per-event shape ratios p_c(x|α=±1) / p_c(x) as ensembles.
    #[serde(default)]
    pub shape: Option<ShapeVariation>,
    /// Interpolation code between ±1σ: `code0`, `code1`, `code2`, `code4p`, `code4`
    /// (default `code4`, the ATLAS NSBI choice).
    #[serde(default)]
    pub interpolation: Option<Spanned<InterpolationCode>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YieldVariation {
    pub up: f64,
    pub down: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeVariation {
    pub up: RatioSpec,
    pub down: RatioSpec,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum InterpolationCode {
    Code0,
    Code1,
    Code2,
    Code4p,
    #[default]
    Code4,
}
