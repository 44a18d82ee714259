//! A deterministic mutation fuzzer: the example workspace (`workspace_exact.yaml`, with small
//! copies of its event files) is damaged in many ways — lines deleted or duplicated, numbers
//! replaced by 0, −1, 1e300, NaN, ∞, keys swapped, paths changed, the text truncated, bad bytes
//! inserted; event files truncated, given NaN/∞ values, wrong types, missing columns, no events
//! — and `nsbi validate`, `fit` and (every few cases) `scan` run on each. Every run must end
//! with exit code 0, or 1 with a message that names a file or a parameter; never a panic
//! (exit code 101), never a signal, never a hang (killed after [`HANG_LIMIT`]).
//!
//! The case list comes from a ChaCha8 stream with a fixed seed: the same cases on every run.
//! The counts are printed at the end (`cargo test --release --test fuzz -- --nocapture`).
//! For a longer exploration, `NSBI_FUZZ_CASES` and `NSBI_FUZZ_SEED` override the CI defaults.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{nsbi_with_limit, Ended};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEED: u64 = 20261201;
/// Mutated workspaces; each runs `validate` and `fit`, and every fourth one `scan` as well.
const CASES: usize = 400;
/// MC events kept per event file (the observed file keeps all its ≈2000).
const EVENTS: usize = 2000;
/// A run still going after this long is a hang.
const HANG_LIMIT: Duration = Duration::from_secs(20);
const THREADS: usize = 2;

const EVENT_FILES: [&str; 7] = [
    "observed",
    "mc_ref",
    "mc_S",
    "mc_SBI",
    "mc_B",
    "mc_B_shape_up",
    "mc_B_shape_down",
];
const MODELS: [&str; 5] = ["S", "SBI", "B", "B_shape_up", "B_shape_down"];
const PARAMETERS: [&str; 3] = ["mu", "alpha_eff", "alpha_shape"];
const NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1",
    "1e300",
    "-1e300",
    "1e-300",
    "nan",
    ".nan",
    "inf",
    ".inf",
    "-.inf",
    "1e400",
    "99999999999999999999999",
    "0x10",
];
const KEYS: [&str; 24] = [
    "name",
    "poi",
    "init",
    "bounds",
    "constraint",
    "fixed",
    "type",
    "features",
    "data",
    "reference",
    "file",
    "group",
    "weight",
    "processes",
    "coefficient",
    "samples",
    "ratio",
    "models",
    "output",
    "convention",
    "systematics",
    "yield",
    "interpolation",
    "shape",
];
const BAD_BYTES: [&[u8]; 12] = [
    b"\xff",
    b"\x00",
    b"\xc3",
    b"\t",
    b"\r",
    b"{",
    b"[",
    b":",
    b"&a",
    b"*a",
    b"\"",
    b"!!binary ",
];

/// One column of a small event file: its values and whether it is stored as float32.
#[derive(Clone)]
struct Column {
    name: String,
    values: Vec<f64>,
    single: bool,
}

/// The small copy of the example: event files, exact models, the workspace text.
struct Fixture {
    dir: PathBuf,
    yaml: String,
    events: Vec<(String, Vec<Column>)>,
}

impl Fixture {
    fn new(dir: &Path) -> Fixture {
        let example = common::example();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let mut events = Vec::new();
        for name in EVENT_FILES {
            let columns = read_columns(&example.join(format!("data/{name}.h5")), EVENTS);
            write_events(&dir.join(format!("data/{name}.h5")), &columns, "events");
            events.push((name.to_string(), columns));
        }
        for model in MODELS {
            let to = dir.join(format!("models/{model}"));
            std::fs::create_dir_all(&to).unwrap();
            let from = example.join(format!("models/{model}/exact.onnx"));
            std::fs::copy(from, to.join("exact.onnx")).unwrap();
        }
        let yaml = std::fs::read_to_string(example.join("workspace_exact.yaml")).unwrap();
        Fixture {
            dir: dir.to_path_buf(),
            yaml,
            events,
        }
    }
}

