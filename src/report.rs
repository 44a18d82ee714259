//! Machine-readable outputs, always written atomically (temporary file, then rename) so a
//! reader never sees half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

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

/// The folder a file goes in (`.` for a bare name) and its file name: temporary files are made
/// in the destination's own folder, so the final rename never crosses file systems.
fn folder_and_name(path: &Path) -> (&Path, String) {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
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
    let (dir, name) = folder_and_name(path);
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

/// All the output files of one command, written all or none: each is rendered to a temporary
/// file beside its destination, and only once every one is ready are they renamed into place.
/// A command that fails half-way (a plot that cannot be drawn) so leaves the old outputs
/// together, never a new JSON beside old plots. Dropped without [`OutputSet::commit`], it
/// removes its temporary files.
#[derive(Default)]
pub struct OutputSet {
    /// (temporary file, destination), in the order they were staged.
    staged: Vec<(PathBuf, PathBuf)>,
}

impl OutputSet {
    pub fn new() -> OutputSet {
        OutputSet::default()
    }

    /// A fresh temporary path beside `path` for a writer to fill; `commit` renames it onto
    /// `path`. It keeps `path`'s extension last, as plot backends pick the format by it.
    /// A destination folder that does not exist is refused here, by name, rather than as the
    /// writer's (or the plot library's) bare "No such file or directory".
    pub fn stage(&mut self, path: &Path) -> Result<PathBuf> {
        let (dir, name) = folder_and_name(path);
        if !dir.is_dir() {
            return Err(Error::Analysis(format!(
                "cannot write {}: the folder {} does not exist; create it first",
                path.display(),
                dir.display()
            )));
        }
        let ext = path
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp{ext}", unique_suffix()));
        self.staged.push((tmp.clone(), path.to_path_buf()));
        Ok(tmp)
    }

    /// Stages `bytes` for `path`.
    pub fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.stage(path)?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        };
        write().map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }

    /// Stages `value` as pretty JSON for `path`.
    pub fn json(&mut self, path: &Path, value: &Value) -> Result<()> {
        let text = serde_json::to_string_pretty(value).expect("JSON values always serialise");
        self.write(path, text.as_bytes())
    }

    /// Renames every staged file into place and returns the destinations. A destination that
    /// is a folder is refused before anything is renamed.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        if let Some((_, path)) = self.staged.iter().find(|(_, path)| path.is_dir()) {
            return Err(Error::Analysis(format!(
                "cannot write {}: it is a folder",
                path.display()
            )));
        }
        let mut written = Vec::new();
        while !self.staged.is_empty() {
            let (tmp, path) = self.staged.remove(0);
            // On failure the files not yet renamed stay staged, and `drop` removes them.
            std::fs::rename(&tmp, &path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::io(format!("cannot write {}", path.display()), e)
            })?;
            written.push(path);
        }
        Ok(written)
    }
}

impl Drop for OutputSet {
    fn drop(&mut self) {
        for (tmp, _) in &self.staged {
            let _ = std::fs::remove_file(tmp);
        }
    }
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
                "from_parts": r.from_parts,
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
