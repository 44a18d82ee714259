//! Binned (HistFactory) channels with pyhf's semantics, and pyhf workspaces in and out.
//!
//! `schema` is the YAML form, `model` the typed model built from it (parameters, constraints,
//! modifiers resolved to indices), `interpolation` the codes of normsys and histosys, `nll`
//! the exact −ln L with gradient and Hessian, `pyhf` the JSON import and export, `yaml` the
//! readable YAML writer.
//!
//! `combine` places binned channels on a general workspace's parameters: the likelihood of
//! `likelihood/` adds their terms beside the unbinned channels'.

pub mod combine;
pub mod fit;
pub mod interpolation;
pub mod io;
pub mod model;
pub mod nll;
pub mod pyhf;
pub mod sample;
pub mod schema;
pub mod yaml;

pub use io::{export_pyhf, import_pyhf, read_binned_workspace};
pub use model::{BinnedData, BinnedModel, BinnedParameter, Constraint};
pub use nll::NllDerivatives;
pub use schema::BinnedWorkspaceSpec;
