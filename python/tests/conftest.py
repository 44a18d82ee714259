"""Shared fixtures: the CLI built by cargo, the example workspace and a ratio cache shared by
the tests (the first test to need ratios evaluates them)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "workspaces" / "offshell_toy" / "workspace_exact.yaml"
CACHE = ROOT / "target" / "pytest-ratio-cache"


@pytest.fixture(scope="session")
def cli():
    """Runs ``nsbi ARGS`` (the release binary) and returns the completed process."""
    binary = Path(os.environ.get("NSBI_BIN", ROOT / "target" / "release" / "nsbi"))
    if not binary.is_file():
        pytest.fail(f"{binary} not found: build it first (cargo build --release)")

    def run(*args):
        return subprocess.run(
            [str(binary), *map(str, args)], capture_output=True, text=True, timeout=600
        )

    return run


@pytest.fixture(scope="session")
def cli_json(cli, tmp_path_factory):
    """Runs ``nsbi COMMAND EXAMPLE ARGS --json F --cache-dir CACHE`` and returns F's JSON."""

    def run(command, *args):
        out = tmp_path_factory.mktemp(command) / "out.json"
        done = cli(command, EXAMPLE, *args, "--json", out, "--cache-dir", CACHE)
        assert done.returncode == 0, done.stderr
        return json.loads(out.read_text())

    return run


@pytest.fixture(scope="session")
def workspace():
    import nsbi

    return nsbi.Workspace.load(EXAMPLE, cache_dir=CACHE)
