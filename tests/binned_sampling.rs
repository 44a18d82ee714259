//! Toys of binned models against pyhf's sampler, `model.make_pdf(pars).sample()`: the mean,
//! variance of every bin's count and every global observable over many toys.
//!
//! Reference: `tests/fixtures/binned/sampling.json`, written by
//! `validation/pyhf_reference.py sample tests/fixtures/binned` (pyhf 0.7.6, numpy backend,
//! 40 000 draws of the multichannel workspace at a point with every per-bin γ at 1.1 and the
//! shapesys constraint's auxdata in units of τ, as pyhf returns them).
//!
//! Tolerance: the two samples are independent, so the difference of their means has the
//! standard error sqrt(v_pyhf/N + v_nsbi/N), and that of their variances
//! sqrt((m4 − v²)_pyhf/N + (m4 − v²)_nsbi/N) (m4 the fourth central moment). Each difference
//! must lie within 5 standard errors; with ~70 quantities, a correct sampler fails this with
//! probability ~4·10⁻⁵ (and the seed is fixed, so the test is deterministic), while a wrong
//! width or centre — σ = 1 for staterror instead of its relative σ, a shapesys draw of γ
//! instead of γτ, a rate at the wrong parameter — is off by tens to thousands of errors.

mod common;

use common::root;
use nsbi::binned::{pyhf, BinnedData, BinnedModel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = root().join("tests/fixtures/binned").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn multichannel() -> BinnedModel {
    let spec = pyhf::import(&fixture("multichannel.json"), None, "multichannel").unwrap();
    BinnedModel::from_spec(&spec, "multichannel").unwrap()
}

/// Sums of x, x², x³, x⁴ of one quantity over the toys.
#[derive(Clone, Copy, Default)]
struct Sums([f64; 4]);

impl Sums {
    fn add(&mut self, x: f64) {
        let mut power = 1.0;
        for s in &mut self.0 {
            power *= x;
            *s += power;
        }
    }

    /// Mean, variance (ddof 1) and fourth central moment.
    fn moments(&self, n: f64) -> (f64, f64, f64) {
        let [s1, s2, s3, s4] = self.0.map(|s| s / n);
        let mean = s1;
        let var = (s2 - mean * mean) * n / (n - 1.0);
        let m4 = s4 - 4.0 * mean * s3 + 6.0 * mean * mean * s2 - 3.0 * mean.powi(4);
        (mean, var, m4)
    }
}

/// |nsbi − pyhf| in standard errors of the mean and of the variance.
fn pulls(nsbi: (f64, f64, f64), pyhf: &Value, k: Option<usize>, n: f64) -> (f64, f64) {
    let get = |key: &str| match k {
        Some(k) => pyhf[key][k].as_f64().unwrap(),
        None => pyhf[key].as_f64().unwrap(),
    };
    let (mean, var, m4) = nsbi;
    let (p_mean, p_var, p_m4) = (get("mean"), get("var"), get("m4"));
    let mean_error = ((var + p_var) / n).sqrt();
    let var_error = ((m4 - var * var + p_m4 - p_var * p_var) / n).sqrt();
    (
        (mean - p_mean).abs() / mean_error,
        (var - p_var).abs() / var_error,
    )
}

#[test]
fn toys_match_pyhf_sampler_moments() {
    let reference = fixture("sampling.json");
    let model = multichannel();
    let pars: Vec<f64> = model
        .parameters
        .iter()
        .map(|p| reference["pars"][&p.name].as_f64().unwrap())
        .collect();
    let n_toys = reference["samples"].as_u64().unwrap() as usize;
    let n = n_toys as f64;

    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut toy = BinnedData {
        counts: Vec::new(),
        auxdata: Vec::new(),
    };
    let mut counts: Vec<Vec<Sums>> = model
        .channels
        .iter()
        .map(|c| vec![Sums::default(); c.n_bins])
        .collect();
    let mut auxdata = vec![Sums::default(); model.constraints.len()];
    for _ in 0..n_toys {
        model.sample_into(&pars, &mut rng, &mut toy).unwrap();
        for (sums, values) in counts.iter_mut().zip(&toy.counts) {
            for (s, &x) in sums.iter_mut().zip(values) {
                s.add(x);
            }
        }
        for (s, &x) in auxdata.iter_mut().zip(&toy.auxdata) {
            s.add(x);
        }
    }

    let (mut worst, mut compared) = ((0.0f64, String::new()), 0);
    let mut check = |label: String, pull: (f64, f64)| {
        assert!(
            pull.0 < 5.0 && pull.1 < 5.0,
            "{label}: mean {:.1} and variance {:.1} standard errors from pyhf's",
            pull.0,
            pull.1
        );
        if pull.0.max(pull.1) > worst.0 {
            worst = (pull.0.max(pull.1), label);
        }
        compared += 2;
    };
    for (channel, sums) in model.channels.iter().zip(&counts) {
        let pyhf = &reference["counts"][&channel.name];
        for (b, s) in sums.iter().enumerate() {
            let label = format!("{} bin {b}", channel.name);
            check(label, pulls(s.moments(n), pyhf, Some(b), n));
        }
    }
    for (constraint, s) in model.constraints.iter().zip(&auxdata) {
        let name = &model.parameters[constraint.parameter()].name;
        let pyhf = &reference["auxdata"][name];
        assert!(pyhf.is_object(), "pyhf has no global observable for {name}");
        check(
            format!("auxdata of {name}"),
            pulls(s.moments(n), pyhf, None, n),
        );
    }
    let pyhf_aux = reference["auxdata"].as_object().unwrap().len();
    assert_eq!(
        model.constraints.len(),
        pyhf_aux,
        "one global observable per constraint"
    );
    eprintln!(
        "{compared} moments within 5 standard errors of pyhf's; largest pull {:.2} ({})",
        worst.0, worst.1
    );
    assert!(compared >= 60);
}

/// The shapesys draw is the count Pois(γτ) itself, as pyhf's: at γ = 1.1 its mean is 1.1 τ.
#[test]
fn poisson_constraint_draws_counts_in_units_of_tau() {
    let model = multichannel();
    let mut pars = model.inits();
    let gamma = model.parameter_index("fakes_shape[0]").unwrap();
    pars[gamma] = 1.1;
    let (k, tau) = model
        .constraints
        .iter()
        .enumerate()
        .find_map(|(k, c)| match *c {
            nsbi::binned::Constraint::Poisson { parameter, factor } if parameter == gamma => {
                Some((k, factor))
            }
            _ => None,
        })
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut toy = model.observed.clone();
    let mut sum = 0.0;
    let n = 20_000;
    for _ in 0..n {
        model.sample_into(&pars, &mut rng, &mut toy).unwrap();
        let aux = toy.auxdata[k];
        assert_eq!(aux, aux.round(), "a Poisson draw is a count");
        sum += aux;
    }
    let mean = sum / n as f64;
    let error = (1.1 * tau / n as f64).sqrt();
    assert!(
        (mean - 1.1 * tau).abs() < 5.0 * error,
        "mean {mean} vs γτ = {}",
        1.1 * tau
    );
}

#[test]
fn toys_depend_on_the_rng_state_only() {
    let model = multichannel();
    let pars = model.inits();
    let draw = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut toy = BinnedData {
            counts: vec![vec![0.0; 1]],
            auxdata: Vec::new(),
        };
        model.sample_into(&pars, &mut rng, &mut toy).unwrap();
        let first = toy.clone();
        // A second toy into the same buffers, from the same stream, differs.
        model.sample_into(&pars, &mut rng, &mut toy).unwrap();
        (first, toy)
    };
    let (a, a2) = draw(7);
    let (b, _) = draw(7);
    assert_eq!(a, b);
    assert_ne!(a, a2);
    assert_eq!(a.counts.len(), model.channels.len());
    assert_eq!(a.auxdata.len(), model.constraints.len());
    let (c, _) = draw(8);
    assert_ne!(a, c);
}

#[test]
fn an_undefined_expected_count_is_an_error() {
    let model = multichannel();
    let mut pars = model.inits();
    pars[model.parameter_index("mu").unwrap()] = -50.0;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut toy = model.observed.clone();
    let message = model
        .sample_into(&pars, &mut rng, &mut toy)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(
            "binned channel 'SR' bin 0: cannot draw a Poisson count at the expected count -"
        ),
        "{message}"
    );
}
