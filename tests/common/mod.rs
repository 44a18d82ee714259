//! Shared helpers for the integration tests: paths into the example workspace, the project's
//! Python (for independent reference numbers), and small workspaces written on the fly.
#![allow(dead_code)]

pub mod slurm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example() -> PathBuf {
    root().join("workspaces/offshell_toy")
}

/// The project's Python environment, made by `make setup` (which `make test` runs first).
pub fn python() -> PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make setup` (or `make test`) first",
        python.display()
    );
    python
}

/// Runs a script from `validation/` and returns its stdout; panics with its stderr on failure.
pub fn run_validation_script(script: &str, args: &[&str]) -> String {
    let output = Command::new(python())
        .arg(root().join("validation").join(script))
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Writes `yaml` as `workspace.yaml` in `dir` and returns its path.
pub fn write_workspace(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("workspace.yaml");
    std::fs::write(&path, yaml).expect("write workspace");
    path
}

/// Runs the `nsbi` binary.
pub fn nsbi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nsbi"))
        .args(args)
        .output()
        .expect("nsbi runs")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A one-process workspace over example files, with `ratio_block` as the process's ratio
/// (indented for the `ratio:` key) and `samples` as its MC file; all paths absolute.
pub fn single_process_workspace(samples: &str, ratio_block: &str) -> String {
    let ex = example();
    format!(
        r#"parameters:
  - {{name: mu, poi: true, init: 1.0, bounds: [0, 10]}}
channels:
  - name: SR
    features: [m4l, cos_theta1, cos_theta2]
    data: {{file: {data}, group: events}}
    processes:
      - name: S
        coefficient: mu
        samples: {{file: {samples}, group: events, weight: weight}}
        ratio:
{ratio_block}
"#,
        data = ex.join("data/observed.h5").display(),
    )
}

/// Relative agreement |a − b| ≤ tol · max(|a|, |b|), with the worst offender in the message.
pub fn assert_close(label: &str, engine: &[f64], reference: &[f64], tol: f64) {
    assert_eq!(engine.len(), reference.len(), "{label}: lengths differ");
    let mut worst = (0.0f64, 0usize);
    for (i, (a, b)) in engine.iter().zip(reference).enumerate() {
        let rel = (a - b).abs() / a.abs().max(b.abs()).max(1e-300);
        if rel > worst.0 {
            worst = (rel, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= tol,
        "{label}: event {i}: engine {} vs reference {} (relative {:.3e} > {tol:.1e})",
        engine[i],
        reference[i],
        worst.0
    );
}

/// A ratio cache shared by the tests (entries are written atomically, so tests may race).
pub fn test_cache() -> nsbi::data::RatioCache {
    nsbi::data::RatioCache::new(root().join("target/test-ratio-cache"))
}

/// Loads an example workspace with its model and (cached) ratios.
pub fn example_analysis(file: &str) -> nsbi::analysis::Analysis {
    nsbi::analysis::Analysis::load(&example().join(file), &test_cache(), false).unwrap()
}

/// Asserts that `output` is a refusal (exit 1) whose stderr holds every one of `needles`;
/// returns that stderr for further checks.
pub fn assert_refused(output: &Output, needles: &[&str]) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "'{needle}' missing from:\n{text}");
    }
    text
}

/// The JSON document in the file at `path`.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs `nsbi ARGS --json FILE` (FILE in a fresh temporary folder), asserts that it succeeded
/// (printing its stderr otherwise) and returns the JSON it wrote.
pub fn nsbi_json(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let mut full = args.to_vec();
    full.extend(["--json", json.to_str().unwrap()]);
    let out = nsbi(&full);
    assert!(
        out.status.success(),
        "nsbi {}: {}",
        full.join(" "),
        stderr(&out)
    );
    read_json(&json)
}

/// The names of the entries of folder `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The 1-based number of the first line of the file at `path` that contains `needle`.
pub fn line_of(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line of {} contains '{needle}'", path.display()))
        + 1
}

/// The exact-ratio example workspace with every `(from, to)` replacement made, written to
/// `dir` as `workspace.yaml` with absolute paths.
pub fn example_with(dir: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let ex = example().display().to_string();
    let mut text = std::fs::read_to_string(example().join("workspace_exact.yaml"))
        .unwrap()
        .replace("file: data/", &format!("file: {ex}/data/"))
        .replace("models: models/", &format!("models: {ex}/models/"));
    for (from, to) in edits {
        assert!(text.contains(from), "the example has no '{from}'");
        text = text.replace(from, to);
    }
    write_workspace(dir, &text)
}

