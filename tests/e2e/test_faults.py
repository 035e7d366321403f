"""Faults survived: the process running a run dies, an instance is opened by many
processes at once for the first time, a definitions file is older than its flow.

Each test asserts the figure a user would check and prints it (run with -s):
seconds from a worker's death to the last task process gone, seconds until the run
shows FAILURE with no command typed, concurrent first-use triggers that succeed.
The flow (tests/flows/orphan_flow.py) has its `work` task start one child in its
process group and one that leaves it, then wait for a gate file."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import services
from commands import client, embedded, executions, field, flow_dir, mf, wait_for
from harness import (
    PYTHON,
    compile_flow,
    env_for,
    execute_argv,
    latest_run,
    process_alive,
    wait_until,
)

from metaflow_dagster import naming
from metaflow_dagster.runtime.executors.workers import parse_worker_tag

pytestmark = pytest.mark.e2e

ORPHAN = "orphan_flow"
# How soon a dead worker's tasks are gone and its run is failed, at the most.
TASKS_GONE_SECONDS = 15
FAILURE_SECONDS = 60


def _work_pids(directory: Path, watched: subprocess.Popen = None) -> list:
    """The pids of `work`'s task and of its two children, once it has started them."""
    pids_file = directory / "work.pids"
    assert wait_until(lambda: pids_file.exists() or (watched and watched.poll() is not None),
                      120), "work never started"
    assert pids_file.exists(), "the run ended before work started"
    data = json.loads(pids_file.read_text())
    pids = [data["task"]] + data["children"]
    assert all(process_alive(p) for p in pids)
    return pids


def _seconds_until_gone(pids: list, since: float) -> float:
    assert wait_until(lambda: not any(process_alive(p) for p in pids), TASKS_GONE_SECONDS,
                      interval=0.05), [
        p for p in pids if process_alive(p)]
    return time.monotonic() - since


def _run_record(dagster_home: Path, run_id: str = None):
    """The run as Dagster's own instance has it (no command of ours involved)."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        return instance.get_run_by_id(run_id) if run_id else instance.get_runs(limit=1)[0]


def _seconds_until_finished(dagster_home: Path, run_id: str, since: float):
    runs = []

    def finished():
        runs[:] = [_run_record(dagster_home, run_id)]
        return runs[0].is_finished

    assert wait_until(finished, FAILURE_SECONDS, interval=0.5), runs[0].status
    return runs[0], time.monotonic() - since


def _engine_messages(dagster_home: Path, run_id: str) -> list:
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        return [r.message for r in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)]


def _session_alive(sid: int) -> bool:
    """Is a live process left in session sid (`dagster job execute` and what it started)?"""
    return bool(services.session_members(sid))


def _kill(pids) -> None:
    """Never leave this test's processes behind on a shared machine."""
    for pid in pids:
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_trigger_worker_killed_no_orphans_run_fails_resume_reuses(tmp_path, dagster_home):
    directory = flow_dir(tmp_path, ORPHAN)
    mf(directory, ORPHAN, "dagster", "create")
    run_id = field(mf(directory, ORPHAN, "dagster", "trigger", dagster_home=dagster_home),
                   "Dagster run id")
    pids = _work_pids(directory)
    worker = parse_worker_tag(_run_record(dagster_home, run_id).tags[naming.TAG_RUN_WORKER]).pid
    try:
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        gone = _seconds_until_gone(pids, killed)
        run, failed = _seconds_until_finished(dagster_home, run_id, killed)
    finally:
        _kill(pids)
    print("\n[dagster trigger, metaflow executor] worker SIGKILL -> last task process gone: "
          "%.2f s; run FAILURE (no command typed): %.2f s" % (gone, failed))
    assert run.status.value == "FAILURE"
    assert any("(pid %d on " % worker in m and "died before the run finished" in m
               for m in _engine_messages(dagster_home, run_id))

    # Our commands accept the run: status shows it failed, terminate has nothing to do.
    shown = mf(directory, ORPHAN, "dagster", "status", "--run-id", run_id,
               dagster_home=dagster_home).stdout
    assert ": FAILED (Dagster FAILURE)" in shown.splitlines()[0]
    said = mf(directory, ORPHAN, "dagster", "terminate", "--run-id", run_id,
              dagster_home=dagster_home)
    assert "has already ended (FAILURE): The process executing this run" in said.stderr

    # Resume reuses what had succeeded: start is cloned, not run again.
    (directory / "gate").touch()
    before = executions(directory)
    resumed = mf(directory, ORPHAN, "dagster", "resume", "--origin-run-id", run_id,
                 dagster_home=dagster_home)
    assert wait_for(embedded(dagster_home), field(resumed, "Dagster run id")).status == "SUCCESS"
    assert executions(directory) - before == {("work", "t", "0"): 1, ("end", "t", "0"): 1}
    metaflow = client(directory)
    origin = metaflow.Run("OrphanFlow/%s" % naming.metaflow_run_id(run_id))
    again = metaflow.Run(field(resumed, "Metaflow run"))
    assert again.successful and again["end"].task.data.value == 42
    start, origin_start = again["start"].task, origin["start"].task
    assert start.id == origin_start.id == naming.ROOT_TASK_ID
    assert start.metadata_dict["origin-run-id"] == origin.id
    assert start.metadata_dict["origin-task-id"] == origin_start.id
    assert start.data.started_at == origin_start.data.started_at


