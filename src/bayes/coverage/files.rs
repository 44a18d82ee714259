//! The files of a coverage test: a shard's records (for a batch farm) and the per-pair draws.
//!
//! Shard file (`--shard i/N --out F.h5`): root attribute `plan`, JSON {format, run (the
//! [`CoverageRun`]: workspace and test fingerprints, settings), shard [i, N], range [start,
//! end)}; datasets `pair` (u64 [m]), `tarp_f` (f64 [m]), `ranks` (u64 [m, len(θ)]), `rhat`,
//! `ess_bulk` (f64 [m]) and `divergences` (u64 [m]). Written atomically, so a killed job leaves
//! no file.
//!
//! Draws file (`--samples-out F.h5`): `pair` (u64 [m]), `samples` (f64 [m, chains, draws,
//! len(θ)]), `theta_star` (f64 [m, len(θ)]), `references` (f64 [m, len(θ)], in the normalised
//! coordinates the TARP distances use), `low` and `high` (f64 [len(θ)], the normalisation),
//! `tarp_f` and `ranks` as above; attributes `parameters` (JSON list) and `run` (the
//! [`CoverageRun`] as JSON: workspace and test fingerprints, settings). `validation/tarp_reference.py` feeds it to the `tarp` package.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use serde::{Deserialize, Serialize};

use super::{CoverageRun, CoverageSetup, PairDraws, PairRecord};
use crate::error::{Error, Result};
use crate::infer::h5::{self, ToyReader, ToyWriter};
use crate::infer::toys::shard_range;

/// Bump when a dataset or the header changes meaning.
const FORMAT: &str = "nsbi-coverage-bayes-1";

/// What a shard file says about how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardHeader {
    pub format: String,
    pub run: CoverageRun,
    /// (index, count).
    pub shard: (usize, usize),
    /// The pairs it holds: `range.0..range.1`.
    pub range: (usize, usize),
}

/// The pairs shard `index` of `count` owns: contiguous, all shards together every pair once.
pub fn shard_pairs(pairs: usize, index: usize, count: usize) -> std::ops::Range<usize> {
    shard_range(pairs, index, count)
}

/// Writes a shard's records atomically.
pub fn write_shard(
    path: &Path,
    run: &CoverageRun,
    shard: (usize, usize),
    records: &[PairRecord],
) -> Result<()> {
    let range = shard_pairs(run.pairs, shard.0, shard.1);
    let header = ShardHeader {
        format: FORMAT.into(),
        run: run.clone(),
        shard,
        range: (range.start, range.end),
    };
    h5::write_atomically(path, |out| {
        write_records(out, records, run.parameters.len())?;
        out.plan(&header)
    })
}

fn write_records(out: &ToyWriter, records: &[PairRecord], dim: usize) -> Result<()> {
    let pairs: Vec<u64> = records.iter().map(|r| r.pair as u64).collect();
    out.column("pair", &pairs)?;
    out.column("tarp_f", &records.iter().map(|r| r.f).collect::<Vec<_>>())?;
    let ranks: Vec<u64> = records.iter().flat_map(|r| r.ranks.clone()).collect();
    let ranks = ndarray::Array2::from_shape_vec((records.len(), dim), ranks)
        .map_err(|e| Error::Analysis(format!("coverage ranks: {e}")))?;
    out.file
        .new_dataset_builder()
        .with_data(&ranks)
        .create("ranks")
        .map_err(|e| Error::Analysis(format!("coverage ranks: {e}")))?;
    out.column("rhat", &records.iter().map(|r| r.rhat).collect::<Vec<_>>())?;
    out.column(
        "ess_bulk",
        &records.iter().map(|r| r.ess_bulk).collect::<Vec<_>>(),
    )?;
    out.column(
        "divergences",
        &records.iter().map(|r| r.divergences).collect::<Vec<_>>(),
    )
}

/// Reads a shard file: its header and records, checked for consistent lengths.
pub fn read_shard(path: &Path) -> Result<(ShardHeader, Vec<PairRecord>)> {
    let file = ToyReader::open(path)?;
    let plan = file
        .plan()
        .map_err(|_| file.error("not an nsbi coverage-bayes shard (no 'plan' attribute)".into()))?;
    let value: serde_json::Value = serde_json::from_str(&plan)
        .map_err(|e| file.error(format!("unreadable 'plan' attribute: {e}")))?;
    let format = value["format"].as_str().unwrap_or("(none)");
    if format != FORMAT {
        return Err(file.error(format!(
            "format {format}; expected an nsbi coverage-bayes shard ({FORMAT}), written by \
             `nsbi coverage-bayes … --shard i/N --out FILE`"
        )));
    }
    let header: ShardHeader = serde_json::from_value(value)
        .map_err(|e| file.error(format!("unreadable 'plan' attribute: {e}")))?;
    let pair = file.column::<u64>("pair")?;
    let f = file.column::<f64>("tarp_f")?;
    let ranks = file.column::<u64>("ranks")?;
    let rhat = file.column::<f64>("rhat")?;
    let ess = file.column::<f64>("ess_bulk")?;
    let divergences = file.column::<u64>("divergences")?;
    let (m, dim) = (pair.len(), header.run.parameters.len());
    if [f.len(), rhat.len(), ess.len(), divergences.len()]
        .iter()
        .any(|&l| l != m)
        || ranks.len() != m * dim
    {
        return Err(file.error(format!(
            "record datasets of different lengths ({m} pairs, {dim} parameters)"
        )));
    }
    let records = (0..m)
        .map(|i| PairRecord {
            pair: pair[i] as usize,
            f: f[i],
            ranks: ranks[i * dim..(i + 1) * dim].to_vec(),
            rhat: rhat[i],
            ess_bulk: ess[i],
            divergences: divergences[i],
        })
        .collect();
    Ok((header, records))
}

