//! Hypothesis tests: CLs, CLs+b, CLb and the expected CLs band at a tested value of the POI,
//! and discovery's p₀, with the asymptotic (Asimov) calculator or with toys — on any mix of
//! unbinned and binned channels, through the general likelihood.
//!
//! Both calculators follow pyhf 0.7's (and RooStats'): the statistic is one of
//! [`TestStatistic`]; the asymptotic calculator takes σ from the statistic on the Asimov
//! dataset of the background hypothesis, made at the nuisances' conditional fit to the data
//! with the global observables at their expectations there ([`Analysis::likelihood`] of
//! [`Dataset::Asimov`]);
//! the toy calculator draws toys at the conditional fits to the data under the tested and the
//! background hypotheses and counts the toys whose statistic is at least the observed one.

use serde::Serialize;

use super::test_stat::{Asymptotic, ProfileRatio, TailProbabilities, TestStatistic};
use super::test_toys::{self, FreeFits, TestToyFile, TestToyPlan, TestToyRecord, TestedToys};
use crate::analysis::{Analysis, Dataset};
use crate::error::{Error, Result};
use crate::fit::{minimise, FitOptions, FitResult};
use crate::likelihood::Likelihood;

/// What a hypothesis test needs to know besides the workspace.
#[derive(Clone, Debug)]
pub struct TestSettings {
    pub poi: usize,
    pub statistic: TestStatistic,
    /// The signal hypothesis of discovery's Asimov dataset (q₀'s expected significance).
    pub signal: f64,
    /// Whether nuisance parameters float (false: `--no-syst`, frozen at the data's best fit).
    pub systematics: bool,
}

impl TestSettings {
    /// The settings of a test of `poi` (default: the workspace's first POI) with `statistic`;
    /// the model takes the statistic's POI bounds. Returns the warnings about those bounds
    /// (pyhf's: q_μ with a POI bounded at 0).
    pub fn prepare(
        analysis: &mut Analysis,
        poi: Option<&str>,
        statistic: TestStatistic,
        signal: f64,
        no_syst: bool,
    ) -> Result<(TestSettings, Vec<String>)> {
        let poi = analysis.poi_index(poi)?;
        let parameter = &analysis.model.parameters[poi];
        let warnings = statistic
            .bounds_warning(&parameter.name, parameter.bounds)
            .into_iter()
            .collect();
        analysis.use_statistic_bounds(poi, statistic);
        let settings = TestSettings {
            poi,
            statistic,
            signal,
            systematics: !no_syst && analysis.model.has_free_nuisances(),
        };
        Ok((settings, warnings))
    }
}

/// One dataset's fits for the statistics: the free fit, made once, and conditional fits at
/// tested values, each started from the nearest one made so far.
pub struct Profile<'a> {
    like: Likelihood<'a>,
    poi: usize,
    options: FitOptions,
    what: &'static str,
    pub free: FitResult,
    conditional: Vec<(f64, FitResult)>,
    /// Whether a conditional fit starts from the nearest one made so far (else from the free
    /// fit, so that its result does not depend on which values were fitted before).
    warm_starts: bool,
    pub warnings: Vec<String>,
}

