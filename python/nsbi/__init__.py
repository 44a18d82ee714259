"""nsbi: unbinned likelihood fits with per-event neural density ratios, from Python.

The same engine as the ``nsbi`` command line: results are the CLI's typed results (their
``to_dict()`` equals the CLI's ``--json`` file), likelihoods take and return numpy arrays.

    import nsbi
    ws = nsbi.Workspace.load("workspaces/offshell_toy/workspace_exact.yaml")
    fit = ws.fit()
    print(fit.values["mu"], fit.errors["mu"])
    scan = ws.scan("mu", (0.5, 1.5), 41)
    limit = ws.limit(cl=0.95)
    toys = ws.toys("0.6:1.4:0.1", 200, "toys.h5", seed=1)
    neyman = ws.neyman("toys.h5")
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
    CalibrationResult,
    ClosureResult,
    CoverageResult,
    FitResult,
    HypotestResult,
    LimitResult,
    NeymanResult,
    SignificanceResult,
    ToysResult,
    ScanCurve,
    ScanResult,
    read_toys,
)

__all__ = [
    "Workspace",
    "Likelihood",
    "NsbiError",
    "FitResult",
    "HypotestResult",
    "LimitResult",
    "SignificanceResult",
    "CalibrationResult",
    "ClosureResult",
    "ToysResult",
    "NeymanResult",
    "CoverageResult",
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

    def calibrate(self, process=None, holdout=None, bins=20, p_threshold=0.01):
        """``nsbi calibrate``: reliability curves of the ratio models (of ``process``, a name
        or a list; all by default) on held-out events, ``holdout`` replacing workspace samples
        (``{"reference": "ref.h5", "B/alpha_shape:up": "up.h5"}``); ``bins`` of s = r/(1+r),
        family-wise ``p_threshold``. A CalibrationResult; no plots (``nsbi calibrate`` draws
        them)."""
        text = self._inner._calibrate(
            _names(process), _holdouts(holdout), bins, float(p_threshold)
        )
        return CalibrationResult(json.loads(text))

    def closure(self, process=None, holdout=None, bins=20, p_threshold=0.01, mu=(1.7,),
                mu_ref=1.0, at=None, at_ref=None):
        """``nsbi closure``: per ratio model (of ``process``), the reference reweighted by r(x)
        against the process sample, and per POI value in ``mu`` the MC mixture at ``mu_ref``
        reweighted by p(x|μ)/p(x|μ_ref) against the mixture at μ — or, for any number of POIs,
        per point of ``at`` (``"c1=0.5,c2=-0.3"`` or a list of them) the mixture at ``at_ref``
        (default: every parameter at its initial value) reweighted to it; ``bins`` per feature.
        A ClosureResult; no plots (``nsbi closure`` draws them)."""
        mu = [float(m) for m in ([mu] if isinstance(mu, (int, float)) else mu)]
        at = [] if at is None else ([at] if isinstance(at, str) else list(at))
        text = self._inner._closure(
            _names(process), _holdouts(holdout), bins, float(p_threshold), mu, float(mu_ref),
            at, at_ref
        )
        return ClosureResult(json.loads(text))

    def hypotest(self, value, test_stat="qtilde", signal=1.0, poi=None, calculator="asymptotic",
                 toys=2000, seed=1, no_syst=False, toys_from=None):
        """``nsbi hypotest``: CLs, CLs+b, CLb and the expected CLs band at POI ``value``, with
        the ``asymptotic`` or ``toys`` calculator (``toys`` per hypothesis, ``seed``; or the
        stored toys of ``toys_from``, paths or patterns). A HypotestResult."""
        options = _test_options(poi, calculator, toys, seed, no_syst, toys_from)
        text = self._inner._hypotest(float(value), test_stat, float(signal), options)
        return HypotestResult(json.loads(text))

    def limit(self, cl=0.95, range=None, points=21, test_stat="qtilde", poi=None,
              calculator="asymptotic", toys=2000, seed=1, no_syst=False, toys_from=None):
        """``nsbi limit``: the CLs upper limit on the POI at ``cl``, observed and expected
        (−2σ … +2σ), scanning ``points`` values over ``range`` ((low, high) or "low:high";
        default from the fit to the data). A LimitResult (``scan_values``, ``scan_cls`` for a
        Brazil plot)."""
        if range is not None and not isinstance(range, str):
            low, high = range
            range = f"{float(low)!r}:{float(high)!r}"
        options = _test_options(poi, calculator, toys, seed, no_syst, toys_from)
        text = self._inner._limit(float(cl), range, points, test_stat, options)
        return LimitResult(json.loads(text))

    def significance(self, value=0.0, signal=1.0, poi=None, calculator="asymptotic", toys=2000,
                     seed=1, no_syst=False, toys_from=None):
        """``nsbi significance``: q0, p0 and Z of the data against POI ``value`` (no signal),
        and the median expected under ``signal``. A SignificanceResult."""
        options = _test_options(poi, calculator, toys, seed, no_syst, toys_from)
        text = self._inner._significance(float(value), float(signal), options)
        return SignificanceResult(json.loads(text))

    def toys(self, mu_grid, toys, out, seed=1, poi=None, no_syst=False, test_stat="tmu",
             shard=None):
        """``nsbi toys``: the Neyman construction's toys on ``mu_grid`` ("start:stop:step", or
        (start, stop, step)), ``toys`` per grid point, written to the HDF5 file ``out`` as the
        CLI writes it (``shard`` "i/N" for one shard). A ToysResult (``path``, ``header``,
        ``n_toys_written``); ``nsbi.read_toys(out)`` gives the records as numpy arrays."""
        if not isinstance(mu_grid, str):
            mu_grid = ":".join(repr(float(v)) for v in mu_grid)
        header, written = self._inner._toys(
            mu_grid, toys, seed, os.fspath(out), poi, no_syst, test_stat, shard
        )
        return ToysResult(
            {"path": os.fspath(out), "header": json.loads(header), "n_toys_written": written}
        )

    def neyman(self, toys, cl=None):
        """``nsbi neyman``: the Neyman construction from toy files (a path, pattern or folder,
        or a list of them): critical values at 68.27 %, 95.45 % and ``cl`` (a level or a
        list), the observed t_μ and the confidence sets. A NeymanResult."""
        text = self._inner._neyman(_paths(toys), _levels(cl))
        return NeymanResult(json.loads(text))

    def coverage(self, toys, mu_true, seed, n=500, cl=None):
        """``nsbi coverage``: ``n`` fresh toys at the construction's grid point ``mu_true``
        (``seed`` other than the construction's) and the fraction whose interval contains it,
        per level. A CoverageResult."""
        text = self._inner._coverage(_paths(toys), float(mu_true), n, seed, _levels(cl))
        return CoverageResult(json.loads(text))

    def likelihood(self, asimov=None):
        """The likelihood of the observed data, or of the Asimov set at ``asimov``: an object
        with ``nll(theta)``, ``grad(theta)``, ``hessian(theta)`` (numpy arrays in the order of
        ``parameter_names``), ``bounds``, ``init``."""
        return self._inner.likelihood(_assignments(asimov))


def _names(value):
    """None, a name or names as a list of names."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _holdouts(value):
    """``{"reference": path}`` (or ``["reference=path"]``) as the CLI's ``NAME=FILE`` list."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [f"{name}={os.fspath(path)}" for name, path in value.items()]
    return [os.fspath(v) for v in value]


def _test_options(poi, calculator, toys, seed, no_syst, toys_from):
    return (poi, calculator, toys, seed, no_syst, _paths(toys_from) if toys_from else [])


def _paths(value):
    """A path or pattern, or a list of them, as a list of strings."""
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


def _levels(value):
    if value is None:
        return []
    return [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]


def _is_pair(value):
    return len(value) == 2 and all(isinstance(v, (int, float)) for v in value)


def schemas():
    """The JSON Schema of every output (``fit``, ``scan``, ``hypotest``, ``limit``,
    ``significance``, ``calibration``, ``closure``), by name: the files in the repository's
    ``schemas/``."""
    return {name: json.loads(text) for name, text in _nsbi._schemas()}
