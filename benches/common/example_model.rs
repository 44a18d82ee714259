//! The example workspace's model as the toy baselines (numpy + iminuit in `benches/toys.rs`,
//! RooFit in `examples/roofit_inputs.rs`) hard-code it, and the inputs they are given.

use nsbi::likelihood::data::ShapeData;
use nsbi::model::interpolation::{InterpolationCode, Variation};
use nsbi::model::{Model, CODE4_ALPHA0};

/// The example's model, as the numpy (iminuit) and RooFit baselines hard-code it; checked so
/// that they cannot drift apart.
pub fn check_model(model: &Model) {
    let names: Vec<&str> = model.parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["mu", "alpha_eff", "alpha_shape"]);
    let channel = &model.channels[0];
    assert_eq!(model.channels.len(), 1);
    let coefficients: Vec<&str> = channel
        .processes
        .iter()
        .map(|p| p.coefficient.text.as_str())
        .collect();
    assert_eq!(coefficients, ["mu - sqrt(mu)", "sqrt(mu)", "1 - sqrt(mu)"]);
    for (c, p) in channel.processes.iter().enumerate() {
        let shapes: Vec<(usize, InterpolationCode)> = p
            .shape_systematics
            .iter()
            .map(|s| (s.parameter, s.code))
            .collect();
        let expected = if c == 2 {
            vec![(2, InterpolationCode::Code4)]
        } else {
            vec![]
        };
        assert_eq!(shapes, expected, "shape systematics of {}", p.name);
    }
    assert_eq!(CODE4_ALPHA0, 1.0);
}

/// Rows (process, parameter, δ⁺, δ⁻) of every code-4 yield factor of the model.
pub fn yield_factors(model: &Model) -> Vec<f64> {
    let mut rows = Vec::new();
    for (c, p) in model.channels[0].processes.iter().enumerate() {
        for s in &p.yield_systematics {
            match s.variation {
                Variation::Polynomial6Exponential {
                    ln_up,
                    ln_down,
                    alpha0,
                    ..
                } => {
                    assert_eq!(alpha0, 1.0);
                    rows.extend([c as f64, s.parameter as f64, ln_up.exp(), ln_down.exp()]);
                }
                other => panic!("the baselines implement code 4 only, not {other:?}"),
            }
        }
    }
    rows
}

/// δ⁺ (`q` = 0) or δ⁻ (`q` = 1) of every event as the engine stores them: 1 + the
/// single-precision deviation.
pub fn delta(shape: &ShapeData, q: usize) -> Vec<f64> {
    let v = &shape.variations;
    (0..v.len()).map(|i| 1.0 + v.event(i)[q]).collect()
}
