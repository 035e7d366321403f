"""`flow.py init` runs alongside the start task (runtime.launch.launcher.ParametersInit);
the start task waits for it in dagster_internal's step_init. Both sides here are
real: a compiled flow's real `init` subprocess, and a real file handshake."""

import threading
import time

import pytest
from harness import compile_flow, load_definitions
from metaflow.exception import MetaflowException

from metaflow_dagster import naming
from metaflow_dagster.files import write_atomically
from metaflow_dagster.runtime.datastore import plan_datastore
from metaflow_dagster.runtime.launch.launcher import ParametersFailed, ParametersInit, TaskLauncher
from metaflow_dagster.task.decorator import _wait_for_parameters


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    compiled = compile_flow(tmp_path_factory.mktemp("handshake"), "params_flow")
    return load_definitions(compiled.defs_file).FLOW.plan


def test_init_persists_the_parameters_then_says_ok(plan):
    launcher = TaskLauncher(plan, "handshake-ok", "dagster-run", "start")
    init = ParametersInit(launcher, {"count": 11})
    _wait_for_parameters(init.ready_file)  # returns: init succeeded
    init.join()
    init.raise_if_failed()
    params = plan_datastore(plan).get_task_datastore(
        "handshake-ok", naming.PARAMETERS_STEP, naming.PARAMETERS_TASK_ID)
    assert params["count"] == 11
    assert params["label"] == "hello world"


def test_a_failed_init_is_reported_to_both_sides(plan):
    launcher = TaskLauncher(plan, "handshake-bad", "dagster-run", "start")
    init = ParametersInit(launcher, {"config": "{not json"})
    with pytest.raises(MetaflowException, match="could not be persisted"):
        _wait_for_parameters(init.ready_file)  # the start task gives up
    init.join()
    with pytest.raises(ParametersFailed) as failed:
        init.raise_if_failed()  # the op reports init's own error
    assert "JSON" in failed.value.outcome.error_tail()


def test_the_start_task_waits_until_the_op_says_init_is_done(tmp_path):
    ready = tmp_path / "ready"

    def finish_init_later():
        time.sleep(0.5)
        write_atomically(str(ready), "ok")  # as ParametersInit does

    threading.Thread(target=finish_init_later).start()
    started = time.monotonic()
    _wait_for_parameters(str(ready))
    assert time.monotonic() - started >= 0.45
