//! The Neyman construction: `toys`, `merge`, `neyman`, `coverage`.

use std::path::{Path, PathBuf};

use nsbi::infer::construction::{self, NeymanOutput};
use nsbi::infer::region::NeymanRegionOutput;
use nsbi::infer::run::{
    self, CoverageRequest, GridRequest, Merged, NeymanReport, ToyRequest, TruePoint,
};
use nsbi::infer::test_stat::TestStatistic;
use nsbi::infer::toyfile;

use super::{absolute, format_ends, load_analysis, set_threads, shard_or_all, CacheArgs};

/// What toys to make: shared by `nsbi toys` and `nsbi batch`.
#[derive(clap::Args)]
pub struct ToyPlanArgs {
    /// The parameter of interest of --mu-grid (default: the workspace's first POI).
    #[arg(long)]
    poi: Option<String>,
    /// Grid of true values of one POI, start:stop:step (inclusive), e.g. 0:3:0.1; every other
    /// POI is profiled.
    #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["grid", "points"])]
    mu_grid: Option<String>,
    /// One axis of a product grid of POI points, NAME=start:stop:step (repeat it per POI:
    /// `--grid c1=-1:1:0.1 --grid c2=-1:1:0.1`). A point fixes all its POIs (a joint region).
    #[arg(long, allow_hyphen_values = true, conflicts_with = "points")]
    grid: Vec<String>,
    /// A list of grid points: a file whose first line names the POIs (`c1, c2`) and every
    /// further line holds one point's values.
    #[arg(long)]
    points: Option<PathBuf>,
    /// A POI the statistic profiles instead of fixing it (repeatable; with --grid or
    /// --points). POIs neither on the grid nor profiled stay at their initial values.
    #[arg(long)]
    profile: Vec<String>,
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
        let grid = match (&self.mu_grid, &self.points) {
            (Some(text), _) => GridRequest::MuGrid(text.clone()),
            (None, Some(path)) => GridRequest::Points(path.clone()),
            (None, None) if !self.grid.is_empty() => GridRequest::Axes(self.grid.clone()),
            (None, None) => {
                anyhow::bail!("give the toys' grid: --mu-grid, --grid NAME=… or --points FILE")
            }
        };
        Ok(ToyRequest {
            poi: self.poi.clone(),
            grid,
            profile: self.profile.clone(),
            n_toys: self.toys,
            seed: self.seed,
            no_syst: self.no_syst,
            statistic: TestStatistic::parse(&self.test_stat)?,
        })
    }

    /// The same options as `nsbi toys` arguments (for the shards of a batch).
    pub fn to_arguments(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(text) = &self.mu_grid {
            out.extend(["--mu-grid".to_string(), text.clone()]);
        }
        for axis in &self.grid {
            out.extend(["--grid".to_string(), axis.clone()]);
        }
        if let Some(path) = &self.points {
            // The shards run from another folder.
            out.extend(["--points".to_string(), absolute(path).display().to_string()]);
        }
        for poi in &self.profile {
            out.extend(["--profile".to_string(), poi.clone()]);
        }
        out.extend([
            "--toys".into(),
            self.toys.to_string(),
            "--seed".into(),
            self.seed.to_string(),
        ]);
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
    /// Belt plot (one POI) or region plot (two POIs on a product grid): writes PLOT with .png
    /// and .svg extensions.
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
    /// The true POI value of a one-POI construction: one of its grid points.
    #[arg(
        long,
        allow_hyphen_values = true,
        required_unless_present = "at",
        conflicts_with = "at"
    )]
    mu_true: Option<f64>,
    /// The true point of a construction of several POIs, `c1=0.2,c2=-0.1`: one of its grid
    /// points (the joint regions' coverage).
    #[arg(long, allow_hyphen_values = true)]
    at: Option<String>,
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
    let header = &toys.header;
    let not_converged = construction::not_converged(&toys.records);
    if let Some(warning) =
        construction::exclusion_warning(&header.pois, &header.excluded, not_converged)
    {
        eprintln!("warning: {warning}");
        for e in &header.excluded {
            eprintln!("  {}", e.describe(&header.pois));
        }
    }
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
            let manifest = nsbi::batch::Manifest::read(input)?;
            if manifest.task == nsbi::batch::Task::CoverageBayes {
                anyhow::bail!(
                    "{} holds coverage-bayes shards: merge and test them with\n  {}",
                    input.display(),
                    manifest.result_command().unwrap_or_default()
                );
            }
            paths.extend(manifest.shard_files(input)?);
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
    let mut outputs = nsbi::report::OutputSet::new();
    match run::neyman(&mut analysis, &toys, &args.toys.join(" "), &levels)? {
        NeymanReport::Intervals(result) => {
            print_intervals(&result);
            if let Some(path) = &args.json {
                outputs.json(path, &serde_json::to_value(&result)?)?;
            }
            if let Some(stem) = &args.plot {
                belt_plot(&mut outputs, stem, &result)?;
            }
        }
        NeymanReport::Regions(result) => {
            print_regions(&result);
            if let Some(path) = &args.json {
                outputs.json(path, &serde_json::to_value(&result)?)?;
            }
            if let Some(stem) = &args.plot {
                nsbi::plot::region::neyman_2d(&mut outputs, stem, &result)?;
            }
        }
    }
    outputs.commit()?;
    Ok(())
}