impl<'a> Profile<'a> {
    /// The free fit of `like` from `start`, with the parameters `fixed` held.
    pub fn new(
        like: Likelihood<'a>,
        poi: usize,
        start: &[f64],
        fixed: &[bool],
        what: &'static str,
    ) -> Profile<'a> {
        let mut options = FitOptions::new(&like);
        options.init = start.to_vec();
        for (f, &held) in options.fixed.iter_mut().zip(fixed) {
            *f |= held;
        }
        let free = minimise(&like, &options);
        let mut warnings = Vec::new();
        // At a bound the Hessian does not describe a minimum (the background Asimov's μ̂ = 0
        // with √μ terms); elsewhere a Hessian that is not positive definite is reported.
        let at_bound = free.at_bound.iter().any(|&b| b);
        if free.verdict() == "not_converged"
            || (free.verdict() == "hessian_not_positive_definite" && !at_bound)
        {
            warnings.push(format!(
                "the free fit to {what} ended {}: {}",
                free.verdict(),
                free.message
            ));
        }
        Profile {
            like,
            poi,
            options,
            what,
            free,
            conditional: Vec::new(),
            warm_starts: true,
            warnings,
        }
    }

    /// The profile with every conditional fit started from the free fit: the toy calculator's,
    /// whose generation points must not depend on the order values are tested in (a limit
    /// scan's, a single hypotest's and a farm shard's toys are then the same).
    pub fn independent_starts(mut self) -> Profile<'a> {
        self.warm_starts = false;
        self
    }

    /// The fit with the POI fixed at `mu`.
    pub fn conditional(&mut self, mu: f64) -> Result<&FitResult> {
        if let Some(i) = self.conditional.iter().position(|(m, _)| *m == mu) {
            return Ok(&self.conditional[i].1);
        }
        let nearest = self
            .conditional
            .iter()
            .filter(|_| self.warm_starts)
            .min_by(|a, b| (a.0 - mu).abs().total_cmp(&(b.0 - mu).abs()))
            .map_or(&self.free.theta, |(_, fit)| &fit.theta);
        let mut options = self.options.clone();
        options.init = nearest.clone();
        options.init[self.poi] = mu;
        options.fixed[self.poi] = true;
        let fit = minimise(&self.like, &options);
        let name = &self.like.model.parameters[self.poi].name;
        if !fit.nll.is_finite() {
            return Err(Error::Analysis(format!(
                "{} has no likelihood at {name} = {mu} (a density ≤ 0 there): test values \
                 inside the region where the model is a density",
                self.what
            )));
        }
        if !fit.converged {
            self.warnings.push(format!(
                "the fit to {} at {name} = {mu} did not converge: {}",
                self.what, fit.message
            ));
        }
        self.conditional.push((mu, fit));
        Ok(&self.conditional.last().expect("pushed above").1)
    }

    /// The parameter point of the hypothesis `mu`: the POI at `mu` exactly, the nuisances at
    /// their conditional fit there. (The fit itself keeps a 10⁻¹⁰ margin from a bound —
    /// [`crate::fit::inner_bounds`] — which at μ = 0 would put a √μ ≈ 10⁻⁵ interference
    /// admixture into the hypothesis' Asimov dataset and toys.)
    pub fn generation_point(&mut self, mu: f64) -> Result<Vec<f64>> {
        let mut theta = self.conditional(mu)?.theta.clone();
        theta[self.poi] = mu;
        Ok(theta)
    }

    /// The POI at the free fit.
    pub fn poi_hat(&self) -> f64 {
        self.free.theta[self.poi]
    }

    /// The POI's Hessian error at the free fit, where there is one.
    pub fn poi_error(&self) -> Option<f64> {
        self.free.hesse_error(self.poi)
    }

    /// The two fits' summary at the tested value `mu`.
    pub fn ratio(&mut self, mu: f64) -> Result<ProfileRatio> {
        let nll_conditional = self.conditional(mu)?.nll;
        Ok(ProfileRatio {
            tested: mu,
            nll_conditional,
            nll_free: self.free.nll,
            poi_hat: self.poi_hat(),
        })
    }
}

/// The parameters held in every fit of a test: the workspace's fixed ones, and with
/// `--stat-only` every nuisance parameter.
fn held_parameters(analysis: &Analysis, settings: &TestSettings) -> Vec<bool> {
    analysis
        .model
        .parameters
        .iter()
        .map(|p| p.fixed || (!settings.systematics && !p.poi))
        .collect()
}

/// The observed data's profile, from the workspace's initial values (stat-only: from the
/// best fit with every parameter free, where the nuisances then stay).
fn data_profile<'a>(analysis: &'a Analysis, settings: &TestSettings) -> Result<Profile<'a>> {
    let like = analysis.likelihood(&Dataset::Observed)?;
    let start = if settings.systematics {
        analysis.model.init()
    } else {
        minimise(&like, &FitOptions::new(&like)).theta
    };
    let held = held_parameters(analysis, settings);
    Ok(Profile::new(
        like,
        settings.poi,
        &start,
        &held,
        "the observed data",
    ))
}

/// One tested value's outcome.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct TestPoint {
    pub value: f64,
    /// The statistic on the data.
    pub statistic: f64,
    /// The statistic on the background Asimov dataset (asymptotic calculator only).
    pub statistic_asimov: Option<f64>,
    /// The median statistic under the other hypothesis (the background's for limits, the
    /// signal's for q₀): the Asimov dataset's value, or the toys' median.
    pub expected_statistic: f64,
    pub observed: TailProbabilities,
    /// The tail probabilities at the expected statistic, −2σ … +2σ of CLs.
    pub expected: [TailProbabilities; 5],
    /// Toy-statistics errors (toy calculator only).
    pub errors: Option<ToyErrors>,
}

