//! Workspaces: the YAML file a physicist writes, parsed ([`schema`]) and checked for internal
//! consistency. Checks that need the file system or a network (files exist, columns exist,
//! ONNX widths match) live in [`crate::validate`].

pub mod expr;
pub mod schema;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use crate::error::{Diagnostic, Error, Result, SourceLocation};
use schema::{
    ChannelSpec, ConstraintKind, EventSourceSpec, RatioSpec, UnbinnedChannelSpec, WorkspaceSpec,
};

/// A parsed workspace and where it came from (relative paths resolve against its folder).
#[derive(Debug)]
pub struct Workspace {
    pub path: PathBuf,
    pub spec: WorkspaceSpec,
}

/// One ratio ensemble of a workspace, with a label saying where it sits
/// (`channel/process` or `channel/process/systematic:up`).
#[derive(Debug, Clone, Copy)]
pub struct EnsembleRef<'w> {
    pub channel: &'w UnbinnedChannelSpec,
    pub process: &'w str,
    pub variation: Option<(&'w str, Direction)>,
    pub spec: &'w RatioSpec,
}

impl EnsembleRef<'_> {
    /// `channel/process` for nominal ratios, `channel/process/systematic:up|down` for shapes.
    pub fn label(&self) -> String {
        let base = format!("{}/{}", self.channel.name.value, self.process);
        match self.variation {
            None => base,
            Some((syst, dir)) => format!("{base}/{syst}:{dir}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Up => "up",
            Direction::Down => "down",
        })
    }
}

/// The role of an event file in a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRole {
    Observed,
    Reference,
    Process(String),
}

impl std::fmt::Display for EventRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventRole::Observed => f.write_str("observed data"),
            EventRole::Reference => f.write_str("reference sample"),
            EventRole::Process(p) => write!(f, "{p} sample"),
        }
    }
}

