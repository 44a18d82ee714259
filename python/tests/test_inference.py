"""Hypothesis tests, the Neyman construction and the ratio diagnostics from Python against the
CLI: the same JSON to the last bit, the same toy files, the same refusals."""

import json
import subprocess
import sys

import numpy as np
import pytest

import nsbi
from conftest import CACHE, EXAMPLE, ROOT


def test_hypotest_limit_significance_equal_the_cli(workspace, cli_json):
    hypotest = workspace.hypotest(1.0)
    assert hypotest.to_dict() == cli_json("hypotest", "--value", "1")
    assert hypotest.cls_expected.shape == (5,) and 0 < hypotest.cls_observed < 1
    limit = workspace.limit(points=5)
    assert limit.to_dict() == cli_json("limit", "--points", "5")
    assert limit.expected[0] < limit.expected[2] < limit.expected[4]
    assert limit.scan_cls_expected.shape == (len(limit.scan_values), 5)
    ranged = workspace.limit(cl=0.9, range=(0.5, 3.0), points=4, test_stat="qmu")
    assert ranged.to_dict() == cli_json(
        "limit", "--cl", "0.9", "--range", "0.5:3", "--points", "4", "--test-stat", "qmu"
    )
    significance = workspace.significance(signal=1.5)
    assert significance.to_dict() == cli_json("significance", "--signal", "1.5")
    assert significance.observed["z"] > 0


def test_toy_calculator_equals_the_cli(workspace, cli_json):
    python = workspace.hypotest(1.2, calculator="toys", toys=30, seed=5)
    assert python.to_dict() == cli_json(
        "hypotest", "--value", "1.2", "--calculator", "toys", "--toys", "30", "--seed", "5"
    )
    assert python.toys["n_toys"] == 30


def test_calibration_and_closure_equal_the_cli(workspace, cli, tmp_path):
    done = cli("calibrate", EXAMPLE, "--out", tmp_path / "c", "--bins", "12")
    assert done.returncode == 0, done.stderr
    calibration = workspace.calibrate(bins=12)
    assert calibration.to_dict() == json.loads((tmp_path / "c" / "calibration.json").read_text())
    assert calibration.passed
    curve = calibration.curve("SR/S")
    assert len(curve["observed"]) == 12 and np.isfinite(curve["mean_predicted"]).any()

    done = cli("closure", EXAMPLE, "--out", tmp_path / "k", "--mu", "0.5", "--mu", "2",
               "--cache-dir", CACHE)
    assert done.returncode == 0, done.stderr
    closure = workspace.closure(mu=[0.5, 2])
    assert closure.to_dict() == json.loads((tmp_path / "k" / "closure.json").read_text())
    names = [t["name"] for t in closure.tests]
    assert "SR/mu=0.5" in names
    h = closure.histograms("SR/mu=2", closure.tests[0]["features"][0]["feature"])
    assert len(h["edges"]) == len(h["target"]) + 1


def test_toys_neyman_coverage_equal_the_cli(workspace, cli, cli_json, tmp_path):
    h5py = pytest.importorskip("h5py")
    cli_file, py_file = tmp_path / "cli.h5", tmp_path / "py.h5"
    done = cli("toys", EXAMPLE, "--mu-grid", "0.8:1.2:0.2", "--toys", "6", "--seed", "11",
               "--out", cli_file, "--cache-dir", CACHE)
    assert done.returncode == 0, done.stderr
    toys = workspace.toys("0.8:1.2:0.2", 6, py_file, seed=11)
    points = [value for point in toys.header["grid"]["points"] for value in point]
    assert toys.n_toys_written == 18 and points == pytest.approx([0.8, 1.0, 1.2])
    with h5py.File(cli_file, "r") as a, h5py.File(py_file, "r") as b:
        assert set(a) == set(b)
        for name in a:
            np.testing.assert_array_equal(a[name][()], b[name][()])
    # The Neyman construction and coverage from Python equal the CLI's on the CLI's toys.
    neyman = workspace.neyman(py_file)
    assert neyman.to_dict() == cli_json("neyman", "--toys", cli_file)
    assert neyman.grid.shape == neyman.observed_t.shape == (3,)
    coverage = workspace.coverage(py_file, mu_true=1.0, seed=12, n=8)
    assert coverage.to_dict() == cli_json(
        "coverage", "--toys", cli_file, "--mu-true", "1", "--seed", "12", "--n", "8"
    )


def test_inference_errors_raise_with_the_cli_message(workspace, cli, tmp_path):
    cases = [
        (["hypotest", EXAMPLE, "--value", "1", "--test-stat", "tmu"],
         lambda: workspace.hypotest(1, test_stat="tmu")),
        (["limit", EXAMPLE, "--test-stat", "q0"], lambda: workspace.limit(test_stat="q0")),
        (["significance", EXAMPLE, "--signal", "0"], lambda: workspace.significance(signal=0)),
        (["toys", EXAMPLE, "--mu-grid", "1:0:0.1", "--toys", "2", "--out", tmp_path / "t.h5"],
         lambda: workspace.toys("1:0:0.1", 2, tmp_path / "t.h5")),
        (["neyman", EXAMPLE, "--toys", tmp_path / "none*.h5"],
         lambda: workspace.neyman(tmp_path / "none*.h5")),
        (["calibrate", EXAMPLE, "--bins", "1", "--out", tmp_path / "c"],
         lambda: workspace.calibrate(bins=1)),
        (["closure", EXAMPLE, "--process", "X", "--out", tmp_path / "k"],
         lambda: workspace.closure(process="X")),
    ]
    for args, call in cases:
        done = cli(*args, "--cache-dir", CACHE)
        assert done.returncode == 1, (args, done.stderr)
        with pytest.raises(nsbi.NsbiError) as error:
            call()
        assert str(error.value) == done.stderr.strip(), args


def test_the_notebook_is_generated_from_the_example_script():
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_notebook.py"), "--check"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    notebook = json.loads((ROOT / "examples" / "offshell.ipynb").read_text())
    code = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert "ws.neyman(" in code and "ws.fit(" in code
