//! Event files (HDF5) and the on-disk cache of per-event ratios.

pub mod cache;
pub mod events;

pub use cache::{CacheKey, CachedRatios, Lookup, RatioCache};
pub use events::{Events, EventsFingerprint};
