"""Ops import Metaflow lazily, from several threads at once (op threads fetching
the code package, reading attempts or saving logs). Importing metaflow from
two threads at once fails (_DeadlockError: its package imports are circular), so
the first import goes through one lock in runtime/datastore.py. Each check runs
in a fresh process, where metaflow is not imported yet."""

import subprocess
import sys

import pytest
from harness import compile_flow, env_for

RACE = """
import importlib.util, sys, threading
spec = importlib.util.spec_from_file_location("defs", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
plan = module.FLOW.plan
assert "metaflow" not in sys.modules
from metaflow_dagster.runtime.attempts import AttemptCounter
from metaflow_dagster.runtime.launch.code_package import code_package
from metaflow_dagster.runtime.report.metaflow_logs import save_task_logs
errors = []
def attempt():
    try:
        AttemptCounter(plan, "race", continues_run=True).attempt("start", "t", 0)
    except BaseException as error:
        errors.append(repr(error))
def logs():
    try:
        save_task_logs(plan, "race/start/t", 0, b"out\\n", b"")
    except BaseException as error:
        errors.append(repr(error))
def package():
    try:
        code_package(plan)
    except BaseException as error:
        errors.append(repr(error))
threads = [threading.Thread(target=f) for f in (package, attempt, logs)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ERRORS", errors)
"""


@pytest.fixture(scope="module")
def defs_file(tmp_path_factory):
    return compile_flow(tmp_path_factory.mktemp("race"), "params_flow").defs_file


def test_first_import_from_several_threads_at_once(defs_file, tmp_path):
    script = tmp_path / "race.py"
    script.write_text(RACE)
    for _ in range(5):
        proc = subprocess.run([sys.executable, str(script), str(defs_file)],
                              cwd=defs_file.parent, capture_output=True, text=True,
                              env=env_for(), timeout=120)
        assert "ERRORS []" in proc.stdout, proc.stdout + proc.stderr[-3000:]
