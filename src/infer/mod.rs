//! Frequentist inference beyond a single fit: test statistics, hypothesis tests (CLs, upper
//! limits, discovery significance), pseudo-experiments and the Neyman construction.

pub mod construction;
pub(crate) mod h5;
pub mod hypotest;
pub mod limit;
pub mod neyman;
pub mod poi_grid;
pub mod region;
pub mod resample;
pub mod run;
pub mod test_run;
pub mod test_stat;
pub mod test_toys;
pub mod toy_pool;
pub mod toyfile;
pub mod toys;
