//! Grid points where the model is not a density are excluded from a Neyman construction,
//! reported and never fitted through (issue 16). The example is the linear (O(1/Λ²))
//! truncation of the SMEFT toy (`workspaces/smeft_toy/workspace_linear.yaml`), whose density
//! A0 (A0 + 2 c1 A1 + 2 c2 A2) is negative wherever the interference outweighs the SM: at
//! some grid points at an observed event (no likelihood), at others only at events of the
//! pooled MC the toys are drawn from (no generation model). Both sets are checked against
//! the closed form (`validation/smeft_positivity.py`), and the toys at the other points are
//! the toys of a run without the excluded ones.

mod common;

use common::*;
use nsbi::analysis::Analysis;
use nsbi::infer::construction::{plan_pois, ExclusionStage};
use nsbi::infer::poi_grid::PoiGrid;
use nsbi::infer::run::{self, CoverageRequest, NeymanReport, TruePoint};
use nsbi::infer::test_stat::TestStatistic;
use nsbi::infer::toyfile::{self, ToyFile};
use nsbi::infer::toys::{ToyPlan, ToyRecord};

fn linear_path() -> std::path::PathBuf {
    root().join("workspaces/smeft_toy/workspace_linear.yaml")
}

fn linear() -> Analysis {
    Analysis::load(&linear_path(), &test_cache(), false).unwrap()
}

/// The closed form's verdict on the 13 × 13 grid of [-3, 3]²: per point, whether an observed
/// event has density ≤ 0, and the first pooled MC event with density < 0.
struct ClosedForm {
    points: Vec<[f64; 2]>,
    observed_negative: Vec<bool>,
    pool_first_negative: Vec<Option<usize>>,
}

impl ClosedForm {
    fn compute() -> ClosedForm {
        let v: serde_json::Value =
            serde_json::from_str(&run_validation_script("smeft_positivity.py", &[])).unwrap();
        ClosedForm {
            points: serde_json::from_value(v["points"].clone()).unwrap(),
            observed_negative: serde_json::from_value(v["observed_negative"].clone()).unwrap(),
            pool_first_negative: serde_json::from_value(v["pool_first_negative"].clone()).unwrap(),
        }
    }

    /// The expected exclusion of `point`: its stage and (for generation) the pooled event.
    fn expected(&self, point: &[f64]) -> Option<(ExclusionStage, Option<usize>)> {
        let g = self
            .points
            .iter()
            .position(|p| p[..] == *point)
            .expect("a point of the closed form's grid");
        if self.observed_negative[g] {
            return Some((ExclusionStage::ObservedData, None));
        }
        self.pool_first_negative[g].map(|e| (ExclusionStage::Generation, Some(e)))
    }
}

fn plan(analysis: &Analysis, points: &[[f64; 2]], n_toys: usize) -> ToyPlan {
    let names = vec!["c1".to_string(), "c2".to_string()];
    let (pois, profiled) = plan_pois(&analysis.model, &names, &[], false).unwrap();
    ToyPlan {
        pois,
        profiled,
        grid: PoiGrid {
            points: points.iter().map(|p| p.to_vec()).collect(),
            axes: None,
        },
        n_toys,
        seed: 3,
        systematics: true,
        statistic: TestStatistic::Tmu,
    }
}

fn toys(analysis: &Analysis, plan: &ToyPlan, shard: (usize, usize)) -> ToyFile {
    run::make_toy_file(analysis, plan, &linear_path(), shard, &|| {}).unwrap()
}

/// Six points where the linear truncation is a density, then one where an observed event's
/// density is negative and two where only pooled MC events' are.
const VALID: [[f64; 2]; 6] = [
    [0.0, 0.0],
    [-0.5, 0.5],
    [0.5, -0.5],
    [1.0, 1.0],
    [-1.0, 0.0],
    [2.0, 0.5],
];
const INVALID: [[f64; 2]; 3] = [[0.0, 1.5], [-3.0, -3.0], [-2.5, -1.0]];

