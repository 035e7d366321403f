"""Proposed changes to metaflow_dagster, applied to a *copy* of the package so the
benchmark can measure them without touching the shared tree. A variant that sets
PYTHONPATH to the copy runs the proposed code (the copy shadows the editable
install, whose import hook comes after sys.path).

    python bench/prototypes/overlay.py --diff      # print the proposal as a unified diff
"""

import argparse
import difflib
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "metaflow_dagster")
sys.path.insert(0, HERE)

from patches import PATCHES  # noqa: E402

_built = {}


def build(names=None) -> str:
    """A directory holding metaflow_dagster with the named patches (default all)
    applied; put it first on PYTHONPATH."""
    names = tuple(names or [p.name for p in PATCHES])
    if names in _built:
        return _built[names]
    root = tempfile.mkdtemp(prefix="mfd-overlay-")
    target = os.path.join(root, "metaflow_dagster")
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    for patch in PATCHES:
        if patch.name in names:
            patch.apply(target)
    _built[names] = root
    return root


def diff(names=None) -> str:
    root = build(names)
    out = []
    for dirpath, _, files in os.walk(os.path.join(root, "metaflow_dagster")):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            new = os.path.join(dirpath, name)
            rel = os.path.relpath(new, root)
            old = os.path.join(os.path.dirname(PACKAGE), rel)
            a = open(old).read().splitlines(True) if os.path.exists(old) else []
            b = open(new).read().splitlines(True)
            out.extend(difflib.unified_diff(a, b, "a/" + rel, "b/" + rel))
    return "".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--diff", action="store_true")
    parser.add_argument("--only", default=None, help="comma-separated patch names")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else None
    print(diff(names) if args.diff else build(names))
