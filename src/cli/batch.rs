//! Batch farms: `batch slurm|condor` for toy plans, hypothesis tests' toys and ratios.

use std::path::{Path, PathBuf};

use nsbi::analysis::{default_cache_dir, Analysis};
use nsbi::data::RatioCache;
use nsbi::infer::construction;
use nsbi::infer::hypotest::{check_test, ToyCalculator};
use nsbi::infer::run;
use nsbi::infer::test_stat::TestStatistic;
use nsbi::ratio;
use nsbi::workspace::Workspace;

use super::hypotest::{
    limit_range, test_setup, HypotestArgs, LimitArgs, SignificanceArgs, TestArgs,
};
use super::neyman::ToyPlanArgs;
use super::posterior::CoverageBayesArgs;
use super::{absolute, CacheArgs};

#[derive(clap::Args)]
#[command(subcommand_precedence_over_arg = true, subcommand_negates_reqs = true)]
pub struct BatchArgs {
    /// slurm or condor.
    #[arg(value_enum)]
    scheduler: nsbi::batch::Scheduler,
    /// A hypothesis test whose toy calculator's toys the shards make (instead of a
    /// Neyman construction's toy plan): `nsbi batch slurm hypotest WS --value 1 --calculator
    /// toys --toys N --shards K --dir DIR`; or a posterior's coverage test over its test pairs:
    /// `nsbi batch slurm coverage-bayes WS --test F.h5 --shards K --dir DIR`.
    #[command(subcommand)]
    test: Option<BatchTest>,
    /// The workspace YAML file.
    workspace: Option<PathBuf>,
    #[command(flatten)]
    plan: Option<ToyPlanArgs>,
    /// Shard the ratio evaluation (`nsbi ratios`) by event ranges instead of making toys.
    #[arg(long, conflicts_with_all = ["mu_grid", "grid", "points", "toys"])]
    ratios: bool,
    /// Number of shards (array tasks).
    #[arg(long, global = true, default_value_t = 0)]
    shards: usize,
    /// Folder for the submission, the manifest, the shard files and the logs.
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// A hypothesis test whose toys a farm makes (`nsbi batch slurm|condor hypotest|limit|significance`),
/// or a posterior's coverage test whose pairs it samples (`… coverage-bayes`).
#[derive(clap::Subcommand)]
pub enum BatchTest {
    /// The toys of `nsbi hypotest` (same options).
    Hypotest(HypotestArgs),
    /// The toys of `nsbi limit` at every value of its scan (same options).
    Limit(LimitArgs),
    /// The toys of `nsbi significance` (same options).
    Significance(SignificanceArgs),
    /// The pairs of `nsbi coverage-bayes` (same options), sharded over the test file.
    CoverageBayes(Box<CoverageBayesArgs>),
}

pub fn run_batch(args: &BatchArgs) -> anyhow::Result<()> {
    if args.shards == 0 {
        anyhow::bail!("--shards must be at least 1");
    }
    if let Some(test) = &args.test {
        if let BatchTest::CoverageBayes(coverage) = test {
            return run_batch_coverage_bayes(args, coverage);
        }
        return run_batch_test(args, test);
    }
    let Some(plan_args) = &args.plan else {
        if args.ratios {
            return run_batch_ratios(args);
        }
        anyhow::bail!(
            "nsbi batch needs a toy plan (--mu-grid, --grid or --points, and --toys) or --ratios"
        );
    };
    let (ws, cache_dir) = batch_workspace(args)?;
    let mut analysis = Analysis::from_workspace(ws, &RatioCache::new(cache_dir.clone()), true)?;
    let mut toys_arguments = vec![
        "toys".to_string(),
        absolute(batch_workspace_path(args)?).display().to_string(),
    ];
    toys_arguments.extend(plan_args.to_arguments());
    toys_arguments.extend(["--cache-dir".to_string(), cache_dir.display().to_string()]);
    // The same checks `nsbi toys` makes, now rather than on the farm.
    let plan = run::toy_plan(&mut analysis, &plan_args.request()?)?;
    construction::observed_profile(&analysis, &plan)?;
    let dir = absolute(batch_dir(args)?);
    let manifest =
        nsbi::batch::Manifest::new(&std::env::current_exe()?, toys_arguments, args.shards);
    let submission = nsbi::batch::write_submission(&dir, args.scheduler, manifest)?;
    let pois: Vec<&str> = plan
        .pois
        .iter()
        .map(|&k| analysis.model.parameters[k].name.as_str())
        .collect();
    println!(
        "{} shards of {} toys ({} grid points of {} × {} toys): submission {}, manifest {}",
        args.shards,
        plan.n_jobs(),
        plan.grid.len(),
        pois.join(", "),
        plan.n_toys,
        submission.display(),
        dir.join("manifest.json").display()
    );
    Ok(())
}

/// The workspace of a batch submission and its cache folder, made absolute for the farm.
fn batch_workspace(args: &BatchArgs) -> anyhow::Result<(Workspace, PathBuf)> {
    let ws = Workspace::load(batch_workspace_path(args)?)?;
    let cache_dir = absolute(
        &args
            .cache
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&ws)),
    );
    Ok((ws, cache_dir))
}

