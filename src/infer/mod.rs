//! Frequentist inference beyond a single fit: pseudo-experiments and the Neyman construction.

pub mod construction;
pub mod neyman;
pub mod resample;
pub mod toy_pool;
pub mod toyfile;
pub mod toys;
