//! Hypothesis tests as a user runs them: from a request in the user's terms (the calculator by
//! name, toy files by paths or patterns) to `hypotest`, `limit` and `significance` results.
//! The command line and the Python package both call these, so a request gives the same
//! result, or the same refusal, wherever it is made.

use super::hypotest::{
    check_test, AsymptoticCalculator, Calculator, HypotestResult, SignificanceResult, TestSettings,
    ToyCalculator,
};
use super::limit::{self, upper_limit, LimitResult, LimitSettings};
use super::run::toy_paths;
use super::test_stat::TestStatistic;
use super::test_toys;
use crate::analysis::Analysis;
use crate::error::{Error, Result};

/// The options every hypothesis test shares.
#[derive(Clone, Debug)]
pub struct TestRequest {
    /// The parameter of interest (default: the workspace's first POI).
    pub poi: Option<String>,
    /// `asymptotic` or `toys`.
    pub calculator: String,
    /// Toys per hypothesis (toy calculator).
    pub n_toys: usize,
    pub seed: u64,
    /// Stat-only: nuisance parameters frozen at their best fit to the data.
    pub no_syst: bool,
    /// Stored toys (paths or glob patterns) to test with instead of making them.
    pub toys_from: Vec<String>,
}

/// `--test-stat` of `nsbi hypotest`: a one-sided statistic.
pub fn hypotest_statistic(text: &str) -> Result<TestStatistic> {
    let statistic = TestStatistic::parse(text)?;
    if !statistic.is_one_sided() {
        return Err(Error::Analysis(format!(
            "--test-stat {statistic}: CLs needs a one-sided statistic (qtilde, qmu, or q0 for \
             discovery); tmu and tmutilde give two-sided intervals (nsbi scan, nsbi neyman)"
        )));
    }
    Ok(statistic)
}

/// `--test-stat` of `nsbi limit`: q̃_μ or q_μ.
pub fn limit_statistic(text: &str) -> Result<TestStatistic> {
    let statistic = TestStatistic::parse(text)?;
    if !matches!(statistic, TestStatistic::Qtilde | TestStatistic::Qmu) {
        return Err(Error::Analysis(format!(
            "--test-stat {statistic}: an upper limit needs qtilde or qmu"
        )));
    }
    Ok(statistic)
}

/// The calculator the request names.
pub fn calculator<'a>(
    analysis: &'a Analysis,
    settings: &TestSettings,
    request: &TestRequest,
) -> Result<Box<dyn Calculator + 'a>> {
    if !request.toys_from.is_empty() && request.calculator != "toys" {
        return Err(Error::Analysis(
            "--toys-from tests with stored toys: give --calculator toys".into(),
        ));
    }
    Ok(match request.calculator.as_str() {
        "asymptotic" => Box::new(AsymptoticCalculator::new(analysis, settings)?),
        "toys" if !request.toys_from.is_empty() => {
            let files = request.toys_from.join(" ");
            let merged = test_toys::merge(&toy_paths(&request.toys_from)?)?;
            Box::new(ToyCalculator::from_file(
                analysis, settings, merged, &files,
            )?)
        }
        "toys" => Box::new(ToyCalculator::new(
            analysis,
            settings,
            request.n_toys,
            request.seed,
        )?),
        other => {
            return Err(Error::Analysis(format!(
                "--calculator '{other}' is not known (expected asymptotic or toys)"
            )))
        }
    })
}

/// `nsbi hypotest`: CLs of the POI value `value` (signal hypothesis `signal` for q₀).
pub fn hypotest(
    analysis: &mut Analysis,
    request: &TestRequest,
    statistic: TestStatistic,
    value: f64,
    signal: f64,
) -> Result<HypotestResult> {
    let (settings, mut warnings) = TestSettings::prepare(
        analysis,
        request.poi.as_deref(),
        statistic,
        signal,
        request.no_syst,
    )?;
    let analysis: &Analysis = analysis;
    check_test(analysis, &settings, &[value])?;
    let mut calc = calculator(analysis, &settings, request)?;
    let point = calc.test(value)?;
    let poi = &analysis.model.parameters[settings.poi].name;
    let mut result = HypotestResult::new(poi, statistic, calc.as_ref(), point);
    warnings.append(&mut result.warnings);
    result.warnings = warnings;
    Ok(result)
}

/// The scan of an upper limit: `range` (`low:high`, default from the fit to the data) in
/// `points` values.
#[derive(Clone, Debug)]
pub struct LimitRequest {
    pub cl: f64,
    pub range: Option<String>,
    pub points: usize,
}

/// `nsbi limit`: the CLs upper limit on the POI, observed and expected.
pub fn limit(
    analysis: &mut Analysis,
    request: &TestRequest,
    statistic: TestStatistic,
    scan: &LimitRequest,
) -> Result<LimitResult> {
    let (settings, mut warnings) = TestSettings::prepare(
        analysis,
        request.poi.as_deref(),
        statistic,
        1.0,
        request.no_syst,
    )?;
    let analysis: &Analysis = analysis;
    let mut calc = calculator(analysis, &settings, request)?;
    let (range, points) = match calc.stored_values() {
        Some(values) => limit::stored_scan(
            &values,
            scan.range.as_deref(),
            scan.points,
            &request.toys_from.join(" "),
        )?,
        None => {
            let bounds = analysis.model.parameters[settings.poi].bounds;
            let range =
                limit::scan_range(scan.range.as_deref(), bounds, calc.as_ref(), scan.points)?;
            (range, scan.points)
        }
    };
    check_test(analysis, &settings, &[range.0, range.1])?;
    let limit_settings = LimitSettings {
        cl: scan.cl,
        range,
        background: 0.0,
        points,
        root_finding: request.calculator == "asymptotic",
    };
    let poi = analysis.model.parameters[settings.poi].name.clone();
    let mut result = upper_limit(calc.as_mut(), &poi, statistic, &limit_settings)?;
    warnings.append(&mut result.warnings);
    result.warnings = warnings;
    Ok(result)
}

/// Refuses a discovery test whose signal hypothesis is the null one.
pub fn check_signal(value: f64, signal: f64) -> Result<()> {
    if signal == value {
        return Err(Error::Analysis(format!(
            "--signal {signal} equals the null hypothesis' --value: the expected significance \
             needs a signal hypothesis other than the null"
        )));
    }
    Ok(())
}

/// `nsbi significance`: q₀, p₀ and Z of the data against the POI value `value`, and the median
/// expected under `signal`.
pub fn significance(
    analysis: &mut Analysis,
    request: &TestRequest,
    value: f64,
    signal: f64,
) -> Result<SignificanceResult> {
    let (settings, mut warnings) = TestSettings::prepare(
        analysis,
        request.poi.as_deref(),
        TestStatistic::Q0,
        signal,
        request.no_syst,
    )?;
    let analysis: &Analysis = analysis;
    check_test(analysis, &settings, &[value, signal])?;
    check_signal(value, signal)?;
    let mut calc = calculator(analysis, &settings, request)?;
    let point = calc.test(value)?;
    let poi = &analysis.model.parameters[settings.poi].name;
    let mut result = SignificanceResult::new(poi, signal, calc.as_ref(), point);
    warnings.append(&mut result.warnings);
    result.warnings = warnings;
    Ok(result)
}
