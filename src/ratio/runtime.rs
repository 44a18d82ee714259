//! Finding and starting ONNX Runtime. The engine loads `libonnxruntime` at run time
//! (`ort`'s `load-dynamic`), because the prebuilt-binary download cannot be used on analysis
//! machines; the library is looked up where a physicist's set-up puts it, without them
//! having to set anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The ONNX Runtime version the engine is built against (`ort` feature `api-31`).
pub const ORT_VERSION: &str = "1.31.1";

const INSTALL_HINT: &str = "install it with `make setup` in the nsbi source folder \
(or: python3 -m venv .venv && .venv/bin/pip install onnxruntime==1.31.1), \
or point ORT_DYLIB_PATH at libonnxruntime.so.1.31.1";

static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

/// The process-wide ONNX Runtime environment (ONNX Runtime allows only one), started on first
/// use from the library [`locate_library`] finds.
pub fn environment() -> Result<ort::environment::Environment> {
    ENVIRONMENT
        .get_or_init(|| {
            // The message alone: it is wrapped in `Error::Runtime` (and its prefix) below.
            let library = locate_library().map_err(|e| match e {
                Error::Runtime(message) => message,
                other => other.to_string(),
            })?;
            let builder = ort::init_from(&library).map_err(|e| {
                format!("cannot load {}: {e}; the engine needs ONNX Runtime {ORT_VERSION}: {INSTALL_HINT}", library.display())
            })?;
            builder
                .with_name("nsbi")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", library.display()))
        })
        .clone()
        .map_err(Error::Runtime)
}

/// Where `libonnxruntime` is: `ORT_DYLIB_PATH`, then next to the executable, then this
/// project's own Python environment (`.venv`), then the `onnxruntime` package that `python3`
/// imports.
pub fn locate_library() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        return match path.is_file() {
            true => Ok(path),
            false => Err(Error::Runtime(format!(
                "ORT_DYLIB_PATH points at {}, which is not a file",
                path.display()
            ))),
        };
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let project_venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv");
    exe_dir
        .and_then(|dir| library_in(&dir))
        .or_else(|| venv_library(&project_venv))
        .or_else(python_library)
        .ok_or_else(|| {
            Error::Runtime(format!(
                "shared library libonnxruntime not found; {INSTALL_HINT}"
            ))
        })
}

/// `libonnxruntime.so*` in `dir`, preferring the exact version the engine is built for.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let exact = dir.join(format!("libonnxruntime.so.{ORT_VERSION}"));
    if exact.is_file() {
        return Some(exact);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    found.sort();
    found.pop()
}

fn venv_library(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    pythons.sort();
    pythons
        .iter()
        .find_map(|python| library_in(&python.join("site-packages/onnxruntime/capi")))
}

fn python_library() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    library_in(&Path::new(dir.trim()).join("capi"))
}