impl Workspace {
    /// Reads and parses `path`, then runs the internal-consistency checks; every problem found
    /// is reported at once, each with its line and column.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::io(format!("cannot read workspace {}", path.display()), e))?;
        let mut text = utf8_text(&path, bytes)?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            // A pyhf workspace (its first measurement): the same YAML `nsbi import pyhf` writes.
            text = crate::binned::io::pyhf_as_yaml(&path, &text)?;
        }
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim().starts_with('#'))
        {
            return Err(Error::YamlSyntax {
                file: path.clone(),
                message: format!(
                    "workspace file {} is empty; expected a YAML mapping with parameters and channels",
                    path.display()
                ),
            });
        }
        let kinds = schema::channel_kinds(&text);
        let spec = schema::parse_with_kinds(&text, kinds).map_err(|e| Error::YamlSyntax {
            file: path.clone(),
            message: e.to_string(),
        })?;
        let workspace = Workspace { path, spec };
        let problems = workspace.consistency_problems();
        if problems.is_empty() {
            Ok(workspace)
        } else {
            Err(Error::Workspace(problems))
        }
    }

    /// The folder relative paths are taken from.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    pub fn resolve(&self, relative: &str) -> PathBuf {
        self.dir().join(relative)
    }

    /// Where a spanned value came from in the YAML (None for defaults that were not written).
    pub fn location<T>(&self, value: &Spanned<T>) -> Option<SourceLocation> {
        let loc = value.referenced;
        (loc != serde_saphyr::Location::UNKNOWN).then(|| SourceLocation {
            file: self.path.clone(),
            line: loc.line(),
            column: loc.column(),
        })
    }

    pub fn diagnostic<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            location: self.location(at),
            message: message.into(),
        }
    }

    pub fn parameter_names(&self) -> Vec<&str> {
        self.spec
            .parameters
            .iter()
            .map(|p| p.name.value.as_str())
            .collect()
    }

    /// Every ratio ensemble of every channel, nominal ones first within a process.
    pub fn ensembles(&self) -> Vec<EnsembleRef<'_>> {
        let mut out = Vec::new();
        for channel in self.spec.unbinned_channels() {
            for process in &channel.processes {
                out.push(EnsembleRef {
                    channel,
                    process: &process.name.value,
                    variation: None,
                    spec: &process.ratio,
                });
                for syst in &process.systematics {
                    if let Some(shape) = &syst.shape {
                        for (dir, spec) in
                            [(Direction::Up, &shape.up), (Direction::Down, &shape.down)]
                        {
                            out.push(EnsembleRef {
                                channel,
                                process: &process.name.value,
                                variation: Some((&syst.name.value, dir)),
                                spec,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Every event file of a channel with its role: observed data, reference, process samples.
    pub fn event_sources<'c>(
        &self,
        channel: &'c UnbinnedChannelSpec,
    ) -> Vec<(EventRole, &'c EventSourceSpec)> {
        let mut out = vec![(EventRole::Observed, &channel.data)];
        if let Some(reference) = &channel.reference {
            out.push((EventRole::Reference, reference));
        }
        for process in &channel.processes {
            out.push((
                EventRole::Process(process.name.value.clone()),
                &process.samples,
            ));
        }
        out
    }

    /// The model files of an ensemble: each pattern is a path or a glob relative to the
    /// workspace; a pattern that matches nothing is an error at its YAML position.
    pub fn model_paths(&self, spec: &RatioSpec) -> std::result::Result<Vec<PathBuf>, Diagnostic> {
        let mut paths = Vec::new();
        for pattern in spec.models.value.patterns() {
            let full = self.resolve(pattern);
            let full_text = full.to_string_lossy().into_owned();
            let matched: Vec<PathBuf> = match glob::glob(&full_text) {
                Ok(found) => found.filter_map(|p| p.ok()).collect(),
                Err(e) => {
                    return Err(self.diagnostic(
                        &spec.models,
                        format!("invalid model pattern '{pattern}': {e}"),
                    ))
                }
            };
            if matched.is_empty() {
                return Err(self.diagnostic(
                    &spec.models,
                    format!("model file '{pattern}' not found (looked for {full_text})"),
                ));
            }
            paths.extend(matched);
        }
        Ok(paths)
    }

    fn consistency_problems(&self) -> Vec<Diagnostic> {
        let mut problems = self.parameter_problems();
        problems.extend(self.unused_free_parameters());
        let names = self.parameter_names();
        let mut channel_names = HashSet::new();
        for channel in &self.spec.channels {
            let name = channel.name();
            if !channel_names.insert(name) {
                let message = format!("channel '{name}' is declared twice");
                problems.push(match channel.spanned_name() {
                    Some(spanned) => self.diagnostic(spanned, message),
                    None => Diagnostic {
                        location: None,
                        message: format!("{}: {message}", self.path.display()),
                    },
                });
            }
            // Binned channels are checked when their model is built (binned::model), with
            // pyhf's rules and paths.
            if let ChannelSpec::Unbinned(unbinned) = channel {
                problems.extend(self.channel_problems(unbinned, &names));
            }
        }
        if self.spec.channels.is_empty() {
            problems.push(Diagnostic {
                location: Some(SourceLocation {
                    file: self.path.clone(),
                    line: 1,
                    column: 1,
                }),
                message: "the workspace declares no channels".into(),
            });
        }
        problems
    }

    fn parameter_problems(&self) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        // Names of binned modifiers' parameters come from pyhf, where any string is allowed;
        // only names a coefficient expression can refer to must be identifiers.
        let binned = self.binned_parameter_names();
        let mut seen = HashSet::new();
        for p in &self.spec.parameters {
            let name = &p.name.value;
            if !seen.insert(name.as_str()) {
                problems.push(
                    self.diagnostic(&p.name, format!("parameter '{name}' is declared twice")),
                );
            }
            if !is_identifier(name) && !binned.contains(name.as_str()) {
                problems.push(self.diagnostic(
                    &p.name,
                    format!("parameter name '{name}' must be letters, digits and '_' and start with a letter"),
                ));
            }
            if let Some(bounds) = &p.bounds {
                let pairs = bounds.value.pairs();
                let ordered = pairs
                    .as_ref()
                    .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|[lo, hi]| lo < hi));
                if !ordered {
                    problems.push(self.diagnostic(
                        bounds,
                        format!(
                            "bounds of '{name}' must be [low, high] with low < high (or one such \
                             pair per bin of a per-bin parameter), got {:?}",
                            bounds.value
                        ),
                    ));
                } else if let (Some((lo, hi)), Some(init)) = (bounds.value.single(), &p.init) {
                    if !(lo..=hi).contains(&init.value) {
                        problems.push(self.diagnostic(
                            init,
                            format!(
                                "init {} of '{name}' lies outside its bounds [{lo}, {hi}]",
                                init.value
                            ),
                        ));
                    }
                }
            }
            if !binned.contains(name.as_str()) {
                problems.extend(self.per_bin_settings_problems(p));
            }
            if p.poi
                && p.constraint
                    .as_ref()
                    .is_some_and(|c| c.value == ConstraintKind::Gaussian)
            {
                problems.push(self.diagnostic(
                    &p.name,
                    format!("parameter of interest '{name}' cannot carry a constraint"),
                ));
            }
        }
        if !self.spec.parameters.iter().any(|p| p.poi) {
            problems.push(Diagnostic {
                location: Some(SourceLocation {
                    file: self.path.clone(),
                    line: 1,
                    column: 1,
                }),
                message: "no parameter of interest: mark one parameter with `poi: true`".into(),
            });
        }
        problems
    }

    /// Errors for settings only parameters of binned modifiers take (per-bin lists, a
    /// Poisson's rate factors) on a parameter that none drives.
    fn per_bin_settings_problems(&self, p: &schema::ParameterSpec) -> Vec<Diagnostic> {
        let name = &p.name.value;
        let mut problems = Vec::new();
        let only_binned = |what: &str| {
            format!(
                "'{name}' is not a parameter of binned modifiers, so it takes no {what}: those \
                 are per bin of a staterror, shapesys or shapefactor (or a shapesys's factors)"
            )
        };
        if let Some(inits) = &p.inits {
            problems.push(self.diagnostic(inits, only_binned("`inits` list (use `init`)")));
        }
        if let Some(factors) = &p.factors {
            problems.push(self.diagnostic(factors, only_binned("`factors`")));
        }
        if let Some(bounds) = &p.bounds {
            if bounds.value.pairs().is_some() && bounds.value.single().is_none() {
                problems.push(self.diagnostic(bounds, only_binned("bounds per bin")));
            }
        }
        for list in [&p.auxdata, &p.sigmas].into_iter().flatten() {
            if !is_constrained(p) {
                problems.push(self.diagnostic(
                    list,
                    format!("'{name}' has no constraint, so no global observable or width"),
                ));
            } else if list.value.len() != 1 || !list.value[0].is_finite() {
                problems.push(self.diagnostic(
                    list,
                    format!(
                        "'{name}' is one number: give one finite value here, got {:?}",
                        list.value
                    ),
                ));
            }
        }
        if let Some(sigmas) = &p.sigmas {
            if sigmas.value.iter().any(|&s| s <= 0.0) {
                problems
                    .push(self.diagnostic(sigmas, format!("the width of '{name}' must be > 0")));
            }
        }
        problems
    }

    fn channel_problems(&self, channel: &UnbinnedChannelSpec, names: &[&str]) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        if channel.kind.value != "unbinned" {
            problems.push(self.diagnostic(
                &channel.kind,
                format!(
                    "channel type '{}' is not supported (expected 'unbinned')",
                    channel.kind.value
                ),
            ));
        }
        let mut features = HashSet::new();
        for f in &channel.features.value {
            if !features.insert(f.value.as_str()) {
                problems.push(self.diagnostic(f, format!("feature '{}' is listed twice", f.value)));
            }
        }
        if channel.features.value.is_empty() {
            problems
                .push(self.diagnostic(&channel.features, "a channel needs at least one feature"));
        }
        if channel.processes.is_empty() {
            problems.push(self.diagnostic(&channel.name, "a channel needs at least one process"));
        }
        let mut process_names = HashSet::new();
        for process in &channel.processes {
            if !process_names.insert(process.name.value.as_str()) {
                problems.push(self.diagnostic(
                    &process.name,
                    format!(
                        "process '{}' is declared twice in channel '{}'",
                        process.name.value, channel.name.value
                    ),
                ));
            }
            if let Err(e) = expr::Expr::parse(&process.coefficient.value, names) {
                problems.push(self.diagnostic(
                    &process.coefficient,
                    format!(
                        "in coefficient '{}' of process '{}': {e}",
                        process.coefficient.value, process.name.value
                    ),
                ));
            }
            if let Some(y) = &process.nominal_yield {
                if !(y.value.is_finite() && y.value >= 0.0) {
                    problems.push(self.diagnostic(
                        y,
                        format!("yield must be a finite number ≥ 0, got {}", y.value),
                    ));
                }
            }
            problems.extend(self.systematic_problems(process));
        }
        problems
    }

    fn systematic_problems(&self, process: &schema::ProcessSpec) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        for syst in &process.systematics {
            let name = &syst.name.value;
            match self.spec.parameters.iter().find(|p| &p.name.value == name) {
                None => problems.push(self.diagnostic(
                    &syst.name,
                    format!("systematic '{name}' of process '{}' has no parameter: declare '{name}' under `parameters`", process.name.value),
                )),
                Some(p) if p.poi => problems.push(self.diagnostic(
                    &syst.name,
                    format!("systematic '{name}' is driven by a parameter of interest; it needs a nuisance parameter"),
                )),
                Some(_) => {}
            }
            if syst.yield_factors.is_none() && syst.shape.is_none() {
                problems.push(self.diagnostic(
                    &syst.name,
                    format!("systematic '{name}' has neither `yield` nor `shape`"),
                ));
            }
            if let Some(y) = &syst.yield_factors {
                let (up, down) = (y.value.up, y.value.down);
                let (low, high) = YIELD_FACTOR_RANGE;
                if ![up, down].iter().all(|f| (low..=high).contains(f)) {
                    problems.push(self.diagnostic(
                        y,
                        format!(
                            "yield factors of '{name}' on process '{}' must be finite and in \
                             [{low:e}, {high:e}], got up={up}, down={down}",
                            process.name.value
                        ),
                    ));
                }
            }
        }
        problems
    }

    /// The parameters something uses: a coefficient expression, a systematic, a modifier.
    fn used_parameters(&self) -> HashSet<&str> {
        let mut names = self.parameter_names();
        names.extend(
            self.spec
                .channels
                .iter()
                .flat_map(|c| c.declared_parameters()),
        );
        self.spec
            .channels
            .iter()
            .flat_map(|c| c.used_parameters(&names))
            .collect()
    }

    /// The listed parameters the binned samples' coefficients name (a coefficient that does
    /// not parse is reported when the binned model is built).
    pub fn binned_coefficient_names(&self) -> HashSet<&str> {
        let mut names = self.parameter_names();
        names.extend(self.binned_parameter_names());
        let mut used = HashSet::new();
        for sample in self.spec.binned_channels().flat_map(|c| &c.samples) {
            if let Some(Ok(expr)) = sample
                .coefficient
                .as_ref()
                .map(|text| expr::Expr::parse(text, &names))
            {
                used.extend(expr.parameters().into_iter().map(|i| names[i]));
            }
        }
        used
    }

    /// The parameters the binned channels' modifiers are driven by.
    pub fn binned_parameter_names(&self) -> HashSet<&str> {
        self.spec
            .binned_channels()
            .flat_map(|c| &c.samples)
            .flat_map(|s| &s.modifiers)
            .map(|m| m.name())
            .collect()
    }

    /// Errors for free parameters (not fixed, not constrained) that nothing uses: such a
    /// parameter has no effect on the likelihood, a zero row in the Hessian, so no fit can
    /// converge with errors.
    fn unused_free_parameters(&self) -> Vec<Diagnostic> {
        let used = self.used_parameters();
        self.spec
            .parameters
            .iter()
            .filter(|p| !p.fixed && !is_constrained(p) && !used.contains(p.name.value.as_str()))
            .map(|p| {
                self.diagnostic(
                    &p.name,
                    format!(
                        "parameter '{}' is free, but no coefficient or systematic uses it: it \
                         has no effect on the likelihood (its Hessian row is zero, so no fit \
                         converges); use it, remove it, or mark it `fixed: true`",
                        p.name.value
                    ),
                )
            })
            .collect()
    }

    /// Warnings for constrained nuisance parameters that nothing uses: harmless (their
    /// constraint holds them at the global observable) but useless.
    pub fn unused_constrained_parameters(&self) -> Vec<Diagnostic> {
        let used = self.used_parameters();
        self.spec
            .parameters
            .iter()
            .filter(|p| !p.fixed && is_constrained(p) && !used.contains(p.name.value.as_str()))
            .map(|p| {
                self.diagnostic(
                    &p.name,
                    format!(
                        "nuisance parameter '{}' is constrained, but no coefficient or \
                         systematic uses it: it has no effect on any result",
                        p.name.value
                    ),
                )
            })
            .collect()
    }
}