fn read_columns(path: &Path, keep: usize) -> Vec<Column> {
    let file = hdf5::File::open(path).unwrap();
    let group = file.group("events").unwrap();
    let mut columns = Vec::new();
    for name in group.member_names().unwrap() {
        let dataset = group.dataset(&name).unwrap();
        let mut values = dataset.read_raw::<f64>().unwrap();
        values.truncate(keep);
        columns.push(Column {
            name,
            values,
            single: dataset.dtype().unwrap().size() == 4,
        });
    }
    columns
}

fn write_events(path: &Path, columns: &[Column], group: &str) {
    let file = hdf5::File::create(path).unwrap();
    let group = file.create_group(group).unwrap();
    for c in columns {
        let builder = group.new_dataset_builder();
        if c.single {
            let data: Vec<f32> = c.values.iter().map(|&v| v as f32).collect();
            builder
                .with_data(&data[..])
                .create(c.name.as_str())
                .unwrap();
        } else {
            builder
                .with_data(&c.values[..])
                .create(c.name.as_str())
                .unwrap();
        }
    }
}

/// One fuzz case: what was done (for the report) and the workspace it produced.
struct Case {
    index: usize,
    description: String,
    workspace: PathBuf,
}

/// Draws case `index`: one to three mutations of the workspace text, sometimes of an event
/// file it names.
fn make_case(fixture: &Fixture, index: usize, rng: &mut ChaCha8Rng) -> Case {
    let mut text = fixture.yaml.clone().into_bytes();
    let mut done = Vec::new();
    for _ in 0..rng.random_range(1..=3) {
        done.push(mutate(fixture, index, &mut text, rng));
    }
    let workspace = fixture.dir.join(format!("case_{index}.yaml"));
    std::fs::write(&workspace, &text).unwrap();
    Case {
        index,
        description: done.join("; "),
        workspace,
    }
}

fn mutate(fixture: &Fixture, index: usize, text: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let line = rng.random_range(0..lines.len());
    let description = match rng.random_range(0..9) {
        0 => {
            let removed = lines.remove(line);
            format!(
                "deleted line {}: {}",
                line + 1,
                String::from_utf8_lossy(&removed)
            )
        }
        1 => {
            lines.insert(line, lines[line].clone());
            format!("duplicated line {}", line + 1)
        }
        2 | 3 => return replace_number(text, rng),
        4 => return swap_key(text, rng),
        5 => return change_path(fixture, text, rng),
        6 => {
            let at = rng.random_range(0..text.len());
            text.truncate(at);
            return format!("truncated at byte {at}");
        }
        7 => {
            let at = rng.random_range(0..=text.len());
            let bytes = BAD_BYTES.choose(rng).unwrap();
            text.splice(at..at, bytes.iter().copied());
            return format!("inserted {bytes:?} at byte {at}");
        }
        _ => return mutate_event_file(fixture, index, text, rng),
    };
    *text = lines.join(&b'\n');
    description
}

/// Byte ranges of the numbers in `text` (a digit run, with a leading '-' and '.', 'e').
fn numbers(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let starts = text[i].is_ascii_digit() && (i == 0 || !text[i - 1].is_ascii_alphanumeric());
        if starts {
            let start = if i > 0 && text[i - 1] == b'-' {
                i - 1
            } else {
                i
            };
            while i < text.len() && (text[i].is_ascii_digit() || b".eE".contains(&text[i])) {
                i += 1;
            }
            out.push((start, i));
        } else {
            i += 1;
        }
    }
    out
}

fn replace_number(text: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    let found = numbers(text);
    let Some(&(a, b)) = found.choose(rng) else {
        return "no number to replace".into();
    };
    let new = NUMBERS.choose(rng).unwrap();
    let old = String::from_utf8_lossy(&text[a..b]).into_owned();
    text.splice(a..b, new.bytes());
    format!("number {old} at byte {a} -> {new}")
}

fn swap_key(text: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    let (old, new) = (KEYS.choose(rng).unwrap(), KEYS.choose(rng).unwrap());
    let pattern = format!("{old}:");
    let hits: Vec<usize> = text
        .windows(pattern.len())
        .enumerate()
        .filter(|(i, w)| {
            *w == pattern.as_bytes() && (*i == 0 || !text[i - 1].is_ascii_alphanumeric())
        })
        .map(|(i, _)| i)
        .collect();
    let Some(&at) = hits.choose(rng) else {
        return format!("no key {old}");
    };
    text.splice(at..at + old.len(), new.bytes());
    format!("key {old} at byte {at} -> {new}")
}

