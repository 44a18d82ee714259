//! The toy calculator on a farm: `hypotest`, `limit` and `significance` with `--shard i/N
//! --out`, `nsbi merge` and `--toys-from` give the in-process run's numbers bit for bit, for
//! any shard split and thread count; a limit's CLs at a tested value is a single hypotest's
//! there; stored toys of another test or model are refused; `nsbi batch … hypotest` writes
//! the shards' and the final commands.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn ok(args: &[&str]) -> String {
    let o = nsbi(args);
    assert!(o.status.success(), "nsbi {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// `base` followed by `extra`.
fn cat<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [base, extra].concat()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `nsbi ARGS --json FILE` and the JSON.
fn json_of(dir: &Path, name: &str, args: &[&str]) -> Value {
    let out = dir.join(name);
    let mut all = args.to_vec();
    all.extend(["--json", s(&out)]);
    ok(&all);
    read_json(&out)
}

/// The example's limit scan with toys: 4 tested values over [0.0001, 1.5] (the expected limits
/// lie near 0.5 and the observed one above 1, so no value below the range is needed), 40 toys.
fn limit_args<'a>(ws: &'a str, cache: &'a str) -> Vec<&'a str> {
    vec![
        "limit",
        ws,
        "--calculator",
        "toys",
        "--toys",
        "40",
        "--seed",
        "7",
        "--range",
        "0.0001:1.5",
        "--points",
        "4",
        "--cache-dir",
        cache,
    ]
}

#[test]
fn limit_from_merged_shards_equals_the_in_process_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ws = example().join("workspace_exact.yaml");
    let cache = test_cache();
    let cache = cache.dir().to_str().unwrap().to_string();
    let base = limit_args(s(&ws), &cache);

    let in_process = json_of(d, "in_process.json", &cat(&base, &["--threads", "2"]));
    assert_eq!(in_process["calculator"], "toys");
    assert!(in_process["observed"].as_f64().unwrap() > 0.5);

    // Three shards, one thread each, merged by `nsbi merge`.
    for i in 0..3 {
        let (shard, out) = (format!("{i}/3"), d.join(format!("three_{i}.h5")));
        ok(&cat(
            &base,
            &["--shard", &shard, "--out", s(&out), "--threads", "1"],
        ));
    }
    let merged = d.join("three.h5");
    let text = ok(&[
        "merge",
        &format!("{}/three_*.h5", s(d)),
        "--out",
        s(&merged),
    ]);
    assert!(text.contains("merged into"), "{text}");
    let three = json_of(d, "three.json", &cat(&base, &["--toys-from", s(&merged)]));

    // Two shards, read through a glob pattern without merging first.
    for i in 0..2 {
        let (shard, out) = (format!("{i}/2"), d.join(format!("two_{i}.h5")));
        ok(&cat(&base, &["--shard", &shard, "--out", s(&out)]));
    }
    let pattern = format!("{}/two_*.h5", s(d));
    let two = json_of(d, "two.json", &cat(&base, &["--toys-from", &pattern]));

    for (label, farm) in [("3 shards", &three), ("2 shards", &two)] {
        for key in ["observed", "expected", "scan", "method"] {
            assert_eq!(farm[key], in_process[key], "{label}: {key}");
        }
    }
    // The scan holds the limits' bracketing CLs values, not a copy of one number.
    let scan = in_process["scan"].as_array().unwrap();
    assert!(scan.len() >= 3, "{scan:?}");
    assert_ne!(scan[0]["cls"]["observed"], scan[2]["cls"]["observed"]);

    // A limit's CLs at a tested value is a single hypotest's there (same toys and seed).
    let value = scan[2]["value"].as_f64().unwrap();
    let value = value.to_string();
    let hypotest = json_of(
        d,
        "hypotest.json",
        &[
            "hypotest",
            s(&ws),
            "--value",
            &value,
            "--calculator",
            "toys",
            "--toys",
            "40",
            "--seed",
            "7",
            "--cache-dir",
            &cache,
        ],
    );
    assert_eq!(
        hypotest["cls"], scan[2]["cls"],
        "hypotest vs limit at {value}"
    );
}

