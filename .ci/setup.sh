#!/usr/bin/env bash
# Installs what nsbi needs on a fresh Debian machine, and nothing that is already there:
#   - Debian: libhdf5-dev (HDF5 1.10 for hdf5-metno), pkg-config
#   - .venv: ONNX Runtime 1.31.1 (the shared library the engine loads), the Python
#     packages the fixture and validation scripts use, and maturin and pytest for the Python
#     package and its tests (validation/requirements.txt).
# Safe to run any number of times. Downloads only from Debian and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
dpkg -s libhdf5-dev >/dev/null 2>&1 || missing+=(libhdf5-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python_ready() {
    [ -x .venv/bin/python ] && .venv/bin/python - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
import onnxruntime, onnx, h5py, numpy, scipy, sklearn, skl2onnx, iminuit, htcondor2, maturin, pytest, jsonschema, arviz, tarp
sys.exit(0 if m.version("onnxruntime") == "1.31.1" else 1)
PY
}
if ! python_ready; then
    echo "setup: creating .venv with validation/requirements.txt"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r validation/requirements.txt
fi
echo "setup: ready (ONNX Runtime $(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)'))"