/// The binomial errors of a toy calculator's tail probabilities.
#[derive(Clone, Copy, Debug, Serialize, schemars::JsonSchema)]
pub struct ToyErrors {
    pub clsb: f64,
    pub clb: f64,
    pub cls: f64,
    /// Toys under each hypothesis.
    pub n_toys: usize,
    pub seed: u64,
    /// Toy fits (conditional or free) that did not converge.
    pub failed_fits: usize,
}

/// A calculator of CLs at tested values: what `hypotest` and `limit` use without knowing
/// which one it is.
pub trait Calculator {
    fn name(&self) -> &'static str;
    fn test(&mut self, mu: f64) -> Result<TestPoint>;
    fn warnings(&self) -> Vec<String>;
    /// The observed data's fits.
    fn data(&self) -> &Profile<'_>;
    /// The POI at the free fit to the data.
    fn poi_hat(&self) -> f64 {
        self.data().poi_hat()
    }
    /// The POI's Hessian error at the free fit to the data, where there is one: it sizes a
    /// limit's default scan range.
    fn poi_error(&self) -> Option<f64> {
        self.data().poi_error()
    }
    /// The tested values of stored toys (`--toys-from`), the only ones such a calculator
    /// can test; None where values are tested as asked.
    fn stored_values(&self) -> Option<Vec<f64>> {
        None
    }
}

/// The asymptotic calculator: observed statistic from the data, σ from the Asimov dataset of
/// the background hypothesis (or the signal one for q₀).
pub struct AsymptoticCalculator<'a> {
    statistic: TestStatistic,
    data: Profile<'a>,
    asimov: Profile<'a>,
    /// The Asimov dataset's parameter point: the POI at the hypothesis, the nuisances at their
    /// conditional fit to the data.
    pub asimov_point: Vec<f64>,
}

impl<'a> AsymptoticCalculator<'a> {
    pub fn new(analysis: &'a Analysis, settings: &TestSettings) -> Result<Self> {
        let mut data = data_profile(analysis, settings)?;
        let asimov_poi = settings.statistic.asimov_poi(settings.signal);
        let asimov_point = data.generation_point(asimov_poi)?;
        let like = analysis.likelihood(&Dataset::Asimov(asimov_point.clone()))?;
        let held = held_parameters(analysis, settings);
        let asimov = Profile::new(
            like,
            settings.poi,
            &asimov_point,
            &held,
            "the Asimov dataset",
        );
        Ok(AsymptoticCalculator {
            statistic: settings.statistic,
            data,
            asimov,
            asimov_point,
        })
    }

    /// The statistic's value on the data and on the Asimov dataset at `mu`.
    pub fn statistics(&mut self, mu: f64) -> Result<(f64, f64)> {
        let observed = self.statistic.value(&self.data.ratio(mu)?);
        let asimov = self.statistic.value(&self.asimov.ratio(mu)?);
        Ok((observed, asimov))
    }
}

impl Calculator for AsymptoticCalculator<'_> {
    fn name(&self) -> &'static str {
        "asymptotic"
    }

    fn test(&mut self, mu: f64) -> Result<TestPoint> {
        let (q, q_asimov) = self.statistics(mu)?;
        if q_asimov <= 0.0 {
            return Err(Error::Analysis(format!(
                "the Asimov dataset's statistic at {mu} is 0: the tested value is the \
                 Asimov's own ({}), where the asymptotic calculator has no σ; test another value",
                self.asimov_point[self.data.poi]
            )));
        }
        let asymptotic = Asymptotic::new(self.statistic, q_asimov.sqrt());
        Ok(TestPoint {
            value: mu,
            statistic: q,
            statistic_asimov: Some(q_asimov),
            expected_statistic: q_asimov,
            observed: asymptotic.observed(q),
            expected: asymptotic.expected(),
            errors: None,
        })
    }

    fn data(&self) -> &Profile<'_> {
        &self.data
    }

    fn warnings(&self) -> Vec<String> {
        let mut out = self.data.warnings.clone();
        out.extend(self.asimov.warnings.iter().cloned());
        out
    }
}

/// The toy calculator: `n_toys` toys under the tested hypothesis (at the data's conditional
/// fit there) and as many under the other one (the conditional fit at 0, or for q₀ at the
/// signal), the statistic at the tested value on each ([`super::test_toys`]). The toys are made
/// as values are tested, or read from files made before (`--toys-from`, a farm's shards).
pub struct ToyCalculator<'a> {
    analysis: &'a Analysis,
    settings: TestSettings,
    data: Profile<'a>,
    n_toys: usize,
    seed: u64,
    /// The resampled toy MC weights, made once and reused by every generation point.
    toy_mc: Option<Vec<Vec<f64>>>,
    /// The toys' free fits, which the other hypothesis' toys share at every tested value.
    free_fits: FreeFits,
    /// Stored toys and the files they were read from: no toys are made.
    stored: Option<(TestToyFile, String)>,
    failed_fits: usize,
}

