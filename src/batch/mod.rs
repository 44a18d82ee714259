//! Batch farms: a toy run or a ratio evaluation split into shards, written as a ready job-array
//! submission (Slurm `sbatch --array`, HTCondor `queue N`) with a manifest.
//!
//! Toys: shard i runs `nsbi toys … --shard i/N --out DIR/shard_i.h5`; the toy files are written
//! atomically, so a shard killed half-way leaves no `shard_i.h5`, and `nsbi merge DIR` reports
//! it missing. Ratios: shard i runs `nsbi ratios W --cache-dir C --shard i/N`, which writes its
//! event range of every incomplete cache entry as a part into the cache (atomically, skipping
//! parts already there); the next command that reads the cache assembles the parts.
//! Coverage of a posterior: shard i runs `nsbi coverage-bayes … --shard i/N --out
//! DIR/shard_i.h5` over its range of test pairs; `nsbi coverage-bayes … --merge DIR` checks and
//! merges the records and runs the tests.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `i/N` (0 ≤ i < N): shard i of N of a run, as `--shard` gives it.
pub fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let bad = || Error::Analysis(format!("--shard '{text}': expected i/N with 0 ≤ i < N"));
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (Ok(i), Ok(n)) = (i.trim().parse::<usize>(), n.trim().parse::<usize>()) else {
        return Err(bad());
    };
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Which scheduler the submission is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduler {
    Slurm,
    Condor,
}

/// What the shards of a run make.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Toy files `shard_i.h5` in the run's folder, merged by `nsbi merge DIR`.
    #[default]
    Toys,
    /// Parts of ratio cache entries, assembled by the next command that reads the cache.
    Ratios,
    /// Records of `nsbi coverage-bayes` shards `shard_i.h5`, merged and tested by the
    /// manifest's result command (`nsbi coverage-bayes … --merge DIR`).
    #[serde(rename = "coverage_bayes")]
    CoverageBayes,
}

/// What `nsbi batch` writes beside the submission, and `nsbi merge DIR` reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The nsbi executable every shard runs.
    pub executable: String,
    /// `nsbi toys` (or `nsbi ratios`) arguments shared by all shards (without --shard and --out).
    pub toys_arguments: Vec<String>,
    /// What the shards make (absent in the manifests of toy runs made before ratio runs).
    #[serde(default)]
    pub task: Task,
    pub shards: usize,
    pub submission: String,
    /// The command that tests with the merged toys (`nsbi hypotest|limit|significance …
    /// --toys-from DIR/toys.h5`), for a hypothesis test's toys; empty for other runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_arguments: Vec<String>,
}

const FORMAT: &str = "nsbi-batch-1";

impl Manifest {
    pub fn new(executable: &Path, toys_arguments: Vec<String>, shards: usize) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            executable: executable.display().to_string(),
            toys_arguments,
            task: Task::Toys,
            shards,
            submission: String::new(),
            result_arguments: Vec::new(),
        }
    }

    /// The manifest of a ratio run: `arguments` are `nsbi ratios` arguments.
    pub fn ratios(executable: &Path, arguments: Vec<String>, shards: usize) -> Manifest {
        Manifest {
            task: Task::Ratios,
            ..Manifest::new(executable, arguments, shards)
        }
    }

    /// The output file of shard `i`.
    pub fn shard_file(dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("shard_{i}.h5"))
    }

    /// The command that (re)makes shard `i` alone, as one shell line.
    pub fn rerun_command(&self, dir: &Path, i: usize) -> String {
        let mut words = vec![self.executable.clone()];
        words.extend(self.toys_arguments.iter().cloned());
        words.push("--shard".into());
        words.push(format!("{i}/{}", self.shards));
        if self.task != Task::Ratios {
            words.push("--out".into());
            words.push(Manifest::shard_file(dir, i).display().to_string());
        }
        words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The test with the merged toys as one shell line, for a hypothesis test's toys.
    pub fn result_command(&self) -> Option<String> {
        if self.result_arguments.is_empty() {
            return None;
        }
        let mut words = vec![shell_quote(&self.executable)];
        words.extend(self.result_arguments.iter().map(|w| shell_quote(w)));
        Some(words.join(" "))
    }

    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            Error::Analysis(format!(
                "{}: not an nsbi batch manifest: {e}",
                path.display()
            ))
        })?;
        if manifest.format != FORMAT {
            return Err(Error::Analysis(format!(
                "{}: manifest format {} (expected {FORMAT})",
                path.display(),
                manifest.format
            )));
        }
        Ok(manifest)
    }

    /// The shard files of `dir`, or an error naming each missing shard with the command that
    /// re-runs it.
    pub fn shard_files(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        if self.task == Task::Ratios {
            return Err(Error::Analysis(format!(
                "{} is a ratio run: its shards write parts of ratio cache entries, which the \
                 next command that reads the cache assembles (e.g. `nsbi {}`); there is \
                 nothing to merge",
                dir.display(),
                self.toys_arguments.join(" ")
            )));
        }
        let files: Vec<PathBuf> = (0..self.shards)
            .map(|i| Manifest::shard_file(dir, i))
            .collect();
        let missing: Vec<String> = (0..self.shards)
            .filter(|&i| !files[i].is_file())
            .map(|i| {
                format!(
                    "  shard {i}/{}: {}",
                    self.shards,
                    self.rerun_command(dir, i)
                )
            })
            .collect();
        if missing.is_empty() {
            Ok(files)
        } else {
            Err(Error::Analysis(format!(
                "{} of {} shards have no output in {}; re-run them with:\n{}",
                missing.len(),
                self.shards,
                dir.display(),
                missing.join("\n")
            )))
        }
    }
}

