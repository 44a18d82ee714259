//! Binned channels inside general workspaces: a pyhf workspace imported to YAML is a workspace
//! every command takes; its likelihood (through the general `Likelihood`, with the constraint
//! terms held once by the model) equals pyhf's −logpdf; `nsbi fit` finds pyhf's best fit;
//! binned and unbinned channels share parameters in one likelihood; toys draw binned counts.
//!
//! References: `tests/fixtures/binned/reference.json` (pyhf 0.7.6, numpy backend, written by
//! `validation/pyhf_reference.py`).

mod common;

use std::path::{Path, PathBuf};

use common::{binned_fixtures, binned_reference as reference, import_pyhf, reference_point};
use common::{nsbi, stderr, stdout};
use nsbi::analysis::{Analysis, Dataset};
use nsbi::binned::combine::BinnedPart;
use nsbi::binned::BinnedData;
use nsbi::data::RatioCache;
use nsbi::infer::toys::ToySource;
use nsbi::likelihood::{Likelihood, Order};
use serde_json::Value;

/// The reference entries with pyhf's default interpolation codes (what an import writes).
fn default_code_cases(reference: &Value) -> Vec<&Value> {
    reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["codes"]["normsys"] == "code4" && e["codes"]["histosys"] == "code4p")
        .collect()
}

/// `nsbi import pyhf` of a fixture into `dir`; returns the YAML workspace's path.
fn import(case: &str, dir: &Path) -> PathBuf {
    let json = binned_fixtures().join(format!("{case}.json"));
    let out = dir.join(format!("{case}.yaml"));
    let run = import_pyhf(&json, &out);
    assert!(run.status.success(), "{}", stderr(&run));
    out
}