def _execute_in_background(compiled, dagster_home: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(execute_argv(compiled), cwd=compiled.flow_dir,
                                env=env_for(dagster_home), start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT)


def _parent(pid: int) -> int:
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize("victim", ["op process", "run worker"])
def test_multiprocess_executor_process_killed_no_orphans(tmp_path, dagster_home, victim):
    """Dagster's multiprocess executor: each op in a process of its own (a child of the
    run worker's forkserver). Killing the op's process, or the run worker, leaves no
    task process, and the run ends FAILURE."""
    compiled = compile_flow(tmp_path, ORPHAN, "--executor", "multiprocess")
    proc = _execute_in_background(compiled, dagster_home, tmp_path / "dagster.log")
    pids = []
    try:
        pids = _work_pids(compiled.flow_dir, proc)
        op_process = _parent(pids[0])
        os.kill(op_process if victim == "op process" else proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        gone = _seconds_until_gone(pids, killed)
        run, failed = _seconds_until_finished(dagster_home, None, killed)
        # Dagster's own processes (the forkserver, the op's process) end too.
        assert wait_until(lambda: not _session_alive(proc.pid), 60), "Dagster's processes stay"
        all_gone = time.monotonic() - killed
    finally:
        _kill(pids)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    print("\n[dagster job execute, multiprocess executor] %s SIGKILL -> last task process "
          "gone: %.2f s; run FAILURE: %.2f s; every process of the run gone: %.2f s"
          % (victim, gone, failed, all_gone))
    assert run.status.value == "FAILURE", (tmp_path / "dagster.log").read_text()[-3000:]
    if victim == "run worker":
        assert any("died before the run finished" in m
                   for m in _engine_messages(dagster_home, run.run_id))


def test_terminate_a_run_of_dagster_job_execute(tmp_path, dagster_home):
    """`dagster terminate` accepts a run however it was started: here by `dagster job
    execute` (whose worker the executor recorded); it ends CANCELED, no task left."""
    compiled = compile_flow(tmp_path, ORPHAN)
    proc = _execute_in_background(compiled, dagster_home, tmp_path / "dagster.log")
    pids = []
    try:
        pids = _work_pids(compiled.flow_dir, proc)
        run_id = _run_record(dagster_home).run_id
        typed = time.monotonic()
        mf(compiled.flow_dir, ORPHAN, "dagster", "terminate", "--run-id", run_id,
           dagster_home=dagster_home)
        returned = time.monotonic()
        gone = _seconds_until_gone(pids, returned)
        assert proc.wait(timeout=60) != 0
    finally:
        _kill(pids)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print("\n[dagster job execute] `dagster terminate` took %.2f s; last task process gone "
          "%.2f s after it returned" % (returned - typed, gone))
    assert _run_record(dagster_home, run_id).status.value == "CANCELED"


def test_sixteen_concurrent_first_triggers_on_a_fresh_home(tmp_path):
    """16 `dagster trigger`s at once on a DAGSTER_HOME whose storage does not exist yet:
    each succeeds, and so does each run."""
    directory = flow_dir(tmp_path, "single_step_flow")
    mf(directory, "single_step_flow", "dagster", "create")
    home = tmp_path / "fresh_home"
    home.mkdir()
    argv = [PYTHON, "single_step_flow.py", "dagster", "trigger"]
    procs = [subprocess.Popen(argv, cwd=directory, env=env_for(home), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(16)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    failed = [o for p, o in zip(procs, outputs) if p.returncode != 0]
    print("\n16 concurrent first-use triggers: %d succeeded" % (16 - len(failed)))
    assert not failed, failed[0][-3000:]
    target = embedded(home)
    states = [wait_for(target, field(o, "Dagster run id"), timeout=600) for o in outputs]
    assert [s.status for s in states] == ["SUCCESS"] * 16
    assert len({s.run_id for s in states}) == 16


INSERTED = '''
    @step
    def inserted(self):
        self.next(self.end)
'''


@pytest.mark.parametrize("executor", ["metaflow", "multiprocess"])
def test_a_flow_changed_after_create_does_not_change_the_job(tmp_path, dagster_home, executor):
    """A step inserted (metaflow executor) or renamed (multiprocess executor) in the
    flow file after `dagster create`: the job runs the steps it was created with, from
    its code package, and succeeds."""
    compiled = compile_flow(tmp_path, "linear_flow", "--executor", executor)
    flow = compiled.flow_dir / "linear_flow.py"
    source = flow.read_text()
    if executor == "metaflow":
        changed = source.replace("self.next(self.end)", "self.next(self.inserted)", 1)
        changed = changed.replace("    @step\n    def end", INSERTED.lstrip("\n") +
                                  "\n    @step\n    def end", 1)
    else:
        changed = source.replace("self.b", "self.renamed").replace("def b(", "def renamed(")
    assert changed != source
    flow.write_text(changed)
    proc = subprocess.run(execute_argv(compiled), cwd=compiled.flow_dir, capture_output=True,
                          text=True, env=env_for(dagster_home), timeout=300)
    run = _run_record(dagster_home)
    assert run.status.value == "SUCCESS", proc.stdout[-2000:] + proc.stderr[-2000:]
    result = latest_run(dagster_home, compiled.job_name)
    assert {k: s.status.value for k, s in result.steps.items()} == {
        "start": "SUCCESS", "a": "SUCCESS", "b": "SUCCESS", "end": "SUCCESS"}
