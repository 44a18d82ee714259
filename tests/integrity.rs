//! Data integrity: a damaged or misplaced cache entry is never served as data, toys are only
//! used with the model that made them, failed writes leave no temporary files, and bad event
//! files are blamed by file, column and event.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn exact_workspace() -> PathBuf {
    example().join("workspace_exact.yaml")
}

/// μ̂ of `nsbi fit` on `workspace` with the cache in `cache`, and the command's stderr.
fn fit_mu(workspace: &Path, cache: &Path) -> (f64, String) {
    let json = cache.with_extension("fit.json");
    let o = nsbi(&[
        "fit",
        workspace.to_str().unwrap(),
        "--no-minos",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (
        read_json(&json)["parameters"]["mu"]["value"]
            .as_f64()
            .unwrap(),
        stderr(&o),
    )
}

/// `nsbi fit WORKSPACE --cache-dir CACHE`.
fn fit_in(workspace: &Path, cache: &Path) -> std::process::Output {
    nsbi(&[
        "fit",
        workspace.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ])
}

/// `nsbi toys` of the example at μ = 1 with 2 toys into `out`, with the cache in `cache`.
fn two_toys(out: &Path, cache: &Path) -> std::process::Output {
    nsbi(&[
        "toys",
        exact_workspace().to_str().unwrap(),
        "--mu-grid",
        "1:1:1",
        "--toys",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ])
}

/// The cache entries (sorted) holding the ratios of the observed data (2023 events).
fn observed_data_entries(cache: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let file = hdf5::File::open(p).unwrap();
            file.dataset("ratio").unwrap().size() == 2023
        })
        .collect();
    entries.sort();
    entries
}

/// Files in `dir` whose name contains `.tmp`.
fn temporary_files(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .filter(|name| name.contains(".tmp"))
        .collect()
}

/// A fresh cache of the example workspace and the μ̂ fitted with it.
fn fresh_cache(dir: &Path) -> (PathBuf, f64) {
    let cache = dir.join("cache");
    let (mu, _) = fit_mu(&exact_workspace(), &cache);
    (cache, mu)
}

#[test]
fn cache_entry_with_a_flipped_bit_is_recomputed_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, mu_fresh) = fresh_cache(dir.path());
    let entry = observed_data_entries(&cache)[0].clone();
    {
        // One exponent bit of 200 ratios: each is doubled or halved.
        let file = hdf5::File::open_rw(&entry).unwrap();
        let ratio = file.dataset("ratio").unwrap();
        let mut values = ratio.read_raw::<f64>().unwrap();
        for r in &mut values[..200] {
            *r = f64::from_bits(r.to_bits() ^ (1 << 52));
        }
        ratio.write_raw(&values).unwrap();
        drop(ratio);
        file.close().unwrap();
    }
    let (mu, warnings) = fit_mu(&exact_workspace(), &cache);
    assert!(
        warnings.contains(&format!("{} is not used", entry.display()))
            && warnings.contains("checksum"),
        "{warnings}"
    );
    assert_eq!(mu, mu_fresh, "μ̂ after the recomputation vs a fresh cache");
    // The entry was replaced: the next run is quiet.
    let (_, warnings) = fit_mu(&exact_workspace(), &cache);
    assert!(!warnings.contains("warning"), "{warnings}");
}

#[test]
fn swapped_cache_entries_are_recomputed_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, mu_fresh) = fresh_cache(dir.path());
    let entries = observed_data_entries(&cache);
    let (a, b) = (&entries[0], &entries[1]);
    let parked = dir.path().join("parked.h5");
    std::fs::rename(a, &parked).unwrap();
    std::fs::rename(b, a).unwrap();
    std::fs::rename(&parked, b).unwrap();
    let (mu, warnings) = fit_mu(&exact_workspace(), &cache);
    for entry in [a, b] {
        assert!(
            warnings.contains(&format!(
                "{} is not used (holds the ratios of another entry",
                entry.display()
            )),
            "{warnings}"
        );
    }
    assert_eq!(mu, mu_fresh, "μ̂ after the recomputation vs a fresh cache");
}

#[test]
fn cache_entry_without_checksum_counts_as_absent() {
    // An entry as nsbi wrote it before checksums (no attributes), holding wrong numbers.
    let dir = tempfile::tempdir().unwrap();
    let (cache, mu_fresh) = fresh_cache(dir.path());
    let entry = observed_data_entries(&cache)[0].clone();
    let n = 2023;
    std::fs::remove_file(&entry).unwrap();
    {
        let file = hdf5::File::create(&entry).unwrap();
        for (name, value) in [("ratio", 2.0), ("spread", 0.0)] {
            file.new_dataset_builder()
                .with_data(&vec![value; n][..])
                .create(name)
                .unwrap();
        }
    }
    let (mu, _) = fit_mu(&exact_workspace(), &cache);
    assert_eq!(mu, mu_fresh, "μ̂ with an old entry vs a fresh cache");
}

