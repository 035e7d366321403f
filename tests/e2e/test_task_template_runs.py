"""Tasks forked from a task template (runtime/launch/task_template.py) are the
processes `python flow.py step ...` would be: the same command line, argv,
environment, working directory, `__main__`, open files, `current` values, logs
and exit status, module-level code run once per task; timeouts and the death of
the op's process still end the task and its children (an interrupt: test_failures.py,
whose task is forked). The ordinary path (a fresh interpreter) is taken when the
fork could differ."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from harness import (
    compile_flow,
    env_for,
    execute,
    execute_argv,
    failure_messages,
    forked_from_template,
    job_runs,
    metaflow_run,
    output_metadata,
    process_alive,
    wait_until,
)

from metaflow_dagster import naming

pytestmark = pytest.mark.e2e

# What differs between two runs of the same flow whatever starts their tasks.
PER_RUN = {"pid", "ppid", "pgid", "sid", "parent_is_template", "run_id", "pathspec"}


def _facts(run) -> dict:
    return {"%s/%s" % (step.id, task.id): task.data.facts for step in run for task in step}


def _without_run_ids(facts: dict, run_id: str) -> dict:
    def strip(value):
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value.replace(run_id, "RUN") if isinstance(value, str) else value
    return {k: strip(v) for k, v in facts.items() if k not in PER_RUN}


def test_forked_tasks_are_the_processes_a_fresh_interpreter_would_be(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "process_facts_flow")
    module_runs = tmp_path / "module_runs.txt"
    runs = {}
    exits, buffered = {}, {}
    for fork in ("1", "0"):
        exits_file = tmp_path / ("exits-%s.txt" % fork)
        # PYTHONWARNINGS=always: importing Metaflow writes a DeprecationWarning to
        # stderr, which a forked task must write too.
        result = execute(compiled, dagster_home, env_extra={
            naming.TASK_TEMPLATE_ENV: fork, "PROCESS_FACTS_FILE": module_runs,
            "PROCESS_EXITS_FILE": exits_file,
            "SHARED_VAR": "shared", "PYTHONWARNINGS": "always"})
        assert result.success, result.output[-3000:]
        runs[fork] = (result, metaflow_run(compiled, result))
        exits[fork] = exits_file.read_text().splitlines()
        buffered[fork] = Path(str(exits_file) + ".buffered").read_text().splitlines()
        if fork == "1":
            forked_module_runs = module_runs.read_text().splitlines()
            module_runs.unlink()

    forked, fresh = (_facts(runs[f][1]) for f in ("1", "0"))
    assert sorted(forked) == ["end/t", "join/t", "start/t", "visit/t-0", "visit/t-1",
                              "visit/t-2"]
    assert all(f["parent_is_template"] for f in forked.values())
    assert not any(f["parent_is_template"] for f in fresh.values())
    for key in forked:
        f, g = forked[key], fresh[key]
        # Its own process, leading its own session and process group.
        assert f["pid"] == f["pgid"] == f["sid"]
        assert _without_run_ids(f, runs["1"][0].metaflow_run_id) == \
            _without_run_ids(g, runs["0"][0].metaflow_run_id), key
        assert f["pathspec"] == "ProcessFactsFlow/%s/%s" % (runs["1"][0].metaflow_run_id, key)
    # What the facts hold, beyond "the same as a fresh interpreter".
    start = forked["start/t"]
    # The flow file of the job's code package (runtime/launch/code_package.py), unpacked elsewhere.
    packaged = Path(start["argv"][0])
    assert packaged.name == "process_facts_flow.py" and packaged.parent != compiled.flow_dir
    assert packaged.read_text() == (compiled.flow_dir / "process_facts_flow.py").read_text()
    assert start["cmdline"][1:] == start["argv"]
    assert start["main_is_this_module"] and start["main_name"] == "__main__"
    # Beyond stdio: the listing's own fd (3) and the flow module's two files.
    assert start["stdin"] == "/dev/null" and start["open_fds"] == [0, 1, 2, 3, 4, 5]
    assert (start["step_var"], start["shared_var"]) == ("start", "shared")
    assert {forked["visit/t-%d" % i]["step_var"] for i in range(3)} == {"visit"}
    assert forked["end/t"]["step_var"] is None
    # Tasks whose environment differs (@environment) come from different templates.
    templates = {key: f["ppid"] for key, f in forked.items()}
    assert templates["join/t"] == templates["end/t"]
    assert len({templates["start/t"], templates["visit/t-0"], templates["end/t"]}) == 3
    assert len({templates["visit/t-%d" % i] for i in range(3)}) == 1

    # Module-level code ran once in each task's process, and in `init`'s.
    pids = Counter(line.split()[0] for line in forked_module_runs)
    assert set(pids.values()) == {1}
    assert len(pids) == 7
    assert sum(" step " in line for line in forked_module_runs) == 6
    assert sum(" init " in line for line in forked_module_runs) == 1

    # Each process ended as a fresh interpreter ends: atexit handlers ran, the end
    # task's thread finished before its process exited, a file the flow module left
    # open was flushed and a NamedTemporaryFile it held removed.
    for fork, lines in exits.items():
        notes = Counter(line.split()[1] for line in lines + buffered[fork])
        assert notes == {"atexit": 7, "thread": 1, "buffered": 7}, (fork, lines)
    assert list(tmp_path.glob("scratch-*")) == []
    end_pid = str(forked["end/t"]["pid"])
    assert [line for line in exits["1"] if line.startswith(end_pid + " ")] == [
        end_pid + " thread", end_pid + " atexit"]

    # Their logs are those of a fresh interpreter, what importing Metaflow wrote included.
    logs = {}
    for fork, (result, run) in runs.items():
        end = run["end"].task
        logs[fork] = [text.replace(result.metaflow_run_id, "RUN")
                      for text in (end.stdout, end.stderr)]
    assert logs["1"] == logs["0"]
    stdout, stderr = logs["1"]
    assert stdout == "to stdout from ProcessFactsFlow/RUN/end/t\nunterminated\n"
    assert "DeprecationWarning" in stderr
    assert stderr.endswith("to stderr from ProcessFactsFlow/RUN/end/t\n")


def test_under_the_multiprocess_executor_each_op_process_forks_its_own_tasks(
        tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "process_facts_flow", "--executor", "multiprocess")
    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    run = metaflow_run(compiled, result)
    facts = _facts(run)
    assert all(f["parent_is_template"] for f in facts.values())
    # One template per op process: join and end share an environment, not a process.
    assert facts["join/t"]["ppid"] != facts["end/t"]["ppid"]
    end = run["end"].task
    assert end.stdout == "to stdout from %s\nunterminated\n" % end.pathspec


def test_a_forked_task_exit_status_and_logs_reach_the_op(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "process_facts_flow")
    result = execute(compiled, dagster_home, {"ops": {"start": {"config": {"exit_code": 7}}}})
    assert result.status == "FAILURE", result.output[-3000:]
    messages = failure_messages(dagster_home, result.dagster_run_id)
    assert len(messages) == 1 and "exit code 7" in messages[0], messages
    assert "to stderr from" in messages[0]
    run = metaflow_run(compiled, result)
    assert run["join"].task.data.facts["parent_is_template"]
    end = run["end"].task
    assert end.stdout == "to stdout from %s\nunterminated\n" % end.pathspec


def test_a_flow_that_configures_metaflow_before_importing_it_gets_a_fresh_interpreter(
        tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "configure_first_flow")
    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    run = metaflow_run(compiled, result)
    assert run["start"].task.data.cache_size == run["end"].task.data.cache_size == 1234


def _background_run(tmp_path, dagster_home, flow, pid_files, run_config=None):
    """`dagster job execute` of `flow` in the background, once the task that writes
    `pid_files` (env var -> file) runs, forked: (process, log file, pids)."""
    compiled = compile_flow(tmp_path, flow)
    files = {var: tmp_path / ("%s.pid" % var) for var in pid_files}
    log = tmp_path / "dagster.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            execute_argv(compiled, run_config), cwd=compiled.flow_dir,
            env=env_for(dagster_home, **files), start_new_session=True,
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        assert wait_until(lambda: all(f.exists() and f.read_text().count("\n") ==
                                      pid_files[v] for v, f in files.items())
                          or proc.poll() is not None, 90)
        assert proc.poll() is None, log.read_text()[-3000:]
        pids = [int(line) for f in files.values() for line in f.read_text().split()]
        assert all(process_alive(pid) for pid in pids)
        assert forked_from_template(pids[0])
    except BaseException:
        _stop(proc, [])
        raise
    return proc, log, pids


def _stop(proc, pids) -> None:
    """Never leave a test's processes behind on a shared machine."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in pids:
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def _all_gone(pids, seconds) -> bool:
    return wait_until(lambda: not any(process_alive(pid) for pid in pids), seconds)