/// Replaces one file path of the workspace by a bad one: missing, a folder, a file of the
/// wrong kind, an empty file, a device.
fn change_path(fixture: &Fixture, text: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    let empty = fixture.dir.join("empty_file");
    std::fs::write(&empty, b"").unwrap();
    let paths: Vec<String> = EVENT_FILES
        .iter()
        .map(|f| format!("data/{f}.h5"))
        .chain(MODELS.iter().map(|m| format!("models/{m}/exact.onnx")))
        .collect();
    let replacements = [
        "data/missing.h5".to_string(),
        "data".into(),
        "models/S/exact.onnx".into(),
        "data/mc_S.h5".into(),
        "case_0.yaml".into(),
        empty.display().to_string(),
        "/dev/null".into(),
        "models/*/exact.onnx".into(),
        "models/[".into(),
        "".into(),
    ];
    let old = paths.choose(rng).unwrap();
    let new = replacements.choose(rng).unwrap();
    let replaced = String::from_utf8_lossy(text).replacen(old.as_str(), new, 1);
    *text = replaced.into_bytes();
    format!("path {old} -> '{new}'")
}

/// Writes a damaged copy of one event file and points the workspace at it.
fn mutate_event_file(
    fixture: &Fixture,
    index: usize,
    text: &mut Vec<u8>,
    rng: &mut ChaCha8Rng,
) -> String {
    let (name, base) = fixture.events.choose(rng).unwrap();
    let target = format!("data/case_{index}_{}_{name}.h5", rng.random::<u32>());
    let path = fixture.dir.join(&target);
    let mut columns = base.clone();
    let k = rng.random_range(0..columns.len());
    let column = columns[k].name.clone();
    let n = columns[k].values.len();
    let what = match rng.random_range(0..9) {
        0 => {
            let bytes = std::fs::read(fixture.dir.join(format!("data/{name}.h5"))).unwrap();
            let at = rng.random_range(0..bytes.len());
            std::fs::write(&path, &bytes[..at]).unwrap();
            format!("truncated at byte {at}")
        }
        kind => {
            let mut group = "events";
            let what = match kind {
                1 | 2 => {
                    let i = rng.random_range(0..n);
                    let bad = *[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300]
                        .choose(rng)
                        .unwrap();
                    columns[k].values[i] = bad;
                    format!("column {column}[{i}] = {bad}")
                }
                3 => {
                    columns.remove(k);
                    format!("column {column} removed")
                }
                4 => {
                    columns.iter_mut().for_each(|c| c.values.clear());
                    "no events".to_string()
                }
                5 => {
                    let keep = rng.random_range(0..n);
                    columns[k].values.truncate(keep);
                    format!("column {column} cut to {keep} entries")
                }
                6 => {
                    group = "evts";
                    "group renamed".to_string()
                }
                _ => {
                    columns[k].single = !columns[k].single;
                    columns[k].values.iter_mut().for_each(|v| *v *= 1e40);
                    format!("column {column} scaled by 1e40 and retyped")
                }
            };
            write_events(&path, &columns, group);
            if kind == 8 {
                write_odd_column(&path, group, &column, rng);
            }
            what
        }
    };
    let old = format!("data/{name}.h5");
    let replaced = String::from_utf8_lossy(text).replace(old.as_str(), &target);
    *text = replaced.into_bytes();
    format!("event file {old}: {what}")
}

/// Replaces a column by one of another shape or type: integers, 2-D, a group.
fn write_odd_column(path: &Path, group: &str, column: &str, rng: &mut ChaCha8Rng) {
    let file = hdf5::File::open_rw(path).unwrap();
    let group = file.group(group).unwrap();
    group.unlink(column).unwrap();
    match rng.random_range(0..3) {
        0 => {
            let data: Vec<i32> = (0..100).collect();
            group
                .new_dataset_builder()
                .with_data(&data[..])
                .create(column)
                .unwrap();
        }
        1 => {
            let data = ndarray::Array2::<f64>::ones((10, 3));
            group
                .new_dataset_builder()
                .with_data(&data)
                .create(column)
                .unwrap();
        }
        _ => {
            group.create_group(column).unwrap();
        }
    }
}

