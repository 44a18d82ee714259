//! The example workspace's model as the toy baselines (numpy + iminuit in `benches/toys.rs`,
//! RooFit in `examples/roofit_inputs.rs`) hard-code it, and the inputs they are given.

use nsbi::likelihood::data::{ChannelData, ShapeData};
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

/// Writes `v` as dataset `name` of `group`.
pub fn put(group: &hdf5::Group, name: &str, v: &[f64]) {
    group
        .new_dataset_builder()
        .with_data(v)
        .create(name)
        .unwrap();
}

/// What the baselines rebuild the model from: the generation point, the nominal yields and
/// yield factors, the bounds, which parameters are constrained, and each shaped process's
/// shape inputs on its own MC with its MC weights b / Σ b (what N_c(α) is computed from).
pub fn write_model_inputs(
    file: &hdf5::Group,
    model: &Model,
    data: &ChannelData,
    theta_gen: &[f64],
) {
    put(file, "theta_gen", theta_gen);
    let nominal: Vec<f64> = data.processes.iter().map(|p| p.nominal_yield).collect();
    put(file, "nominal_yields", &nominal);
    put(file, "yield_factors", &yield_factors(model));
    let lower: Vec<f64> = model.parameters.iter().map(|p| p.bounds.0).collect();
    let upper: Vec<f64> = model.parameters.iter().map(|p| p.bounds.1).collect();
    put(file, "lower_bounds", &lower);
    put(file, "upper_bounds", &upper);
    let constrained: Vec<f64> = model
        .parameters
        .iter()
        .map(|p| f64::from(u8::from(p.constrained)))
        .collect();
    put(file, "constrained", &constrained);
    for (c, norm) in data.normalisation.processes.iter().enumerate() {
        if norm.n_shapes() == 0 {
            continue;
        }
        put(file, &format!("mc{c}_weights"), norm.mc_weights());
        for (k, s) in norm.shapes().iter().enumerate() {
            put(file, &format!("mc{c}_shape{k}_up"), &delta(s, 0));
            put(file, &format!("mc{c}_shape{k}_down"), &delta(s, 1));
        }
    }
}

/// The per-event inputs of a dataset: every process's ratio and its shape systematics' δ±.
pub fn write_events(group: &hdf5::Group, data: &ChannelData) {
    for (c, p) in data.processes.iter().enumerate() {
        put(group, &format!("r{c}"), &p.ratio);
        for (k, s) in p.shapes.iter().enumerate() {
            put(group, &format!("r{c}_shape{k}_up"), &delta(s, 0));
            put(group, &format!("r{c}_shape{k}_down"), &delta(s, 1));
        }
    }
}
