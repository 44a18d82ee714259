//! Helpers shared by the benchmarks: the project root, and reading back criterion's own
//! estimate so a bench can report it beside a baseline measured in the same run.

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Criterion's mean time per iteration (seconds) for `group/id`, from its estimates file.
pub fn criterion_mean_seconds(group: &str, id: &str) -> Option<f64> {
    let path = root()
        .join("target/criterion")
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64().map(|ns| ns * 1e-9)
}
