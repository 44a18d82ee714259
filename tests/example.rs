//! The shipped example workspace is what its documentation says: yields, systematic factors
//! (from the varied weights and samples), size.

mod common;

use common::*;
use nsbi::data::Events;

fn truth() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(example().join("truth.json")).unwrap()).unwrap()
}

fn total(file: &str, weight: &str) -> f64 {
    Events::read(
        &example().join("data").join(file),
        "events",
        &["m4l".into()],
        Some(weight),
    )
    .unwrap()
    .total_weight()
}

#[test]
fn workspace_factors_come_from_the_shipped_variations() {
    let ws = nsbi::workspace::Workspace::load(example().join("workspace.yaml")).unwrap();
    let process = |name: &str| {
        ws.spec
            .unbinned_channels()
            .next()
            .unwrap()
            .processes
            .iter()
            .find(|p| p.name.value == name)
            .unwrap()
    };
    for name in ["S", "SBI", "B"] {
        let file = format!("mc_{name}.h5");
        let nominal = total(&file, "weight");
        let expected = truth()["yields"][format!("nu_{name}")].as_f64().unwrap();
        assert!(
            (nominal / expected - 1.0).abs() < 1e-9,
            "{name}: sum of weights {nominal} vs ν⁰ {expected}"
        );
        let eff = process(name)
            .systematics
            .iter()
            .find(|s| s.name.value == "alpha_eff")
            .unwrap();
        let factors = &eff.yield_factors.as_ref().unwrap().value;
        // Yield-only systematic: stored as varied event weights, like analysis ntuples do.
        assert!((total(&file, "weight_alpha_eff_up") / nominal - factors.up).abs() < 1e-9);
        assert!((total(&file, "weight_alpha_eff_down") / nominal - factors.down).abs() < 1e-9);
    }
    // Shape systematic: its yield factors are the ±1σ samples' yields over the nominal.
    let shape = process("B")
        .systematics
        .iter()
        .find(|s| s.name.value == "alpha_shape")
        .unwrap();
    let factors = &shape.yield_factors.as_ref().unwrap().value;
    let nominal = total("mc_B.h5", "weight");
    assert!((total("mc_B_shape_up.h5", "weight") / nominal - factors.up).abs() < 1e-9);
    assert!((total("mc_B_shape_down.h5", "weight") / nominal - factors.down).abs() < 1e-9);
}

#[test]
fn observed_data_and_size_are_as_documented() {
    let observed = Events::read(
        &example().join("data/observed.h5"),
        "events",
        &["m4l".into()],
        None,
    )
    .unwrap();
    assert_eq!(
        observed.len() as u64,
        truth()["observed"]["n_events"].as_u64().unwrap()
    );
    let mut bytes = 0;
    for dir in ["data", "models"] {
        for entry in walk(&example().join(dir)) {
            bytes += std::fs::metadata(entry).unwrap().len();
        }
    }
    assert!(bytes < 25 * 1024 * 1024, "example is {bytes} bytes");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
