"""Writes examples/offshell.ipynb from examples/offshell.py, so the two cannot drift: the script
is split into cells at its ``# %%`` lines (``# %% [markdown]`` cells become markdown, their
leading ``# `` removed). ``--check`` exits 1 when the notebook is not the generated one
(python/tests runs it).

    python examples/make_notebook.py [--check]
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "offshell.py"
NOTEBOOK = HERE / "offshell.ipynb"


def cells(text):
    """The script's cells: (kind, lines) at each ``# %%`` marker."""
    out = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            out.append(("markdown" if "[markdown]" in line else "code", []))
        elif out:
            out[-1][1].append(line)
    return out


def source(kind, lines):
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if kind == "markdown":
        lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines]
    # nbformat's on-disk form: a list of lines, each but the last with its newline.
    return [line + "\n" for line in lines[:-1]] + lines[-1:]


def notebook(text):
    def cell(kind, lines):
        c = {"cell_type": kind, "metadata": {}, "source": source(kind, lines)}
        if kind == "code":
            c.update(execution_count=None, outputs=[])
        return c

    return {
        "cells": [cell(kind, lines) for kind, lines in cells(text)],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 4,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = json.dumps(notebook(SCRIPT.read_text()), indent=1, ensure_ascii=False) + "\n"
    if args.check:
        if not NOTEBOOK.is_file() or NOTEBOOK.read_text() != text:
            print(f"{NOTEBOOK} is not generated from {SCRIPT}: run {__file__}", file=sys.stderr)
            sys.exit(1)
        return
    NOTEBOOK.write_text(text)
    print(f"wrote {NOTEBOOK}")


if __name__ == "__main__":
    main()