/// `nsbi fit WORKSPACE --json JSON`, which must succeed; the JSON report.
fn fit_json(workspace: &Path, json: &Path) -> Value {
    let run = nsbi(&[
        "fit",
        workspace.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    common::read_json(json)
}

fn analysis(path: &Path) -> Analysis {
    let cache = RatioCache::new(path.parent().unwrap().join(".nsbi-cache"));
    Analysis::load(path, &cache, false).unwrap()
}

/// A reference point in the model's parameter order.
fn point(analysis: &Analysis, pars: &Value) -> Vec<f64> {
    let names = analysis.model.parameters.iter().map(|p| p.name.as_str());
    reference_point(names, pars)
}

#[test]
fn imported_workspace_likelihood_equals_pyhf_logpdf() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for entry in default_code_cases(&reference) {
        let case = entry["case"].as_str().unwrap();
        let analysis = analysis(&import(case, dir.path()));
        let names: Vec<&str> = analysis
            .model
            .parameters
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let pyhf_names: Vec<&str> = entry["par_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        let mut pyhf_sorted = pyhf_names.clone();
        pyhf_sorted.sort();
        assert_eq!(sorted, pyhf_sorted, "{case}: the same parameters as pyhf");
        let like = analysis.likelihood(&Dataset::Observed).unwrap();
        for (k, p) in entry["points"].as_array().unwrap().iter().enumerate() {
            let theta = point(&analysis, &p["pars"]);
            let nll = like.evaluate(&theta, Order::Value).nll;
            let expected = p["nll"].as_f64().unwrap();
            let relative = ((nll - expected) / expected).abs();
            assert!(
                relative < 1e-10,
                "{case} point {k}: nsbi {nll} vs pyhf {expected} (relative {relative:e})"
            );
            compared += 1;
        }
    }
    assert!(compared >= 60, "{compared} points compared");
}

#[test]
fn nsbi_fit_of_an_imported_workspace_finds_pyhf_best_fit() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    for entry in default_code_cases(&reference) {
        let case = entry["case"].as_str().unwrap();
        let Some(mle) = entry.get("mle").filter(|m| !m.is_null()) else {
            continue;
        };
        let ws = import(case, dir.path());
        let fit = fit_json(&ws, &dir.path().join(format!("{case}_fit.json")));
        let pyhf_nll = mle["nll"].as_f64().unwrap();
        let nll = fit["nll"].as_f64().unwrap();
        assert!(
            nll <= pyhf_nll + 1e-9 && pyhf_nll - nll < 1e-6,
            "{case}: NLL nsbi {nll} vs pyhf {pyhf_nll}"
        );
        for (name, p) in fit["parameters"].as_object().unwrap() {
            let name = name.as_str();
            let value = p["value"].as_f64().unwrap();
            let error = p["error"].as_f64().unwrap();
            let pyhf_value = mle["pars"][name].as_f64().unwrap();
            let pyhf_error = mle["errors"][name].as_f64().unwrap();
            assert!(
                (value - pyhf_value).abs() <= 1e-5,
                "{case}: {name} = {value} vs pyhf {pyhf_value} ± {pyhf_error}"
            );
            assert!(
                (error - pyhf_error).abs() <= 1e-5 * pyhf_error.max(1e-3),
                "{case}: σ({name}) = {error} vs pyhf {pyhf_error}"
            );
        }
    }
}

/// The example with binned control regions, with absolute paths, written to `dir` after the
/// `(from, to)` edits.
fn control_regions_with(dir: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let ex = common::example().display().to_string();
    let mut text = std::fs::read_to_string(common::example().join("workspace_cr.yaml"))
        .unwrap()
        .replace("file: data/", &format!("file: {ex}/data/"))
        .replace("models: models/", &format!("models: {ex}/models/"));
    for (from, to) in edits {
        assert!(text.contains(from), "the workspace has no '{from}'");
        text = text.replace(from, to);
    }
    common::write_workspace(dir, &text)
}

#[test]
fn joint_binned_and_unbinned_nll_equals_an_independent_computation() {
    let analysis = common::example_analysis("workspace_cr.yaml");
    let names: Vec<&str> = analysis
        .model
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        &names[..4],
        ["mu", "alpha_eff", "alpha_shape", "mu_B"],
        "the listed parameters first, then the staterror γs"
    );
    assert_eq!(names.len(), 4 + 4 + 3);
    // One constraint term per constrained parameter: alpha_eff is shared by the SR's yield
    // systematic and the CRs' normsys, and held once.
    let constrained: Vec<usize> = analysis
        .model
        .constraints
        .iter()
        .map(|c| c.parameter)
        .collect();
    assert_eq!(constrained, vec![1, 2, 4, 5, 6, 7, 8, 9, 10]);
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    let points: [[f64; 11]; 4] = [
        [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        [
            0.6, 0.4, -0.3, 1.1, 0.98, 1.03, 0.97, 1.01, 1.02, 0.99, 1.05,
        ],
        [2.1, -1.3, 0.8, 0.85, 1.04, 0.96, 1.0, 0.95, 0.97, 1.06, 1.0],
        [0.2, 1.7, -2.2, 1.4, 1.0, 1.0, 1.1, 0.9, 1.0, 1.0, 1.0],
    ];
    let text: Vec<String> = points
        .iter()
        .map(|p| p.iter().map(f64::to_string).collect::<Vec<_>>().join(","))
        .collect();
    let ex = common::example();
    let out = common::run_validation_script(
        "closed_form_nll.py",
        &[
            "--events",
            ex.join("data/observed.h5").to_str().unwrap(),
            "--mc-b",
            ex.join("data/mc_B.h5").to_str().unwrap(),
            "--control-regions",
            ex.join("workspace_cr.yaml").to_str().unwrap(),
            "--points",
            &text.join(";"),
        ],
    );
    let reference: Value = serde_json::from_str(&out).unwrap();
    for (point, expected) in points.iter().zip(reference["points"].as_array().unwrap()) {
        let expected = expected["nll"].as_f64().unwrap();
        let engine = like.nll(point).nll;
        assert!(
            (engine - expected).abs() <= 1e-9 * expected.abs(),
            "NLL at {point:?}: engine {engine} vs independent {expected}"
        );
    }
}

#[test]
fn control_regions_constrain_the_shared_background_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let ws = control_regions_with(dir.path(), &[]);
    let fit = fit_json(&ws, &dir.path().join("fit.json"));
    assert_eq!(fit["status"]["verdict"], "converged");
    let mu_b = &fit["parameters"]["mu_B"];
    // The CRs hold ~2 200 events of B: σ(mu_B) ≈ 1/√2200 ≈ 0.021 (staterror adds ~0.02/√7).
    let error = mu_b["error"].as_f64().unwrap();
    assert!((0.018..0.03).contains(&error), "σ(mu_B) = {error}");
    assert!((mu_b["value"].as_f64().unwrap() - 1.0).abs() < 3.0 * error);
    // Pulls are in units of each constraint's width around its global observable: a staterror
    // γ near 1 with width ~0.02 has a pull of order 1, not γ itself.
    let gamma = &fit["parameters"]["staterror_CR_low[1]"];
    let pull = gamma["pull"].as_f64().unwrap();
    let expected = (gamma["value"].as_f64().unwrap() - 1.0) / (8.6 / 430.0);
    assert!((pull - expected).abs() < 1e-9, "pull {pull} vs {expected}");
    assert!(fit["parameters"]["mu_B"]["pull"].is_null(), "mu_B is free");

    // Without the control regions mu_B is free in the SR alone and much less known.
    let cut = std::fs::read_to_string(&ws).unwrap();
    let sr_only = cut[..cut.find("  - name: CR_low").unwrap()].to_string();
    let sr_ws = common::write_workspace(dir.path(), &sr_only);
    let sr_error = fit_json(&sr_ws, &dir.path().join("fit_sr.json"))["parameters"]["mu_B"]["error"]
        .as_f64()
        .unwrap();
    assert!(
        sr_error > 2.0 * error,
        "SR alone σ(mu_B) = {sr_error}, with CRs {error}"
    );
}