#[test]
fn points_without_a_density_are_excluded_and_the_rest_is_unchanged() {
    let closed_form = ClosedForm::compute();
    let mut analysis = linear();
    let with: Vec<[f64; 2]> = VALID.iter().chain(&INVALID).copied().collect();
    let (plan_valid, plan_all) = (plan(&analysis, &VALID, 30), plan(&analysis, &with, 30));
    let valid = toys(&analysis, &plan_valid, (0, 1));
    let all = toys(&analysis, &plan_all, (0, 1));

    // Excluded: exactly the points the closed form says, with the stage and the pooled event.
    assert!(valid.header.excluded.is_empty());
    let excluded = &all.header.excluded;
    let indices: Vec<usize> = excluded.iter().map(|e| e.grid_index).collect();
    assert_eq!(indices, vec![6, 7, 8]);
    for e in excluded {
        let (stage, event) = closed_form
            .expected(&e.point)
            .expect("excluded in the closed form");
        assert_eq!(e.stage, stage, "{e:?}");
        assert_eq!(e.channel.as_deref(), Some("SR"));
        assert!(e.density.unwrap() < 0.0, "{e:?}");
        if stage == ExclusionStage::Generation {
            assert_eq!(
                e.event, event,
                "the first pooled MC event with a negative density"
            );
            assert!(e.reason.contains("pooled MC event"), "{}", e.reason);
        }
    }
    for p in &VALID {
        assert_eq!(
            closed_form.expected(p),
            None,
            "{p:?} is a density in the closed form"
        );
    }

    // No toys at excluded points; the others are the toys of the run without them, but for the
    // flag of the free fits that ended where the model is not a density (checked where a plan
    // has excluded points).
    assert!(all.records.iter().all(|r| r.grid_index < 6));
    assert_eq!(all.records.len(), valid.records.len());
    let outside = |r: &ToyRecord| {
        analysis
            .model
            .generation_invalid(&r.theta_hat)
            .unwrap()
            .is_some()
    };
    let mut n_outside = 0;
    for (a, v) in all.records.iter().zip(&valid.records) {
        let unflagged = ToyRecord {
            converged_free: v.converged_free,
            ..a.clone()
        };
        assert_eq!(&unflagged, v);
        if outside(a) {
            n_outside += 1;
            assert!(
                !a.converged_free,
                "a fit outside the density is marked failed"
            );
        } else {
            assert_eq!(a.converged_free, v.converged_free);
        }
    }
    assert!(
        n_outside > 0,
        "the example has fits that end outside the density"
    );
    eprintln!(
        "{n_outside} of {} toys' free fits end where the pooled MC has a negative density",
        all.records.len()
    );

    // Every toy's fits end where its events have a positive density (a step to a point without
    // likelihood is rejected, never taken): finite NLLs.
    assert!(all
        .records
        .iter()
        .all(|r| r.nll_conditional.is_finite() && r.nll_free.is_finite()));

    // Shards find the same exclusions and merge into the whole run.
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..2)
        .map(|i| {
            let path = dir.path().join(format!("shard_{i}.h5"));
            toys(&analysis, &plan_all, (i, 2)).write(&path).unwrap();
            path
        })
        .collect();
    let merged = toyfile::merge(&paths).unwrap();
    assert_eq!(merged.records, all.records);
    assert_eq!(merged.header.excluded, all.header.excluded);
    let reread = dir.path().join("all.h5");
    all.write(&reread).unwrap();
    assert_eq!(ToyFile::read(&reread).unwrap(), all);

    // The regions: the excluded points carry no critical value nor observed t and are in no
    // region; the other points' numbers are those of the run without them.
    let regions = |file: &ToyFile, analysis: &mut Analysis| match run::neyman(
        analysis,
        file,
        "toys",
        &[0.6827, 0.9545],
    )
    .unwrap()
    {
        NeymanReport::Regions(r) => r,
        NeymanReport::Intervals(_) => panic!("two POIs make regions"),
    };
    let (r_valid, r_all) = (regions(&valid, &mut analysis), regions(&all, &mut analysis));
    assert_eq!(r_all.excluded_points, *excluded);
    assert_eq!(
        r_all.toy_fits_not_converged,
        r_valid.toy_fits_not_converged + n_outside
    );
    assert_eq!(r_all.observed_t[..6], r_valid.observed_t[..]);
    assert!(r_all.observed_t[6..].iter().all(|t| t.is_nan()));
    assert_eq!(r_all.n_toys, vec![30, 30, 30, 30, 30, 30, 0, 0, 0]);
    for (a, v) in r_all.regions.iter().zip(&r_valid.regions) {
        assert_eq!(a.critical_values[..6], v.critical_values[..]);
        assert_eq!(a.accepted[..6], v.accepted[..]);
        assert!(a.critical_values[6..].iter().all(|c| c.is_nan()));
        assert!(a.accepted[6..].iter().all(|&x| !x));
    }
    assert!(
        r_all.warnings[0].starts_with("3 grid point(s) excluded")
            && r_all.warnings[0].contains("(c1 = -3, c2 = -3)"),
        "{:?}",
        r_all.warnings
    );

    // No coverage at an excluded point: refused with the reason.
    let request = CoverageRequest {
        point: TruePoint::ByName("c1=-3,c2=-3".into()),
        n_toys: 10,
        seed: 9,
        levels: vec![0.6827],
    };
    let err = run::coverage(&mut analysis, &all, "toys", &request, &|| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("excluded") && err.contains("no likelihood"),
        "{err}"
    );
}

