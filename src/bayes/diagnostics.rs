//! Convergence diagnostics of MCMC draws: rank-normalised split-R̂ and bulk/tail effective
//! sample sizes, after Vehtari, Gelman, Simpson, Carpenter and Bürkner, "Rank-normalization,
//! folding, and localization: an improved R̂ for assessing convergence of MCMC", Bayesian
//! Analysis 16 (2021) 667. The formulas follow arviz (`rhat(method="rank")`, `ess(method=
//! "bulk" | "tail")`), which `validation/bayes_diagnostics_reference.py` checks draw for draw.
//!
//! Draws of one parameter come as `[chain][draw]`, all chains of equal length.

use statrs::distribution::{ContinuousCDF, Normal};

/// R̂ above this says the chains have not mixed (the paper's recommendation).
pub const RHAT_LIMIT: f64 = 1.01;
/// Bulk or tail ESS below this makes means and quantiles too noisy to quote.
pub const ESS_LIMIT: f64 = 400.0;

/// The diagnostics of one parameter.
#[derive(Clone, Debug, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct ParameterDiagnostics {
    /// Rank-normalised split-R̂: the larger of the bulk and the folded (tail) R̂.
    pub rhat: f64,
    /// Effective sample size of the rank-normalised split chains (for means and medians).
    pub ess_bulk: f64,
    /// The smaller ESS of the 5 % and 95 % quantile indicators (for intervals).
    pub ess_tail: f64,
}

impl ParameterDiagnostics {
    pub fn of(chains: &[Vec<f64>]) -> Self {
        ParameterDiagnostics {
            rhat: rhat_rank(chains),
            ess_bulk: ess_bulk(chains),
            ess_tail: ess_tail(chains),
        }
    }
}

/// The warnings a user must see before trusting the draws: one line per problem.
pub fn warnings(
    names: &[String],
    diagnostics: &[ParameterDiagnostics],
    divergences: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, d) in names.iter().zip(diagnostics) {
        if d.rhat.is_nan() || d.rhat > RHAT_LIMIT {
            out.push(format!(
                "{name}: R-hat = {:.4} > {RHAT_LIMIT}: the chains have not mixed; run longer warm-up or more draws",
                d.rhat
            ));
        }
        let ess = d.ess_bulk.min(d.ess_tail);
        if ess.is_nan() || ess < ESS_LIMIT {
            out.push(format!(
                "{name}: effective sample size {ess:.0} (bulk {:.0}, tail {:.0}) < {ESS_LIMIT}: estimates are noisy; run more draws",
                d.ess_bulk, d.ess_tail
            ));
        }
    }
    if divergences > 0 {
        out.push(format!(
            "{divergences} divergent transitions after warm-up: the sampler missed part of the posterior; \
             raise the target acceptance rate or reparametrise"
        ));
    }
    out
}

/// Rank-normalised split-R̂: the larger of the R̂ of the rank-normalised split chains and of
/// their folded version |θ − median|, which sees chains that differ in scale only.
pub fn rhat_rank(chains: &[Vec<f64>]) -> f64 {
    let split = split_chains(chains);
    let bulk = rhat(&z_scale(&split));
    let median = quantile(&split, 0.5);
    let folded: Vec<Vec<f64>> = split
        .iter()
        .map(|c| c.iter().map(|x| (x - median).abs()).collect())
        .collect();
    bulk.max(rhat(&z_scale(&folded)))
}

/// ESS of the rank-normalised split chains.
pub fn ess_bulk(chains: &[Vec<f64>]) -> f64 {
    ess(&z_scale(&split_chains(chains)))
}

/// The smaller ESS of the indicators θ ≤ q₀.₀₅ and θ ≤ q₀.₉₅.
pub fn ess_tail(chains: &[Vec<f64>]) -> f64 {
    ess_quantile(chains, 0.05).min(ess_quantile(chains, 0.95))
}

fn ess_quantile(chains: &[Vec<f64>], prob: f64) -> f64 {
    let q = quantile(chains, prob);
    let indicator: Vec<Vec<f64>> = chains
        .iter()
        .map(|c| c.iter().map(|&x| f64::from(u8::from(x <= q))).collect())
        .collect();
    ess(&split_chains(&indicator))
}

/// Each chain cut into its first and last halves (the middle draw of an odd length dropped),
/// so that a trend within a chain shows up as a difference between chains.
fn split_chains(chains: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut out = Vec::with_capacity(2 * chains.len());
    for c in chains {
        let half = c.len() / 2;
        out.push(c[..half].to_vec());
        out.push(c[c.len() - half..].to_vec());
    }
    out
}