/// Runs `nsbi args` with the hang limit.
fn run(args: &[&str]) -> (Ended, String) {
    nsbi_with_limit(args, HANG_LIMIT)
}

/// Whether an error message says where the problem is: a file of the case (or the device a
/// path was changed to), a parameter (as a word), or the channel.
fn located(message: &str, dir: &Path) -> bool {
    let mut words = message.split(|c: char| !(c.is_alphanumeric() || c == '_'));
    message.contains(&dir.display().to_string())
        || message.contains("/dev/null")
        || message.contains("channel SR")
        || words.any(|w| PARAMETERS.contains(&w))
}

#[derive(Default)]
struct Tally {
    cases: usize,
    runs: usize,
    exit0: usize,
    exit1: usize,
    panics: usize,
    signals: usize,
    hangs: usize,
    unlocated: usize,
    failures: Vec<String>,
}

fn check_case(case: &Case, fixture: &Fixture, tally: &Mutex<Tally>) {
    let ws = case.workspace.to_str().unwrap();
    let cache = fixture.dir.join("cache");
    let cache = cache.to_str().unwrap();
    let mut commands = vec![vec!["validate", ws], vec!["fit", ws, "--cache-dir", cache]];
    if case.index.is_multiple_of(4) {
        commands.push(vec![
            "scan",
            ws,
            "--poi",
            "mu",
            "--range",
            "0.5:1.5",
            "--points",
            "3",
            "--cache-dir",
            cache,
        ]);
    }
    for args in commands {
        let (outcome, message) = run(&args);
        let mut t = tally.lock().unwrap();
        t.runs += 1;
        let problem = match outcome {
            Ended::Exit(0) => {
                t.exit0 += 1;
                None
            }
            Ended::Exit(1) if located(&message, &fixture.dir) => {
                t.exit1 += 1;
                None
            }
            Ended::Exit(1) => {
                t.exit1 += 1;
                t.unlocated += 1;
                Some("error message names no file or parameter")
            }
            Ended::Exit(101) => {
                t.panics += 1;
                Some("panic")
            }
            Ended::Exit(_) => Some("unexpected exit code"),
            Ended::Signal => {
                t.signals += 1;
                Some("killed by a signal")
            }
            Ended::Hang => {
                t.hangs += 1;
                Some("hang")
            }
        };
        if let Some(problem) = problem {
            let tail: String = message.lines().take(6).collect::<Vec<_>>().join("\n    ");
            t.failures.push(format!(
                "case {} [{}] {problem} ({outcome:?}): nsbi {}\n    {tail}",
                case.index,
                case.description,
                args.join(" ")
            ));
        }
    }
}

#[test]
fn mutated_workspaces_and_event_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Fixture::new(dir.path());
    let setting = |name: &str, default: u64| {
        std::env::var(name).map_or(default, |v| v.parse().expect("a whole number"))
    };
    let mut rng = ChaCha8Rng::seed_from_u64(setting("NSBI_FUZZ_SEED", SEED));
    let cases: Vec<Case> = (0..setting("NSBI_FUZZ_CASES", CASES as u64) as usize)
        .map(|i| make_case(&fixture, i, &mut rng))
        .collect();
    let started = Instant::now();
    let tally = Mutex::new(Tally {
        cases: cases.len(),
        ..Tally::default()
    });
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                check_case(case, &fixture, &tally);
            });
        }
    });
    let t = tally.into_inner().unwrap();
    println!(
        "fuzz: {} cases, {} runs in {:.1} s: exit 0: {}, exit 1: {} ({} unlocated), \
         panics: {}, signals: {}, hangs: {}",
        t.cases,
        t.runs,
        started.elapsed().as_secs_f64(),
        t.exit0,
        t.exit1,
        t.unlocated,
        t.panics,
        t.signals,
        t.hangs
    );
    if !t.failures.is_empty() {
        let kept = dir.keep();
        panic!(
            "{} failing run(s); inputs kept in {}:\n{}",
            t.failures.len(),
            kept.display(),
            t.failures.join("\n")
        );
    }
}
