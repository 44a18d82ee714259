"""nsbi: unbinned likelihood fits with per-event neural density ratios, from Python.

The same engine as the ``nsbi`` command line: results are the CLI's typed results (their
``to_dict()`` equals the CLI's ``--json`` file), likelihoods take and return numpy arrays.

    import nsbi
    ws = nsbi.Workspace.load("workspaces/offshell_toy/workspace_exact.yaml")
    fit = ws.fit()
    print(fit.values["mu"], fit.errors["mu"])
    scan = ws.scan("mu", (0.5, 1.5), 41)
    like = ws.likelihood()
    like.nll(like.init), like.grad(like.init), like.hessian(like.init)

Engine errors raise ``nsbi.NsbiError`` with the CLI's message. Long calls release the GIL and
run on ``threads`` rayon threads (``Workspace.load(..., threads=n)``; default all cores);
Ctrl-C is honoured between their stages.
"""

import json
import os
from importlib.util import find_spec
from pathlib import Path


def _find_onnxruntime():
    """Points the engine at the ONNX Runtime library of this interpreter's ``onnxruntime``
    package (a dependency of the wheel) unless ORT_DYLIB_PATH says otherwise: the CLI finds it
    in the project's .venv, an installed package in its own environment."""
    if os.environ.get("ORT_DYLIB_PATH"):
        return
    spec = find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return
    for location in spec.submodule_search_locations:
        capi = Path(location) / "capi"
        found = sorted(capi.glob("libonnxruntime.so*"))
        if found:
            os.environ["ORT_DYLIB_PATH"] = str(found[-1])
            return


_find_onnxruntime()

from . import _nsbi  # noqa: E402
from ._nsbi import Likelihood, NsbiError  # noqa: E402
from ._results import (  # noqa: E402
    FitResult,
    ScanCurve,
    ScanResult,
    read_toys,
)

__all__ = [
    "Workspace",
    "Likelihood",
    "NsbiError",
    "FitResult",
    "ScanResult",
    "ScanCurve",
    "read_toys",
    "schemas",
]


def _assignments(values):
    """``{"mu": 1}`` or ``"mu=1"`` as the CLI's ``name=value,...`` text (None stays None).
    Values are written with ``repr``, which round-trips every float exactly."""
    if values is None or isinstance(values, str):
        return values
    return ",".join(f"{name}={float(value)!r}" for name, value in values.items())


class Workspace:
    """A workspace (YAML, or pyhf JSON): ``Workspace.load(path, cache_dir=None, threads=None)``.

    The YAML is read at load; the model and the per-event ratios (evaluated by ONNX Runtime or
    read from the cache beside the workspace) on first use, once.
    """

    def __init__(self, inner):
        self._inner = inner

    @classmethod
    def load(cls, path, cache_dir=None, threads=None):
        cache = None if cache_dir is None else os.fspath(cache_dir)
        return cls(_nsbi.Workspace.load(os.fspath(path), cache, threads))

    @property
    def path(self):
        return Path(self._inner.path)

    def __repr__(self):
        return f"nsbi.Workspace({str(self.path)!r})"

    def validate(self):
        """``nsbi validate``: counts of channels, event files, events, ensembles, models, and
        warnings (a dict); raises NsbiError on an invalid workspace."""
        return json.loads(self._inner._validate())

    def ratios(self):
        """``nsbi ratios``: evaluates (or reads from the cache) every ratio set; a list of
        dicts, as ``nsbi ratios --json``."""
        return json.loads(self._inner._ratios())

    def fit(self, asimov=None, fix=None, set_init=None, minos=True):
        """``nsbi fit``: the fit to the observed data, or to the Asimov set at ``asimov``
        (``{"mu": 1}`` or ``"mu=1"``), with parameters held at ``fix`` and started at
        ``set_init``; profile intervals of the POIs unless ``minos=False``."""
        text = self._inner._fit(
            _assignments(asimov), _assignments(fix), _assignments(set_init), minos
        )
        return FitResult(json.loads(text))

    def scan(self, poi, range, points, stat_only=False, asimov=None, fix=None):
        """``nsbi scan``: a profile scan of ``poi`` (a name, or two names for 2-D) over
        ``range`` ((low, high), one per POI) with ``points`` values (one count, or one per
        POI); the stat-only curve too with ``stat_only=True``."""
        pois = [poi] if isinstance(poi, str) else list(poi)
        ranges = [tuple(range)] if len(pois) == 1 and _is_pair(range) else [tuple(r) for r in range]
        counts = [points] if isinstance(points, int) else list(points)
        text = self._inner._scan(
            pois, ranges, counts, stat_only, _assignments(asimov), _assignments(fix)
        )
        return ScanResult(json.loads(text))

    def likelihood(self, asimov=None):
        """The likelihood of the observed data, or of the Asimov set at ``asimov``: an object
        with ``nll(theta)``, ``grad(theta)``, ``hessian(theta)`` (numpy arrays in the order of
        ``parameter_names``), ``bounds``, ``init``."""
        return self._inner.likelihood(_assignments(asimov))


def _is_pair(value):
    return len(value) == 2 and all(isinstance(v, (int, float)) for v in value)


def schemas():
    """The JSON Schema of every output (``fit``, ``scan``, ``hypotest``, ``limit``,
    ``significance``), by name: the files in the repository's ``schemas/``."""
    return {name: json.loads(text) for name, text in _nsbi._schemas()}