impl<'a> ToyCalculator<'a> {
    pub fn new(
        analysis: &'a Analysis,
        settings: &TestSettings,
        n_toys: usize,
        seed: u64,
    ) -> Result<Self> {
        if n_toys == 0 {
            return Err(Error::Analysis("--toys must be at least 1".into()));
        }
        Ok(ToyCalculator {
            analysis,
            settings: settings.clone(),
            data: data_profile(analysis, settings)?.independent_starts(),
            n_toys,
            seed,
            toy_mc: None,
            free_fits: FreeFits::new(),
            stored: None,
            failed_fits: 0,
        })
    }

    /// The calculator of the toys in `file` (merged from `files`), refusing toys of another
    /// model, statistic, hypothesis, systematics setting or generation point than this test's.
    pub fn from_file(
        analysis: &'a Analysis,
        settings: &TestSettings,
        file: TestToyFile,
        files: &str,
    ) -> Result<Self> {
        let plan = &file.header.plan;
        let mut calculator = ToyCalculator::new(analysis, settings, plan.n_toys, plan.seed)?;
        let expected = calculator.plan(plan.tested.iter().map(|t| t[0]).collect())?;
        file.header.require(analysis, &expected, files)?;
        calculator.stored = Some((file, files.to_string()));
        Ok(calculator)
    }

    /// The toys' plan at the tested values `tested`.
    pub fn plan(&mut self, tested: Vec<f64>) -> Result<TestToyPlan> {
        let poi = self.settings.poi;
        let pois = vec![self.analysis.model.parameters[poi].name.clone()];
        let other = vec![self.settings.statistic.asimov_poi(self.settings.signal)];
        let data = &mut self.data;
        TestToyPlan::new(
            pois,
            self.settings.statistic,
            tested.into_iter().map(|mu| vec![mu]).collect(),
            other,
            (self.n_toys, self.seed, self.settings.systematics),
            |hypothesis| data.generation_point(hypothesis[0]),
        )
    }

    /// Makes the toys `jobs` of `plan` (a farm shard's, or all).
    pub fn make_toys(
        &mut self,
        plan: &TestToyPlan,
        jobs: std::ops::Range<usize>,
    ) -> Result<Vec<TestToyRecord>> {
        test_toys::make_toys(
            self.analysis,
            plan,
            jobs,
            &mut self.toy_mc,
            &mut self.free_fits,
        )
    }

    /// The toys' statistics at `mu`: stored ones, or made now.
    fn toys_at(&mut self, mu: f64) -> Result<TestedToys> {
        if let Some((file, files)) = &self.stored {
            let plan = &file.header.plan;
            let k = plan.tested_index(&[mu]).ok_or_else(|| {
                Error::Analysis(format!(
                    "toy file {files} holds no toys at {} = {mu} (its tested values: {:?}): \
                     make toys at this value, or test one of those",
                    plan.pois.join(", "),
                    plan.tested.iter().map(|t| t[0]).collect::<Vec<_>>()
                ))
            })?;
            return Ok(plan.tested_toys(&file.records, k));
        }
        let plan = self.plan(vec![mu])?;
        let records = self.make_toys(&plan, 0..plan.n_jobs())?;
        Ok(plan.tested_toys(&records, 0))
    }
}

/// How far below the observed statistic a toy's still counts as "at least as extreme": a tie.
/// With discrete data (a bin with no events, say) many toys have exactly the observed q, and
/// their fits return it only to their precision (EDM 10⁻⁹, ~10⁻⁶ where a fit ends on a flat
/// step): without a margin such ties fall on either side by rounding alone.
const TIE: f64 = 1e-6;

/// The fraction of `samples` at least `value` (ties within [`TIE`] included), with its
/// binomial error.
fn tail_fraction(samples: &[f64], value: f64) -> (f64, f64) {
    let n = samples.len() as f64;
    let p = samples.iter().filter(|&&q| q >= value - TIE).count() as f64 / n;
    (p, (p * (1.0 - p) / n).sqrt())
}

