//! The Neyman construction: `toys`, `merge`, `neyman`, `coverage`.

use std::path::PathBuf;

use nsbi::infer::run::{self, CoverageRequest, Merged, ToyRequest};
use nsbi::infer::test_stat::TestStatistic;
use nsbi::infer::toyfile;

use super::{format_ends, load_analysis, set_threads, shard_or_all, CacheArgs};

/// What toys to make: shared by `nsbi toys` and `nsbi batch`.
#[derive(clap::Args)]
pub struct ToyPlanArgs {
    /// The parameter of interest (default: the workspace's first POI).
    #[arg(long)]
    poi: Option<String>,
    /// Grid of true POI values, start:stop:step (inclusive), e.g. 0:3:0.1.
    #[arg(long, allow_hyphen_values = true)]
    mu_grid: String,
    /// Toys per grid point.
    #[arg(long)]
    toys: usize,
    /// Seed of the random streams.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stat-only toys: nuisance parameters frozen at their best fit on the observed data, in
    /// generation and in every fit; global observables not randomised.
    #[arg(long)]
    no_syst: bool,
    /// The statistic of the construction: tmu (t_μ, Feldman–Cousins ordering) or tmutilde
    /// (t̃_μ: the free fit keeps the POI ≥ 0). The toy file records it.
    #[arg(long, default_value = "tmu")]
    test_stat: String,
}

impl ToyPlanArgs {
    /// The library's request for these options.
    pub fn request(&self) -> anyhow::Result<ToyRequest> {
        Ok(ToyRequest {
            poi: self.poi.clone(),
            grid: self.mu_grid.clone(),
            n_toys: self.toys,
            seed: self.seed,
            no_syst: self.no_syst,
            statistic: TestStatistic::parse(&self.test_stat)?,
        })
    }

    /// The same options as `nsbi toys` arguments (for the shards of a batch).
    pub fn to_arguments(&self) -> Vec<String> {
        let mut out = vec![
            "--mu-grid".to_string(),
            self.mu_grid.clone(),
            "--toys".into(),
            self.toys.to_string(),
            "--seed".into(),
            self.seed.to_string(),
        ];
        if let Some(poi) = &self.poi {
            out.extend(["--poi".to_string(), poi.clone()]);
        }
        if self.no_syst {
            out.push("--no-syst".into());
        }
        out.extend(["--test-stat".to_string(), self.test_stat.clone()]);
        out
    }
}

