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
    let fill = |tmp: &Path| -> std::io::Result<()> {
        let mut file = std::fs::File::create(tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write_through_temp(path, ".tmp", |tmp| {
        fill(tmp).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    })
}

/// Writes `path` through a temporary file beside it (hidden, ending in `suffix`): `write`
/// fills the temporary file, which is then renamed to `path`. The temporary file is removed on
/// every failure — of `write`, of the rename, or a panic — so a failed or killed run leaves
/// neither half a file under the real name nor a stray temporary one (a kill -9 aside).
pub fn write_through_temp(
    path: &Path,
    suffix: &str,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(suffix);
    // The permissions of an ordinary new file (the umask applies), not tempfile's private 0600:
    // caches and toy files are shared between users and batch jobs.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let tmp = builder
        .tempfile_in(dir)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    write(tmp.path())?;
    tmp.persist(path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e.error))?;
    Ok(())
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
