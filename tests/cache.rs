//! The ratio cache: reused when nothing changed, invalidated by any change to a model, an
//! event file or a setting, robust to damaged entries.

mod common;

use std::path::Path;

use common::*;
use nsbi::data::RatioCache;
use nsbi::ratio::{evaluate_workspace, WorkspaceRatios};
use nsbi::workspace::Workspace;

fn run(path: &Path, cache: &RatioCache) -> WorkspaceRatios {
    evaluate_workspace(&Workspace::load(path).unwrap(), cache, false).unwrap()
}

fn from_cache(result: &WorkspaceRatios) -> Vec<bool> {
    result.records.iter().map(|r| r.from_cache).collect()
}

fn all_ratios(result: &WorkspaceRatios) -> Vec<Vec<f64>> {
    let channel = &result.channels[0];
    channel
        .keys
        .keys()
        .map(|(label, source)| channel.ratio(label, *source).unwrap())
        .collect()
}

/// A small workspace: the example's observed data, and a copy (in `dir`) of its SBI sample as
/// the one process's MC.
fn setup(dir: &Path, model: &Path) -> std::path::PathBuf {
    let sample = dir.join("sample.h5");
    std::fs::copy(example().join("data/mc_SBI.h5"), &sample).unwrap();
    let block = format!(
        "          models: {}\n          output: ratio\n          convention: ratio",
        model.display()
    );
    write_workspace(
        dir,
        &single_process_workspace(&sample.display().to_string(), &block),
    )
}

#[test]
fn second_run_is_served_from_cache_with_identical_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path(), &example().join("models/S/exact.onnx"));
    let cache = RatioCache::new(dir.path().join("cache"));
    let first = run(&path, &cache);
    assert_eq!(from_cache(&first), vec![false, false]);
    let second = run(&path, &cache);
    assert_eq!(from_cache(&second), vec![true, true]);
    assert_eq!(all_ratios(&first), all_ratios(&second));
}

#[test]
fn changed_events_model_or_settings_are_reevaluated() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    std::fs::copy(example().join("models/S/exact.onnx"), &model).unwrap();
    let path = setup(dir.path(), &model);
    let cache = RatioCache::new(dir.path().join("cache"));
    let baseline = run(&path, &cache);

    // One event of the sample file changes: only that file's ratios are recomputed.
    {
        let h5 = hdf5::File::open_rw(dir.path().join("sample.h5")).unwrap();
        let ds = h5.dataset("events/m4l").unwrap();
        let mut m4l = ds.read_raw::<f32>().unwrap();
        m4l[3] += 10.0;
        ds.write_raw(&m4l).unwrap();
        drop(ds);
        // Closed explicitly, so that HDF5's file lock is gone before the file is read again.
        h5.close().unwrap();
    }
    let after_events = run(&path, &cache);
    assert_eq!(from_cache(&after_events), vec![true, false]);
    let (base, changed) = (&all_ratios(&baseline), &all_ratios(&after_events));
    let differing: Vec<usize> = (0..base[1].len())
        .filter(|&i| base[1][i] != changed[1][i])
        .collect();
    assert_eq!(differing, vec![3], "exactly the edited event changes");

    // A different model under the same file name: everything is recomputed.
    std::fs::copy(example().join("models/B/exact.onnx"), &model).unwrap();
    let after_model = run(&path, &cache);
    assert_eq!(from_cache(&after_model), vec![false, false]);
    assert_ne!(all_ratios(&after_model)[0], all_ratios(&after_events)[0]);

    // A setting (which output tensor is read): recomputed, though the numbers agree.
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        "output: ratio\n          convention: ratio",
        "output: log_ratio\n          convention: log_ratio",
    );
    std::fs::write(&path, yaml).unwrap();
    let after_setting = run(&path, &cache);
    assert_eq!(from_cache(&after_setting), vec![false, false]);
    for (a, b) in all_ratios(&after_setting)[0]
        .iter()
        .zip(&all_ratios(&after_model)[0])
    {
        assert!((a / b - 1.0).abs() < 1e-12);
    }
}

