"""The benchmarks (bench/) are not run by the suite, but what they import of the package is:
a module moved inside the package must not leave a benchmark (or the code a benchmark hands
to a subprocess as a string) pointing at its old place."""

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
IMPORT = re.compile(r"\b(?:from\s+(metaflow_dagster(?:\.\w+)*)\s+import\s+(\w+)"
                    r"|import\s+(metaflow_dagster(?:\.\w+)*))")


def _imports():
    for script in sorted(BENCH.glob("*.py")):
        for match in IMPORT.finditer(script.read_text()):
            module, name, whole = match.groups()
            yield pytest.param(module or whole, name, id="%s: %s" % (script.name, match[0]))


@pytest.mark.parametrize("module, name", list(_imports()))
def test_what_a_benchmark_imports_exists(module, name):
    imported = importlib.import_module(module)
    if name is not None:
        assert hasattr(imported, name) or importlib.util.find_spec(
            "%s.%s" % (module, name)) is not None, "%s has no %s" % (module, name)
