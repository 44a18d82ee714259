//! Ratio evaluation on a farm: `nsbi batch slurm W --ratios` shards every incomplete cache
//! entry by event ranges into parts; the command that next reads the cache assembles them into
//! entries bit-identical to the single-process ones, refusing damaged or foreign parts by name.
//! Run for real on a private single-node Slurm (`.ci/slurm.sh`, skipped with the reason where
//! it cannot be brought up), by hand without a scheduler, and as an HTCondor submit file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// One test at a time: a child process started while another test's thread has an HDF5 file
/// open inherits its descriptor, and with it HDF5's lock on the file, for as long as it runs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Events of the small MC sample: five ONNX batches of 1024, the last one short.
const N_SAMPLE: usize = 5000;

/// A one-process workspace with the example's trained S ensemble (five MLPs with
/// standardisation) on the observed data (2023 events) and the first 5000 events of the S MC.
fn small_workspace(dir: &Path) -> PathBuf {
    let ex = example();
    copy_events(&ex.join("data/mc_S.h5"), &dir.join("sample.h5"), N_SAMPLE);
    let yaml = format!(
        r#"parameters:
  - {{name: mu, poi: true, init: 1.0, bounds: [0, 10]}}
channels:
  - name: SR
    features: [m4l, cos_theta1, cos_theta2]
    data: {{file: {data}, group: events}}
    processes:
      - name: S
        coefficient: mu
        samples: {{file: {sample}, group: events, weight: weight}}
        ratio:
          output: probabilities
          column: 1
          convention: score
          aggregation: mean_ratio
          models: {models}/member_*.onnx
          standardisation: {models}/standardisation.json
"#,
        data = ex.join("data/observed.h5").display(),
        sample = dir.join("sample.h5").display(),
        models = ex.join("models/S").display(),
    );
    write_workspace(dir, &yaml)
}

/// The first `n` events (features and weight) of an example event file.
fn copy_events(from: &Path, to: &Path, n: usize) {
    let source = hdf5::File::open(from).unwrap().group("events").unwrap();
    let file = hdf5::File::create(to).unwrap();
    let group = file.create_group("events").unwrap();
    for name in ["m4l", "cos_theta1", "cos_theta2", "weight"] {
        let column: Vec<f64> = source.dataset(name).unwrap().read_raw().unwrap();
        group
            .new_dataset_builder()
            .with_data(&column[..n])
            .create(name)
            .unwrap();
    }
}

/// Every complete entry of a cache folder: name → (ratio bits, spread bits, checksum).
type Entries = BTreeMap<String, (Vec<u64>, Vec<u64>, String)>;

fn entries(cache: &Path) -> Entries {
    file_names(cache)
        .into_iter()
        .filter(|name| name.ends_with(".h5") && !name.contains(".events-"))
        .map(|name| {
            let file = hdf5::File::open(cache.join(&name)).unwrap();
            let bits = |column: &str| -> Vec<u64> {
                let values: Vec<f64> = file.dataset(column).unwrap().read_raw().unwrap();
                values.iter().map(|x| x.to_bits()).collect()
            };
            let checksum: hdf5::types::VarLenUnicode =
                file.attr("checksum").unwrap().read_scalar().unwrap();
            let entry = (bits("ratio"), bits("spread"), checksum.to_string());
            (name, entry)
        })
        .collect()
}

/// The part files of a cache folder (names ending `.events-START-END.h5`).
fn parts(cache: &Path) -> Vec<String> {
    file_names(cache)
        .into_iter()
        .filter(|name| name.contains(".events-") && !name.starts_with('.'))
        .collect()
}

/// The part of the MC sample's entry for `range` ("START-END"): the sample's entry is the one
/// with a part that ends at its 5000th event.
fn sample_part(cache: &Path, range: &str) -> PathBuf {
    let last = format!(".events-3072-{N_SAMPLE}.h5");
    let key = parts(cache)
        .into_iter()
        .find_map(|n| n.strip_suffix(&last).map(str::to_string))
        .unwrap_or_else(|| panic!("no part ends at event {N_SAMPLE}: {:?}", parts(cache)));
    cache.join(format!("{key}.events-{range}.h5"))
}