#[test]
fn hypotest_and_significance_from_shards_equal_the_in_process_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ws = counting_workspace(d, "ws.json", 10.0, 50.0, 55.0);
    for (command, extra) in [
        ("hypotest", ["--value", "1.5"]),
        ("significance", ["--signal", "2"]),
    ] {
        let base = vec![
            command,
            s(&ws),
            "--calculator",
            "toys",
            "--toys",
            "300",
            "--seed",
            "3",
            extra[0],
            extra[1],
        ];
        let in_process = json_of(d, &format!("{command}.json"), &cat(&base, &[]));
        for i in 0..3 {
            let (shard, out) = (format!("{i}/3"), d.join(format!("{command}_{i}.h5")));
            ok(&cat(
                &base,
                &["--shard", &shard, "--out", s(&out), "--threads", "1"],
            ));
        }
        let pattern = format!("{}/{command}_*.h5", s(d));
        let farm = json_of(
            d,
            &format!("{command}_farm.json"),
            &cat(&base, &["--toys-from", &pattern]),
        );
        assert_eq!(farm, in_process, "{command}");
    }
}

#[test]
fn stored_toys_of_another_test_or_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ws = counting_workspace(d, "ws.json", 10.0, 50.0, 55.0);
    let other = counting_workspace(d, "other.json", 10.0, 60.0, 55.0);
    let toys = |stat: &str, shard: &str, out: &Path| {
        ok(&[
            "hypotest",
            s(&ws),
            "--value",
            "1",
            "--calculator",
            "toys",
            "--toys",
            "20",
            "--test-stat",
            stat,
            "--shard",
            shard,
            "--out",
            s(out),
        ]);
    };
    let (q0, q1) = (d.join("q_0.h5"), d.join("q_1.h5"));
    toys("qtilde", "0/2", &q0);
    toys("qmu", "1/2", &q1);
    let merged = d.join("m.h5");

    // Shards of different statistics do not merge.
    assert_refused(
        &nsbi(&["merge", s(&q0), s(&q1), "--out", s(&merged)]),
        &["q_1.h5", "does not belong", "test statistic qtilde vs qmu"],
    );
    // A missing shard is named.
    assert_refused(
        &nsbi(&["merge", s(&q0), "--out", s(&merged)]),
        &["toys are missing", "shards without their file: 1/2"],
    );

    let (t0, t1) = (d.join("t_0.h5"), d.join("t_1.h5"));
    toys("qtilde", "0/2", &t0);
    toys("qtilde", "1/2", &t1);
    ok(&["merge", s(&t0), s(&t1), "--out", s(&merged)]);
    let test = |ws: &Path, value: &str, stat: &str| {
        nsbi(&[
            "hypotest",
            s(ws),
            "--value",
            value,
            "--calculator",
            "toys",
            "--test-stat",
            stat,
            "--toys-from",
            s(&merged),
        ])
    };
    // Another workspace.
    assert_refused(
        &test(&other, "1", "qtilde"),
        &[
            "m.h5",
            "made from another model",
            "workspace content differs",
        ],
    );
    // A value the toys were not made at.
    assert_refused(
        &test(&ws, "2", "qtilde"),
        &["m.h5", "holds no toys at mu = 2", "[1.0]"],
    );
    // Another statistic.
    assert_refused(
        &test(&ws, "1", "qmu"),
        &[
            "m.h5",
            "test statistic: the toys have qtilde, this test qmu",
        ],
    );
    // The asymptotic calculator has no stored toys.
    assert_refused(
        &nsbi(&[
            "hypotest",
            s(&ws),
            "--value",
            "1",
            "--toys-from",
            s(&merged),
        ]),
        &["--toys-from", "--calculator toys"],
    );

    // A Neyman construction's toy file is not a hypothesis test's, and the other way round.
    let neyman = d.join("neyman.h5");
    ok(&[
        "toys",
        s(&ws),
        "--mu-grid",
        "0:1:1",
        "--toys",
        "3",
        "--out",
        s(&neyman),
    ]);
    let refused = nsbi(&[
        "hypotest",
        s(&ws),
        "--value",
        "1",
        "--calculator",
        "toys",
        "--toys-from",
        s(&neyman),
    ]);
    assert_refused(
        &refused,
        &[
            "neyman.h5",
            "a Neyman construction's toy file",
            "nsbi-test-toys-1",
        ],
    );
    assert_refused(
        &nsbi(&["neyman", s(&ws), "--toys", s(&merged)]),
        &["m.h5", "the toys of a hypothesis test", "--toys-from"],
    );
}

