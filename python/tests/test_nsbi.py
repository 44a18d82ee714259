"""The Python package against the CLI: the same results to the last bit, the same error
messages, derivatives that agree with finite differences, toy files read back."""

import json

import numpy as np
import pytest

import nsbi
from conftest import CACHE, EXAMPLE, ROOT


def test_fit_equals_the_cli_json_to_the_last_bit(workspace, cli_json):
    cli = cli_json("fit")
    fit = workspace.fit()
    # json.loads of both serialisations: floats compare exactly (shortest round-trip text).
    assert fit.to_dict() == cli
    assert fit.values["mu"] == cli["parameters"]["mu"]["value"]
    assert fit.converged and fit.status["verdict"] == cli["status"]["verdict"]
    assert fit.correlation.shape == (3, 3) and fit.correlation[0, 0] == 1.0


def test_asimov_fit_with_fixed_parameters_equals_the_cli(workspace, cli_json):
    cli = cli_json("fit", "--asimov", "mu=1.2", "--fix", "alpha_shape=0.5", "--no-minos")
    fit = workspace.fit(asimov={"mu": 1.2}, fix="alpha_shape=0.5", minos=False)
    assert fit.to_dict() == cli
    assert fit.parameters["alpha_shape"].fixed and fit.values["alpha_shape"] == 0.5
    assert fit.minos == []


def test_scan_equals_the_cli_json(workspace, cli_json):
    cli = cli_json("scan", "--poi", "mu", "--range", "0.6:1.4", "--points", "9", "--stat-only")
    scan = workspace.scan("mu", (0.6, 1.4), 9, stat_only=True)
    assert scan.to_dict() == cli
    assert scan.pois == ["mu"] and len(scan.points["mu"]) == len(cli["points"])
    assert scan.stat_only.intervals["68.27"] == cli["stat_only"]["intervals"]["68.27"]


def test_two_parameter_scan_equals_the_cli_json(workspace, cli_json):
    cli = cli_json(
        "scan", "--poi", "mu", "--range", "0.7:1.2", "--poi", "alpha_eff", "--range", "-1:1",
        "--points", "3",
    )
    scan = workspace.scan(["mu", "alpha_eff"], [(0.7, 1.2), (-1, 1)], 3)
    assert scan.to_dict() == cli
    assert set(scan.best_fit) == {"mu", "alpha_eff"} and scan.thresholds is not None


def test_engine_errors_raise_with_the_cli_message(workspace, cli, tmp_path):
    done = cli("fit", EXAMPLE, "--fix", "nu=1", "--cache-dir", CACHE)
    assert done.returncode == 1
    with pytest.raises(nsbi.NsbiError) as error:
        workspace.fit(fix="nu=1")
    assert str(error.value) == done.stderr.strip()
    assert "unknown parameter 'nu'" in str(error.value)

    missing = tmp_path / "missing.yaml"
    done = cli("validate", missing)
    with pytest.raises(nsbi.NsbiError) as error:
        nsbi.Workspace.load(missing)
    assert str(error.value) == done.stderr.strip()
    assert str(missing) in str(error.value)

    with pytest.raises(nsbi.NsbiError, match="unknown parameter 'nu'"):
        workspace.scan("nu", (0, 1), 3)


def test_nll_grad_hessian_agree_with_finite_differences(workspace):
    like = workspace.likelihood()
    assert like.parameter_names == ["mu", "alpha_eff", "alpha_shape"]
    theta = np.array([1.1, 0.3, -0.2])
    h = 1e-5
    grad = like.grad(theta)
    hessian = like.hessian(theta)
    assert hessian.shape == (3, 3)
    for k in range(3):
        step = np.zeros(3)
        step[k] = h
        numeric = (like.nll(theta + step) - like.nll(theta - step)) / (2 * h)
        assert numeric == pytest.approx(grad[k], rel=1e-5, abs=1e-4)
        column = (like.grad(theta + step) - like.grad(theta - step)) / (2 * h)
        np.testing.assert_allclose(column, hessian[:, k], rtol=1e-4, atol=1e-3)
    # Lists work too, and the fit's minimum is where the gradient vanishes.
    fit = workspace.fit(minos=False)
    assert like.nll(list(fit.theta)) == pytest.approx(fit.nll, abs=1e-9)
    assert np.abs(like.grad(fit.theta)).max() < 1e-2
    with pytest.raises(ValueError, match="expected 3 parameter values"):
        like.nll(np.zeros(2))
    assert like.bounds.shape == (3, 2) and like.bounds[0, 0] == 0.0
    assert list(like.init) == [1.0, 0.0, 0.0]


def test_threads_give_the_same_fit(cli_json):
    one = nsbi.Workspace.load(EXAMPLE, cache_dir=CACHE, threads=1)
    assert one.fit(minos=False).to_dict() == cli_json("fit", "--no-minos")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        nsbi.Workspace.load(EXAMPLE, threads=0)


