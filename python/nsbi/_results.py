"""Results as Python objects: attributes for reading, numpy arrays for plotting, and
``to_dict()`` equal to the CLI's ``--json`` file (the same serialisation of the same struct)."""

import json

import numpy as np

from . import _nsbi


class _Result:
    def __init__(self, data):
        self._data = data

    def to_dict(self):
        """The result as the CLI's JSON (a deep copy)."""
        return json.loads(json.dumps(self._data))

    def __getitem__(self, key):
        return self._data[key]


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