#[test]
fn identical_content_under_another_name_hits_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path(), &example().join("models/S/exact.onnx"));
    let cache = RatioCache::new(dir.path().join("cache"));
    run(&path, &cache);
    let copy = dir.path().join("renamed.onnx");
    std::fs::copy(example().join("models/S/exact.onnx"), &copy).unwrap();
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        &example().join("models/S/exact.onnx").display().to_string(),
        &copy.display().to_string(),
    );
    std::fs::write(&path, yaml).unwrap();
    assert_eq!(from_cache(&run(&path, &cache)), vec![true, true]);
}

#[test]
fn damaged_entry_is_recomputed_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path(), &example().join("models/S/exact.onnx"));
    let cache = RatioCache::new(dir.path().join("cache"));
    let first = run(&path, &cache);
    let entry = &first.records[0].cache_entry;
    let bytes = std::fs::read(entry).unwrap();
    std::fs::write(entry, &bytes[..bytes.len() / 3]).unwrap();
    let second = run(&path, &cache);
    assert_eq!(from_cache(&second), vec![false, true]);
    assert_eq!(all_ratios(&first), all_ratios(&second));
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(cache.dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn cli_ratios_twice_reports_cache_use_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path(), &example().join("models/S/exact.onnx"));
    let cache_dir = dir.path().join("cache");
    let json = dir.path().join("ratios.json");
    let args = [
        "ratios",
        path.to_str().unwrap(),
        "--cache-dir",
        cache_dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ];
    for expect_cached in [false, true] {
        let out = nsbi(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let rows = report["ratios"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["n_events"].as_u64(), Some(2023), "observed events");
        assert_eq!(
            rows[1]["n_events"].as_u64(),
            Some(100_000),
            "SBI sample events"
        );
        for row in rows {
            assert_eq!(row["from_cache"].as_bool(), Some(expect_cached));
            assert!(row["n_events"].as_u64().unwrap() > 0);
            assert!(row["min_ratio"].as_f64().unwrap() > 0.0);
        }
    }
}

/// Runs `edit` on the file at `path`, then gives the file back its modification time: an edit
/// that keeps the size and the time stamp, which a digest memoised by (path, size, mtime)
/// would miss.
fn edit_keeping_size_and_mtime(path: &Path, edit: impl FnOnce()) {
    let (size, mtime) = {
        let meta = std::fs::metadata(path).unwrap();
        (meta.len(), meta.modified().unwrap())
    };
    edit();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    let meta = std::fs::metadata(path).unwrap();
    assert_eq!((meta.len(), meta.modified().unwrap()), (size, mtime));
}

#[test]
fn edits_that_keep_size_and_mtime_are_still_reevaluated() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    std::fs::copy(example().join("models/S/exact.onnx"), &model).unwrap();
    let path = setup(dir.path(), &model);
    let cache = RatioCache::new(dir.path().join("cache"));
    let baseline = run(&path, &cache);
    assert_eq!(from_cache(&run(&path, &cache)), vec![true, true]);

    // One feature value of the sample, rewritten in place.
    edit_keeping_size_and_mtime(&dir.path().join("sample.h5"), || {
        let h5 = hdf5::File::open_rw(dir.path().join("sample.h5")).unwrap();
        let ds = h5.dataset("events/cos_theta1").unwrap();
        let mut values = ds.read_raw::<f32>().unwrap();
        values[7] = -values[7];
        ds.write_raw(&values).unwrap();
        drop(ds);
        h5.close().unwrap();
    });
    let after_events = run(&path, &cache);
    assert_eq!(from_cache(&after_events), vec![true, false]);
    let (base, changed) = (&all_ratios(&baseline)[1], &all_ratios(&after_events)[1]);
    assert_ne!(
        base[7], changed[7],
        "the edited event's ratio is recomputed"
    );

    // Another network of exactly the same size (the example's B and S models both have 2516
    // bytes) under the same name and time stamp.
    let other = example().join("models/B/exact.onnx");
    assert_eq!(
        std::fs::metadata(&other).unwrap().len(),
        std::fs::metadata(&model).unwrap().len()
    );
    edit_keeping_size_and_mtime(&model, || {
        std::fs::copy(&other, &model).unwrap();
    });
    let after_model = run(&path, &cache);
    assert_eq!(from_cache(&after_model), vec![false, false]);
    assert_ne!(all_ratios(&after_model)[0], all_ratios(&after_events)[0]);
}