SLEEPY_PIDS = {"SLEEPY_PID_FILE": 1, "SLEEPY_CHILD_PID_FILE": 1}
SLEEPY_CONFIG = {"ops": {"start": {"config": {"seconds": 300}}}}


def test_a_forked_task_dies_with_the_process_that_runs_its_op(tmp_path, dagster_home):
    """SIGKILL of `dagster job execute` (nothing of ours runs any more in it): the
    template sees its owner gone and kills the task's group, children included."""
    proc, log, pids = _background_run(tmp_path, dagster_home, "sleepy_flow", SLEEPY_PIDS,
                                      SLEEPY_CONFIG)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(timeout=30)
        assert _all_gone(pids, 10), [pid for pid in pids if process_alive(pid)]
        assert time.monotonic() - killed < 10
    finally:
        _stop(proc, pids)


def test_timeout_stops_a_forked_task_and_its_children(tmp_path, dagster_home):
    """@timeout(seconds=4) on a step that sleeps 120 s and has a child process."""
    proc, log, pids = _background_run(tmp_path, dagster_home, "timeout_flow",
                                      {"TIMEOUT_PID_FILE": 2})
    try:
        proc.wait(timeout=90)
        assert _all_gone(pids, 5), [pid for pid in pids if process_alive(pid)]
    finally:
        _stop(proc, pids)
    messages = failure_messages(dagster_home, latest_run_id(dagster_home))
    assert any("slow" in m and "timed out" in m.lower() for m in messages), messages


