//! The JSON Schemas in `schemas/` are generated from the typed results (`nsbi::results`), so
//! they cannot go stale: this test fails when a result type changed without them.
//! `NSBI_WRITE_SCHEMAS=1 cargo test --release --test schemas` rewrites them. That every
//! command's output validates against its schema is checked in `python/tests` (jsonschema).

use std::path::PathBuf;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

#[test]
fn the_schema_files_are_the_generated_ones() {
    let write = std::env::var_os("NSBI_WRITE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in nsbi::results::schemas() {
        let path = schema_dir().join(format!("{name}.schema.json"));
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if write {
            std::fs::create_dir_all(schema_dir()).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale schemas (rerun with NSBI_WRITE_SCHEMAS=1): {stale:?}"
    );
}

/// The fit's schema requires the keys of `nsbi fit --json` that always hold a value.
#[test]
fn the_fit_schema_requires_the_documented_keys() {
    let schemas = nsbi::results::schemas();
    let fit = serde_json::to_value(&schemas[0].1).unwrap();
    let required: Vec<&str> = fit["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for key in [
        "status",
        "minos",
        "nll",
        "twice_nll",
        "parameters",
        "normalisation",
        "binned_channels",
    ] {
        assert!(required.contains(&key), "{key} not in {required:?}");
    }
    assert_eq!(
        fit["$id"], "https://nsbi.example/schemas/fit-v1.json",
        "{fit}"
    );
}

/// The diagnostics' schemas (`calibration.json`, `closure.json`) require their top-level keys,
/// and an empty bin's undefined numbers are allowed to be null (never NaN in the file).
#[test]
fn the_diagnostics_schemas_require_their_keys_and_allow_empty_bins() {
    let schemas: std::collections::HashMap<_, _> = nsbi::results::schemas()
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(&schema).unwrap()))
        .collect();
    for (name, list) in [("calibration", "ensembles"), ("closure", "tests")] {
        let schema = &schemas[name];
        let required = schema["required"].as_array().unwrap();
        for key in ["settings", "pass", list, "skipped"] {
            assert!(
                required.iter().any(|k| k == key),
                "{name}: {key} in {required:?}"
            );
        }
        assert_eq!(
            schema["$id"],
            format!("https://nsbi.example/schemas/{name}-v1.json")
        );
    }
    let bin = &schemas["calibration"]["$defs"]["ReliabilityBinOutput"]["properties"];
    for key in ["mean_predicted", "observed", "error", "pull"] {
        assert_eq!(
            bin[key]["type"],
            serde_json::json!(["number", "null"]),
            "{key}"
        );
    }
}
