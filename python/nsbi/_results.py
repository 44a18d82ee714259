"""Results as Python objects: attributes for reading, numpy arrays for plotting, and
``to_dict()`` equal to the CLI's ``--json`` file (the same serialisation of the same struct)."""

import json

import numpy as np

from . import _nsbi


class _Result:
    """A result: its JSON keys as attributes (numbers, strings, lists, dicts as in the file;
    subclasses give numpy arrays where a column is plotted) and ``to_dict()``."""

    def __init__(self, data):
        self._data = data

    def to_dict(self):
        """The result as the CLI's JSON (a deep copy)."""
        return json.loads(json.dumps(self._data))

    def __getitem__(self, key):
        return self._data[key]

    def __getattr__(self, name):
        # Only called for names that are not set: the JSON's keys.
        data = self.__dict__.get("_data", {})
        if name in data:
            return data[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._data))


class Parameter:
    """One fitted parameter: ``value``, ``error`` (None where the Hessian gives none),
    ``error_low``/``error_high`` (MINOS distances), ``pull``, ``constraint``, ``bounds``,
    ``fixed``, ``poi``, ``constrained``, ``at_bound``."""

    def __init__(self, name, data):
        self.name = name
        for key, value in data.items():
            setattr(self, key, value)

    def __repr__(self):
        return f"Parameter({self.name}={self.value!r} ± {self.error!r})"


class FitResult(_Result):
    """The result of ``Workspace.fit`` (``nsbi fit --json``)."""

    def __init__(self, data):
        super().__init__(data)
        self.status = data["status"]
        self.converged = self.status["converged"]
        self.nll = data["nll"]
        self.parameter_names = list(data["parameters"])
        self.parameters = {n: Parameter(n, p) for n, p in data["parameters"].items()}
        self.values = {n: p["value"] for n, p in data["parameters"].items()}
        self.errors = {n: p["error"] for n, p in data["parameters"].items()}
        self.minos = data["minos"]

    @property
    def theta(self):
        """The best fit as an array, in the order of ``parameter_names``."""
        return np.array([self.values[n] for n in self.parameter_names])

    @property
    def correlation(self):
        """The correlation matrix (n × n), or None without a covariance."""
        rows = self._data["correlation"]
        if rows is None:
            return None
        return np.array([[rows[a][b] for b in self.parameter_names] for a in self.parameter_names])

    def __repr__(self):
        values = ", ".join(f"{n}={p.value:.6g}" for n, p in self.parameters.items())
        return f"FitResult({self.status['verdict']}, nll={self.nll:.6f}, {values})"


class ScanCurve(_Result):
    """One curve of a scan: ``points`` as arrays by column (the scanned parameters, ``t``,
    ``nll``, ``converged``, ``best_fit``); 1-D ``intervals``/``open_ends`` by confidence level,
    2-D ``thresholds``."""

    def __init__(self, data):
        super().__init__(data)
        rows = data["points"]
        columns = list(rows[0]) if rows else []
        self.points = {c: np.array([row[c] for row in rows]) for c in columns}
        self.t = self.points.get("t")
        self.intervals = data.get("intervals")
        self.open_ends = data.get("open_ends")
        self.thresholds = data.get("thresholds")


class ScanResult(ScanCurve):
    """The result of ``Workspace.scan`` (``nsbi scan --json``): the main curve, and the
    stat-only one in ``stat_only`` (None unless asked for and there are nuisance parameters)."""

    def __init__(self, data):
        super().__init__(data)
        self.pois = [data["poi"]] if "poi" in data else data["pois"]
        self.best_fit = data["best_fit"]
        self.best_nll = data["best_nll"]
        self.systematics = data["systematics"]
        self.warnings = data["warnings"]
        self.stat_only = ScanCurve(data["stat_only"]) if "stat_only" in data else None

    def __repr__(self):
        return f"ScanResult({', '.join(self.pois)}: {len(self._data['points'])} points)"


class HypotestResult(_Result):
    """``Workspace.hypotest`` (``nsbi hypotest --json``): ``cls.observed``, ``cls_expected``
    (numpy, −2σ … +2σ), ``clsb``, ``clb``, ``p_values``, ``statistic``, ``poi_hat``, ``toys``
    (toy errors, or None), ``warnings``."""

    @property
    def cls_observed(self):
        return self._data["cls"]["observed"]

    @property
    def cls_expected(self):
        return np.array(self._data["cls"]["expected"])

    def __repr__(self):
        return (f"HypotestResult({self.poi}={self.value!r}, {self.test_stat}, {self.calculator}: "
                f"CLs={self.cls_observed:.6g})")


class LimitResult(_Result):
    """``Workspace.limit`` (``nsbi limit --json``): ``observed``, ``expected`` (numpy,
    −2σ … +2σ), and the tested values as numpy arrays ``scan_values``, ``scan_cls``
    (observed CLs) and ``scan_cls_expected`` (n × 5), for a Brazil plot."""

    @property
    def expected(self):
        return np.array(self._data["expected"])

    @property
    def scan_values(self):
        return np.array([p["value"] for p in self._data["scan"]])

    @property
    def scan_cls(self):
        return np.array([p["cls"]["observed"] for p in self._data["scan"]])

    @property
    def scan_cls_expected(self):
        return np.array([p["cls"]["expected"] for p in self._data["scan"]]).reshape(-1, 5)

    def __repr__(self):
        return (f"LimitResult({self.poi} < {self.observed:.6g} at {100 * self.cl:g} % CL, "
                f"expected {self.expected[2]:.6g}, {self.calculator})")


