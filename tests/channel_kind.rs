//! A third channel kind, written here outside the crate against `nsbi::channel`'s interface
//! alone: a one-bin counting channel, n ~ Pois(μ s + b (1 + k α)). Plugged into a model it is
//! fitted, gets Asimov data and toys, and is reported, through the same likelihood, fits and
//! toy source as the binned and unbinned channels — with no change to the crate.

mod common;

use std::any::Any;

use nsbi::analysis::{fit_with_intervals, Dataset};
use nsbi::channel::{ChannelKind, ChannelReport, Observed, ObservedData, ToyKey};
use nsbi::error::Result;
use nsbi::fit::{minimise, FitOptions};
use nsbi::infer::toys::ToySource;
use nsbi::likelihood::{Evaluation, InvalidDensity, Likelihood, Order};
use nsbi::model::{Model, Parameter};
use rand_distr::{Distribution, Poisson};

/// A counting channel: λ(θ) = μ s + b (1 + k α), with μ = θ[`mu`], α = θ[`alpha`].
#[derive(Clone, Debug)]
struct Counting {
    name: String,
    observed: f64,
    signal: f64,
    background: f64,
    /// Relative background change per unit α.
    k: f64,
    mu: usize,
    alpha: usize,
}

/// The counting channel's data: its one count.
#[derive(Debug, PartialEq)]
struct Count(f64);

impl ObservedData for Count {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Counting {
    fn expected(&self, theta: &[f64]) -> f64 {
        self.signal * theta[self.mu] + self.background * (1.0 + self.k * theta[self.alpha])
    }

    fn count(data: &dyn ObservedData) -> f64 {
        data.as_any().downcast_ref::<Count>().unwrap().0
    }
}

impl ChannelKind for Counting {
    fn observed(&self) -> Observed {
        Box::new(Count(self.observed))
    }

    fn asimov(&self, theta: &[f64]) -> Observed {
        Box::new(Count(self.expected(theta)))
    }

    /// λ − n ln λ (no constant), with ∂λ/∂μ = s, ∂λ/∂α = b k and no second derivatives of λ.
    fn add_nll(&self, data: &dyn ObservedData, theta: &[f64], order: Order, out: &mut Evaluation) {
        let (n, lambda) = (Self::count(data), self.expected(theta));
        if lambda <= 0.0 {
            out.invalid.get_or_insert(InvalidDensity {
                channel: self.name.clone(),
                event: 0,
                density: lambda,
                process: None,
                bin: true,
            });
            return;
        }
        out.nll += lambda - n * lambda.ln();
        let d = [
            (self.mu, self.signal),
            (self.alpha, self.background * self.k),
        ];
        if order >= Order::Gradient {
            for &(j, dj) in &d {
                out.gradient[j] += dj * (1.0 - n / lambda);
            }
        }
        if order >= Order::Hessian {
            let dim = theta.len();
            for &(j, dj) in &d {
                for &(l, dl) in &d {
                    out.hessian[j * dim + l] += n * dj * dl / (lambda * lambda);
                }
            }
        }
    }

    fn check_toy_point(&self, theta_gen: &[f64]) -> Result<()> {
        let lambda = self.expected(theta_gen);
        if lambda > 0.0 {
            Ok(())
        } else {
            Err(nsbi::error::Error::Analysis(format!(
                "counting channel {}: λ = {lambda}",
                self.name
            )))
        }
    }

    fn toy(&self, theta_gen: &[f64], key: ToyKey) -> Observed {
        let mut rng = key.stream(b"test counting stream");
        let poisson = Poisson::new(self.expected(theta_gen)).unwrap();
        Box::new(Count(poisson.sample(&mut rng)))
    }

    fn reports(&self, data: &dyn ObservedData, theta: &[f64]) -> Vec<ChannelReport> {
        vec![ChannelReport {
            channel: self.name.clone(),
            observed: vec![Self::count(data)],
            expected: vec![self.expected(theta)],
        }]
    }

