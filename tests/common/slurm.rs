//! A private single-node Slurm for the farm tests (`.ci/slurm.sh`): brought up in a folder,
//! stopped when dropped, and a job array submitted and waited for.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::root;

/// Runs `.ci/slurm.sh ARGS`.
pub fn script(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(root().join(".ci/slurm.sh"))
        .args(args)
        .output()
        .unwrap()
}

/// The daemons of a private Slurm, stopped when dropped whatever the test's outcome.
pub struct Cluster(PathBuf);

impl Cluster {
    /// A cluster in `dir`, or `None` (with the reason printed: the test is skipped) where this
    /// machine cannot run one — it needs root or passwordless sudo for apt-get and the daemons;
    /// CI has both.
    pub fn up(dir: &Path) -> Option<Cluster> {
        let available = script(&["available"]);
        if !available.status.success() {
            eprintln!("skipped: {}", String::from_utf8_lossy(&available.stderr));
            return None;
        }
        let up = script(&["up", dir.to_str().unwrap()]);
        assert!(
            up.status.success(),
            "slurm up: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        Some(Cluster(dir.to_path_buf()))
    }

    /// Submits the array `run/submit.sbatch` and waits (up to 300 s) for every task to end;
    /// `logs` is shown if it fails.
    pub fn submit_and_wait(&self, run: &Path, logs: impl FnOnce() -> String) {
        let submit = Command::new("sbatch")
            .arg("--parsable")
            .arg(run.join("submit.sbatch"))
            .env("SLURM_CONF", self.0.join("slurm.conf"))
            .output()
            .unwrap();
        assert!(
            submit.status.success(),
            "sbatch: {}",
            String::from_utf8_lossy(&submit.stderr)
        );
        let job = String::from_utf8_lossy(&submit.stdout).trim().to_string();
        let wait = script(&["wait", self.0.to_str().unwrap(), &job, "300"]);
        assert!(
            wait.status.success(),
            "job {job}: {}\nlogs: {}",
            String::from_utf8_lossy(&wait.stderr),
            logs()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        script(&["down", self.0.to_str().unwrap()]);
    }
}