/// `nsbi batch … --ratios`: a job array whose shard i runs `nsbi ratios W --shard i/N`. The
/// workspace and its models are checked here, and nothing is evaluated.
fn run_batch_ratios(args: &BatchArgs) -> anyhow::Result<()> {
    let (ws, cache_dir) = batch_workspace(args)?;
    let pending = ratio::shard::pending_entries(&ws, &RatioCache::new(cache_dir.clone()))?;
    let arguments = vec![
        "ratios".to_string(),
        absolute(batch_workspace_path(args)?).display().to_string(),
        "--cache-dir".into(),
        cache_dir.display().to_string(),
        "--quiet".into(),
    ];
    let dir = absolute(batch_dir(args)?);
    let manifest = nsbi::batch::Manifest::ratios(&std::env::current_exe()?, arguments, args.shards);
    let submission = nsbi::batch::write_submission(&dir, args.scheduler, manifest)?;
    println!(
        "{} shards over {} ratio cache entries to evaluate ({} events): submission {}, \
         manifest {}",
        args.shards,
        pending.len(),
        pending.iter().sum::<usize>(),
        submission.display(),
        dir.join("manifest.json").display()
    );
    Ok(())
}

/// The workspace of `nsbi batch` (a toy plan's or ratios').
fn batch_workspace_path(args: &BatchArgs) -> anyhow::Result<&Path> {
    args.workspace
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("nsbi batch needs the workspace"))
}

/// The folder of `nsbi batch`'s submission.
fn batch_dir(args: &BatchArgs) -> anyhow::Result<&Path> {
    args.dir
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("nsbi batch needs --dir, the submission's folder"))
}

/// The toy calculator's options every shard and the final test share.
fn test_toy_arguments(common: &TestArgs) -> Vec<String> {
    let mut out = vec![
        "--calculator".to_string(),
        "toys".into(),
        "--toys".into(),
        common.toys.to_string(),
        "--seed".into(),
        common.seed.to_string(),
    ];
    if let Some(poi) = &common.poi {
        out.extend(["--poi".to_string(), poi.clone()]);
    }
    if common.no_syst {
        out.push("--no-syst".into());
    }
    out
}

