//! Hypothesis tests: `hypotest`, `limit`, `significance` (CLs, upper limits, discovery).

use std::path::PathBuf;

use nsbi::analysis::Analysis;
use nsbi::infer::hypotest::{
    check_test, AsymptoticCalculator, Calculator, HypotestResult, SignificanceResult, TestSettings,
    ToyCalculator,
};
use nsbi::infer::limit::{self, upper_limit, LimitSettings};
use nsbi::infer::run::toy_paths;
use nsbi::infer::test_stat::TestStatistic;
use nsbi::infer::test_toys::{self, TestToyFile, TestToyHeader};

use super::{load_analysis, print_warnings, set_threads, shard_or_all, write_result, CacheArgs};

/// The options every hypothesis test shares.
#[derive(clap::Args)]
pub struct TestArgs {
    /// The workspace YAML file (or a pyhf JSON workspace).
    pub workspace: PathBuf,
    /// The parameter of interest (default: the workspace's POI).
    #[arg(long)]
    pub poi: Option<String>,
    /// `asymptotic` (Asimov dataset, CCGV formulas) or `toys` (pseudo-experiments under the
    /// tested and the background hypotheses, generated at the data's conditional fits).
    #[arg(long, default_value = "asymptotic")]
    pub calculator: String,
    /// Toys per hypothesis (toy calculator).
    #[arg(long, default_value_t = 2000)]
    pub toys: usize,
    /// Seed of the toys: the same seed gives the same toys, whatever the thread count.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stat-only: nuisance parameters frozen at their best fit to the data, in every fit and
    /// in the toys' generation; global observables not randomised.
    #[arg(long)]
    pub no_syst: bool,
    /// Threads for the toys (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the result as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Toy calculator on a farm: make only shard i of N (i from 0) of the toys, into --out.
    #[arg(long, value_name = "i/N", requires = "out")]
    pub shard: Option<String>,
    /// Toy calculator: write the toys (all, or --shard's) to this HDF5 file instead of
    /// testing; `nsbi merge` joins shards, --toys-from tests with them.
    #[arg(long, conflicts_with = "toys_from")]
    pub out: Option<PathBuf>,
    /// Toy calculator: test with the toys of these files (paths or quoted glob patterns,
    /// merged first) instead of making them.
    #[arg(long, num_args = 1..)]
    pub toys_from: Vec<String>,
}

#[derive(clap::Args)]
pub struct HypotestArgs {
    #[command(flatten)]
    pub common: TestArgs,
    /// The tested value of the POI.
    #[arg(long, allow_hyphen_values = true)]
    pub value: f64,
    /// Test statistic: qtilde (q̃_μ, default), qmu (q_μ; pyhf's `q`), or q0 (discovery). The
    /// two-sided tmu and tmutilde are the Neyman construction's (`nsbi toys --test-stat`).
    #[arg(long, default_value = "qtilde")]
    pub test_stat: String,
    /// For --test-stat q0: the signal hypothesis of the expected p-values.
    #[arg(long, default_value_t = 1.0)]
    pub signal: f64,
}

#[derive(clap::Args)]
pub struct LimitArgs {
    #[command(flatten)]
    pub common: TestArgs,
    /// Confidence level of the limit (CLs = 1 − CL there).
    #[arg(long, default_value_t = 0.95)]
    pub cl: f64,
    /// Tested values low:high (default: from the POI's lower bound, or 0, to its upper bound).
    #[arg(long, allow_hyphen_values = true)]
    pub range: Option<String>,
    /// Tested values over the range: they bracket the limits (and, with toys, give them by
    /// interpolation); each is a hypothesis test.
    #[arg(long, default_value_t = 21)]
    pub points: usize,
    /// Test statistic: qtilde (default) or qmu.
    #[arg(long, default_value = "qtilde")]
    pub test_stat: String,
    /// Brazil-band plot file stem: writes STEM.png and STEM.svg.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct SignificanceArgs {
    #[command(flatten)]
    pub common: TestArgs,
    /// The POI value of the null hypothesis (no signal).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub value: f64,
    /// The signal hypothesis of the expected significance (the Asimov dataset's POI).
    #[arg(long, default_value_t = 1.0)]
    pub signal: f64,
}

/// The analysis and settings of a hypothesis test: the POI, the statistic (whose POI bounds
/// the model takes), the thread pool; and the warnings about the POI's bounds.
pub fn test_setup(
    common: &TestArgs,
    statistic: TestStatistic,
    signal: f64,
) -> anyhow::Result<(Analysis, TestSettings, Vec<String>)> {
    set_threads(common.threads)?;
    let mut analysis = load_analysis(&common.workspace, common.cache.cache_dir.clone())?;
    let (settings, warnings) = TestSettings::prepare(
        &mut analysis,
        common.poi.as_deref(),
        statistic,
        signal,
        common.no_syst,
    )?;
    Ok((analysis, settings, warnings))
}