class SignificanceResult(_Result):
    """``Workspace.significance`` (``nsbi significance --json``): ``observed`` and
    ``expected`` (dicts with ``q0``, ``p0``, ``z``), ``expected_p0`` (numpy), ``poi_hat``."""

    @property
    def expected_p0(self):
        return np.array(self._data["expected_p0"])

    def __repr__(self):
        return (f"SignificanceResult(Z={self.observed['z']:.4f} observed, "
                f"{self.expected['z']:.4f} expected under {self.poi}={self.signal!r})")


class CalibrationResult(_Result):
    """``Workspace.calibrate`` (``calibration.json``): ``passed``, ``settings``, ``ensembles``
    (one dict per ratio model, as in the file), ``skipped``; ``curve(label)`` gives one
    ensemble's reliability curve as numpy columns."""

    @property
    def passed(self):
        return self._data["pass"]

    def curve(self, label):
        """The reliability curve of ensemble ``label`` (``SR/S``) as numpy columns (``low``,
        ``high``, ``mean_predicted``, ``observed``, ``error``, ``pull``; NaN for null)."""
        for e in self._data["ensembles"]:
            if e["ensemble"] == label:
                return _columns(e["curve"]["bins"])
        names = [e["ensemble"] for e in self._data["ensembles"]]
        raise KeyError(f"no ensemble {label!r} (ensembles: {', '.join(names)})")

    def __repr__(self):
        verdict = "pass" if self.passed else "FAIL"
        return f"CalibrationResult({verdict}, {len(self._data['ensembles'])} ensembles)"


class ClosureResult(_Result):
    """``Workspace.closure`` (``closure.json``): ``passed``, ``settings``, ``tests`` (one dict
    per closure test, as in the file), ``skipped``; ``histograms(test, feature)`` gives one
    feature's histograms as numpy arrays."""

    @property
    def passed(self):
        return self._data["pass"]

    def histograms(self, test, feature):
        """Test ``test``'s histograms of ``feature``: numpy arrays ``edges``, ``target``,
        ``target_error``, ``reweighted``, ``reweighted_error``, ``difference_error``, ``pull``
        (NaN for null), with ``chi2``, ``ndf``, ``p_value``."""
        for t in self._data["tests"]:
            if t["name"] != test:
                continue
            for f in t["features"]:
                if f["feature"] == feature:
                    out = {k: v for k, v in f.items() if not isinstance(v, list)}
                    for k in ["edges", "target", "target_error", "reweighted",
                              "reweighted_error", "difference_error", "pull"]:
                        out[k] = np.array([np.nan if v is None else v for v in f[k]])
                    return out
            raise KeyError(f"test {test!r} has no feature {feature!r}")
        raise KeyError(f"no closure test {test!r}")

    def __repr__(self):
        verdict = "pass" if self.passed else "FAIL"
        return f"ClosureResult({verdict}, {len(self._data['tests'])} tests)"


class ToysResult(_Result):
    """``Workspace.toys``: the toy file written (``path``), its ``header`` (as
    ``read_toys``) and the number of toys in it (``n_toys_written``)."""

    def __repr__(self):
        return f"ToysResult({self.n_toys_written} toys in {self.path})"


class NeymanResult(_Result):
    """``Workspace.neyman`` (``nsbi neyman --json``): ``grid`` and ``observed_t`` (numpy),
    ``critical_values`` (by level, numpy), ``intervals``, ``asymptotic_intervals``,
    ``warnings``."""

    @property
    def grid(self):
        return np.array(self._data["grid"])

    @property
    def observed_t(self):
        return np.array(self._data["observed_t"])

    @property
    def critical_values(self):
        return {k: np.array(v) for k, v in self._data["critical_values"].items()}

    def __repr__(self):
        return f"NeymanResult({self.poi}: {self.intervals})"


class CoverageResult(_Result):
    """``Workspace.coverage`` (``nsbi coverage --json``): ``levels`` (per level: ``coverage``,
    ``error``, ``construction_error``, ``pull``, ``critical_value``)."""

    def __repr__(self):
        rows = ", ".join(f"{k} %: {v['coverage']:.4f}" for k, v in self._data["levels"].items())
        return f"CoverageResult({self.poi}={self.mu_true!r}: {rows})"


def _columns(rows):
    """A list of dicts as numpy columns (null as NaN)."""
    keys = list(rows[0]) if rows else []
    return {k: np.array([np.nan if r[k] is None else r[k] for r in rows]) for k in keys}


def read_toys(path):
    """A toy file the CLI wrote (``nsbi toys --out``): ``(header, columns)`` with the header a
    dict and the records as numpy arrays by column (``poi_true`` and ``poi_hat`` n_toys × the
    grid's POIs, ``theta_hat`` n_toys × n_parameters); a pandas DataFrame in place of the
    columns when pandas is installed (the matrices as one column per parameter,
    ``poi_true.<name>``, ``poi_hat.<name>``, ``theta_hat.<name>``)."""
    text, columns = _nsbi._read_toys(str(path))
    header = json.loads(text)
    try:
        import pandas as pd
    except ImportError:
        return header, columns
    matrices = {"poi_true": header["pois"], "poi_hat": header["pois"],
                "theta_hat": header["parameters"]}
    frame = {k: v for k, v in columns.items() if k not in matrices}
    for matrix, names in matrices.items():
        for k, name in enumerate(names):
            frame[f"{matrix}.{name}"] = columns[matrix][:, k]
    return header, pd.DataFrame(frame)