#[test]
fn toys_draw_binned_counts_around_the_expected_ones_deterministically() {
    let analysis = common::example_analysis("workspace_cr.yaml");
    let mut theta = analysis.model.init();
    theta[3] = 1.2; // mu_B
    let source = ToySource::asimov(&analysis, &theta).unwrap();
    let expected = analysis
        .model
        .kind::<BinnedPart>()
        .unwrap()
        .expected(&theta);
    let n = 400;
    let mut sums = [0.0; 4];
    let mut aux_sum = 0.0;
    for toy in 0..n {
        let like: Likelihood = source.draw(7, 0, toy, true);
        let counts = &like.observed_as::<BinnedData>().unwrap().counts;
        assert_eq!(counts.len(), 2);
        for (s, c) in sums.iter_mut().zip(&counts[0]) {
            assert_eq!(c.fract(), 0.0, "counts are whole numbers");
            *s += c;
        }
        aux_sum += like.global_observables[4]; // staterror_CR_low[0], σ = 0.02 around θ = 1
        let again = source.draw(7, 0, toy, true);
        assert_eq!(
            again.observed_as::<BinnedData>(),
            like.observed_as::<BinnedData>(),
            "same seed, same toy"
        );
        assert_eq!(again.global_observables, like.global_observables);
    }
    for (b, (s, lambda)) in sums.iter().zip(&expected[0]).enumerate() {
        let mean = s / n as f64;
        let standard_error = (lambda / n as f64).sqrt();
        assert!(
            (mean - lambda).abs() < 5.0 * standard_error,
            "bin {b}: mean {mean} vs λ {lambda}"
        );
    }
    let aux_mean = aux_sum / n as f64;
    assert!(
        (aux_mean - 1.0).abs() < 5.0 * 0.02 / (n as f64).sqrt(),
        "aux mean {aux_mean}"
    );
    // Without binned channels the unbinned toys are what they were: the binned counts come
    // from a stream of their own.
    let plain = common::example_analysis("workspace_exact.yaml");
    let plain_source = ToySource::asimov(&plain, &theta[..3]).unwrap();
    let with_cr = ToySource::asimov(
        &analysis,
        &[
            theta[0], theta[1], theta[2], 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
        ],
    )
    .unwrap();
    let a = plain_source.draw(3, 1, 2, false);
    let b = with_cr.draw(3, 1, 2, false);
    assert_eq!(a.unbinned()[0].weights, b.unbinned()[0].weights);
}

