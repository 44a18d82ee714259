//! Batch farms: the Slurm job array that `nsbi batch slurm` writes runs for real on a private
//! single-node Slurm (`.ci/slurm.sh`), and its merged shards equal the single-process run bit
//! for bit; the HTCondor submit file parses with PyPI's `htcondor`.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use nsbi::infer::toyfile::ToyFile;

const TOYS: [&str; 6] = ["--mu-grid", "0.6:1.4:0.2", "--toys", "4", "--seed", "21"];

fn batch(scheduler: &str, dir: &Path, shards: &str) {
    let ws = example().join("workspace_exact.yaml");
    let cache = test_cache();
    let mut args = vec!["batch", scheduler, ws.to_str().unwrap()];
    args.extend_from_slice(&TOYS);
    args.extend_from_slice(&["--shards", shards, "--dir", dir.to_str().unwrap()]);
    args.extend_from_slice(&["--cache-dir", cache.dir().to_str().unwrap()]);
    let o = nsbi(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn single_process_run(out: &Path) -> ToyFile {
    let ws = example().join("workspace_exact.yaml");
    let cache = test_cache();
    let mut args = vec!["toys", ws.to_str().unwrap()];
    args.extend_from_slice(&TOYS);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    args.extend_from_slice(&["--cache-dir", cache.dir().to_str().unwrap()]);
    let o = nsbi(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    ToyFile::read(out).unwrap()
}

#[test]
fn slurm_job_array_equals_the_single_process_run() {
    let base = tempfile::Builder::new()
        .prefix("nsbi-")
        .tempdir_in("/tmp")
        .unwrap();
    let Some(cluster) = slurm::Cluster::up(&base.path().join("slurm")) else {
        return;
    };

    let dir = base.path().join("run");
    batch("slurm", &dir, "3");
    cluster.submit_and_wait(&dir, || {
        format!(
            "{:?}",
            std::fs::read_dir(dir.join("logs")).map(|d| d.count())
        )
    });

    let merged = dir.join("toys.h5");
    let merge = || {
        nsbi(&[
            "merge",
            dir.to_str().unwrap(),
            "--out",
            merged.to_str().unwrap(),
        ])
    };
    let o = merge();
    assert!(o.status.success(), "{}", stderr(&o));
    let single = single_process_run(&base.path().join("single.h5"));
    assert_eq!(single.records.len(), 20);
    assert_eq!(ToyFile::read(&merged).unwrap().records, single.records);

    // One shard lost: merge names it with the command that re-runs it; that command works.
    std::fs::remove_file(dir.join("shard_1.h5")).unwrap();
    let o = merge();
    assert!(!o.status.success());
    let message = stderr(&o);
    let rerun = message
        .lines()
        .find_map(|l| l.trim().strip_prefix("shard 1/3: "))
        .unwrap_or_else(|| panic!("no re-run command in: {message}"));
    let o = Command::new("bash").arg("-c").arg(rerun).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = merge();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ToyFile::read(&merged).unwrap().records, single.records);
}

#[test]
fn condor_submit_file_parses_with_htcondor() {
    let dir = tempfile::tempdir().unwrap();
    batch("condor", dir.path(), "5");
    let out = Command::new(python())
        .arg(root().join("validation/check_condor_submit.py"))
        .arg(dir.path().join("submit.sub"))
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
    assert!(args.contains("--shard $(Process)/5"), "{args}");
    assert!(args.contains("shard_$(Process).h5"), "{args}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["shards"], 5);
}