#[test]
fn cache_that_cannot_be_written_is_named_with_the_remedy() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the cache folder should be: nothing can be created in it (tests
    // run as root, which ignores read-only permissions).
    let cache = dir.path().join("cache");
    std::fs::write(&cache, b"not a folder").unwrap();
    assert_refused(
        &fit_in(&exact_workspace(), &cache),
        &[
            &cache.display().to_string(),
            "cache folder cannot be written",
            "--cache-dir",
            "NSBI_CACHE_DIR",
        ],
    );
}

#[test]
fn failed_cache_store_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = fresh_cache(dir.path());
    // A folder under an entry's name: the entry is rejected, recomputed, and cannot be moved
    // into place.
    let entry = observed_data_entries(&cache)[0].clone();
    std::fs::remove_file(&entry).unwrap();
    std::fs::create_dir_all(entry.join("occupied")).unwrap();
    assert_refused(
        &fit_in(&exact_workspace(), &cache),
        &["cache folder cannot be written"],
    );
    assert_eq!(temporary_files(&cache), Vec::<String>::new());
}

#[test]
fn failed_toy_file_and_plot_writes_leave_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = test_cache();
    let out = dir.path().join("toys.h5");
    std::fs::create_dir_all(out.join("occupied")).unwrap();
    assert_refused(
        &two_toys(&out, cache.dir()),
        &[&format!("cannot write {}", out.display())],
    );
    assert_eq!(temporary_files(dir.path()), Vec::<String>::new());

    let plots = dir.path().join("diagnostics");
    std::fs::create_dir_all(plots.join("calibration_SR_S.png/occupied")).unwrap();
    let o = nsbi(&[
        "calibrate",
        exact_workspace().to_str().unwrap(),
        "--out",
        plots.to_str().unwrap(),
        "--cache-dir",
        cache.dir().to_str().unwrap(),
    ]);
    assert_refused(&o, &["calibration_SR_S.png"]);
    assert_eq!(temporary_files(&plots), Vec::<String>::new());
}