#[test]
fn binned_modifier_settings_that_disagree_are_refused_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let ws = control_regions_with(
        dir.path(),
        &[(
            "{name: mu_B, init: 1.0, bounds: [0.1, 5.0], constraint: none}",
            "{name: mu_B, init: 1.0, bounds: [0.1, 5.0], constraint: gaussian}",
        )],
    );
    let run = nsbi(&["fit", ws.to_str().unwrap()]);
    let text = common::assert_refused(&run, &["mu_B", "no constraint", "normfactor"]);
    assert!(
        text.contains("workspace.yaml:"),
        "names the file and line: {text}"
    );

    let ws = control_regions_with(
        dir.path(),
        &[(
            "type: binned\n    observable: {name: m4l, edges: [200.0",
            "type: histogram\n    observable: {name: m4l, edges: [200.0",
        )],
    );
    let run = nsbi(&["validate", ws.to_str().unwrap()]);
    common::assert_refused(&run, &["channels[2]", "'histogram'", "unbinned, binned"]);

    let ws = control_regions_with(
        dir.path(),
        &[("{name: alpha_shape, init: 0.0, bounds: [-5.0, 5.0], constraint: gaussian}", "{name: alpha_shape, init: 0.0, bounds: [[-5.0, 5.0], [-4.0, 4.0]], constraint: gaussian}")],
    );
    let run = nsbi(&["fit", ws.to_str().unwrap()]);
    common::assert_refused(&run, &["alpha_shape", "per bin"]);
}