/// The `percent` percentile of `values` with linear interpolation between order statistics
/// (numpy's default, which pyhf's expected band uses).
fn percentile(values: &mut [f64], percent: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let position = percent / 100.0 * (values.len() - 1) as f64;
    let (below, fraction) = (position.floor() as usize, position.fract());
    let above = (below + 1).min(values.len() - 1);
    values[below] + fraction * (values[above] - values[below])
}

impl Calculator for ToyCalculator<'_> {
    fn name(&self) -> &'static str {
        "toys"
    }

    fn test(&mut self, mu: f64) -> Result<TestPoint> {
        let statistic = self.settings.statistic;
        let q = statistic.value(&self.data.ratio(mu)?);
        // The tested hypothesis' toys give CLs+b (p₀ for q₀); the other hypothesis' (the
        // background for limits, the signal for q₀) give CLb and the expected band.
        let toys = self.toys_at(mu)?;
        self.failed_fits += toys.failed_fits;
        let (signal_toys, background_toys) = (toys.tested, toys.other);
        let (clsb, clsb_error) = tail_fraction(&signal_toys, q);
        let (clb, clb_error) = tail_fraction(&background_toys, q);
        let observed = TailProbabilities::new(clsb, clb);
        // pyhf's band: CLs at each background toy's statistic, then its normal percentiles.
        let mut clsb_of_background: Vec<f64> = background_toys
            .iter()
            .map(|&qb| tail_fraction(&signal_toys, qb).0)
            .collect();
        let mut clb_of_background: Vec<f64> = background_toys
            .iter()
            .map(|&qb| tail_fraction(&background_toys, qb).0)
            .collect();
        let mut cls_of_background: Vec<f64> = clsb_of_background
            .iter()
            .zip(&clb_of_background)
            .map(|(&sb, &b)| TailProbabilities::new(sb, b).cls)
            .collect();
        let expected = super::test_stat::BAND_SIGMAS.map(|n| {
            let percent = 100.0 * super::test_stat::upper_tail(n);
            TailProbabilities {
                clsb: percentile(&mut clsb_of_background, percent),
                clb: percentile(&mut clb_of_background, percent),
                cls: percentile(&mut cls_of_background, percent),
            }
        });
        let cls_error = observed.cls * (clsb_error / clsb).hypot(clb_error / clb);
        Ok(TestPoint {
            value: mu,
            statistic: q,
            statistic_asimov: None,
            expected_statistic: percentile(&mut background_toys.clone(), 50.0),
            observed,
            expected,
            errors: Some(ToyErrors {
                clsb: clsb_error,
                clb: clb_error,
                cls: cls_error,
                n_toys: self.n_toys,
                seed: self.seed,
                failed_fits: self.failed_fits,
            }),
        })
    }

    fn data(&self) -> &Profile<'_> {
        &self.data
    }

    fn stored_values(&self) -> Option<Vec<f64>> {
        let (file, _) = self.stored.as_ref()?;
        Some(file.header.plan.tested.iter().map(|t| t[0]).collect())
    }

    fn warnings(&self) -> Vec<String> {
        let mut out = self.data.warnings.clone();
        if self.failed_fits > 0 {
            out.push(format!(
                "{} toy fit(s) did not converge (their statistic is counted as it ended)",
                self.failed_fits
            ));
        }
        out
    }
}

/// The checks every test makes before fitting: a free POI, a statistic that gives CLs, a
/// tested value inside the POI's bounds.
pub fn check_test(analysis: &Analysis, settings: &TestSettings, values: &[f64]) -> Result<()> {
    let p = &analysis.model.parameters[settings.poi];
    if p.fixed {
        return Err(Error::Analysis(format!(
            "the POI {} is fixed in the workspace: a profile-likelihood test needs it free",
            p.name
        )));
    }
    let (lo, hi) = p.bounds;
    if let Some(v) = values.iter().find(|v| !(lo..=hi).contains(*v)) {
        return Err(Error::Analysis(format!(
            "tested value {v} lies outside the bounds [{lo}, {hi}] of {}",
            p.name
        )));
    }
    // The other hypothesis is fitted too (the Asimov dataset's, the toys' generation point).
    let other = settings.statistic.asimov_poi(settings.signal);
    if !(lo..=hi).contains(&other) {
        return Err(Error::Analysis(format!(
            "the {} hypothesis {} = {other} lies outside its bounds [{lo}, {hi}]: the test \
             needs it inside",
            if settings.statistic == TestStatistic::Q0 {
                "signal"
            } else {
                "background"
            },
            p.name
        )));
    }
    Ok(())
}