fn ratios(ws: &Path, cache: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "ratios",
        ws.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    nsbi(&args)
}

/// The single-process cache of the workspace, made in `cache`.
fn single_process_entries(ws: &Path, cache: &Path) -> Entries {
    let o = ratios(ws, cache, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let single = entries(cache);
    assert_eq!(single.len(), 2, "{:?}", file_names(cache));
    single
}

/// Replaces the first ratio of a part by a slightly different number, leaving its checksum.
fn alter_first_ratio(part: &Path) {
    let file = hdf5::File::open_rw(part).unwrap();
    let dataset = file.dataset("ratio").unwrap();
    let mut values: Vec<f64> = dataset.read_raw().unwrap();
    values[0] *= 1.0 + 1e-12;
    dataset.write_raw(&values).unwrap();
}

/// Damages two parts (one altered, one replaced by a part of the other entry) and checks that
/// `nsbi ratios` refuses both by name, evaluates their events itself, and leaves entries equal
/// to `single` bit for bit and no parts.
fn refused_parts_are_named_and_recomputed(ws: &Path, farm: &Path, single: &Entries) {
    let altered = sample_part(farm, "3072-5000");
    alter_first_ratio(&altered);
    let foreign = sample_part(farm, "0-1024");
    let data_part = parts(farm)
        .into_iter()
        .map(|n| farm.join(n))
        .find(|p| p.to_str().unwrap().ends_with(".events-0-1024.h5") && *p != foreign)
        .unwrap();
    std::fs::copy(data_part, &foreign).unwrap();

    let o = ratios(ws, farm, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let message = stderr(&o);
    for (part, reason) in [
        (&altered, "checksum mismatch"),
        (&foreign, "holds the ratios of another entry"),
    ] {
        let line = format!("ratio cache part {} is refused ({reason}", part.display());
        assert!(message.contains(&line), "'{line}' missing from:\n{message}");
    }
    assert!(
        message.contains(&format!("cover 2048 of {N_SAMPLE} events")),
        "{message}"
    );
    let out = stdout(&o);
    assert!(out.contains("2 farm part(s)"), "{out}");
    assert!(out.contains("0 evaluated, 0 from cache"), "{out}");
    assert_eq!(&entries(farm), single);
    assert_eq!(parts(farm), Vec::<String>::new());
}

#[test]
fn shards_run_by_hand_assemble_to_the_single_process_cache() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ws = small_workspace(dir.path());
    let single = single_process_entries(&ws, &dir.path().join("single"));
    let farm = dir.path().join("farm");
    for i in 0..3 {
        let o = ratios(&ws, &farm, &["--shard", &format!("{i}/3")]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // Whole batches of 1024: the data (2 batches) in shards 1 and 2, the sample (5) in all.
    let mut ranges: Vec<String> = parts(&farm)
        .iter()
        .map(|n| n.split_once(".events-").unwrap().1.to_string())
        .collect();
    ranges.sort();
    assert_eq!(
        ranges,
        [
            "0-1024.h5",
            "0-1024.h5",
            "1024-2023.h5",
            "1024-3072.h5",
            "3072-5000.h5"
        ]
    );
    assert!(entries(&farm).is_empty());
    refused_parts_are_named_and_recomputed(&ws, &farm, &single);

    // A complete entry: shards have nothing to do.
    let o = ratios(&ws, &farm, &["--shard", "1/3"]);
    assert!(
        stdout(&o).contains("0 part(s) evaluated, 0 already present, 2 entries complete"),
        "{}",
        stdout(&o)
    );
}

/// The shard logs of `run`, for a failed job's message.
fn shard_logs(run: &Path) -> String {
    format!(
        "{:?}",
        (0..3)
            .map(|i| std::fs::read_to_string(run.join(format!("logs/shard_{i}.out"))))
            .collect::<Vec<_>>()
    )
}

/// (inode, modification time) of a file: changes when the file is rewritten (renamed into
/// place from a new temporary file).
fn identity(path: &Path) -> (u64, std::time::SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    (meta.ino(), meta.modified().unwrap())
}

#[test]
fn slurm_ratio_array_equals_the_single_process_cache() {
    let _serial = serial();
    let base = tempfile::Builder::new()
        .prefix("nsbi-")
        .tempdir_in("/tmp")
        .unwrap();
    let Some(cluster) = slurm::Cluster::up(&base.path().join("slurm")) else {
        return;
    };
    let ws = small_workspace(base.path());
    let single = single_process_entries(&ws, &base.path().join("single"));

    let run = base.path().join("run");
    let farm = base.path().join("farm");
    let o = nsbi(&[
        "batch",
        "slurm",
        ws.to_str().unwrap(),
        "--ratios",
        "--shards",
        "3",
        "--dir",
        run.to_str().unwrap(),
        "--cache-dir",
        farm.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("3 shards over 2 ratio cache entries to evaluate (7023 events)"),
        "{}",
        stdout(&o)
    );
    assert!(
        !farm.exists() || entries(&farm).is_empty(),
        "batch evaluated"
    );
    cluster.submit_and_wait(&run, || shard_logs(&run));
    assert_eq!(parts(&farm).len(), 5, "{:?}", file_names(&farm));
    assert!(entries(&farm).is_empty());

    // Shard 1's part of the sample lost: the rerun array makes only that part again.
    let lost = sample_part(&farm, "1024-3072");
    std::fs::remove_file(&lost).unwrap();
    let kept: Vec<(String, _)> = parts(&farm)
        .into_iter()
        .map(|n| {
            let id = identity(&farm.join(&n));
            (n, id)
        })
        .collect();
    cluster.submit_and_wait(&run, || shard_logs(&run));
    assert!(lost.is_file());
    for (name, id) in &kept {
        assert_eq!(&identity(&farm.join(name)), id, "{name} was rewritten");
    }
    let log = |i: usize| std::fs::read_to_string(run.join(format!("logs/shard_{i}.out"))).unwrap();
    for (i, summary) in [
        (0, "shard 0/3: 0 part(s) evaluated, 1 already present"),
        (1, "shard 1/3: 1 part(s) evaluated, 1 already present"),
        (2, "shard 2/3: 0 part(s) evaluated, 2 already present"),
    ] {
        assert!(log(i).contains(summary), "shard {i}: {}", log(i));
    }

    refused_parts_are_named_and_recomputed(&ws, &farm, &single);
}

#[test]
fn condor_ratio_submit_file_parses_with_htcondor() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ws = small_workspace(dir.path());
    let run = dir.path().join("run");
    let o = nsbi(&[
        "batch",
        "condor",
        ws.to_str().unwrap(),
        "--ratios",
        "--shards",
        "5",
        "--dir",
        run.to_str().unwrap(),
        "--cache-dir",
        dir.path().join("farm").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = Command::new(python())
        .arg(root().join("validation/check_condor_submit.py"))
        .arg(run.join("submit.sub"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["queue"]["count"], 5);
    let args = v["arguments"].as_str().unwrap();
    assert!(args.trim_matches('"').starts_with("ratios "), "{args}");
    assert!(args.contains("--shard $(Process)/5"), "{args}");
    assert!(!args.contains("--out"), "{args}");
    assert_eq!(read_json(&run.join("manifest.json"))["task"], "ratios");

    // A ratio run has no shard files to merge: merge says where the parts go.
    let o = nsbi(&["merge", run.to_str().unwrap(), "--out", "x.h5"]);
    assert_refused(&o, &["is a ratio run", "nothing to merge"]);
}
