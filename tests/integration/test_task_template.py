"""The task template's own contract (runtime/launch/task_template.py, task/template.py),
with real processes and no Dagster run: a forked task's output, exit status and
process group reach the caller as a subprocess's would, and a task does not
outlive its template."""

import os
import signal
import sys
import time

import pytest
from harness import process_alive, wait_until

from metaflow_dagster.plan import FlowPlan, OpPlan, StepPlan
from metaflow_dagster.runtime.launch import processes, task_template

SCRIPT = '''\
import metaflow
import os, sys, time
print("out from", os.getpid())
print("err from", os.getpid(), file=sys.stderr)
if sys.argv[1] == "sleep":
    with open(sys.argv[2], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(300)
sys.exit(int(sys.argv[1]))
'''


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    return path


def starter_for(script):
    step = StepPlan(name="start", type="start", next=[], parents=[], decorators=[])
    plan = FlowPlan(flow_name="F", flow_file=str(script), job_name="F", start_step="start",
                    end_step="start", steps=[step],
                    ops=[OpPlan(name="start", kind="step", step="start", steps=["start"])])
    return task_template.starter(plan, "start")


def test_output_and_exit_status_come_back_as_from_a_subprocess(script, monkeypatch):
    monkeypatch.delenv("METAFLOW_DAGSTER_TASK_TEMPLATE", raising=False)
    start = starter_for(script)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    outcome = processes.run_process([sys.executable, str(script), "3"], env, str(script.parent),
                                    start=start)
    assert outcome.returncode == 3
    pid = int(outcome.stdout.split()[-1])
    assert outcome.stdout == b"out from %d\n" % pid
    assert outcome.stderr == b"err from %d\n" % pid
    forked = start([sys.executable, str(script), "0"], env, str(script.parent))
    assert isinstance(forked, task_template.ForkedProcess)
    assert forked.wait(timeout=60) == 0
    forked.close_pipes()


def test_timeout_terminates_the_forked_tasks_group(script, tmp_path):
    start = starter_for(script)
    pid_file = tmp_path / "pid"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.monotonic()
    with pytest.raises(processes.TaskTimeout):
        processes.run_process([sys.executable, str(script), "sleep", str(pid_file)], env,
                              str(script.parent), timeout_seconds=3, start=start)
    assert time.monotonic() - started < 60
    assert not process_alive(int(pid_file.read_text()))


def test_a_task_dies_with_its_template(script, tmp_path):
    start = starter_for(script)
    pid_file = tmp_path / "pid"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    forked = start([sys.executable, str(script), "sleep", str(pid_file)], env,
                   str(script.parent))
    try:
        assert wait_until(pid_file.exists, 60)
        template = _parent(forked.pid)
        os.kill(template, signal.SIGKILL)
        assert forked.wait(timeout=30) == -signal.SIGKILL
        assert wait_until(lambda: not process_alive(forked.pid), 10)
    finally:
        if process_alive(forked.pid):
            os.kill(forked.pid, signal.SIGKILL)
        forked.close_pipes()
    # The next task is forked again, by a new template.
    again = start([sys.executable, str(script), "0"], env, str(script.parent))
    assert isinstance(again, task_template.ForkedProcess)
    assert again.wait(timeout=60) == 0
    again.close_pipes()


def _parent(pid: int) -> int:
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_a_retired_template_exits_once_its_running_task_has_ended(script, tmp_path):
    """An op ended in a process that outlives it (a Celery worker's): the run's templates
    there are retired; one still running a task of another op of the run keeps it."""
    start = starter_for(script)
    pid_file = tmp_path / "pid"
    env = dict(os.environ, PYTHONUNBUFFERED="1", METAFLOW_DAGSTER_RUN_ID="run-to-retire")
    forked = start([sys.executable, str(script), "sleep", str(pid_file)], env,
                   str(script.parent))
    try:
        assert wait_until(pid_file.exists, 60)
        template = _parent(forked.pid)
        task_template.retire_run_templates("run-to-retire")
        time.sleep(2)
        assert process_alive(template) and process_alive(forked.pid)
        os.kill(forked.pid, signal.SIGTERM)
        assert forked.wait(timeout=30) == -signal.SIGTERM
        assert wait_until(lambda: not process_alive(template), 10)
    finally:
        if process_alive(forked.pid):
            os.kill(forked.pid, signal.SIGKILL)
        forked.close_pipes()
    # The run's next task (another op of it here) gets a new template.
    again = start([sys.executable, str(script), "0"], env, str(script.parent))
    try:
        assert again.wait(timeout=60) == 0
    finally:
        again.close_pipes()
    templates = [t.process.pid for t in task_template._templates.values()]
    assert templates and template not in templates
