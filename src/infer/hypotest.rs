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

use rayon::prelude::*;
use serde::Serialize;

use super::test_stat::{Asymptotic, ProfileRatio, TailProbabilities, TestStatistic};
use super::toys::{nll_at_minimum, toy_fits, ToyPlan, ToySource};
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

/// One dataset's fits for the statistics: the free fit, made once, and conditional fits at
/// tested values, each started from the nearest one made so far.
pub struct Profile<'a> {
    like: Likelihood<'a>,
    poi: usize,
    options: FitOptions,
    what: &'static str,
    pub free: FitResult,
    conditional: Vec<(f64, FitResult)>,
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
            warnings,
        }
    }

    /// The fit with the POI fixed at `mu`.
    pub fn conditional(&mut self, mu: f64) -> Result<&FitResult> {
        if let Some(i) = self.conditional.iter().position(|(m, _)| *m == mu) {
            return Ok(&self.conditional[i].1);
        }
        let nearest = self
            .conditional
            .iter()
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
/// fit there) and as many under the background one (the conditional fit at 0, or for q₀ at the
/// tested value), the statistic at the tested value on each.
pub struct ToyCalculator<'a> {
    analysis: &'a Analysis,
    settings: TestSettings,
    data: Profile<'a>,
    n_toys: usize,
    seed: u64,
    /// The resampled toy MC weights, made once and reused by every generation point.
    toy_mc: Option<Vec<Vec<f64>>>,
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
            data: data_profile(analysis, settings)?,
            n_toys,
            seed,
            toy_mc: None,
            failed_fits: 0,
        })
    }

    /// The statistic at `mu` on `n_toys` toys generated at the data's conditional fit at
    /// `generation`. Toy t of generation value g draws from the stream keyed by (seed, g's
    /// bits, t): the same toys wherever and however often they are made.
    pub fn toy_statistics(&mut self, generation: f64, mu: f64) -> Result<Vec<f64>> {
        let theta_gen = self.data.generation_point(generation)?;
        let source = ToySource::asimov_reusing(self.analysis, &theta_gen, &mut self.toy_mc)?;
        let plan = ToyPlan {
            poi: self.settings.poi,
            grid: vec![generation],
            n_toys: self.n_toys,
            seed: self.seed,
            systematics: self.settings.systematics,
            statistic: self.settings.statistic,
        };
        let mut start = theta_gen.clone();
        start[plan.poi] = mu;
        let key = generation.to_bits() as usize;
        let statistic = self.settings.statistic;
        let outcomes: Vec<(f64, bool)> = (0..self.n_toys)
            .into_par_iter()
            .map(|t| {
                let like = source.draw(plan.seed, key, t, plan.systematics);
                let (conditional, free) = toy_fits(&like, &plan, &start);
                let fits = ProfileRatio {
                    tested: mu,
                    nll_conditional: nll_at_minimum(&conditional),
                    nll_free: nll_at_minimum(&free),
                    poi_hat: free.theta[plan.poi],
                };
                (
                    statistic.value(&fits),
                    conditional.converged && free.converged,
                )
            })
            .collect();
        self.failed_fits += outcomes.iter().filter(|(_, ok)| !ok).count();
        Ok(outcomes.into_iter().map(|(q, _)| q).collect())
    }
}

/// The fraction of `samples` at least `value`, with its binomial error.
fn tail_fraction(samples: &[f64], value: f64) -> (f64, f64) {
    let n = samples.len() as f64;
    let p = samples.iter().filter(|&&q| q >= value).count() as f64 / n;
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
        let other = statistic.asimov_poi(self.settings.signal);
        let signal_toys = self.toy_statistics(mu, mu)?;
        let background_toys = self.toy_statistics(other, mu)?;
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
