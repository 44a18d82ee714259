//! The channel kinds a workspace's YAML can declare (a channel's `type`), and the one place
//! that knows them all.
//!
//! Everything outside this folder reads a workspace's channels through [`ChannelSpec`]'s
//! methods and builds the model's kinds through [`KindsOfWorkspace`]: the YAML schema, the
//! workspace's consistency checks and `Model::from_workspace` never match on the kinds. A new
//! kind read from the YAML adds its variant, its `type` name and its arms here (and its
//! [`super::ChannelKind`] in a file of this folder); nothing else in the crate changes, as long
//! as its parameters are the workspace's listed ones. (A kind that brings parameters of its own
//! — HistFactory's per-bin γ of `staterror` and `shapesys` — also places them in the model's
//! parameter vector, `model::global_parameters`, as the binned kind does.)

use serde::de::{self, Deserialize, Deserializer};
use serde_saphyr::Spanned;

use crate::binned::schema::BinnedChannelSpec;
use crate::binned::BinnedModel;
use crate::error::Result;
use crate::model::{ConstraintTerm, Parameter};
use crate::workspace::expr::Expr;
use crate::workspace::schema::UnbinnedChannelSpec;
use crate::workspace::Workspace;

use super::ChannelKind;

/// A channel of the workspace YAML, of one of the kinds of [`CHANNEL_KINDS`]. The kinds share
/// the workspace's parameters; each has its own fields. (A workspace holds a handful of
/// channels: the variants' sizes do not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum ChannelSpec {
    /// Events with per-event density ratios (`type: unbinned`, the default).
    Unbinned(UnbinnedChannelSpec),
    /// A HistFactory histogram channel with pyhf's modifiers (`type: binned`).
    Binned(BinnedChannelSpec),
}

/// The channel kinds the YAML may name in `type`; a channel without `type` is `unbinned`.
pub const CHANNEL_KINDS: [&str; 2] = ["unbinned", "binned"];

impl ChannelSpec {
    /// Reads channel `index` of the workspace as the kind its `type` names (`None`: the
    /// default kind), or a YAML error naming the channel and the kinds there are.
    pub fn deserialize_as<'de, D: Deserializer<'de>>(
        kind: Option<&str>,
        index: usize,
        d: D,
    ) -> std::result::Result<ChannelSpec, D::Error> {
        match kind.unwrap_or("unbinned") {
            "unbinned" => UnbinnedChannelSpec::deserialize(d).map(ChannelSpec::Unbinned),
            "binned" => BinnedChannelSpec::deserialize(d).map(ChannelSpec::Binned),
            other => Err(de::Error::custom(format!(
                "channels[{index}]: channel type '{other}' is not supported (expected one of: {})",
                CHANNEL_KINDS.join(", ")
            ))),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            ChannelSpec::Unbinned(c) => &c.name.value,
            ChannelSpec::Binned(c) => &c.name,
        }
    }

    /// The channel's name where the YAML parser kept its position (for messages that point
    /// at the line).
    pub fn spanned_name(&self) -> Option<&Spanned<String>> {
        match self {
            ChannelSpec::Unbinned(c) => Some(&c.name),
            ChannelSpec::Binned(_) => None,
        }
    }

    /// The parameters the channel itself brings into the model, whether or not the workspace
    /// lists them: the binned modifiers' parameters (pyhf declares parameters by naming them
    /// in a modifier). Unbinned channels use listed parameters only.
    pub fn declared_parameters(&self) -> Vec<&str> {
        match self {
            ChannelSpec::Unbinned(_) => Vec::new(),
            ChannelSpec::Binned(c) => c
                .samples
                .iter()
                .flat_map(|s| &s.modifiers)
                .map(|m| m.name())
                .collect(),
        }
    }

    /// The parameters among `names` (the listed and the declared ones) that the channel's
    /// coefficients, systematics and modifiers use. A coefficient that does not parse names
    /// none: its own check reports it.
    pub fn used_parameters<'a>(&'a self, names: &[&'a str]) -> Vec<&'a str> {
        let in_coefficient = |text: &str| -> Vec<&'a str> {
            Expr::parse(text, names).map_or_else(
                |_| Vec::new(),
                |expr| expr.parameters().into_iter().map(|i| names[i]).collect(),
            )
        };
        match self {
            ChannelSpec::Unbinned(c) => c
                .processes
                .iter()
                .flat_map(|p| {
                    let systematics = p.systematics.iter().map(|s| s.name.value.as_str());
                    in_coefficient(&p.coefficient.value)
                        .into_iter()
                        .chain(systematics)
                })
                .collect(),
            ChannelSpec::Binned(c) => {
                let mut used = self.declared_parameters();
                used.extend(
                    c.samples
                        .iter()
                        .filter_map(|s| s.coefficient.as_deref())
                        .flat_map(in_coefficient),
                );
                used
            }
        }
    }
}

/// The model's channel kinds beside the unbinned channels, read from the workspace before the
/// model's parameter vector exists (a kind may bring parameters into it), then placed on that
/// vector ([`KindsOfWorkspace::place`]).
pub struct KindsOfWorkspace {
    /// The binned channels' HistFactory model on its own parameters (pyhf's rules and paths),
    /// `None` without binned channels.
    pub binned: Option<BinnedModel>,
}

impl KindsOfWorkspace {
    pub fn read(ws: &Workspace) -> Result<KindsOfWorkspace> {
        Ok(KindsOfWorkspace {
            binned: crate::binned::combine::local_model(ws)?,
        })
    }

    /// The kinds on the model's `parameters`, their constraint terms added to `constraints`.
    /// `binned_globals[i]` is the model's index of the binned model's parameter i.
    pub fn place(
        self,
        binned_globals: &[usize],
        parameters: &[Parameter],
        constraints: &mut Vec<ConstraintTerm>,
    ) -> Vec<Box<dyn ChannelKind>> {
        let binned = self.binned.map(|local| {
            Box::new(super::binned::place(
                &local,
                binned_globals,
                parameters,
                constraints,
            )) as Box<dyn ChannelKind>
        });
        binned.into_iter().collect()
    }
}