/// The limit's scan range: --range, or the default from the fit to the data.
pub fn limit_range(
    args: &LimitArgs,
    analysis: &Analysis,
    settings: &TestSettings,
    calc: &dyn Calculator,
) -> anyhow::Result<(f64, f64)> {
    let bounds = analysis.model.parameters[settings.poi].bounds;
    Ok(limit::scan_range(
        args.range.as_deref(),
        bounds,
        calc,
        args.points,
    )?)
}

/// The calculator `--calculator` names.
fn calculator<'a>(
    analysis: &'a Analysis,
    settings: &TestSettings,
    common: &TestArgs,
) -> anyhow::Result<Box<dyn Calculator + 'a>> {
    if !common.toys_from.is_empty() && common.calculator != "toys" {
        anyhow::bail!("--toys-from tests with stored toys: give --calculator toys");
    }
    Ok(match common.calculator.as_str() {
        "asymptotic" => Box::new(AsymptoticCalculator::new(analysis, settings)?),
        "toys" if !common.toys_from.is_empty() => {
            let files = common.toys_from.join(" ");
            let merged = test_toys::merge(&toy_paths(&common.toys_from)?)?;
            Box::new(ToyCalculator::from_file(
                analysis, settings, merged, &files,
            )?)
        }
        "toys" => Box::new(ToyCalculator::new(
            analysis,
            settings,
            common.toys,
            common.seed,
        )?),
        other => anyhow::bail!("--calculator '{other}' is not known (expected asymptotic or toys)"),
    })
}

/// The median, ±1σ and ±2σ of a band (ordered −2σ … +2σ).
fn band_text(values: &[f64; 5], show: fn(f64) -> String) -> String {
    format!(
        "{} [−1σ {}, +1σ {}] [−2σ {}, +2σ {}]",
        show(values[2]),
        show(values[1]),
        show(values[3]),
        show(values[0]),
        show(values[4])
    )
}

/// A probability to four significant digits, in scientific notation when small.
fn probability(p: f64) -> String {
    if p != 0.0 && p.abs() < 1e-3 {
        format!("{p:.4e}")
    } else {
        format!("{p:.6}")
    }
}

fn poi_value(x: f64) -> String {
    format!("{x:.6}")
}

pub fn run_hypotest(args: &HypotestArgs) -> anyhow::Result<()> {
    let statistic = TestStatistic::parse(&args.test_stat)?;
    if !statistic.is_one_sided() {
        anyhow::bail!(
            "--test-stat {statistic}: CLs needs a one-sided statistic (qtilde, qmu, or q0 for \
             discovery); tmu and tmutilde give two-sided intervals (nsbi scan, nsbi neyman)"
        );
    }
    let (analysis, settings, mut warnings) = test_setup(&args.common, statistic, args.signal)?;
    check_test(&analysis, &settings, &[args.value])?;
    if args.common.out.is_some() {
        return write_test_toys(&args.common, &analysis, &settings, |_| Ok(vec![args.value]));
    }
    let mut calc = calculator(&analysis, &settings, &args.common)?;
    let point = calc.test(args.value)?;
    let poi = &analysis.model.parameters[settings.poi].name;
    let mut result = HypotestResult::new(poi, statistic, calc.as_ref(), point);
    warnings.append(&mut result.warnings);
    result.warnings = warnings;
    println!(
        "{poi} = {} ({statistic}, {}): CLs = {}  CLs+b = {}  CLb = {}",
        result.value,
        result.calculator,
        probability(result.cls.observed),
        probability(result.clsb),
        probability(result.clb)
    );
    println!(
        "expected CLs: {}",
        band_text(&result.cls.expected, probability)
    );
    if let Some(toys) = &result.toys {
        println!(
            "toys: {} per hypothesis; CLs ± {:.2e}, CLs+b ± {:.2e}, CLb ± {:.2e}",
            toys.n_toys, toys.cls, toys.clsb, toys.clb
        );
    }
    print_warnings(&result.warnings);
    write_result(args.common.json.as_deref(), &result)
}

