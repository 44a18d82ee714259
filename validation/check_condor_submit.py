#!/usr/bin/env python3
"""Check that an HTCondor submit description parses, and print what it holds as JSON.

    python validation/check_condor_submit.py FILE [--allow-commands]

Parses FILE with the HTCondor Python bindings (PyPI's `htcondor`, module `htcondor2`,
pinned in validation/requirements.txt) the way condor_submit reads it, without a schedd or
an HTCondor install: `htcondor2.Submit(text)` parses the commands up to the queue statement,
`Submit.getQArgs()` gives the queue statement's arguments, and `Submit.itemdata()` expands its
item list (`in (...)`, `from (...)`, `from FILE`, `matching ...`) and checks its count.

Prints one JSON object on stdout:
    {"file", "submit": {key: raw value, ...}, "executable", "arguments", "universe",
     "queue": {"statement", "count", "vars", "mode", "items", "itemdata", "procs"}}
where mode is "count" (`queue N`), "in", "from", "from-file", "from-command" or "matching";
count is the number of procs per item (expressions such as `$(N)*2` are evaluated); items is
the number of items (null for mode "count" and for "from-command"); procs = count * items.

Exit status: 0 when it parses; 1 with "check_condor_submit: FILE: ..." on stderr when it does
not, including what htcondor2.Submit does not report on its own: a bad queue count or item
list (found by expanding it), text after the first queue statement (Submit ignores it), a
missing queue statement, or a missing executable. `queue ... from CMD |` runs CMD in
condor_submit; it is only run here with --allow-commands. Relative item files and `matching`
patterns are resolved from FILE's folder, as condor_submit run there would.
"""

import argparse
import json
import os
import re
import sys

# Parse without reading any HTCondor configuration file on this machine.
os.environ.setdefault("CONDOR_CONFIG", "ONLY_ENV")

QUEUE_LINE = re.compile(r"^\s*queue(\s|$)", re.IGNORECASE)
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(,[A-Za-z_][A-Za-z0-9_.]*)*,?$")  # var names
ITEM_KEYWORD = re.compile(r"\s(in|from|matching)(\s|\(|$)", re.IGNORECASE)


class SubmitError(Exception):
    pass


