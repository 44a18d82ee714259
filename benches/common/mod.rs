//! Helpers shared by the benchmarks: the project root, running a Python baseline, and reading
//! back criterion's own estimate so a bench can report it beside a baseline measured in the
//! same run.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

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

/// Runs `validation/<script>` with the project's Python and `args`, and parses the JSON it
/// prints. `one_core` pins numpy's BLAS and OpenMP to one thread (per-core comparisons).
pub fn run_python_baseline<I, S>(script: &str, args: I, one_core: bool) -> serde_json::Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(root().join(".venv/bin/python"));
    cmd.arg(root().join("validation").join(script)).args(args);
    if one_core {
        for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
            cmd.env(var, "1");
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {script} (make setup first): {e}"));
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Prints a bench's summary and writes it to `target/criterion/<name>_summary.json`.
pub fn report_summary(name: &str, summary: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(summary).unwrap());
    let path = root().join(format!("target/criterion/{name}_summary.json"));
    let _ = nsbi::report::write_json_atomic(&path, summary);
}

/// The example analysis (`workspace_exact.yaml`) on the tests' ratio cache.
#[allow(dead_code)] // used by the toys and hypotest benches only
pub fn example_analysis() -> nsbi::analysis::Analysis {
    let ws = root().join("workspaces/offshell_toy/workspace_exact.yaml");
    nsbi::analysis::Analysis::load(
        &ws,
        &nsbi::data::RatioCache::new(root().join("target/test-ratio-cache")),
        false,
    )
    .expect("load the example workspace")
}