/// Single-quotes `word` for a POSIX shell when it needs it.
fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Writes the submission for `scheduler` and the manifest into `dir`; returns the
/// submission's path.
pub fn write_submission(
    dir: &Path,
    scheduler: Scheduler,
    mut manifest: Manifest,
) -> Result<PathBuf> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| Error::io(format!("cannot create {}", logs.display()), e))?;
    let n = manifest.shards;
    let (task, after) = match manifest.task {
        Task::Toys => (
            "toys",
            format!(
                "merge with `nsbi merge {} --out {}/toys.h5`{}",
                dir.display(),
                dir.display(),
                manifest
                    .result_command()
                    .map(|c| format!(", then test with\n#   {c}"))
                    .unwrap_or_default()
            ),
        ),
        Task::Ratios => (
            "ratios",
            "any command that reads the cache assembles the parts".to_string(),
        ),
        Task::CoverageBayes => (
            "coverage-bayes",
            format!(
                "then merge and test with\n#   {}",
                manifest.result_command().unwrap_or_default()
            ),
        ),
    };
    let (name, text) = match scheduler {
        Scheduler::Slurm => {
            let command = manifest.rerun_command(dir, 0);
            // Shard 0's command with the task id in place of 0.
            let command = command
                .replace(" --shard 0/", " --shard ${SLURM_ARRAY_TASK_ID}/")
                .replace("shard_0.h5", "shard_${SLURM_ARRAY_TASK_ID}.h5");
            let text = format!(
                "#!/bin/bash\n\
                 # nsbi {task}, {n} shards: submit with `sbatch {sub}`;\n\
                 # {after}. Shard i alone: see manifest.json.\n\
                 #SBATCH --job-name=nsbi-{task}\n\
                 #SBATCH --array=0-{last}\n\
                 #SBATCH --ntasks=1\n\
                 #SBATCH --cpus-per-task=1\n\
                 #SBATCH --output={logs}/shard_%a.out\n\
                 set -euo pipefail\n\
                 {command} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\"\n",
                sub = dir.join("submit.sbatch").display(),
                last = n - 1,
                logs = logs.display(),
            );
            ("submit.sbatch", text)
        }
        Scheduler::Condor => {
            let mut args: Vec<String> = manifest.toys_arguments.clone();
            args.push("--shard".into());
            args.push(format!("$(Process)/{n}"));
            if manifest.task != Task::Ratios {
                args.push("--out".into());
                args.push(dir.join("shard_$(Process).h5").display().to_string());
            }
            args.push("--threads".into());
            args.push("1".into());
            // HTCondor's new argument syntax: the whole list in double quotes, words with
            // spaces in single quotes.
            let quoted: Vec<String> = args
                .iter()
                .map(|a| {
                    if a.contains(' ') {
                        format!("'{}'", a.replace('\'', "''"))
                    } else {
                        a.clone()
                    }
                })
                .collect();
            let text = format!(
                "# nsbi {task}, {n} shards: submit with `condor_submit {sub}`;\n\
                 # {after}.\n\
                 universe = vanilla\n\
                 executable = {exe}\n\
                 arguments = \"{args}\"\n\
                 output = {logs}/shard_$(Process).out\n\
                 error = {logs}/shard_$(Process).err\n\
                 log = {logs}/condor.log\n\
                 request_cpus = 1\n\
                 getenv = True\n\
                 queue {n}\n",
                sub = dir.join("submit.sub").display(),
                exe = manifest.executable,
                args = quoted.join(" ").replace('"', "\"\""),
                logs = logs.display(),
            );
            ("submit.sub", text)
        }
    };
    let path = dir.join(name);
    manifest.submission = path.display().to_string();
    let json = serde_json::to_value(&manifest).expect("manifest serialises");
    // The submission and its manifest together, or neither.
    let mut outputs = crate::report::OutputSet::new();
    outputs.write(&path, text.as_bytes())?;
    outputs.json(&dir.join("manifest.json"), &json)?;
    outputs.commit()?;
    Ok(path)
}