#[test]
fn batch_writes_the_shards_and_the_final_test_and_they_reproduce_the_in_process_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ws = counting_workspace(d, "ws.json", 10.0, 50.0, 55.0);
    let test = [
        "hypotest",
        s(&ws),
        "--value",
        "1.5",
        "--calculator",
        "toys",
        "--toys",
        "100",
        "--seed",
        "9",
    ];
    let run = d.join("run");
    let json = d.join("farm.json");
    let mut args = vec!["batch", "slurm"];
    args.extend(test);
    args.extend(["--shards", "3", "--dir", s(&run), "--json", s(&json)]);
    let text = ok(&args);
    assert!(text.contains("3 shards of 200 hypotest toys"), "{text}");

    let sbatch = std::fs::read_to_string(run.join("submit.sbatch")).unwrap();
    let expect = [
        "#SBATCH --array=0-2",
        " hypotest ",
        "--value 1.5",
        "--toys 100 --seed 9",
        "--shard ${SLURM_ARRAY_TASK_ID}/3",
        &format!("--out {}/shard_${{SLURM_ARRAY_TASK_ID}}.h5", s(&run)),
        &format!("nsbi merge {} --out {}/toys.h5", s(&run), s(&run)),
        &format!("--toys-from {}/toys.h5 --json {}", s(&run), s(&json)),
    ];
    for needle in expect {
        assert!(
            sbatch.contains(needle),
            "'{needle}' missing from:\n{sbatch}"
        );
    }

    // Run the shards as the farm would, merge the folder, and run the final test.
    let manifest: Value = read_json(&run.join("manifest.json"));
    for i in 0..3 {
        let mut words: Vec<String> = manifest["toys_arguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect();
        let out = run.join(format!("shard_{i}.h5"));
        words.extend([
            "--shard".into(),
            format!("{i}/3"),
            "--out".into(),
            s(&out).into(),
        ]);
        ok(&words.iter().map(String::as_str).collect::<Vec<_>>());
    }
    ok(&["merge", s(&run), "--out", s(&run.join("toys.h5"))]);
    let result: Vec<String> = manifest["result_arguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    ok(&result.iter().map(String::as_str).collect::<Vec<_>>());
    let in_process = json_of(d, "in_process.json", &test);
    assert_eq!(read_json(&json), in_process);

    // HTCondor: the same shards, by $(Process).
    let condor = d.join("condor");
    let mut args = vec!["batch", "condor", "limit"];
    args.extend(&test[1..2]);
    args.extend(["--calculator", "toys", "--toys", "10", "--range", "0.5:3"]);
    args.extend(["--points", "3", "--shards", "2", "--dir", s(&condor)]);
    ok(&args);
    let sub = std::fs::read_to_string(condor.join("submit.sub")).unwrap();
    for needle in [
        "queue 2",
        "limit ",
        "--range 0.5:3",
        "--shard $(Process)/2",
        "shard_$(Process).h5",
        "--toys-from",
    ] {
        assert!(sub.contains(needle), "'{needle}' missing from:\n{sub}");
    }
    // The asymptotic calculator has no toys to farm.
    let mut args = vec!["batch", "slurm", "hypotest", s(&ws), "--value", "1"];
    args.extend(["--shards", "2", "--dir", s(&condor)]);
    assert_refused(
        &nsbi(&args),
        &["farms the toy calculator's toys", "--calculator toys"],
    );
}
