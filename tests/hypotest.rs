//! Hypothesis tests on binned counting models: the toy calculator against the asymptotic one
//! where the asymptotics hold and where they do not, discovery p₀ by toys, determinism of the
//! toys, toy files that record their statistic, and the refusals.

mod common;

use common::{assert_refused, counting_workspace, nsbi, nsbi_json, read_json};
use serde_json::Value;

/// The number `v` holds.
fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn toy_cls_agree_with_asymptotics_at_large_counts_and_not_at_small_ones() {
    let dir = tempfile::tempdir().unwrap();
    // Large counts: b = 1000, s = 100 at mu = 1, data at the background expectation.
    let large = counting_workspace(dir.path(), "large.json", 100.0, 1000.0, 1000.0);
    let large = large.to_str().unwrap();
    let asym = nsbi_json(&["hypotest", large, "--value", "0.6"]);
    let toys = nsbi_json(&[
        "hypotest",
        large,
        "--value",
        "0.6",
        "--calculator",
        "toys",
        "--toys",
        "3000",
    ]);
    assert_eq!(toys["calculator"], "toys");
    let error = f(&toys["toys"]["cls"]);
    let (cls_toys, cls_asym) = (f(&toys["cls"]["observed"]), f(&asym["cls"]["observed"]));
    assert!(error > 0.0 && error < 0.02, "toy error {error}");
    assert!(
        (cls_toys - cls_asym).abs() < 4.0 * error,
        "large counts: toys {cls_toys} ± {error} vs asymptotic {cls_asym}"
    );
    for key in ["clsb", "clb"] {
        let (t, a, e) = (f(&toys[key]), f(&asym[key]), f(&toys["toys"][key]));
        assert!((t - a).abs() < 4.0 * e, "{key}: toys {t} ± {e} vs {a}");
    }
    // The expected median too (pyhf's band from the background toys).
    let (tm, am) = (
        f(&toys["cls"]["expected"][2]),
        f(&asym["cls"]["expected"][2]),
    );
    assert!(
        (tm - am).abs() < 0.05,
        "expected median: toys {tm} vs asymptotic {am}"
    );

    // Small counts: b = 0.5, nothing observed; the asymptotic formulas do not hold.
    let small = counting_workspace(dir.path(), "small.json", 3.0, 0.5, 0.0);
    let small = small.to_str().unwrap();
    let asym = nsbi_json(&["hypotest", small, "--value", "1"]);
    let toys = nsbi_json(&[
        "hypotest",
        small,
        "--value",
        "1",
        "--calculator",
        "toys",
        "--toys",
        "3000",
    ]);
    let error = f(&toys["toys"]["cls"]);
    let (cls_toys, cls_asym) = (f(&toys["cls"]["observed"]), f(&asym["cls"]["observed"]));
    // The exact answer: n = 0 is the most extreme count under both hypotheses and every toy
    // with n = 0 ties the observed q̃, so CLs+b = P(0 | 3.5), CLb = P(0 | 0.5), CLs = e⁻³.
    let exact = (-3.0f64).exp();
    assert!(
        (cls_toys - exact).abs() < 4.0 * error,
        "small counts: toys {cls_toys} ± {error} vs the exact {exact}"
    );
    assert!(
        (cls_toys - cls_asym).abs() > 4.0 * error,
        "small counts: toys {cls_toys} ± {error} should differ from asymptotic {cls_asym}"
    );
}

#[test]
fn discovery_p0_from_toys_matches_the_asymptotic_one_where_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    // A 2σ excess over b = 1000 ± 5 % (σ ≈ √(1000 + 50²) ≈ 59).
    let ws = counting_workspace(dir.path(), "excess.json", 100.0, 1000.0, 1120.0);
    let ws = ws.to_str().unwrap();
    let asym = nsbi_json(&["significance", ws]);
    let toys = nsbi_json(&["significance", ws, "--calculator", "toys", "--toys", "4000"]);
    let p_asym = f(&asym["observed"]["p0"]);
    let p_toys = f(&toys["observed"]["p0"]);
    let n = 4000.0;
    let error = (p_asym * (1.0 - p_asym) / n).sqrt();
    assert!(p_asym > 0.005 && p_asym < 0.1, "asymptotic p0 {p_asym}");
    assert!(
        (p_toys - p_asym).abs() < 4.0 * error,
        "p0: toys {p_toys} vs asymptotic {p_asym} ± {error}"
    );
    // Z = Φ⁻¹(1 − p0) = √q0 asymptotically.
    let (q0, z) = (f(&asym["observed"]["q0"]), f(&asym["observed"]["z"]));
    assert!((z - q0.sqrt()).abs() < 1e-9, "z {z} vs √q0 {}", q0.sqrt());
    assert_eq!(asym["test_stat"], "q0");
}