/// `nsbi hypotest`'s result.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct HypotestResult {
    pub poi: String,
    pub value: f64,
    pub test_stat: TestStatistic,
    pub calculator: &'static str,
    pub cls: Band,
    pub clsb: f64,
    pub clb: f64,
    /// p-values of the tested hypothesis (CLs+b) and of the background one (1 − CLb).
    pub p_values: PValues,
    /// CLs+b and CLb at the expected statistic, −2σ … +2σ of CLs.
    pub expected_tails: ExpectedTails,
    /// The statistic on the data and (asymptotic) on the Asimov dataset.
    pub statistic: StatisticValues,
    /// The POI at the free fit to the data.
    pub poi_hat: f64,
    pub toys: Option<ToyErrors>,
    pub warnings: Vec<String>,
}

/// An observed value with its expected band (−2σ … +2σ).
#[derive(Clone, Copy, Debug, Serialize, schemars::JsonSchema)]
pub struct Band {
    pub observed: f64,
    pub expected: [f64; 5],
}

#[derive(Clone, Copy, Debug, Serialize, schemars::JsonSchema)]
pub struct PValues {
    pub signal: f64,
    pub background: f64,
}

#[derive(Clone, Copy, Debug, Serialize, schemars::JsonSchema)]
pub struct ExpectedTails {
    pub clsb: [f64; 5],
    pub clb: [f64; 5],
}

#[derive(Clone, Copy, Debug, Serialize, schemars::JsonSchema)]
pub struct StatisticValues {
    pub observed: f64,
    pub asimov: Option<f64>,
}

impl HypotestResult {
    pub fn new(
        poi: &str,
        statistic: TestStatistic,
        calculator: &dyn Calculator,
        point: TestPoint,
    ) -> HypotestResult {
        HypotestResult {
            poi: poi.to_string(),
            value: point.value,
            test_stat: statistic,
            calculator: calculator.name(),
            cls: Band {
                observed: point.observed.cls,
                expected: point.expected.map(|e| e.cls),
            },
            clsb: point.observed.clsb,
            clb: point.observed.clb,
            p_values: PValues {
                signal: point.observed.clsb,
                background: 1.0 - point.observed.clb,
            },
            expected_tails: ExpectedTails {
                clsb: point.expected.map(|e| e.clsb),
                clb: point.expected.map(|e| e.clb),
            },
            statistic: StatisticValues {
                observed: point.statistic,
                asimov: point.statistic_asimov,
            },
            poi_hat: calculator.poi_hat(),
            toys: point.errors,
            warnings: calculator.warnings(),
        }
    }
}

/// A discovery test's numbers: q₀, its p-value and the significance Z = Φ⁻¹(1 − p₀).
#[derive(Clone, Copy, Debug, Serialize, schemars::JsonSchema)]
pub struct Discovery {
    pub q0: f64,
    pub p0: f64,
    pub z: f64,
}

impl Discovery {
    fn new(q0: f64, p0: f64) -> Discovery {
        Discovery {
            q0,
            p0,
            z: super::test_stat::significance(p0),
        }
    }
}

/// `nsbi significance`'s result.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SignificanceResult {
    pub poi: String,
    /// The null hypothesis' POI value (0: no signal).
    pub value: f64,
    /// The signal hypothesis of the expected significance (the Asimov dataset's POI).
    pub signal: f64,
    pub test_stat: TestStatistic,
    pub calculator: &'static str,
    pub observed: Discovery,
    /// The median expected under the signal hypothesis.
    pub expected: Discovery,
    /// p₀ at the −2σ … +2σ expected statistic under the signal hypothesis (pyhf's order).
    pub expected_p0: [f64; 5],
    pub poi_hat: f64,
    pub toys: Option<ToyErrors>,
    pub warnings: Vec<String>,
}

impl SignificanceResult {
    pub fn new(
        poi: &str,
        signal: f64,
        calculator: &dyn Calculator,
        point: TestPoint,
    ) -> SignificanceResult {
        let median = point.expected[2].clsb;
        SignificanceResult {
            poi: poi.to_string(),
            value: point.value,
            signal,
            test_stat: TestStatistic::Q0,
            calculator: calculator.name(),
            observed: Discovery::new(point.statistic, point.observed.clsb),
            expected: Discovery::new(point.expected_statistic, median),
            expected_p0: point.expected.map(|e| e.clsb),
            poi_hat: calculator.poi_hat(),
            toys: point.errors,
            warnings: calculator.warnings(),
        }
    }
}
