//! Machine-readable outputs, always written atomically (temporary file, then rename) so a
//! reader never sees half a file.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::ratio::RatioRecord;

/// `pid-counter`: unique among the temporary files of all threads and processes.
pub fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Writes `value` as pretty JSON to `path` via a temporary file in the same folder.
pub fn write_json_atomic(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values always serialise");
    write_atomic(path, text.as_bytes())
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", unique_suffix()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("cannot write {}", path.display()), e)
    })
}

/// The `nsbi ratios` summary as JSON: one object per (ensemble, event file).
pub fn ratio_records_json(records: &[RatioRecord]) -> Value {
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "ensemble": r.ensemble,
                "events": r.role.to_string(),
                "file": r.file,
                "n_events": r.n_events,
                "n_members": r.n_members,
                "from_cache": r.from_cache,
                "cache_entry": r.cache_entry,
                "mean_ratio": r.mean_ratio,
                "min_ratio": r.min_ratio,
                "max_ratio": r.max_ratio,
                "mean_spread": r.mean_spread,
            })
        })
        .collect();
    json!({ "ratios": rows })
}