pub fn run_limit(args: &LimitArgs) -> anyhow::Result<()> {
    let statistic = TestStatistic::parse(&args.test_stat)?;
    if !matches!(statistic, TestStatistic::Qtilde | TestStatistic::Qmu) {
        anyhow::bail!("--test-stat {statistic}: an upper limit needs qtilde or qmu");
    }
    let (analysis, settings, mut warnings) = test_setup(&args.common, statistic, 1.0)?;
    if args.common.out.is_some() {
        return write_test_toys(&args.common, &analysis, &settings, |calc| {
            let range = limit_range(args, &analysis, &settings, calc)?;
            check_test(&analysis, &settings, &[range.0, range.1])?;
            Ok(nsbi::fit::scan::linspace(range.0, range.1, args.points))
        });
    }
    let mut calc = calculator(&analysis, &settings, &args.common)?;
    let (range, points) = match calc.stored_values() {
        Some(values) => limit::stored_scan(
            &values,
            args.range.as_deref(),
            args.points,
            &args.common.toys_from.join(" "),
        )?,
        None => (
            limit_range(args, &analysis, &settings, calc.as_ref())?,
            args.points,
        ),
    };
    check_test(&analysis, &settings, &[range.0, range.1])?;
    let limit_settings = LimitSettings {
        cl: args.cl,
        range,
        background: 0.0,
        points,
        root_finding: args.common.calculator == "asymptotic",
    };
    let poi = analysis.model.parameters[settings.poi].name.clone();
    let mut result = upper_limit(calc.as_mut(), &poi, statistic, &limit_settings)?;
    warnings.append(&mut result.warnings);
    result.warnings = warnings;
    println!(
        "{:.1} % CLs upper limit on {poi} ({statistic}, {}): observed {:.6}",
        100.0 * result.cl,
        result.calculator,
        result.observed
    );
    println!("expected: {}", band_text(&result.expected, poi_value));
    print_warnings(&result.warnings);
    let mut outputs = nsbi::report::OutputSet::new();
    if let Some(path) = &args.common.json {
        outputs.json(path, &serde_json::to_value(&result)?)?;
    }
    if let Some(stem) = &args.plot {
        let mu: Vec<f64> = result.scan.iter().map(|p| p.value).collect();
        let observed: Vec<f64> = result.scan.iter().map(|p| p.cls.observed).collect();
        let expected: Vec<[f64; 5]> = result.scan.iter().map(|p| p.cls.expected).collect();
        let curve = nsbi::plot::brazil::BrazilCurve {
            poi: &poi,
            cl: result.cl,
            mu: &mu,
            observed: &observed,
            expected: &expected,
            observed_limit: Some(result.observed),
            expected_limits: Some(result.expected),
        };
        nsbi::plot::brazil::brazil(&mut outputs, stem, &curve)?;
    }
    outputs.commit()?;
    Ok(())
}

pub fn run_significance(args: &SignificanceArgs) -> anyhow::Result<()> {
    let statistic = TestStatistic::Q0;
    let (analysis, settings, mut warnings) = test_setup(&args.common, statistic, args.signal)?;
    check_test(&analysis, &settings, &[args.value, args.signal])?;
    if args.signal == args.value {
        anyhow::bail!(
            "--signal {} equals the null hypothesis' --value: the expected significance needs \
             a signal hypothesis other than the null",
            args.signal
        );
    }
    if args.common.out.is_some() {
        return write_test_toys(&args.common, &analysis, &settings, |_| Ok(vec![args.value]));
    }
    let mut calc = calculator(&analysis, &settings, &args.common)?;
    let point = calc.test(args.value)?;
    let poi = &analysis.model.parameters[settings.poi].name;
    let mut result = SignificanceResult::new(poi, args.signal, calc.as_ref(), point);
    warnings.append(&mut result.warnings);
    result.warnings = warnings;
    let d = &result.observed;
    println!(
        "{poi} = {} rejected at: q0 = {:.6}, p0 = {:.4e}, Z = {:.4} ({})",
        result.value, d.q0, d.p0, d.z, result.calculator
    );
    let e = &result.expected;
    println!(
        "expected under {poi} = {}: q0 = {:.6}, p0 = {:.4e}, Z = {:.4}",
        result.signal, e.q0, e.p0, e.z
    );
    print_warnings(&result.warnings);
    write_result(args.common.json.as_deref(), &result)
}

/// `--out` (with or without `--shard`): makes the toy calculator's toys at the values `tested`
/// gives (from the calculator's fit to the data) and writes them, without testing.
fn write_test_toys(
    common: &TestArgs,
    analysis: &Analysis,
    settings: &TestSettings,
    tested: impl FnOnce(&ToyCalculator) -> anyhow::Result<Vec<f64>>,
) -> anyhow::Result<()> {
    if common.calculator != "toys" {
        anyhow::bail!("--out and --shard write the toy calculator's toys: give --calculator toys");
    }
    let Some(out) = &common.out else {
        anyhow::bail!("--shard writes the toys it makes: give --out FILE");
    };
    let shard = shard_or_all(common.shard.as_deref())?;
    let mut calc = ToyCalculator::new(analysis, settings, common.toys, common.seed)?;
    let values = tested(&calc)?;
    let plan = calc.plan(values)?;
    let jobs = nsbi::infer::toys::shard_range(plan.n_jobs(), shard.0, shard.1);
    let records = calc.make_toys(&plan, jobs.clone())?;
    let header = TestToyHeader::new(&common.workspace, plan, analysis, shard);
    TestToyFile { header, records }.write(out)?;
    println!(
        "{} toys (shard {}/{}) written to {}",
        jobs.len(),
        shard.0,
        shard.1,
        out.display()
    );
    print_warnings(&calc.warnings());
    Ok(())
}