/// Whether a parameter carries a Gaussian constraint: nuisances do unless `constraint: none`,
/// parameters of interest never.
/// The yield factors δ± a systematic may declare: a million-fold change or more is a typing
/// error, and the fit could not use it (the curvature in α vanishes or overflows, and Newton
/// would stop with a Hessian that names no parameter).
const YIELD_FACTOR_RANGE: (f64, f64) = (1e-6, 1e6);

pub fn is_constrained(p: &schema::ParameterSpec) -> bool {
    !p.poi
        && p.constraint
            .as_ref()
            .is_none_or(|c| c.value == ConstraintKind::Gaussian)
}

/// The workspace text, or an error that points at the first byte that is not UTF-8 (a file
/// saved as Latin-1 or Windows-1252 usually), with its line and column, so that it can be found.
fn utf8_text(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let offset = e.utf8_error().valid_up_to();
        let before = &bytes[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        Error::YamlSyntax {
            file: path.to_path_buf(),
            message: format!(
                "byte 0x{:02X} at byte offset {offset} (line {line}, column {column}) is not UTF-8: \
                 save the workspace as UTF-8",
                bytes[offset]
            ),
        }
    })
}

/// The default starting value of a parameter: 0 for constrained nuisances, 1 otherwise.
pub fn default_init(p: &schema::ParameterSpec) -> f64 {
    if is_constrained(p) {
        0.0
    } else {
        1.0
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic())
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}