def test_read_toys_reads_what_the_cli_wrote(cli, tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "toys.h5"
    done = cli(
        "toys", EXAMPLE, "--mu-grid", "0.8:1.2:0.4", "--toys", "3", "--seed", "7",
        "--out", path, "--cache-dir", CACHE,
    )
    assert done.returncode == 0, done.stderr
    header, columns = nsbi.read_toys(path)
    points = [value for point in header["grid"]["points"] for value in point]
    assert points == pytest.approx([0.8, 1.2]) and header["n_toys"] == 3
    assert header["pois"] == ["mu"]
    with h5py.File(path, "r") as f:
        for name in ["t", "nll_free", "toy_index"]:
            np.testing.assert_array_equal(np.asarray(columns[name]), f[name][()])
        matrices = {name: f[name][()] for name in ["theta_hat", "poi_true", "poi_hat"]}
    for name, values in matrices.items():
        if hasattr(columns, "columns"):  # a pandas DataFrame
            np.testing.assert_array_equal(columns[f"{name}.mu"], values[:, 0])
        else:
            np.testing.assert_array_equal(columns[name], values)
    assert len(columns["t"]) == 6
    with pytest.raises(nsbi.NsbiError, match="missing.h5"):
        nsbi.read_toys(tmp_path / "missing.h5")


def test_every_output_validates_against_its_schema(cli, cli_json, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schemas = {p.name.split(".")[0]: json.loads(p.read_text()) for p in (ROOT / "schemas").glob("*.schema.json")}
    assert schemas == nsbi.schemas()
    outputs = {
        "fit": [cli_json("fit"), cli_json("fit", "--asimov", "mu=1", "--no-minos")],
        "scan": [
            cli_json("scan", "--poi", "mu", "--range", "0.6:1.4", "--points", "5", "--stat-only"),
            cli_json("scan", "--poi", "mu", "--range", "0.7:1.2", "--poi", "alpha_eff",
                     "--range", "-1:1", "--points", "3"),
        ],
        "hypotest": [cli_json("hypotest", "--value", "1")],
        "limit": [cli_json("limit", "--points", "5")],
        "significance": [cli_json("significance")],
    }
    for command, name in [("calibrate", "calibration"), ("closure", "closure")]:
        done = cli(command, EXAMPLE, "--out", tmp_path / command, "--cache-dir", CACHE)
        assert done.returncode == 0, done.stderr
        outputs[name] = [json.loads((tmp_path / command / f"{name}.json").read_text())]
    outputs.update(construction_outputs(cli, tmp_path))
    assert set(outputs) == set(schemas)
    for name, values in outputs.items():
        for value in values:
            jsonschema.validate(value, schemas[name])
    # The schema is not vacuous: a fit without its parameters is refused.
    broken = dict(outputs["fit"][0])
    del broken["parameters"]
    with pytest.raises(jsonschema.ValidationError, match="parameters"):
        jsonschema.validate(broken, schemas["fit"])


def construction_outputs(cli, tmp_path):
    """The Neyman, region, coverage, toy-plan, posterior and coverage-bayes outputs of small runs."""
    import h5py

    def run(*args):
        done = cli(*args)
        assert done.returncode == 0, done.stderr
        return done

    def read(path):
        return json.loads(path.read_text())

    toys, smeft_toys = tmp_path / "toys.h5", tmp_path / "smeft_toys.h5"
    run("toys", EXAMPLE, "--mu-grid", "0.8:1.2:0.2", "--toys", "4", "--seed", "3",
        "--out", toys, "--cache-dir", CACHE)
    run("neyman", EXAMPLE, "--toys", toys, "--json", tmp_path / "neyman.json", "--cache-dir", CACHE)
    run("coverage", EXAMPLE, "--toys", toys, "--mu-true", "1.0", "--n", "4", "--seed", "4",
        "--json", tmp_path / "coverage.json", "--cache-dir", CACHE)
    smeft = ROOT / "workspaces" / "smeft_toy" / "workspace_exact.yaml"
    smeft_cache = tmp_path / "smeft-cache"
    run("toys", smeft, "--grid", "c1=-0.4:0:0.2", "--grid", "c2=-0.2:0:0.2", "--toys", "3",
        "--seed", "1", "--out", smeft_toys, "--cache-dir", smeft_cache)
    run("neyman", smeft, "--toys", smeft_toys, "--json", tmp_path / "region.json",
        "--cache-dir", smeft_cache)
    run("posterior", ROOT / "workspaces" / "nre_toy" / "linear_gaussian.yaml", "--chains", "2",
        "--draws", "20", "--warmup", "20", "--seed", "1", "--out", tmp_path / "draws.h5",
        "--json", tmp_path / "posterior.json")
    nre_toy = ROOT / "workspaces" / "nre_toy"
    run("coverage-bayes", nre_toy / "linear_gaussian.yaml", "--test", nre_toy / "data" / "test_pairs.h5",
        "--pairs", "20", "--chains", "2", "--draws", "20", "--warmup", "20",
        "--sbc-draws", "19", "--json", tmp_path / "coverage_bayes.json")
    plans = []
    for path in (toys, smeft_toys):
        with h5py.File(path, "r") as f:
            plan = f.attrs["plan"]
            plans.append(json.loads(plan.decode() if isinstance(plan, bytes) else plan))
    return {
        "neyman": [read(tmp_path / "neyman.json")],
        "coverage": [read(tmp_path / "coverage.json")],
        "neyman_region": [read(tmp_path / "region.json")],
        "posterior": [read(tmp_path / "posterior.json")],
        "coverage_bayes": [read(tmp_path / "coverage_bayes.json")],
        "toys_plan": plans,
    }


def test_ctrl_c_interrupts_a_long_call(workspace):
    import _thread
    import threading
    import time

    workspace.fit(minos=False)  # the ratios are loaded: the scan below is the long part
    timer = threading.Timer(0.3, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # 40 000 profiled fits: seconds of work, interrupted after 0.3 s.
            workspace.scan(["mu", "alpha_eff"], [(0.5, 1.5), (-2, 2)], 200)
    finally:
        timer.cancel()
    # Ctrl-C is answered within the 50 ms polling, not at the end of the scan.
    assert time.monotonic() - started < 2.0
