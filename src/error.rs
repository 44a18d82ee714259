//! One error type for the library. Every variant says *where* the problem is — a workspace
//! file with line and column, an event file with its dataset, a model with its event index —
//! because a physicist debugging a workspace needs the place, not a backtrace.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A position in a YAML workspace file (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
}

impl std::fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The YAML could not be parsed into the schema (syntax, unknown field, wrong type).
    #[error("{file}: invalid workspace YAML\n{message}")]
    YamlSyntax { file: PathBuf, message: String },

    /// The YAML parsed but says something inconsistent; one entry per problem found.
    #[error("{}", render_diagnostics(.0))]
    Workspace(Vec<Diagnostic>),

    /// An HDF5 event file is missing, malformed, or holds bad values.
    #[error("{file}: {message}")]
    EventFile { file: PathBuf, message: String },

    /// An ONNX model is missing, malformed, or produced bad values.
    #[error("model {model}: {message}")]
    Model { model: PathBuf, message: String },

    /// A per-feature standardisation file is missing or does not match the channel.
    #[error("standardisation file {file}: {message}")]
    Standardisation { file: PathBuf, message: String },

    /// A request that cannot be carried out on this model or data (unknown parameter, value
    /// outside bounds, a scan through a region without likelihood, ...).
    #[error("{0}")]
    Analysis(String),

    /// ONNX Runtime itself could not be found or started.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    /// The on-disk ratio cache could not be read or written.
    #[error("ratio cache {path}: {message}")]
    Cache { path: PathBuf, message: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// One problem found while validating a workspace, with the YAML position it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub location: Option<SourceLocation>,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{loc}: error: {}", self.message),
            None => write!(f, "error: {}", self.message),
        }
    }
}

impl Diagnostic {
    /// The diagnostic as a warning: `file:line:column: warning: message`.
    pub fn as_warning(&self) -> String {
        match &self.location {
            Some(loc) => format!("{loc}: warning: {}", self.message),
            None => format!("warning: {}", self.message),
        }
    }
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
    lines.join("\n")
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn event_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::EventFile {
            file: file.into(),
            message: message.into(),
        }
    }

    pub fn model(model: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Model {
            model: model.into(),
            message: message.into(),
        }
    }
}