#[test]
fn toys_are_the_same_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let ws = counting_workspace(dir.path(), "w.json", 10.0, 20.0, 22.0);
    let ws = ws.to_str().unwrap();
    let args = [
        "hypotest",
        ws,
        "--value",
        "1",
        "--calculator",
        "toys",
        "--toys",
        "400",
    ];
    let one = nsbi_json(&[&args[..], &["--threads", "1"]].concat());
    let two = nsbi_json(&[&args[..], &["--threads", "2"]].concat());
    assert_eq!(one["cls"], two["cls"]);
    assert_eq!(one["clsb"], two["clsb"]);
    // Another seed gives other toys.
    let other = nsbi_json(&[&args[..], &["--seed", "7"]].concat());
    assert_ne!(one["cls"], other["cls"]);
}

#[test]
fn a_limit_is_where_cls_crosses_one_minus_cl() {
    let dir = tempfile::tempdir().unwrap();
    let ws = counting_workspace(dir.path(), "w.json", 10.0, 20.0, 22.0);
    let ws = ws.to_str().unwrap();
    for cl in ["0.95", "0.9"] {
        let limit = nsbi_json(&["limit", ws, "--cl", cl]);
        let cl: f64 = cl.parse().unwrap();
        let observed = f(&limit["observed"]);
        // CLs at the limit, tested afresh, is 1 − CL.
        let at = nsbi_json(&["hypotest", ws, "--value", &observed.to_string()]);
        assert!(
            (f(&at["cls"]["observed"]) - (1.0 - cl)).abs() < 1e-6,
            "CLs at the limit {observed}: {}",
            at["cls"]["observed"]
        );
        let expected: Vec<f64> = limit["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(f)
            .collect();
        assert!(expected.windows(2).all(|w| w[0] < w[1]), "{expected:?}");
        let at = nsbi_json(&["hypotest", ws, "--value", &expected[2].to_string()]);
        assert!((f(&at["cls"]["expected"][2]) - (1.0 - cl)).abs() < 1e-6);
    }
    // The Brazil plot: both files, with the limits in the legend.
    let stem = dir.path().join("brazil");
    let output = nsbi(&["limit", ws, "--plot", stem.to_str().unwrap()]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(svg.contains("observed limit") && svg.contains("expected limit"));
    assert!(stem.with_extension("png").is_file());
}

#[test]
fn toy_files_record_their_statistic_and_neyman_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let ws = counting_workspace(dir.path(), "w.json", 10.0, 20.0, 22.0);
    let ws = ws.to_str().unwrap();
    let tilde = dir.path().join("tilde.h5");
    let plain = dir.path().join("plain.h5");
    for (stat, out) in [("tmutilde", &tilde), ("tmu", &plain)] {
        let output = nsbi(&[
            "toys",
            ws,
            "--mu-grid",
            "0.5:1.5:0.5",
            "--toys",
            "50",
            "--seed",
            "3",
            "--test-stat",
            stat,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", common::stderr(&output));
    }
    let ci = dir.path().join("ci.json");
    let output = nsbi(&[
        "neyman",
        ws,
        "--toys",
        tilde.to_str().unwrap(),
        "--json",
        ci.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert_eq!(read_json(&ci)["test_stat"], "tmutilde");
    // Toys of two statistics are not one construction.
    let merged = dir.path().join("m.h5");
    let output = nsbi(&[
        "merge",
        tilde.to_str().unwrap(),
        plain.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert_refused(&output, &["test statistic", "tmutilde", "tmu"]);
    // A one-sided statistic is not a Neyman construction's.
    let output = nsbi(&[
        "toys",
        ws,
        "--mu-grid",
        "0.5:1.5:0.5",
        "--toys",
        "5",
        "--test-stat",
        "qtilde",
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert_refused(&output, &["qtilde", "two-sided"]);
}

#[test]
fn bad_requests_are_refused_with_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let ws = counting_workspace(dir.path(), "w.json", 10.0, 20.0, 22.0);
    let ws = ws.to_str().unwrap();
    let output = nsbi(&["hypotest", ws, "--value", "1", "--test-stat", "tmu"]);
    assert_refused(&output, &["one-sided", "qtilde"]);
    let output = nsbi(&["hypotest", ws, "--value", "1", "--test-stat", "lambda"]);
    assert_refused(&output, &["'lambda'", "qtilde", "q0"]);
    let output = nsbi(&["hypotest", ws, "--value", "12"]);
    assert_refused(&output, &["12", "outside the bounds", "mu"]);
    let output = nsbi(&["hypotest", ws, "--value", "1", "--calculator", "bayes"]);
    assert_refused(&output, &["'bayes'", "asymptotic", "toys"]);
    let output = nsbi(&["limit", ws, "--cl", "1.5"]);
    assert_refused(&output, &["--cl 1.5", "between 0 and 1"]);
    // A range that holds no crossing says so instead of returning an end of the range.
    let output = nsbi(&["limit", ws, "--range", "0.1:0.2"]);
    assert_refused(&output, &["does not cross", "--range"]);
    let output = nsbi(&["significance", ws, "--signal", "0"]);
    assert_refused(&output, &["--signal", "null"]);
}