/// `nsbi toys --grid --grid` over a product grid that crosses the region without a density:
/// a warning lists the excluded points with their reasons; `nsbi neyman --json --plot` reports
/// them (null critical values, grey cells in the plot).
#[test]
fn the_commands_report_the_excluded_points() {
    let closed_form = ClosedForm::compute();
    let dir = tempfile::tempdir().unwrap();
    let ws = linear_path().to_string_lossy().into_owned();
    let cache = test_cache().dir().to_string_lossy().into_owned();
    let toys = dir.path().join("toys.h5").to_string_lossy().into_owned();
    let out = nsbi(&[
        "toys",
        &ws,
        "--grid",
        "c1=-1:1:0.5",
        "--grid",
        "c2=-1:1.5:0.5",
        "--toys",
        "10",
        "--seed",
        "2",
        "--out",
        &toys,
        "--cache-dir",
        &cache,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("grid point(s) excluded"), "{err}");
    assert!(err.contains("pooled MC event"), "{err}");
    let json = dir
        .path()
        .join("region.json")
        .to_string_lossy()
        .into_owned();
    let plot = dir.path().join("region").to_string_lossy().into_owned();
    let out = nsbi(&[
        "neyman",
        &ws,
        "--toys",
        &toys,
        "--json",
        &json,
        "--plot",
        &plot,
        "--cache-dir",
        &cache,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("grid point(s) excluded"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let points: Vec<[f64; 2]> = serde_json::from_value(v["points"].clone()).unwrap();
    let excluded: Vec<usize> = v["excluded_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["grid_index"].as_u64().unwrap() as usize)
        .collect();
    let expected: Vec<usize> = (0..points.len())
        .filter(|&g| closed_form.expected(&points[g]).is_some())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(excluded, expected);
    for &g in &excluded {
        assert!(v["observed_t"][g].is_null());
        assert!(v["regions"][0]["critical_values"][g].is_null());
        assert_eq!(v["n_toys"][g], 0);
    }
    let svg = std::fs::read_to_string(dir.path().join("region.svg")).unwrap();
    assert!(svg.contains("excluded: the model is not a density"));
}

/// Outside a Neyman construction (hypothesis-test toys, any generation point a caller picks),
/// toys at a point where a pooled MC event has a negative density are refused, naming the event
/// the closed form names — never drawn from the positive events alone, which would be toys of
/// another model.
#[test]
fn toys_where_the_pool_has_a_negative_density_are_refused() {
    use nsbi::channel::ChannelKind;
    let analysis = linear();
    let closed = ClosedForm::compute();
    let (point, event) = (0..closed.points.len())
        .filter(|&g| !closed.observed_negative[g])
        .find_map(|g| closed.pool_first_negative[g].map(|e| (closed.points[g], e)))
        .expect("a grid point negative at a pooled event only");
    let model = &analysis.model;
    let mut theta = model.init();
    for (name, value) in ["c1", "c2"].iter().zip(point) {
        theta[model.parameter_index(name).unwrap()] = value;
    }
    let error = match model.channels.toys(&theta) {
        Ok(_) => panic!("toys drawn at {point:?}, where pooled event {event} is negative"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains(&format!("pooled MC event {event} ")) && error.contains("not a density"),
        "{error}"
    );
    let positive = (0..closed.points.len())
        .find(|&g| !closed.observed_negative[g] && closed.pool_first_negative[g].is_none())
        .map(|g| closed.points[g])
        .unwrap();
    for (name, value) in ["c1", "c2"].iter().zip(positive) {
        theta[model.parameter_index(name).unwrap()] = value;
    }
    assert!(model.channels.toys(&theta).is_ok(), "{positive:?}");
}

/// A fit whose minimum is where the model is not a density over the pooled MC (the data's own
/// events still have a likelihood there) is not a success: `nsbi fit` fails, its JSON says not
/// converged and names the event the closed form names; the free fit, inside the allowed region, converges.
#[test]
fn a_minimum_where_the_model_is_not_a_density_is_not_converged() {
    let closed = ClosedForm::compute();
    let (point, event) = (0..closed.points.len())
        .filter(|&g| !closed.observed_negative[g])
        .find_map(|g| closed.pool_first_negative[g].map(|e| (closed.points[g], e)))
        .unwrap();
    let ws = linear_path().display().to_string();
    let fix = format!("c1={},c2={}", point[0], point[1]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("fit.json");
    let out = nsbi(&[
        "fit",
        &ws,
        "--fix",
        &fix,
        "--no-minos",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_refused(
        &out,
        &["fit did not converge", "not a density at this minimum"],
    );
    let fit = read_json(&json);
    let status = &fit["status"];
    let message = status["message"].as_str().unwrap();
    assert_eq!(status["converged"], false, "{message}");
    assert!(
        message.contains("not a density at this minimum")
            && message.contains(&format!("at event {event} of channel")),
        "{message}"
    );
    let free = nsbi_json(&["fit", &ws, "--no-minos"]);
    assert_eq!(free["status"]["verdict"], "converged", "{}", free["status"]);
}