/// Replaces every draw by the normal quantile of its fractional rank among all draws
/// (ties share their average rank; Blom's offset 3/8).
fn z_scale(chains: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let flat: Vec<f64> = chains.iter().flatten().copied().collect();
    let ranks = average_ranks(&flat);
    let size = flat.len() as f64;
    let normal = Normal::new(0.0, 1.0).expect("N(0, 1) is a valid distribution");
    let mut z = ranks
        .into_iter()
        .map(|r| normal.inverse_cdf((r - 0.375) / (size + 0.25)));
    chains
        .iter()
        .map(|c| z.by_ref().take(c.len()).collect())
        .collect()
}

/// 1-based ranks, tied values getting the mean of the ranks they span.
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// The q-quantile of all draws, linearly interpolated between order statistics (numpy's
/// default, arviz's `mquantiles(alphap=1, betap=1)`).
fn quantile(chains: &[Vec<f64>], q: f64) -> f64 {
    let mut flat: Vec<f64> = chains.iter().flatten().copied().collect();
    flat.sort_by(f64::total_cmp);
    let position = q * (flat.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(flat.len() - 1);
    let fraction = position - below as f64;
    flat[below] + fraction * (flat[above] - flat[below])
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample variance with n − 1 in the denominator.
fn variance(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64
}

/// Gelman–Rubin R̂ of equal-length chains: √((W (n−1)/n + B/n) / W).
fn rhat(chains: &[Vec<f64>]) -> f64 {
    let n = chains[0].len() as f64;
    let chain_means: Vec<f64> = chains.iter().map(|c| mean(c)).collect();
    let between = n * variance(&chain_means);
    let within = mean(&chains.iter().map(|c| variance(c)).collect::<Vec<_>>());
    ((between / within + n - 1.0) / n).sqrt()
}

/// Effective sample size of equal-length chains from their autocorrelation, truncated by
/// Geyer's initial positive sequence and made monotone (Stan's and arviz's estimator).
fn ess(chains: &[Vec<f64>]) -> f64 {
    let (min, max) = chains
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    let m = chains.len();
    let n = chains[0].len();
    let total = (m * n) as f64;
    if max - min < 1e-15 {
        return total;
    }
    let centred: Vec<Vec<f64>> = chains
        .iter()
        .map(|c| {
            let mu = mean(c);
            c.iter().map(|x| x - mu).collect()
        })
        .collect();
    // Autocovariance at one lag, averaged over chains (biased estimator, divided by n).
    let mean_autocov = |lag: usize| -> f64 {
        centred
            .iter()
            .map(|c| {
                c[..n - lag]
                    .iter()
                    .zip(&c[lag..])
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    / n as f64
            })
            .sum::<f64>()
            / m as f64
    };
    let nf = n as f64;
    let mean_var = mean_autocov(0) * nf / (nf - 1.0);
    let mut var_plus = mean_var * (nf - 1.0) / nf;
    if m > 1 {
        var_plus += variance(&chains.iter().map(|c| mean(c)).collect::<Vec<_>>());
    }
    let rho = |lag: usize| 1.0 - (mean_var - mean_autocov(lag)) / var_plus;

    let mut rho_hat = vec![0.0; n];
    let mut rho_even = 1.0;
    let mut rho_odd = rho(1);
    rho_hat[0] = rho_even;
    rho_hat[1] = rho_odd;
    // Geyer's initial positive sequence: sum pairs of lags while the pair sum is positive.
    let mut t = 1;
    while t + 3 < n && rho_even + rho_odd > 0.0 {
        rho_even = rho(t + 1);
        rho_odd = rho(t + 2);
        if rho_even + rho_odd >= 0.0 {
            rho_hat[t + 1] = rho_even;
            rho_hat[t + 2] = rho_odd;
        }
        t += 2;
    }
    // The last lag kept; −1 when even the first pair sum was negative.
    let max_t = t as isize - 2;
    let after_last = (max_t + 1) as usize;
    if rho_even > 0.0 {
        rho_hat[after_last] = rho_even;
    }
    // Geyer's initial monotone sequence: pair sums may not increase.
    let mut t = 1;
    while t as isize + 2 <= max_t {
        if rho_hat[t + 1] + rho_hat[t + 2] > rho_hat[t - 1] + rho_hat[t] {
            rho_hat[t + 1] = (rho_hat[t - 1] + rho_hat[t]) / 2.0;
            rho_hat[t + 2] = rho_hat[t + 1];
        }
        t += 2;
    }
    let tau = -1.0 + 2.0 * rho_hat[..after_last].iter().sum::<f64>() + rho_hat[after_last];
    let tau = tau.max(1.0 / total.log10());
    if rho_hat.iter().any(|r| r.is_nan()) {
        return f64::NAN;
    }
    total / tau
}