def latest_run_id(dagster_home) -> str:
    return job_runs(dagster_home, "TimeoutFlow")[-1].run_id


RUN_PROCESS = """
import atexit, runpy, sys
atexit.register(lambda: print("metaflow imported by the run process: %s"
                              % ("metaflow" in sys.modules)))
sys.argv = ["dagster"] + sys.argv[1:]
runpy.run_module("dagster", run_name="__main__")
"""


def test_the_run_process_reads_the_datastore_through_the_template(tmp_path, dagster_home):
    """With the package unpacked on this host (a second run), the run process fetches
    nothing, reads the production token and the artifacts shown on each output through a
    child of the template, and so never imports Metaflow; the output still shows them."""
    compiled = compile_flow(tmp_path, "linear_flow")
    script = tmp_path / "run_process.py"
    script.write_text(RUN_PROCESS)
    argv = [sys.executable, str(script)] + execute_argv(compiled)[1:]
    for _ in range(2):
        proc = subprocess.run(argv, cwd=compiled.flow_dir, env=env_for(dagster_home),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "metaflow imported by the run process: False" in proc.stdout, proc.stdout[-2000:]
    runs = job_runs(dagster_home, compiled.job_name)
    assert [run.status.value for run in runs] == ["SUCCESS", "SUCCESS"]
    output = output_metadata(dagster_home, runs[-1].run_id)[("b", None)]
    assert "`trail`" in output["artifacts"], output
    assert "['start', 'a', 'b']" in output["artifacts"], output["artifacts"]
