//! A third channel kind, written here outside the crate against `nsbi::channel`'s interface
//! alone: a one-bin counting channel, n ~ Pois(μ s + b (1 + k α)). Plugged into a model it is
//! fitted, gets Asimov data and toys, and is reported, through the same likelihood, fits and
//! toy source as the binned and unbinned channels — with no change to the crate. The unbinned
//! channels are a kind like it: the likelihood, the Asimov sets and the toys of an analysis are
//! what their trait methods give.

mod common;

use std::any::Any;

use nsbi::analysis::{fit_with_intervals, Dataset};
use nsbi::channel::unbinned::toys::UnbinnedToys;
use nsbi::channel::unbinned::{UnbinnedChannels, UnbinnedData};
use nsbi::channel::{ChannelKind, ChannelReport, KindToys, Observed, ObservedData, ToyKey};
use nsbi::error::Result;
use nsbi::fit::{minimise, FitOptions};
use nsbi::infer::toys::ToySource;
use nsbi::likelihood::{ChannelData, Evaluation, InvalidDensity, Likelihood, Order};
use nsbi::model::{Model, Parameter};
use rand_chacha::ChaCha8Rng;
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

/// The counting channel's toys at one generation point.
struct CountingToys {
    lambda: f64,
}

impl KindToys for CountingToys {
    /// n ~ Pois(λ) from the kind's own stream.
    fn draw(&self, key: ToyKey, _shared: &mut ChaCha8Rng) -> Observed {
        let mut rng = key.stream(b"test counting stream");
        let poisson = Poisson::new(self.lambda).unwrap();
        Box::new(Count(poisson.sample(&mut rng)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl ChannelKind for Counting {
    fn observed(&self) -> Result<Observed> {
        Ok(Box::new(Count(self.observed)))
    }

    fn asimov(&self, theta: &[f64]) -> Result<Observed> {
        Ok(Box::new(Count(self.expected(theta))))
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

    fn toys(&self, theta_gen: &[f64]) -> Result<Box<dyn KindToys>> {
        let lambda = self.expected(theta_gen);
        if lambda > 0.0 {
            Ok(Box::new(CountingToys { lambda }))
        } else {
            Err(nsbi::error::Error::Analysis(format!(
                "counting channel {}: λ = {lambda}",
                self.name
            )))
        }
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
    let like = Likelihood::new(&model, Vec::new()).unwrap();
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
    let data = model.all_kinds().map(|kind| kind.asimov(&theta));
    let mut asimov = Likelihood::with_observed(&model, data.collect::<Result<_>>().unwrap());
    asimov.set_expected_global_observables(&theta);
    let fit = minimise(&asimov, &FitOptions::new(&asimov));
    let close = (fit.theta[0] - 0.7).abs() < 1e-5 && (fit.theta[1] - 0.3).abs() < 1e-5;
    assert!(close, "Asimov fit at {:?}: {}", fit.theta, fit.message);
    assert_eq!(
        asimov.observed_as::<Count>(),
        Some(&Count(counting.expected(&theta)))
    );

    // Toys: counts drawn at θ_gen from the kind's own stream, same seed same toy, mean λ.
    let source = ToySource::new(&model, &theta).unwrap();
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
    let refused = ToySource::new(&model, &[-10.0, 0.0]);
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

/// Every kind's terms, each added alone through the trait on the data the kind made.
fn sum_of_kinds(model: &Model, data: &[Observed], theta: &[f64]) -> Evaluation {
    let n = theta.len();
    let mut total = Evaluation::default();
    Order::Hessian.zero_derivatives(n, &mut total.gradient, &mut total.hessian);
    for (kind, data) in model.all_kinds().zip(data) {
        let mut part = Evaluation::default();
        Order::Hessian.zero_derivatives(n, &mut part.gradient, &mut part.hessian);
        kind.add_nll(data.as_ref(), theta, Order::Hessian, &mut part);
        total.nll += part.nll;
        for (t, p) in total.gradient.iter_mut().zip(&part.gradient) {
            *t += p;
        }
        for (t, p) in total.hessian.iter_mut().zip(&part.hessian) {
            *t += p;
        }
    }
    total
}

fn same_events(a: &[ChannelData], b: &[ChannelData]) {
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.weights, b.weights, "{}", a.name);
        for (pa, pb) in a.processes.iter().zip(&b.processes) {
            assert_eq!(pa.ratio, pb.ratio, "{}", a.name);
        }
    }
}

/// The unbinned channels of the example (with its binned control regions) are the model's
/// first kind: its NLL terms, observed data, Asimov sets and toys come from the trait alone,
/// and the analysis' likelihood and toy source are nothing but those, kind by kind.
#[test]
fn the_unbinned_channels_are_a_kind_behind_the_same_interface() {
    let analysis = common::example_analysis("workspace_cr.yaml");
    let model = &analysis.model;
    let kinds: Vec<&dyn ChannelKind> = model.all_kinds().collect();
    assert_eq!(kinds.len(), 2, "unbinned + binned");
    assert!(kinds[0].as_any().is::<UnbinnedChannels>());
    assert_eq!(model.kind::<UnbinnedChannels>().unwrap().len(), 1);
    let theta: Vec<f64> = model.init().iter().map(|x| x * 1.05 + 0.01).collect();
    let n = theta.len();

    // NLL, gradient, Hessian: the sum of each kind's terms on its observed data (from the
    // trait), and the constraint terms; the unbinned kind's part is most of it.
    let observed: Vec<Observed> = kinds.iter().map(|k| k.observed().unwrap()).collect();
    let parts = sum_of_kinds(model, &observed, &theta);
    let mut bare = model.clone();
    bare.constraints.clear();
    let without_constraints =
        Likelihood::with_observed(&bare, observed).evaluate(&theta, Order::Hessian);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs());
    assert!(close(parts.nll, without_constraints.nll));
    for j in 0..n {
        assert!(
            close(parts.gradient[j], without_constraints.gradient[j]),
            "∂{j}"
        );
        for l in 0..n {
            let (a, b) = (
                parts.hessian[j * n + l],
                without_constraints.hessian[j * n + l],
            );
            assert!(close(a, b), "H[{j}][{l}]");
        }
    }
    let unbinned_alone = sum_of_kinds(
        &Model::unbinned(model.parameters.clone(), model.channels.to_vec()),
        &[kinds[0].observed().unwrap()],
        &theta,
    );
    assert!(unbinned_alone.nll.abs() > 10.0, "{}", unbinned_alone.nll);
    let full = analysis.likelihood(&Dataset::Observed).unwrap();
    assert_eq!(full.unbinned().len(), 1);
    assert!(full.unbinned()[0].weights.len() > 100);

    // Asimov: the analysis' Asimov likelihood holds the kind's Asimov data.
    let asimov = analysis
        .likelihood(&Dataset::Asimov(theta.clone()))
        .unwrap();
    let from_kind = kinds[0].asimov(&theta).unwrap();
    let from_kind = &from_kind
        .as_any()
        .downcast_ref::<UnbinnedData>()
        .unwrap()
        .channels;
    same_events(asimov.unbinned(), from_kind);

    // Toys: the toy source's unbinned events are the kind's toys drawn from the toy's shared
    // stream, whatever other kind sits beside them.
    let source = ToySource::asimov(&analysis, &theta).unwrap();
    let own = kinds[0].toys(&theta).unwrap();
    assert!(own.as_any().is::<UnbinnedToys>());
    for toy in 0..5 {
        let key = ToyKey {
            seed: 4,
            grid_index: 1,
            toy_index: toy,
        };
        let drawn = source.draw(4, 1, toy, true);
        let mut shared = key.stream(b"nsbi toy stream v1");
        let alone = own.draw(key, &mut shared);
        let alone = &alone
            .as_any()
            .downcast_ref::<UnbinnedData>()
            .unwrap()
            .channels;
        same_events(drawn.unbinned(), alone);
        assert!(!alone[0].weights.is_empty());
    }
    let mut with_count = model.clone();
    with_count.kinds.push(Box::new(Counting {
        name: "count".into(),
        observed: 130.0,
        signal: 20.0,
        background: 100.0,
        k: 0.1,
        mu: 0,
        alpha: 1,
    }));
    let beside = ToySource::new(&with_count, &theta).unwrap();
    let (a, b) = (source.draw(4, 0, 2, true), beside.draw(4, 0, 2, true));
    same_events(a.unbinned(), b.unbinned());
    assert_eq!(a.global_observables, b.global_observables);
    assert!(b.observed_as::<Count>().is_some());
}