/// The records of every pair of `run`, from shard files made from the same workspace, test
/// file and settings; each pair exactly once. Errors name the file that does not belong,
/// the pair found twice, or the shards whose files are missing.
pub fn merge_shards(run: &CoverageRun, paths: &[PathBuf]) -> Result<Vec<PairRecord>> {
    if paths.is_empty() {
        return Err(Error::Analysis(
            "no coverage-bayes shard files to merge".into(),
        ));
    }
    let mut slots: Vec<Option<PairRecord>> = vec![None; run.pairs];
    let mut count = 1;
    for path in paths {
        let (header, records) = read_shard(path)?;
        let differences = run.differences(&header.run);
        if !differences.is_empty() {
            return Err(Error::Analysis(format!(
                "{} does not belong to this coverage test of {} on {}: {}",
                path.display(),
                run.workspace,
                run.test,
                differences.join("; ")
            )));
        }
        count = header.shard.1;
        for r in records {
            let slot = slots.get_mut(r.pair).ok_or_else(|| {
                Error::event_file(
                    path,
                    format!(
                        "pair {} lies outside the test's {} pairs",
                        r.pair, run.pairs
                    ),
                )
            })?;
            if slot.replace(r.clone()).is_some() {
                return Err(Error::event_file(
                    path,
                    format!("pair {} appears in more than one shard file", r.pair),
                ));
            }
        }
    }
    let missing: Vec<usize> = (0..run.pairs).filter(|&i| slots[i].is_none()).collect();
    if !missing.is_empty() {
        let shards: Vec<String> = (0..count)
            .filter(|&s| {
                let range = shard_pairs(run.pairs, s, count);
                missing.iter().any(|i| range.contains(i))
            })
            .map(|s| format!("{s}/{count}"))
            .collect();
        return Err(Error::Analysis(format!(
            "{} of {} pairs are missing; shards without their file: {}",
            missing.len(),
            run.pairs,
            shards.join(", ")
        )));
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Writes the draws of the sampled pairs (`records` and `draws` in the same order).
pub fn write_draws(
    path: &Path,
    setup: &CoverageSetup,
    records: &[PairRecord],
    draws: &[PairDraws],
) -> Result<()> {
    h5::write_atomically(path, |out| {
        let err = |e: hdf5::Error| Error::event_file(path, e.to_string());
        let dim = setup.priors.dim();
        let s = &setup.run.settings;
        let values: Vec<f64> = draws
            .iter()
            .flat_map(|d| d.samples.values.iter().copied())
            .collect();
        let samples =
            ndarray::Array4::from_shape_vec((draws.len(), s.chains, s.draws as usize, dim), values)
                .map_err(|e| Error::Analysis(format!("coverage draws: {e}")))?;
        out.file
            .new_dataset_builder()
            .with_data(&samples)
            .create("samples")
            .map_err(err)?;
        write_records(out, records, dim)?;
        let theta: Vec<&[f64]> = records
            .iter()
            .map(|r| setup.pairs.theta_star(r.pair))
            .collect();
        out.matrix("theta_star", dim, theta.into_iter())?;
        out.matrix(
            "references",
            dim,
            draws.iter().map(|d| d.reference.as_slice()),
        )?;
        out.column("low", &setup.normalisation.low)?;
        out.column("high", &setup.normalisation.high)?;
        let text = |s: String| {
            s.parse::<VarLenUnicode>()
                .map_err(|_| Error::Analysis("attribute is not valid text".into()))
        };
        let names = serde_json::to_string(&setup.run.parameters).expect("names serialise");
        let run = serde_json::to_string(&setup.run).expect("the run serialises");
        for (key, value) in [("parameters", text(names)?), ("run", text(run)?)] {
            out.file
                .new_attr::<VarLenUnicode>()
                .create(key)
                .and_then(|a| a.write_scalar(&value))
                .map_err(err)?;
        }
        Ok(())
    })
}