/// `nsbi fit` of `workspace` with its cache in `cache_dir`, and ONNX Runtime looked for at
/// `runtime` (`None`: where nsbi finds it).
fn fit_with_runtime(
    workspace: &Path,
    cache_dir: &Path,
    runtime: Option<&Path>,
) -> std::process::Output {
    let json = cache_dir.with_extension("fit.json");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_nsbi"));
    command.args([
        "fit",
        workspace.to_str().unwrap(),
        "--no-minos",
        "--cache-dir",
        cache_dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    if let Some(runtime) = runtime {
        command.env("ORT_DYLIB_PATH", runtime);
    }
    command.output().expect("nsbi runs")
}

fn fitted_mu(cache_dir: &Path) -> f64 {
    read_json(&cache_dir.with_extension("fit.json"))["parameters"]["mu"]["value"]
        .as_f64()
        .unwrap()
}

/// Every cache key is made from the files (model bytes, feature values) and the settings, so a
/// command whose entries are all in the cache opens no network: it runs where ONNX Runtime
/// cannot even be loaded, with the same numbers. (Before, every command opened a session of
/// every network to make the keys, and failed here.)
#[test]
fn fit_from_a_complete_cache_needs_no_onnx_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path(), &example().join("models/S/exact.onnx"));
    let no_runtime = dir.path().join("no-libonnxruntime.so");

    // An empty cache needs the networks: the missing runtime is the error.
    let empty = dir.path().join("empty-cache");
    let refused = fit_with_runtime(&path, &empty, Some(&no_runtime));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(&format!(
            "ONNX Runtime: ORT_DYLIB_PATH points at {}, which is not a file",
            no_runtime.display()
        )),
        "{}",
        stderr(&refused)
    );
    assert!(
        !stderr(&refused).contains("ONNX Runtime: ONNX Runtime:"),
        "the prefix once: {}",
        stderr(&refused)
    );

    let cache = dir.path().join("cache");
    let with_runtime = fit_with_runtime(&path, &cache, None);
    assert!(with_runtime.status.success(), "{}", stderr(&with_runtime));
    let mu = fitted_mu(&cache);
    let without = fit_with_runtime(&path, &cache, Some(&no_runtime));
    assert!(without.status.success(), "{}", stderr(&without));
    assert!(
        !stderr(&without).contains("warning"),
        "{}",
        stderr(&without)
    );
    assert_eq!(fitted_mu(&cache), mu);
}

/// Each column has its own checksum: a likelihood reads and verifies the ratios alone, and an
/// altered spread is still caught by whoever reads the spreads (`nsbi ratios`), which
/// recomputes the entry.
#[test]
fn altered_spreads_are_caught_where_spreads_are_read() {
    use nsbi::data::Lookup;
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path(), &example().join("models/S/exact.onnx"));
    let cache = RatioCache::new(dir.path().join("cache"));
    let first = run(&path, &cache);
    let channel = &first.channels[0];
    let key = channel.keys[&("SR/S".to_string(), 1)].clone();
    let n = channel.sources[1].1.len();
    {
        let file = hdf5::File::open_rw(cache.entry_path(&key)).unwrap();
        let spread = file.dataset("spread").unwrap();
        let mut values = spread.read_raw::<f64>().unwrap();
        values[0] += 1.0;
        spread.write_raw(&values).unwrap();
        drop(spread);
        file.close().unwrap();
    }
    let Lookup::Hit(ratio) = cache.load_ratio(&key, n) else {
        panic!("the ratios are intact")
    };
    assert_eq!(ratio, all_ratios(&first)[1]);
    assert_eq!(
        cache.load(&key, n),
        Lookup::Rejected("checksum mismatch: the stored 'spread' values were altered".into())
    );
    let second = run(&path, &cache);
    assert_eq!(from_cache(&second), vec![true, false]);
    assert!(matches!(cache.load(&key, n), Lookup::Hit(_)));
}