fn print_intervals(result: &NeymanOutput) {
    for (label, iv) in &result.intervals {
        let text = format_ends(iv, &result.open_ends[label]);
        println!("{label} % Neyman interval(s) of {}: {text}", result.poi);
    }
    for (label, iv) in &result.asymptotic_intervals {
        let text = format_ends(iv, &result.asymptotic_open_ends[label]);
        println!("{label} % asymptotic interval(s): {text}");
    }
    for warning in &result.warnings {
        eprintln!("warning: {warning}");
    }
}

/// The observed t and the critical values against the POI, with the χ² thresholds.
fn belt_plot(
    outputs: &mut nsbi::report::OutputSet,
    stem: &Path,
    result: &NeymanOutput,
) -> anyhow::Result<()> {
    let points = |v: &[f64]| result.grid.iter().copied().zip(v.iter().copied()).collect();
    let mut curves = vec![nsbi::plot::Curve {
        label: "observed t".into(),
        points: points(&result.observed_t),
        dashed: false,
    }];
    for (label, c) in &result.critical_values {
        curves.push(nsbi::plot::Curve {
            label: format!("critical value {label} %"),
            points: points(c),
            dashed: true,
        });
    }
    let thresholds = nsbi::fit::scan::THRESHOLDS_1D;
    nsbi::plot::scan_1d(outputs, stem, &result.poi, &curves, &thresholds)?;
    Ok(())
}

/// Each region's size on the grid, Neyman beside asymptotic, and the warnings.
fn print_regions(result: &NeymanRegionOutput) {
    let count = |mask: &[bool]| mask.iter().filter(|&&a| a).count();
    let n = result.points.len();
    let best: Vec<String> = result
        .best_fit
        .iter()
        .map(|(name, v)| format!("{name} = {v:.6}"))
        .collect();
    println!("best fit: {}", best.join(", "));
    for (neyman, asymptotic) in result.regions.iter().zip(&result.asymptotic_regions) {
        println!(
            "{:.2} % joint region of {}: {} of {n} grid points (toy statistics: {} to {}); \
             asymptotic (t ≤ {:.3}): {}",
            neyman.cl,
            result.pois.join(", "),
            count(&neyman.accepted),
            count(&neyman.accepted_narrow),
            count(&neyman.accepted_wide),
            asymptotic.threshold,
            count(&asymptotic.accepted),
        );
    }
    for warning in &result.warnings {
        eprintln!("warning: {warning}");
    }
}

pub fn run_coverage(args: &CoverageArgs) -> anyhow::Result<()> {
    let toys = toyfile::merge(&run::toy_paths(&args.toys)?)?;
    let mut analysis = load_analysis(&args.workspace, args.cache.cache_dir.clone())?;
    let point = match (&args.at, args.mu_true) {
        (Some(at), _) => TruePoint::ByName(at.clone()),
        (None, Some(mu)) => TruePoint::Mu(mu),
        (None, None) => anyhow::bail!("give the true point: --mu-true or --at"),
    };
    let request = CoverageRequest {
        point,
        n_toys: args.n,
        seed: args.seed,
        levels: run::confidence_levels(&args.cl)?,
    };
    let bar = indicatif::ProgressBar::new(args.n as u64);
    let files = args.toys.join(" ");
    let report = run::coverage(&mut analysis, &toys, &files, &request, &|| bar.inc(1))?;
    bar.finish_and_clear();
    for (label, row) in &report.levels {
        println!(
            "{label} %: coverage {:.4} ± {:.4} (construction ± {:.4}), pull {:.2}",
            row.coverage, row.error, row.construction_error, row.pull,
        );
    }
    if let Some(path) = &args.json {
        nsbi::report::write_json_atomic(path, &serde_json::to_value(&report)?)?;
    }
    Ok(())
}