#[test]
fn channel_names_and_parameter_use_are_checked_across_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let ws = control_regions_with(dir.path(), &[("  - name: CR_high", "  - name: SR")]);
    let run = nsbi(&["validate", ws.to_str().unwrap()]);
    common::assert_refused(&run, &["channel 'SR' is declared twice"]);

    let free = "  - {name: k_other, init: 1.0, bounds: [0.5, 2.0], constraint: none}\n";
    let ws = control_regions_with(
        dir.path(),
        &[("  - {name: mu_B,", &format!("{free}  - {{name: mu_B,"))],
    );
    let run = nsbi(&["validate", ws.to_str().unwrap()]);
    common::assert_refused(&run, &["k_other", "no coefficient or systematic uses it"]);

    // Used by a binned sample's coefficient only: a parameter like any other.
    let ws = control_regions_with(
        dir.path(),
        &[
            ("  - {name: mu_B,", &format!("{free}  - {{name: mu_B,")),
            (
                "      - name: other\n        yields: [60.0, 50.0, 40.0, 30.0]",
                "      - name: other\n        coefficient: k_other\n        yields: [60.0, 50.0, 40.0, 30.0]",
            ),
        ],
    );
    let run = nsbi(&["validate", ws.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
}

#[test]
fn nsbi_scan_of_an_imported_workspace_equals_pyhf_profile_scan() {
    let path = binned_fixtures().join("scan_reference.json");
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut worst = 0.0f64;
    for case in reference["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        let points = case["points"].as_array().unwrap();
        let mu = |p: &Value| p["mu"].as_f64().unwrap();
        let range = format!(
            "--range={:.17}:{:.17}",
            mu(&points[0]),
            mu(&points[points.len() - 1])
        );
        let ws = import(name, dir.path());
        let json = dir.path().join(format!("{name}_scan.json"));
        let run = nsbi(&[
            "scan",
            ws.to_str().unwrap(),
            "--poi",
            case["poi"].as_str().unwrap(),
            &range,
            "--points",
            &points.len().to_string(),
            "--json",
            json.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{name}: {}", stderr(&run));
        let scan = common::read_json(&json);
        let grid: Vec<&Value> = scan["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["best_fit"] == false)
            .collect();
        assert_eq!(grid.len(), points.len(), "{name}");
        for (ours, theirs) in grid.iter().zip(points) {
            let poi = case["poi"].as_str().unwrap();
            assert!((ours[poi].as_f64().unwrap() - mu(theirs)).abs() < 1e-12);
            let (t, t_pyhf) = (ours["t"].as_f64().unwrap(), theirs["t"].as_f64().unwrap());
            assert!(
                (t - t_pyhf).abs() < 1e-6,
                "{name} at {poi} = {}: t nsbi {t} vs pyhf {t_pyhf}",
                mu(theirs)
            );
            worst = worst.max((t - t_pyhf).abs());
        }
    }
    eprintln!("largest |t − t_pyhf| {worst:e}");
}

#[test]
fn fit_reports_each_binned_channel_at_the_best_fit() {
    let dir = tempfile::tempdir().unwrap();
    let ws = control_regions_with(dir.path(), &[]);
    let json = dir.path().join("fit.json");
    let run = nsbi(&[
        "fit",
        ws.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let fit = common::read_json(&json);
    let channels = fit["binned_channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2);
    assert_eq!(channels[0]["channel"], "CR_low");
    let observed: Vec<f64> = channels[0]["observed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(observed, vec![571.0, 441.0, 343.0, 211.0]);
    // λ_b at the best fit from the fitted parameters, as the model defines it.
    let p = |name: &str| fit["parameters"][name]["value"].as_f64().unwrap();
    let alpha = p("alpha_eff");
    // code 4 inside |α| < 1 is not a closed form here; the fit's α is inside, so compare with
    // the B part exactly and bound the other part between its ±1σ yields.
    for (b, (b_yield, other)) in [(520.0, 60.0), (430.0, 50.0), (310.0, 40.0), (180.0, 30.0)]
        .iter()
        .enumerate()
    {
        let expected = channels[0]["expected"][b].as_f64().unwrap();
        let b_part = b_yield * p("mu_B") * p(&format!("staterror_CR_low[{b}]"));
        let other_part = expected - b_part;
        let (lo, hi) = if alpha >= 0.0 {
            (*other, other * 1.04)
        } else {
            (other * 0.95, *other)
        };
        assert!(
            (lo - 1e-9..=hi + 1e-9).contains(&other_part),
            "bin {b}: other background {other_part} outside [{lo}, {hi}]"
        );
    }
    let text = stdout(&run);
    assert!(
        text.contains("CR_low: 4 bins, observed 1566 vs expected"),
        "{text}"
    );
}

#[test]
fn observed_counts_may_come_from_an_hdf5_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let counts = dir.path().join("counts.h5");
    {
        let file = hdf5::File::create(&counts).unwrap();
        let group = file.create_group("CR_low").unwrap();
        group
            .new_dataset_builder()
            .with_data(&[571.0f64, 441.0, 343.0, 211.0])
            .create("counts")
            .unwrap();
    }
    let inline = fit_json(
        &control_regions_with(dir.path(), &[]),
        &dir.path().join("inline.json"),
    );
    let from_file = control_regions_with(
        dir.path(),
        &[(
            "data: [571, 441, 343, 211]",
            &format!(
                "data: {{file: {}, dataset: CR_low/counts}}",
                counts.display()
            ),
        )],
    );
    let read = fit_json(&from_file, &dir.path().join("file.json"));
    assert_eq!(inline["nll"], read["nll"]);
    assert_eq!(inline["parameters"], read["parameters"]);

    let missing = control_regions_with(
        dir.path(),
        &[(
            "data: [571, 441, 343, 211]",
            &format!(
                "data: {{file: {}, dataset: CR_low/count}}",
                counts.display()
            ),
        )],
    );
    let run = nsbi(&["fit", missing.to_str().unwrap()]);
    common::assert_refused(&run, &["CR_low", "counts.h5", "no dataset 'CR_low/count'"]);
}

#[test]
fn binned_channels_of_a_combined_workspace_export_to_pyhf_with_a_chosen_poi() {
    let dir = tempfile::tempdir().unwrap();
    let ws = control_regions_with(dir.path(), &[]);
    let json = dir.path().join("cr.json");
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "pyhf", ws.to_str().unwrap(), "--out"];
        args.push(json.to_str().unwrap());
        args.extend_from_slice(extra);
        nsbi(&args)
    };
    // The workspace's POI acts on the unbinned channel only.
    common::assert_refused(&export(&[]), &["pyhf needs a POI", "--poi NAME"]);
    common::assert_refused(&export(&["--poi", "mu"]), &["--poi mu", "mu_B"]);
    let run = export(&["--poi", "mu_B"]);
    assert!(run.status.success(), "{}", stderr(&run));
    // pyhf reads it with mu_B as POI, and its -logpdf at nsbi's best fit of the JSON is
    // nsbi's minimum.
    let fit = fit_json(&json, &dir.path().join("fit.json"));
    let (poi, pyhf_nll) = common::pyhf_nll_at_fit(&json, &fit);
    assert_eq!(poi, "mu_B");
    let nll = fit["nll"].as_f64().unwrap();
    assert!(
        (nll - pyhf_nll).abs() < 1e-10 * nll.abs(),
        "nsbi {nll} vs pyhf {pyhf_nll}"
    );
}
