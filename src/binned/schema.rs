//! The YAML form of a binned (HistFactory) workspace, as serde types: what `nsbi import pyhf`
//! writes and what [`crate::binned::BinnedModel::from_spec`] reads.
//!
//! It mirrors pyhf's JSON closely — channels of samples with per-bin yields and modifiers, one
//! list of parameter settings — so that import and export are one-to-one, but with the
//! observed counts inside their channel, the measurement's settings on the parameters, and the
//! interpolation codes written out. Lists of numbers are per bin of the channel.

use serde::{Deserialize, Serialize};

use super::interpolation::{HistosysCode, NormsysCode};

/// A workspace whose channels are all binned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinnedWorkspaceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Interpolation codes of the binned modifiers, for the whole workspace.
    #[serde(default)]
    pub interpolation: InterpolationSettings,
    /// Settings of parameters; a parameter not listed gets its modifier's defaults (pyhf's).
    #[serde(default)]
    pub parameters: Vec<BinnedParameterSpec>,
    pub channels: Vec<BinnedChannelSpec>,
}

/// `normsys` code 4 and `histosys` code 4p are pyhf's defaults; code 1 / code 0 are ROOT
/// HistFactory's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterpolationSettings {
    #[serde(default)]
    pub normsys: NormsysCode,
    #[serde(default)]
    pub histosys: HistosysCode,
}

/// The settings of one parameter (pyhf's measurement `parameters` entry). Lists have one
/// entry per component of a per-bin parameter (staterror, shapesys, shapefactor).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinnedParameterSpec {
    pub name: String,
    /// The parameter of interest (at most one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub poi: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inits: Option<Vec<f64>>,
    /// `[low, high]` per component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<Vec<[f64; 2]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<bool>,
    /// Global observables of the constraint (Gaussian mean, or Poisson count for shapesys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auxdata: Option<Vec<f64>>,
    /// Widths of Gaussian constraints (lumi, staterror).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigmas: Option<Vec<f64>>,
    /// Rate factors τ of Poisson constraints (shapesys): the constraint is Pois(aux | γ τ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<Vec<f64>>,
}

/// Only `binned` here; the tag keeps the form of a channel of the general workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinnedKind {
    Binned,
}

/// A histogram channel: observed counts and the samples predicting them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinnedChannelSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: BinnedKind,
    /// The binned observable (documentation and plots; the likelihood needs only the counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observable: Option<ObservableSpec>,
    /// Observed counts per bin, inline or from an HDF5 dataset.
    pub data: CountsSpec,
    pub samples: Vec<BinnedSampleSpec>,
}

/// Observed counts: inline, one per bin, or a 1-D dataset of an HDF5 file (its path relative
/// to the workspace's folder), read when the workspace is loaded
/// ([`crate::binned::combine::binned_spec`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CountsSpec {
    Inline(Vec<f64>),
    Dataset(CountsDataset),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountsDataset {
    pub file: String,
    /// Path of the dataset inside the file, e.g. `CR_low/counts`.
    pub dataset: String,
}

impl CountsSpec {
    /// The counts once read (empty for a dataset not read yet).
    pub fn inline(&self) -> &[f64] {
        match self {
            CountsSpec::Inline(counts) => counts,
            CountsSpec::Dataset(_) => &[],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservableSpec {
    pub name: String,
    /// Bin edges, increasing, one more than the number of bins.
    pub edges: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinnedSampleSpec {
    pub name: String,
    /// f_c(θ) multiplying the sample's yield with its modifiers, as an unbinned process's
    /// coefficient (e.g. `mu - sqrt(mu)` for the S of an S/SBI/B interference basis); a
    /// parameter it names is one of the workspace's, shared with modifiers and other channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coefficient: Option<String>,
    /// Nominal yield per bin.
    pub yields: Vec<f64>,
    #[serde(default)]
    pub modifiers: Vec<ModifierSpec>,
}

/// A HistFactory modifier of a sample, with pyhf's meaning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModifierSpec {
    /// Free factor μ on the whole sample.
    Normfactor { name: String },
    /// Factor interpolated between `lo` and `hi` (yield factors at α = ∓1).
    Normsys { name: String, hi: f64, lo: f64 },
    /// Additive shift interpolated between the yields `lo` and `hi` at α = ∓1.
    Histosys {
        name: String,
        hi: Vec<f64>,
        lo: Vec<f64>,
    },
    /// Per-bin factor γ_b with a Poisson constraint from absolute uncertainties σ_b
    /// (Barlow–Beeston lite, τ_b = (ν_b/σ_b)²).
    Shapesys {
        name: String,
        uncertainties: Vec<f64>,
    },
    /// Per-bin Gaussian γ_b shared by the samples of the channel carrying it, from the
    /// absolute MC uncertainties σ_b of this sample.
    Staterror {
        name: String,
        uncertainties: Vec<f64>,
    },
    /// Free per-bin factor.
    Shapefactor { name: String },
    /// Luminosity factor; its constraint comes from the parameter's `auxdata` and `sigmas`.
    Lumi { name: String },
}

impl ModifierSpec {
    /// The parameter (set) the modifier is driven by.
    pub fn name(&self) -> &str {
        match self {
            ModifierSpec::Normfactor { name }
            | ModifierSpec::Normsys { name, .. }
            | ModifierSpec::Histosys { name, .. }
            | ModifierSpec::Shapesys { name, .. }
            | ModifierSpec::Staterror { name, .. }
            | ModifierSpec::Shapefactor { name }
            | ModifierSpec::Lumi { name } => name,
        }
    }

    /// pyhf's name of the modifier type.
    pub fn kind(&self) -> &'static str {
        match self {
            ModifierSpec::Normfactor { .. } => "normfactor",
            ModifierSpec::Normsys { .. } => "normsys",
            ModifierSpec::Histosys { .. } => "histosys",
            ModifierSpec::Shapesys { .. } => "shapesys",
            ModifierSpec::Staterror { .. } => "staterror",
            ModifierSpec::Shapefactor { .. } => "shapefactor",
            ModifierSpec::Lumi { .. } => "lumi",
        }
    }
}