/// `nsbi batch slurm|condor hypotest|limit|significance …`: shard i runs the test with
/// `--shard i/N --out DIR/shard_i.h5`; the submission and the manifest name the merge and the
/// test with the merged toys. The workspace, the fit to the data and the tested values are
/// checked here, and no toy is made.
fn run_batch_test(args: &BatchArgs, test: &BatchTest) -> anyhow::Result<()> {
    let (command, common, statistic, signal) = match test {
        BatchTest::Hypotest(a) => ("hypotest", &a.common, a.test_stat.as_str(), a.signal),
        BatchTest::Limit(a) => ("limit", &a.common, a.test_stat.as_str(), 1.0),
        BatchTest::Significance(a) => ("significance", &a.common, "q0", a.signal),
        BatchTest::CoverageBayes(_) => {
            unreachable!("run_batch sends it to run_batch_coverage_bayes")
        }
    };
    if common.calculator != "toys" {
        anyhow::bail!(
            "nsbi batch {command} farms the toy calculator's toys: give --calculator toys"
        );
    }
    if common.out.is_some() || common.shard.is_some() || !common.toys_from.is_empty() {
        anyhow::bail!("nsbi batch {command} sets --shard, --out and --toys-from itself");
    }
    let (analysis, settings, _) = test_setup(common, TestStatistic::parse(statistic)?, signal)?;
    let mut calc = ToyCalculator::new(&analysis, &settings, common.toys, common.seed)?;
    let mut options = test_toy_arguments(common);
    let tested = match test {
        BatchTest::Hypotest(a) => {
            options.extend(["--value".to_string(), a.value.to_string()]);
            options.extend(["--test-stat".to_string(), a.test_stat.clone()]);
            options.extend(["--signal".to_string(), a.signal.to_string()]);
            vec![a.value]
        }
        BatchTest::Limit(a) => {
            options.extend(["--cl".to_string(), a.cl.to_string()]);
            options.extend(["--points".to_string(), a.points.to_string()]);
            options.extend(["--test-stat".to_string(), a.test_stat.clone()]);
            if let Some(range) = &a.range {
                options.extend(["--range".to_string(), range.clone()]);
            }
            let range = limit_range(a, &analysis, &settings, &calc)?;
            nsbi::fit::scan::linspace(range.0, range.1, a.points)
        }
        BatchTest::Significance(a) => {
            options.extend(["--value".to_string(), a.value.to_string()]);
            options.extend(["--signal".to_string(), a.signal.to_string()]);
            vec![a.value]
        }
        BatchTest::CoverageBayes(_) => {
            unreachable!("run_batch sends it to run_batch_coverage_bayes")
        }
    };
    check_test(&analysis, &settings, &tested)?;
    let plan = calc.plan(tested)?;
    let cache_dir = absolute(
        &common
            .cache
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&analysis.workspace)),
    );
    let mut arguments = vec![
        command.to_string(),
        absolute(&common.workspace).display().to_string(),
    ];
    arguments.extend(options);
    arguments.extend(["--cache-dir".to_string(), cache_dir.display().to_string()]);
    let dir = absolute(batch_dir(args)?);
    let mut result = arguments.clone();
    result.extend([
        "--toys-from".to_string(),
        dir.join("toys.h5").display().to_string(),
    ]);
    if let Some(json) = &common.json {
        result.extend(["--json".to_string(), absolute(json).display().to_string()]);
    }
    if let BatchTest::Limit(LimitArgs {
        plot: Some(stem), ..
    }) = test
    {
        result.extend(["--plot".to_string(), absolute(stem).display().to_string()]);
    }
    let exe = std::env::current_exe()?;
    let mut manifest = nsbi::batch::Manifest::new(&exe, arguments, args.shards);
    manifest.result_arguments = result;
    let submission = nsbi::batch::write_submission(&dir, args.scheduler, manifest)?;
    println!(
        "{} shards of {} {command} toys: submission {}, manifest {}",
        args.shards,
        plan.n_jobs(),
        submission.display(),
        dir.join("manifest.json").display()
    );
    Ok(())
}

/// `nsbi batch slurm|condor coverage-bayes WS --test F …`: shard i samples its range of the
/// test pairs (`--shard i/N --out DIR/shard_i.h5`); the manifest's result command merges them
/// and runs TARP and SBC. The workspace, the test file and the settings are checked here.
fn run_batch_coverage_bayes(args: &BatchArgs, coverage: &CoverageBayesArgs) -> anyhow::Result<()> {
    let dir = absolute(batch_dir(args)?);
    let pairs = coverage.check_for_batch()?;
    let (arguments, result) = coverage.batch_arguments(&dir);
    let mut manifest =
        nsbi::batch::Manifest::new(&std::env::current_exe()?, arguments, args.shards);
    manifest.task = nsbi::batch::Task::CoverageBayes;
    manifest.result_arguments = result;
    let submission = nsbi::batch::write_submission(&dir, args.scheduler, manifest)?;
    println!(
        "{} shards over {pairs} test pairs: submission {}, manifest {}",
        args.shards,
        submission.display(),
        dir.join("manifest.json").display()
    );
    Ok(())
}