#[test]
fn written_files_get_ordinary_permissions() {
    // Atomic writes go through a private temporary file; the result must still be readable by
    // whoever could read any other new file there (shared caches, batch farms).
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    std::fs::write(&reference, b"").unwrap();
    let cache = dir.path().join("cache");
    let toys = dir.path().join("toys.h5");
    let o = two_toys(&toys, &cache);
    assert!(o.status.success(), "{}", stderr(&o));
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for written in [&toys, &entry] {
        assert_eq!(mode(written), mode(&reference), "{}", written.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Toy files and the model they were made from
// ---------------------------------------------------------------------------------------------

/// A copy of the exact workspace in `dir` (its data and models linked), so it can be edited.
fn editable_workspace(dir: &Path) -> PathBuf {
    for sub in ["data", "models"] {
        std::os::unix::fs::symlink(example().join(sub), dir.join(sub)).unwrap();
    }
    let path = dir.join("workspace.yaml");
    std::fs::copy(exact_workspace(), &path).unwrap();
    path
}

/// `nsbi toys` run in `cwd` (so that `workspace` may be relative) with a small plan.
fn toys_in(cwd: &Path, workspace: &Path, out: &Path, seed: &str, shard: &str) -> String {
    let cache = test_cache();
    let o = Command::new(env!("CARGO_BIN_EXE_nsbi"))
        .current_dir(cwd)
        .args(["toys", workspace.to_str().unwrap()])
        .args(["--mu-grid", "0.6:1.4:0.4", "--toys", "4", "--seed", seed])
        .args(["--shard", shard, "--out", out.to_str().unwrap()])
        .args(["--cache-dir", cache.dir().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stderr(&o)
}

/// Rewrites the JSON header (the `plan` attribute) of the toy file `toys` with `edit`.
fn edit_plan(toys: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    use hdf5::types::VarLenUnicode;
    let file = hdf5::File::open_rw(toys).unwrap();
    let plan: VarLenUnicode = file.attr("plan").unwrap().read_scalar().unwrap();
    let mut header: serde_json::Value = serde_json::from_str(plan.as_str()).unwrap();
    edit(&mut header);
    file.delete_attr("plan").unwrap();
    let text: VarLenUnicode = header.to_string().parse().unwrap();
    file.new_attr::<VarLenUnicode>()
        .create("plan")
        .unwrap()
        .write_scalar(&text)
        .unwrap();
    file.close().unwrap();
}

fn merge(inputs: &[&Path], out: &Path) -> std::process::Output {
    let mut args = vec!["merge"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap()]);
    nsbi(&args)
}

fn neyman(workspace: &Path, toys: &Path) -> std::process::Output {
    nsbi(&[
        "neyman",
        workspace.to_str().unwrap(),
        "--toys",
        toys.to_str().unwrap(),
        "--cache-dir",
        test_cache().dir().to_str().unwrap(),
    ])
}

#[test]
fn toys_of_another_workspace_are_refused_by_neyman_and_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let toys = dir.path().join("exact.h5");
    toys_in(dir.path(), &exact_workspace(), &toys, "3", "0/1");
    // The same model with networks instead of exact ratios.
    let networks = example().join("workspace.yaml");
    let text = assert_refused(
        &neyman(&networks, &toys),
        &[
            &format!("toy file {} was made from another model", toys.display()),
            "ratio entries differ",
        ],
    );
    assert!(!text.contains("event weights differ"), "{text}");
    let o = nsbi(&[
        "coverage",
        networks.to_str().unwrap(),
        "--toys",
        toys.to_str().unwrap(),
        "--mu-true",
        "1.0",
        "--n",
        "2",
        "--seed",
        "9",
        "--cache-dir",
        test_cache().dir().to_str().unwrap(),
    ]);
    assert_refused(&o, &["ratio entries differ"]);
    // Its own workspace is accepted.
    let o = neyman(&exact_workspace(), &toys);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn shards_from_before_and_after_a_yield_edit_do_not_merge() {
    let dir = tempfile::tempdir().unwrap();
    let ws = editable_workspace(dir.path());
    let (first, second) = (dir.path().join("s0.h5"), dir.path().join("s1.h5"));
    // Named relatively for one shard and absolutely for the other: the same workspace.
    toys_in(dir.path(), Path::new("workspace.yaml"), &first, "3", "0/2");
    toys_in(dir.path(), &ws, &second, "3", "1/2");
    let merged = dir.path().join("merged.h5");
    let o = merge(&[&first, &second], &merged);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = neyman(Path::new(&ws), &merged);
    assert!(o.status.success(), "{}", stderr(&o));
    let whole = dir.path().join("whole.h5");
    toys_in(dir.path(), &ws, &whole, "3", "0/1");

    // A yield systematic edited in place, then shard 1 made again.
    let yaml = std::fs::read_to_string(&ws).unwrap();
    let edited = yaml.replacen("up: 1.04", "up: 1.06", 1);
    assert_ne!(edited, yaml);
    std::fs::write(&ws, edited).unwrap();
    toys_in(dir.path(), &ws, &second, "3", "1/2");
    let text = assert_refused(
        &merge(&[&first, &second], &merged),
        &[
            "does not belong to the same construction",
            "workspace content differs",
        ],
    );
    assert!(!text.contains("ratio entries differ"), "{text}");
    // And a file made before the edit, against the edited workspace.
    let o = neyman(&ws, &whole);
    assert!(
        stderr(&o).contains("workspace content differs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn merge_names_the_generation_setting_that_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("s0.h5"), dir.path().join("s1.h5"));
    toys_in(dir.path(), &exact_workspace(), &first, "1", "0/2");
    toys_in(dir.path(), &exact_workspace(), &second, "2", "1/2");
    assert_refused(
        &merge(&[&first, &second], &dir.path().join("merged.h5")),
        &["generation settings differ: seed 1 vs 2"],
    );
}

#[test]
fn toy_file_of_the_previous_format_is_refused_with_the_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let toys = dir.path().join("old.h5");
    toys_in(dir.path(), &exact_workspace(), &toys, "3", "0/1");
    // The header as format 1 wrote it: no fingerprint.
    edit_plan(&toys, |header| {
        header["format"] = "nsbi-toys-1".into();
        header.as_object_mut().unwrap().remove("fingerprint");
    });
    assert_refused(
        &neyman(&exact_workspace(), &toys),
        &[
            &toys.display().to_string(),
            "toy file format nsbi-toys-1",
            "make the toys again",
        ],
    );
}

/// A damaged or crafted header claiming more toys than nsbi ever makes is refused at the file,
/// with the sizes: `merge` allocated a slot per claimed toy, and aborted (or overflowed the
/// count) before.
#[test]
fn toy_file_claiming_absurd_sizes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let toys = dir.path().join("toys.h5");
    let o = two_toys(&toys, test_cache().dir());
    assert!(o.status.success(), "{}", stderr(&o));
    for (grid, n_toys) in [
        (vec![1.0], 1_000_000_000_000u64),
        (vec![0.5, 1.0, 1.5], u64::MAX),
    ] {
        let n_grid = grid.len();
        edit_plan(&toys, |header| {
            let points: Vec<Vec<f64>> = grid.iter().map(|&v| vec![v]).collect();
            header["grid"] = serde_json::json!({"points": points, "axes": [grid.clone()]});
            header["n_toys"] = n_toys.into();
        });
        let claim = format!(
            "{}: the 'plan' attribute claims {n_toys} toys on each of {n_grid} grid points, \
             more than the 1000000000 toys",
            toys.display()
        );
        let merged = dir.path().join("merged.h5");
        assert_refused(&merge(&[&toys], &merged), &[&claim]);
        assert!(!merged.exists());
        assert_refused(&neyman(&exact_workspace(), &toys), &[&claim]);
    }
}

// ---------------------------------------------------------------------------------------------
// Event files
// ---------------------------------------------------------------------------------------------

/// Writes an event file with float64 feature columns `m4l` (from `m4l`) and the example's
/// angles, and a `weight` entry made by `weight`.
fn write_events(path: &Path, m4l: &[f64], weight: impl FnOnce(&hdf5::Group)) {
    let file = hdf5::File::create(path).unwrap();
    let group = file.create_group("events").unwrap();
    let angle: Vec<f64> = (0..m4l.len()).map(|i| (i as f64 * 0.37).sin()).collect();
    for (name, data) in [("m4l", m4l), ("cos_theta1", &angle), ("cos_theta2", &angle)] {
        group
            .new_dataset_builder()
            .with_data(data)
            .create(name)
            .unwrap();
    }
    weight(&group);
}

/// A `weight` dataset holding `values`, for [`write_events`].
fn weight_column(values: Vec<f64>) -> impl FnOnce(&hdf5::Group) {
    move |group| {
        group
            .new_dataset_builder()
            .with_data(&values)
            .create("weight")
            .unwrap();
    }
}

fn masses(n: usize) -> Vec<f64> {
    (0..n).map(|i| 250.0 + 5.0 * i as f64).collect()
}

/// `nsbi fit` of a one-process workspace whose MC sample is `samples`; its stderr.
fn fit_with_sample(dir: &Path, samples: &Path) -> std::process::Output {
    let block = format!(
        "          models: {}\n          output: ratio\n          convention: ratio",
        example().join("models/S/exact.onnx").display()
    );
    let yaml = single_process_workspace(&samples.display().to_string(), &block);
    fit_in(&write_workspace(dir, &yaml), &dir.join("cache"))
}

#[test]
fn weights_summing_to_zero_or_less_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("negative.h5");
    let weights: Vec<f64> = (0..100).map(|i| if i < 60 { -1.0 } else { 1.0 }).collect();
    write_events(&samples, &masses(100), weight_column(weights));
    assert_refused(
        &fit_with_sample(dir.path(), &samples),
        &[
            &samples.display().to_string(),
            "the weights of process 'S' sum to -20 over 100 events",
        ],
    );
    let o = nsbi(&[
        "validate",
        dir.path().join("workspace.yaml").to_str().unwrap(),
    ]);
    assert_refused(&o, &["the weights of process 'S' sum to -20"]);
}

#[test]
fn weight_column_that_is_a_group_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("grouped.h5");
    write_events(&samples, &masses(50), |g| {
        let inner = g.create_group("weight").unwrap();
        inner
            .new_dataset_builder()
            .with_data(&[1.0f64; 50][..])
            .create("values")
            .unwrap();
    });
    assert_refused(
        &fit_with_sample(dir.path(), &samples),
        &[
            &samples.display().to_string(),
            "column 'weight' in group '/events' is an HDF5 group, not a dataset",
        ],
    );
}

#[test]
fn feature_beyond_float32_is_blamed_on_the_event_file() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("huge.h5");
    let mut m4l = masses(50);
    m4l[7] = 1e300;
    write_events(&samples, &m4l, weight_column(vec![1.0; 50]));
    let text = assert_refused(&fit_with_sample(dir.path(), &samples), &[]);
    assert!(
        text.starts_with(&format!(
            "{}: column 'm4l' holds 1e300 at event 7",
            samples.display()
        )) && text.contains("float32")
            && !text.contains("model"),
        "{text}"
    );
}