    fn undefined_coefficient(&self, _theta: &[f64], _parameters: &[Parameter]) -> Option<String> {
        None
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn clone_box(&self) -> Box<dyn ChannelKind> {
        Box::new(self.clone())
    }
}

fn parameter(name: &str, poi: bool, init: f64, bounds: (f64, f64)) -> Parameter {
    Parameter {
        name: name.into(),
        poi,
        init,
        bounds,
        constrained: !poi,
        fixed: false,
    }
}

/// μ free, α with nsbi's unit Gaussian constraint around 0, and one counting channel.
fn counting_model() -> (Model, Counting) {
    let counting = Counting {
        name: "count".into(),
        observed: 130.0,
        signal: 20.0,
        background: 100.0,
        k: 0.1,
        mu: 0,
        alpha: 1,
    };
    let parameters = vec![
        parameter("mu", true, 1.0, (-5.0, 10.0)),
        parameter("alpha", false, 0.0, (-5.0, 5.0)),
    ];
    let mut model = Model::unbinned(parameters, Vec::new());
    model.kinds.push(Box::new(counting.clone()));
    (model, counting)
}

#[test]
fn a_counting_kind_written_outside_the_crate_is_fitted_reported_and_toyed() {
    let (model, counting) = counting_model();
    let (n, s, b, k) = (130.0, 20.0, 100.0, 0.1);
    // Observed: λ̂ = n with α̂ = 0 (the constraint's minimum), so μ̂ = (n − b)/s = 1.5, and
    // σ(μ) = √(n + (b k)²)/s from the 2 × 2 Hessian.
    let like = Likelihood::new(&model, Vec::new());
    let report = fit_with_intervals(&like, &FitOptions::new(&like), true);
    let fit = &report.result;
    assert!(fit.converged, "{}", fit.message);
    assert!(
        (fit.theta[0] - (n - b) / s).abs() < 1e-8,
        "μ̂ = {}",
        fit.theta[0]
    );
    assert!(fit.theta[1].abs() < 1e-8, "α̂ = {}", fit.theta[1]);
    let sigma = (n + (b * k) * (b * k)).sqrt() / s;
    let error = fit.hesse_error(0).unwrap();
    assert!(
        (error - sigma).abs() < 1e-8 * sigma,
        "σ(μ) {error} vs {sigma}"
    );
    // The report comes from the kind: observed against expected at the best fit.
    assert_eq!(report.binned_channels.len(), 1);
    assert_eq!(report.binned_channels[0].channel, "count");
    assert_eq!(report.binned_channels[0].observed, vec![n]);
    assert!((report.binned_channels[0].expected[0] - n).abs() < 1e-6);

    // Asimov data at θ = (0.7, 0.3): the fit returns θ (to the fit's tolerance, σ(μ) ≈ 0.6),
    // the global observable set there too.
    let theta = [0.7, 0.3];
    let mut asimov = Likelihood::with_asimov(&model, Vec::new(), &theta);
    asimov.set_expected_global_observables(&theta);
    let fit = minimise(&asimov, &FitOptions::new(&asimov));
    let close = (fit.theta[0] - 0.7).abs() < 1e-5 && (fit.theta[1] - 0.3).abs() < 1e-5;
    assert!(close, "Asimov fit at {:?}: {}", fit.theta, fit.message);
    assert_eq!(
        asimov.observed_as::<Count>(),
        Some(&Count(counting.expected(&theta)))
    );

    // Toys: counts drawn at θ_gen from the kind's own stream, same seed same toy, mean λ.
    let source = ToySource::new(&model, Vec::new(), &theta).unwrap();
    let lambda = counting.expected(&theta);
    let draws = 400;
    let mut total = 0.0;
    for toy in 0..draws {
        let a = source.draw(11, 0, toy, true);
        let b = source.draw(11, 0, toy, true);
        assert_eq!(a.observed_as::<Count>(), b.observed_as::<Count>());
        assert_eq!(a.global_observables, b.global_observables);
        total += a.observed_as::<Count>().unwrap().0;
    }
    let mean = total / draws as f64;
    assert!(
        (mean - lambda).abs() < 5.0 * (lambda / draws as f64).sqrt(),
        "toy mean {mean} vs λ {lambda}"
    );
    // A generation point where the kind cannot draw is refused with its message.
    let refused = ToySource::new(&model, Vec::new(), &[-10.0, 0.0]);
    let message = refused.err().unwrap().to_string();
    assert!(
        message.contains("counting channel count: λ = -100"),
        "{message}"
    );
}

/// The counting kind beside the example's unbinned signal region and binned control regions:
/// its terms add to theirs at every point, value, gradient and Hessian alike.
#[test]
fn a_third_kind_adds_its_terms_beside_binned_and_unbinned_channels() {
    let mut analysis = common::example_analysis("workspace_cr.yaml");
    let before = analysis.likelihood(&Dataset::Observed).unwrap();
    let n = before.n_parameters();
    let theta: Vec<f64> = analysis.model.init().iter().map(|x| x * 1.05).collect();
    let without = before.evaluate(&theta, Order::Hessian);
    drop(before);
    let counting = Counting {
        name: "count".into(),
        observed: 130.0,
        signal: 20.0,
        background: 100.0,
        k: 0.1,
        mu: 0,
        alpha: 1,
    };
    analysis.model.kinds.push(Box::new(counting.clone()));
    let with = analysis
        .likelihood(&Dataset::Observed)
        .unwrap()
        .evaluate(&theta, Order::Hessian);
    let mut alone = Evaluation::default();
    Order::Hessian.zero_derivatives(n, &mut alone.gradient, &mut alone.hessian);
    counting.add_nll(&Count(130.0), &theta, Order::Hessian, &mut alone);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs());
    assert!(close(with.nll, without.nll + alone.nll), "NLL");
    for j in 0..n {
        assert!(close(
            with.gradient[j],
            without.gradient[j] + alone.gradient[j]
        ));
        for l in 0..n {
            let (a, b, c) = (
                with.hessian[j * n + l],
                without.hessian[j * n + l],
                alone.hessian[j * n + l],
            );
            assert!(close(a, b + c), "H[{j}][{l}]");
        }
    }
}