#[derive(clap::Args)]
pub struct ToysArgs {
    /// The workspace YAML file.
    workspace: PathBuf,
    #[command(flatten)]
    plan: ToyPlanArgs,
    /// Make only shard i of N (i from 0): a contiguous part of the (grid point, toy) list.
    #[arg(long, value_name = "i/N")]
    shard: Option<String>,
    /// Output HDF5 file.
    #[arg(long)]
    out: PathBuf,
    /// Threads (default: all cores). The results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(clap::Args)]
pub struct NeymanArgs {
    /// The workspace YAML file (for the observed t_μ curve).
    workspace: PathBuf,
    /// Toy files: paths or glob patterns (quote them), merged before use.
    #[arg(long, required = true, num_args = 1..)]
    toys: Vec<String>,
    /// Confidence levels in addition to 0.6827 and 0.9545.
    #[arg(long)]
    cl: Vec<f64>,
    /// Write the result as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Belt plot: writes PLOT with .png and .svg extensions.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// Toy files or folders (every `*.h5` inside).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The merged file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct CoverageArgs {
    /// The workspace YAML file.
    workspace: PathBuf,
    /// The construction's toy files (paths or quoted glob patterns).
    #[arg(long, required = true, num_args = 1..)]
    toys: Vec<String>,
    /// The true POI value: one of the construction's grid points.
    #[arg(long, allow_hyphen_values = true)]
    mu_true: f64,
    /// Number of coverage toys.
    #[arg(long, default_value_t = 500)]
    n: usize,
    /// Seed of the coverage toys (must differ from the construction's).
    #[arg(long)]
    seed: u64,
    /// Confidence levels in addition to 0.6827 and 0.9545.
    #[arg(long)]
    cl: Vec<f64>,
    /// Write the result as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run_toys(args: &ToysArgs) -> anyhow::Result<()> {
    set_threads(args.threads)?;
    let shard = shard_or_all(args.shard.as_deref())?;
    let mut analysis = load_analysis(&args.workspace, args.cache.cache_dir.clone())?;
    let plan = run::toy_plan(&mut analysis, &args.plan.request()?)?;
    let bar = indicatif::ProgressBar::new(plan.shard(shard.0, shard.1).len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("toys {bar:40} {pos}/{len} {elapsed} (eta {eta})")
            .expect("valid template"),
    );
    let toys = run::make_toy_file(&analysis, &plan, &args.workspace, shard, &|| bar.inc(1))?;
    bar.finish_and_clear();
    toys.write(&args.out)?;
    println!(
        "{} toys (shard {}/{}) written to {}",
        toys.records.len(),
        shard.0,
        shard.1,
        args.out.display()
    );
    Ok(())
}

pub fn run_merge(args: &MergeArgs) -> anyhow::Result<()> {
    let mut paths = Vec::new();
    for input in &args.inputs {
        // A batch folder: its manifest says which shard files must be there.
        if input.join("manifest.json").is_file() {
            paths.extend(nsbi::batch::Manifest::read(input)?.shard_files(input)?);
        } else {
            paths.extend(run::toy_paths(&[input.display().to_string()])?);
        }
    }
    match run::merge_files(&paths, &args.out)? {
        Merged::TestToys(n) => println!(
            "{n} toy statistics of a hypothesis test merged into {}",
            args.out.display()
        ),
        Merged::NeymanToys(n) => println!("{n} toys merged into {}", args.out.display()),
    }
    Ok(())
}

pub fn run_neyman(args: &NeymanArgs) -> anyhow::Result<()> {
    let toys = toyfile::merge(&run::toy_paths(&args.toys)?)?;
    let mut analysis = load_analysis(&args.workspace, args.cache.cache_dir.clone())?;
    let levels = run::confidence_levels(&args.cl)?;
    let result = run::neyman(&mut analysis, &toys, &args.toys.join(" "), &levels)?;
    let (json, poi) = (&result.json, &toys.header.poi);
    for (label, iv) in json["intervals"].as_object().into_iter().flatten() {
        let text = format_intervals(iv, &json["open_ends"][label]);
        println!("{label} % Neyman interval(s) of {poi}: {text}");
    }
    for (label, iv) in json["asymptotic_intervals"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let text = format_intervals(iv, &json["asymptotic_open_ends"][label]);
        println!("{label} % asymptotic interval(s): {text}");
    }
    for warning in json["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", warning.as_str().unwrap_or_default());
    }
    let mut outputs = nsbi::report::OutputSet::new();
    if let Some(path) = &args.json {
        outputs.json(path, json)?;
    }
    if let Some(stem) = &args.plot {
        let grid = &toys.header.grid;
        let points = |v: &[f64]| grid.iter().copied().zip(v.iter().copied()).collect();
        let mut curves = vec![nsbi::plot::Curve {
            label: "observed t".into(),
            points: points(&result.observed_t),
            dashed: false,
        }];
        for (label, c) in &result.critical {
            curves.push(nsbi::plot::Curve {
                label: format!("critical value {label} %"),
                points: points(c),
                dashed: true,
            });
        }
        let thresholds = nsbi::fit::scan::THRESHOLDS_1D;
        nsbi::plot::scan_1d(&mut outputs, stem, poi, &curves, &thresholds)?;
    }
    outputs.commit()?;
    Ok(())
}

/// [`format_ends`] of intervals and open-end flags of the Neyman report.
fn format_intervals(list: &serde_json::Value, open: &serde_json::Value) -> String {
    let list: Vec<[f64; 2]> = serde_json::from_value(list.clone()).unwrap_or_default();
    let open: Vec<[bool; 2]> = serde_json::from_value(open.clone()).unwrap_or_default();
    format_ends(&list, &open)
}

pub fn run_coverage(args: &CoverageArgs) -> anyhow::Result<()> {
    let toys = toyfile::merge(&run::toy_paths(&args.toys)?)?;
    let mut analysis = load_analysis(&args.workspace, args.cache.cache_dir.clone())?;
    let request = CoverageRequest {
        mu_true: args.mu_true,
        n_toys: args.n,
        seed: args.seed,
        levels: run::confidence_levels(&args.cl)?,
    };
    let bar = indicatif::ProgressBar::new(args.n as u64);
    let files = args.toys.join(" ");
    let report = run::coverage(&mut analysis, &toys, &files, &request, &|| bar.inc(1))?;
    bar.finish_and_clear();
    for (label, row) in report["levels"].as_object().into_iter().flatten() {
        println!(
            "{label} %: coverage {:.4} ± {:.4} (construction ± {:.4}), pull {:.2}",
            row["coverage"].as_f64().unwrap_or(f64::NAN),
            row["error"].as_f64().unwrap_or(f64::NAN),
            row["construction_error"].as_f64().unwrap_or(f64::NAN),
            row["pull"].as_f64().unwrap_or(f64::NAN),
        );
    }
    if let Some(path) = &args.json {
        nsbi::report::write_json_atomic(path, &report)?;
    }
    Ok(())
}
