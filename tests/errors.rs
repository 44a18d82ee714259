//! Every kind of bad input gets an error that names the file, the place and what was
//! expected — never a panic, never a silently wrong number.

mod common;

use common::*;
use nsbi::data::RatioCache;
use nsbi::workspace::Workspace;
use nsbi::Error;

fn exact_ratio_block(process: &str) -> String {
    format!(
        "          models: {}\n          output: ratio\n          convention: ratio",
        example()
            .join(format!("models/{process}/exact.onnx"))
            .display()
    )
}

/// Line (1-based) of the first line of `yaml` containing `needle`.
fn line_of(yaml: &str, needle: &str) -> usize {
    yaml.lines()
        .position(|l| l.contains(needle))
        .expect("needle in yaml")
        + 1
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "parameters:\n  - {name: mu, poi: true\nchannels: []\n";
    let path = write_workspace(dir.path(), yaml);
    let err = Workspace::load(&path).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::YamlSyntax { .. }), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("line 2") || text.contains(":2:") || text.contains("line 3"),
        "no line in: {text}"
    );
}

#[test]
fn misspelt_key_is_rejected_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = single_process_workspace(
        &example().join("data/observed.h5").display().to_string(),
        &exact_ratio_block("S"),
    )
    .replace("coefficient: mu", "coeficient: mu");
    let path = write_workspace(dir.path(), &yaml);
    let text = Workspace::load(&path).unwrap_err().to_string();
    assert!(text.contains("coeficient"), "{text}");
    assert!(
        text.contains(&format!("line {}", line_of(&yaml, "coeficient"))),
        "{text}"
    );
}

#[test]
fn unknown_parameter_in_expression_points_at_the_expression() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = single_process_workspace(
        &example().join("data/observed.h5").display().to_string(),
        &exact_ratio_block("S"),
    )
    .replace("coefficient: mu", "coefficient: mu - sqrt(nu)");
    let path = write_workspace(dir.path(), &yaml);
    let err = Workspace::load(&path).unwrap_err();
    let text = err.to_string();
    let line = line_of(&yaml, "sqrt(nu)");
    assert!(
        text.contains(&format!("{}:{line}:", path.display())),
        "{text}"
    );
    assert!(text.contains("unknown parameter 'nu'"), "{text}");
    assert!(text.contains("declared parameters: mu"), "{text}");
}

#[test]
fn missing_event_file_is_reported_at_its_yaml_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no_such_file.h5");
    let yaml = single_process_workspace(&missing.display().to_string(), &exact_ratio_block("S"));
    let path = write_workspace(dir.path(), &yaml);
    let text = nsbi::validate::validate(&path).unwrap_err().to_string();
    let line = line_of(&yaml, "no_such_file.h5");
    assert!(
        text.contains(&format!("{}:{line}:", path.display())),
        "{text}"
    );
    assert!(
        text.contains("no_such_file.h5") && text.contains("event file not found"),
        "{text}"
    );
}

#[test]
fn missing_column_names_the_column_and_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = single_process_workspace(
        &example().join("data/observed.h5").display().to_string(),
        &exact_ratio_block("S"),
    )
    .replace("cos_theta2]", "cos_theta3]");
    let path = write_workspace(dir.path(), &yaml);
    let text = nsbi::validate::validate(&path).unwrap_err().to_string();
    assert!(text.contains("missing column 'cos_theta3'"), "{text}");
    assert!(text.contains("observed.h5"), "{text}");
    assert!(
        text.contains("available:") && text.contains("cos_theta2"),
        "{text}"
    );
}

#[test]
fn wrong_onnx_input_width_is_caught_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("tests/fixtures/width4.onnx");
    let block = format!(
        "          models: {}\n          convention: ratio",
        model.display()
    );
    let yaml = single_process_workspace(
        &example().join("data/observed.h5").display().to_string(),
        &block,
    );
    let path = write_workspace(dir.path(), &yaml);
    let text = nsbi::validate::validate(&path).unwrap_err().to_string();
    let line = line_of(&yaml, "width4.onnx");
    assert!(
        text.contains(&format!("{}:{line}:", path.display())),
        "{text}"
    );
    assert!(text.contains("width4.onnx"), "{text}");
    assert!(
        text.contains("3 features") && text.contains("expected [N, 3]"),
        "{text}"
    );
}

#[test]
fn nan_in_an_event_names_column_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("with_nan.h5");
    {
        let h5 = hdf5::File::create(&file).unwrap();
        let group = h5.create_group("events").unwrap();
        let mut cos1 = vec![0.25f32; 40];
        cos1[17] = f32::NAN;
        let m4l = vec![300.0f32; 40];
        for (name, data) in [("m4l", &m4l), ("cos_theta1", &cos1), ("cos_theta2", &m4l)] {
            group
                .new_dataset_builder()
                .with_data(data.as_slice())
                .create(name)
                .unwrap();
        }
        group
            .new_dataset_builder()
            .with_data(&[1.0f64; 40][..])
            .create("weight")
            .unwrap();
    }
    let yaml = single_process_workspace(&file.display().to_string(), &exact_ratio_block("S"));
    let path = write_workspace(dir.path(), &yaml);
    let text = nsbi::validate::validate(&path).unwrap_err().to_string();
    assert!(text.contains("with_nan.h5"), "{text}");
    assert!(
        text.contains("column 'cos_theta1' holds a non-finite value (NaN) at event 17"),
        "{text}"
    );
}

#[test]
fn non_finite_network_output_names_model_file_and_event() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("tests/fixtures/nonfinite.onnx");
    let observed = example().join("data/observed.h5");
    let block = format!(
        "          models: {}\n          convention: ratio",
        model.display()
    );
    let yaml = single_process_workspace(&observed.display().to_string(), &block);
    let path = write_workspace(dir.path(), &yaml);
    // The first observed event below 500 GeV is where sqrt(m4l − 500) turns NaN.
    let events = nsbi::data::Events::read(&observed, "events", &["m4l".into()], None).unwrap();
    let first_bad = events
        .values
        .column(0)
        .iter()
        .position(|m| *m < 500.0)
        .unwrap();

    let ws = Workspace::load(&path).unwrap();
    let cache = RatioCache::new(dir.path().join("cache"));
    let text = match nsbi::ratio::evaluate_workspace(&ws, &cache, false) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("NaN ratios were accepted"),
    };
    assert!(text.contains("nonfinite.onnx"), "{text}");
    assert!(text.contains(&format!("at event {first_bad} of")), "{text}");
    assert!(text.contains("observed.h5"), "{text}");
    // Nothing may have been cached for the failing ensemble.
    let cached = std::fs::read_dir(dir.path().join("cache"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(cached, 0, "a failed evaluation left cache entries");
}

#[test]
fn cli_reports_errors_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = single_process_workspace("/nonexistent/events.h5", &exact_ratio_block("S"));
    let path = write_workspace(dir.path(), &yaml);
    let out = nsbi(&["validate", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains("/nonexistent/events.h5") && text.contains("event file not found"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}