/// How a hang-guarded run of `nsbi` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exit(i32),
    Signal,
    /// Still running after the limit, and killed.
    Hang,
}

/// Runs `nsbi args` and kills it after `limit` (a hang guard, not a timing test): how it ended
/// and its stderr, read on a thread of its own so that a long message cannot block the child.
pub fn nsbi_with_limit(args: &[&str], limit: std::time::Duration) -> (Ended, String) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsbi"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nsbi starts");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let start = std::time::Instant::now();
    let ended = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().map_or(Ended::Signal, Ended::Exit);
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            break Ended::Hang;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    (ended, reader.join().unwrap())
}

/// The binned (pyhf) fixtures: workspaces and `reference.json`, pyhf 0.7.6's numbers written
/// by `validation/pyhf_reference.py`.
pub fn binned_fixtures() -> PathBuf {
    root().join("tests/fixtures/binned")
}

pub fn binned_reference() -> serde_json::Value {
    read_json(&binned_fixtures().join("reference.json"))
}

/// A reference point (`{parameter name: value}`) as values in the order of `names`.
pub fn reference_point<'a>(
    names: impl IntoIterator<Item = &'a str>,
    pars: &serde_json::Value,
) -> Vec<f64> {
    names
        .into_iter()
        .map(|name| {
            pars[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{name} missing from the reference point {pars}"))
        })
        .collect()
}

/// `nsbi import pyhf JSON --out YAML`.
pub fn import_pyhf(json: &Path, yaml: &Path) -> Output {
    nsbi(&[
        "import",
        "pyhf",
        json.to_str().unwrap(),
        "--out",
        yaml.to_str().unwrap(),
    ])
}

/// A one-bin pyhf workspace: signal `s` scaled by mu ∈ [0, 10], background `b` with a 5 %
/// normsys, `observed` events.
pub fn counting_workspace(dir: &Path, name: &str, s: f64, b: f64, observed: f64) -> PathBuf {
    let ws = serde_json::json!({
        "channels": [{"name": "sr", "samples": [
            {"name": "signal", "data": [s], "modifiers": [
                {"name": "mu", "type": "normfactor", "data": null}]},
            {"name": "background", "data": [b], "modifiers": [
                {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]}
        ]}],
        "observations": [{"name": "sr", "data": [observed]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0"
    });
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&ws).unwrap()).unwrap();
    path
}

/// pyhf's POI name and −logpdf of the pyhf JSON `json` at the best fit of an `nsbi fit --json`
/// output `fit` (parameters by name): the exported likelihood checked by pyhf itself.
pub fn pyhf_nll_at_fit(json: &Path, fit: &serde_json::Value) -> (String, f64) {
    let pars: serde_json::Map<String, serde_json::Value> = fit["parameters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["value"].clone()))
        .collect();
    let script = "import json, sys, pyhf\n\
        ws = pyhf.Workspace(json.load(open(sys.argv[1])))\n\
        m = ws.model(); pars = json.loads(sys.argv[2])\n\
        x = [pars[n] for n in m.config.par_names]\n\
        print(json.dumps({'poi': m.config.poi_name, 'nll': float(-m.logpdf(x, ws.data(m))[0])}))";
    let out = Command::new(python())
        .args([
            "-c",
            script,
            json.to_str().unwrap(),
            &serde_json::Value::Object(pars).to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pyhf: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        pyhf["poi"].as_str().unwrap().to_string(),
        pyhf["nll"].as_f64().unwrap(),
    )
}

/// Distance from `p` to the polyline through `line` (contour comparisons), in the points' units.
pub fn distance_to_polyline(p: [f64; 2], line: &[[f64; 2]]) -> f64 {
    line.windows(2)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let len2 = dx * dx + dy * dy;
            let s = if len2 > 0.0 {
                (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (x, y) = (a[0] + s * dx - p[0], a[1] + s * dy - p[1]);
            (x * x + y * y).sqrt()
        })
        .fold(f64::INFINITY, f64::min)
}

/// A converged fit at a closed-form minimum: each of `names` (the first parameters, in order)
/// within 1e-4 of `reference[name]`, and the NLL within `nll_tolerance` relative.
pub fn assert_fit_at_closed_form(
    fit: &nsbi::fit::FitResult,
    reference: &serde_json::Value,
    names: &[&str],
    nll_tolerance: f64,
) {
    assert!(fit.converged, "{}", fit.message);
    for (i, name) in names.iter().enumerate() {
        let expected = reference[name].as_f64().unwrap();
        assert!(
            (fit.theta[i] - expected).abs() < 1e-4,
            "{name}: engine {} vs closed form {expected}",
            fit.theta[i]
        );
    }
    let nll = reference["nll"].as_f64().unwrap();
    assert!(
        (fit.nll - nll).abs() < nll_tolerance * nll.abs(),
        "{} vs {nll}",
        fit.nll
    );
}

/// `nsbi scan` of `pois` over `ranges` on `workspace` (`points`: one count for both, or one per
/// POI; the tests' shared ratio cache), its JSON report written to `dir`.
pub fn scan_2d_json(
    dir: &Path,
    workspace: &Path,
    pois: [&str; 2],
    ranges: [&str; 2],
    points: &[&str],
    extra: &[&str],
) -> serde_json::Value {
    let json = dir.join("scan.json");
    let cache = root().join("target/test-ratio-cache");
    let mut args = vec![
        "scan",
        workspace.to_str().unwrap(),
        "--poi",
        pois[0],
        "--range",
        ranges[0],
        "--poi",
        pois[1],
        "--range",
        ranges[1],
    ];
    for count in points {
        args.extend(["--points", count]);
    }
    args.extend(["--json", json.to_str().unwrap()]);
    args.extend(["--cache-dir", cache.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let out = nsbi(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    read_json(&json)
}

/// The likelihood at each of a closed-form fixture's `points` (`theta`, `nll`; at least 20)
/// equals the closed form's NLL to 1e-9 relative.
pub fn assert_nll_points(like: &nsbi::likelihood::Likelihood, points: &serde_json::Value) {
    let points = points.as_array().unwrap();
    assert!(points.len() >= 20);
    for point in points {
        let theta: Vec<f64> = serde_json::from_value(point["theta"].clone()).unwrap();
        let expected = point["nll"].as_f64().unwrap();
        let engine = like.nll(&theta).nll;
        assert!(
            (engine - expected).abs() <= 1e-9 * expected.abs(),
            "NLL at {theta:?}: engine {engine} vs closed form {expected}"
        );
    }
}

/// A moment of the seed-004 mixture's posterior estimated from NUTS draws.
pub struct MixtureMoment {
    /// `E[θ²]` or `E[|θ|]`.
    pub label: &'static str,
    pub estimate: f64,
    /// The bulk ESS of the function's draws: its Monte-Carlo error is √(Var/ESS).
    pub ess: f64,
}

/// E[θ²] and E[|θ|] from the draws of θ (chains × draws) of the bimodal seed-004 posterior
/// (symmetric in θ ↔ −θ), after checking that both modes were visited (a share of θ > 0 within
/// 0.1 of ½).
pub fn mixture_moments(theta: &[Vec<f64>]) -> [MixtureMoment; 2] {
    let draws = theta.concat();
    let positive = draws.iter().filter(|&&t| t > 0.0).count() as f64 / draws.len() as f64;
    assert!(
        (positive - 0.5).abs() < 0.1,
        "share of draws with θ > 0: {positive}"
    );
    let moment = |label, f: fn(f64) -> f64| {
        let series: Vec<Vec<f64>> = theta
            .iter()
            .map(|c| c.iter().map(|&t| f(t)).collect())
            .collect();
        MixtureMoment {
            label,
            estimate: series.concat().iter().sum::<f64>() / draws.len() as f64,
            ess: nsbi::bayes::diagnostics::ess_bulk(&series),
        }
    };
    [moment("E[θ²]", |t| t * t), moment("E[|θ|]", f64::abs)]
}

/// NUTS settings of the posterior tests: `chains` × `draws` after 1 000 warm-up steps.
pub fn sampler_settings(chains: usize, draws: u64, seed: u64) -> nsbi::bayes::SamplerSettings {
    nsbi::bayes::SamplerSettings {
        chains,
        warmup: 1000,
        draws,
        seed,
        ..nsbi::bayes::SamplerSettings::default()
    }
}