def queue_statement_lines(text):
    """Line numbers (1-based) of the first queue statement and of the end of its item block,
    and the first non-blank, non-comment line after it (or None)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if QUEUE_LINE.match(line)), None)
    if start is None:
        return None, None, None
    end = start
    if lines[start].rstrip().endswith("("):
        end = next((j for j in range(start + 1, len(lines)) if lines[j].strip() == ")"), None)
        if end is None:
            raise SubmitError(
                f"line {start + 1}: the queue statement's '(' item list is never closed by a ')' line"
            )
    after = next(
        (j for j in range(end + 1, len(lines))
         if lines[j].strip() and not lines[j].lstrip().startswith("#")),
        None,
    )
    return start + 1, end + 1, (None if after is None else (after + 1, lines[after].strip()))


def split_queue_args(qargs):
    """'2 a,b from (' -> ('2', ['a', 'b'], 'from', 'from ('); '8' -> ('8', [], 'count', '')."""
    m = ITEM_KEYWORD.search(" " + qargs)
    if not m:
        return (qargs.strip() or "1"), [], "count", ""
    head = (" " + qargs)[: m.start()].strip()
    tail = (" " + qargs)[m.start():].strip()
    keyword = m.group(1).lower()
    # "[count] [var[, var ...]]": the count, if any, is the first word that is no name.
    tokens = head.split(None, 1)
    if tokens and not IDENTIFIER.match(tokens[0]):
        count, names = tokens[0], (tokens[1] if len(tokens) == 2 else "")
    else:
        count, names = "1", head
    names = [v.strip() for v in re.split(r"[,\s]+", names) if v.strip()] or ["Item"]
    if keyword == "from":
        rest = tail[4:].strip()
        if rest.startswith("("):
            keyword = "from"
        elif rest.endswith("|"):
            keyword = "from-command"
        else:
            keyword = "from-file"
    return count, names, keyword, tail


def evaluate_count(htcondor2, sub, count):
    """The queue count as an int: a number, or a macro/ClassAd expression such as $(N)*2."""
    if count.isdigit():
        return int(count)
    probe = htcondor2.Submit(str(sub))
    probe["NSBI_CHECK_QUEUE_COUNT"] = count
    expanded = probe.expand("NSBI_CHECK_QUEUE_COUNT").strip()
    if expanded.isdigit():
        return int(expanded)
    import classad2

    try:
        value = classad2.ExprTree(expanded).eval()
    except Exception as e:  # noqa: BLE001 - report any evaluation failure the same way
        raise SubmitError(f"queue count {count!r} (= {expanded!r}) does not evaluate: {e}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SubmitError(f"queue count {count!r} (= {expanded!r}) is not a count: {value!r}")
    return value


def _bindings_version(htcondor2):
    try:
        from importlib.metadata import version

        return version("htcondor")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return htcondor2.version()


def check(path, allow_commands=False):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SubmitError(f"cannot read: {e.strerror}")
    try:
        import htcondor2
    except ImportError as e:
        raise SubmitError(
            f"the HTCondor Python bindings are missing ({e}): pip install -r validation/requirements.txt"
        )

    qline, qend, after = queue_statement_lines(text)
    if qline is None:
        raise SubmitError("no queue statement: condor_submit would submit no job")
    if after is not None:
        raise SubmitError(
            f"line {after[0]}: {after[1]!r} comes after the queue statement on line {qline}; "
            "htcondor2.Submit ignores everything after the first queue statement, so this file "
            "cannot be checked whole (one queue statement per file)"
        )

    try:
        sub = htcondor2.Submit(text)
        qargs = sub.getQArgs()
    except Exception as e:  # noqa: BLE001 - the bindings raise ValueError and others
        raise SubmitError(f"does not parse: {e} (htcondor2.Submit reads 'key = value' lines up to the queue statement)")

    count_expr, names, mode, tail = split_queue_args(qargs)
    itemdata = None
    if mode == "from-command" and not allow_commands:
        pass  # would run a command: leave unexpanded
    else:
        cwd = os.getcwd()
        os.chdir(os.path.dirname(os.path.abspath(path)))
        try:
            items = sub.itemdata()  # also validates the count and the item list
            itemdata = None if items is None else list(items)
        except Exception as e:  # noqa: BLE001
            raise SubmitError(f"queue statement 'queue {qargs}' (line {qline}): {e}")
        finally:
            os.chdir(cwd)
        if mode != "count" and itemdata is None:
            itemdata = []  # e.g. `matching` with no file matched
    try:
        count = evaluate_count(htcondor2, sub, count_expr)
    except SubmitError as e:
        raise SubmitError(f"line {qline}: {e}")

    keys = dict(sub.items())
    universe = keys.get("universe", "vanilla").strip().lower()
    executable = keys.get("executable", "").strip()
    if not executable and universe not in ("docker",):
        raise SubmitError("no executable: condor_submit requires 'executable = ...'")

    n_items = None if (mode == "count" or itemdata is None) else len(itemdata)
    if itemdata is not None and itemdata and isinstance(itemdata[0], str):
        itemdata = [{names[0]: v} for v in itemdata]
    return {
        "file": path,
        "htcondor": _bindings_version(htcondor2),
        "submit": keys,
        "executable": executable,
        "arguments": keys.get("arguments"),
        "universe": universe,
        "queue": {
            "statement": ("queue " + qargs).strip(),
            "line": qline,
            "count": count,
            "vars": names,
            "mode": mode,
            "items": n_items,
            "itemdata": itemdata,
            "procs": count if mode == "count" else (None if n_items is None else count * n_items),
        },
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="HTCondor submit description")
    ap.add_argument("--allow-commands", action="store_true",
                    help="expand `queue ... from CMD |` by running CMD, as condor_submit would")
    args = ap.parse_args(argv)
    try:
        info = check(args.file, allow_commands=args.allow_commands)
    except SubmitError as e:
        print(f"check_condor_submit: {args.file}: {e}", file=sys.stderr)
        return 1
    json.dump(info, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
