//! nsbi — unbinned likelihood fits with per-event neural density ratios.
//!
//! Data flows downward through the modules, one stage each (see `DESIGN.md` §6):
//! `workspace` (YAML schema, validation) → `data` (HDF5 events, ratio cache) →
//! `ratio` (ONNX ensembles) → later stages (likelihood, fit, inference).

pub mod analysis;
pub mod batch;
pub mod bayes;
pub mod binned;
pub mod channel;
pub mod data;
pub mod diagnostics;
pub mod error;
pub mod fit;
pub mod infer;
pub mod likelihood;
pub mod model;
pub mod plot;
pub mod ratio;
pub mod report;
pub mod results;
pub mod validate;
mod vecmath;
pub mod workspace;

pub use error::{Error, Result};
