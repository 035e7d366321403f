"""`dagster trigger` and `dagster status` on real Dagster runs: in the background
against the instance of DAGSTER_HOME, and through a real `dg dev` with
--dagster-url; Dagster's own re-execution from failure through its GraphQL API."""

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import services
from commands import (
    Following,
    client,
    embedded,
    executions,
    field,
    flow_dir,
    graphql,
    mf,
    wait_for,
)
from harness import DagsterDev, quiet_instance, wait_until

from metaflow_dagster import naming
from metaflow_dagster.deploy.runs import metaflow_status
from metaflow_dagster.runtime.executors.workers import parse_worker_tag

pytestmark = pytest.mark.e2e

GATE = "gate_flow"
RESUME = "resume_flow"


def _wait_step(target, run_id, step, status, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        state = target.run_state(run_id)
        if any(s.key == step and s.status == status for s in state.steps):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(1)


def test_trigger_runs_in_the_background_and_status_follows(tmp_path, dagster_home):
    directory = flow_dir(tmp_path, GATE)
    mf(directory, GATE, "dagster", "create")
    target = embedded(dagster_home)

    # Two runs of the same job at once; each start step waits for its own gate file,
    # so neither can have finished when the trigger returns.
    started = time.monotonic()
    first = mf(directory, GATE, "dagster", "trigger", "--gate", "gate1", "--count", "3",
               "--weights", '{"w": [1, 2]}', dagster_home=dagster_home)
    trigger_seconds = time.monotonic() - started
    second = mf(directory, GATE, "dagster", "trigger", "--gate", "gate2", "--count", "4",
                dagster_home=dagster_home)
    run1, run2 = field(first, "Dagster run id"), field(second, "Dagster run id")
    pathspec1 = field(first, "Metaflow run")
    assert pathspec1 == "GateFlow/%s" % naming.metaflow_run_id(run1)
    assert field(first, "Dagster UI").endswith("/runs/%s" % run1)
    assert trigger_seconds < 30

    _wait_step(target, run1, "start", "IN_PROGRESS")
    _wait_step(target, run2, "start", "IN_PROGRESS")
    shown = mf(directory, GATE, "dagster", "status", "--run-id", run1,
               dagster_home=dagster_home).stdout
    assert "(Metaflow run %s): RUNNING (Dagster STARTED)" % pathspec1 in shown
    assert [line.split() for line in shown.splitlines() if "start" in line.split()] == [
        ["start", "IN_PROGRESS"]]

    # Runs are isolated: the second finishes while the first still waits.
    (directory / "gate2").touch()
    assert wait_for(target, run2).status == "SUCCESS"
    assert target.run_state(run1).status == "STARTED"
    (directory / "gate1").touch()
    assert wait_for(target, run1).status == "SUCCESS"

    # Without --run-id: the latest run of the flow; a Metaflow run id works too.
    latest = mf(directory, GATE, "dagster", "status", dagster_home=dagster_home).stdout
    assert "Run %s " % run2 in latest and ": SUCCEEDED (Dagster SUCCESS)" in latest
    by_metaflow_id = mf(directory, GATE, "dagster", "status", "--run-id",
                        pathspec1.split("/")[1], dagster_home=dagster_home).stdout
    assert [line.split() for line in by_metaflow_id.splitlines()[-2:]] == [
        ["start", "SUCCESS"], ["end", "SUCCESS"]]

    metaflow = client(directory)
    run = metaflow.Run(pathspec1)
    assert run.successful
    assert run["start"].task.data.seen == {"count": 3, "weights": {"w": [1, 2]}}
    assert metaflow.Run(field(second, "Metaflow run"))["start"].task.data.seen[
        "count"] == 4

    # The run records carry what `dg dev` needs to show and re-execute them.
    with target._instance() as instance:
        record = instance.get_run_by_id(run1)
    assert record.tags[naming.TAG_FLOW_NAME] == "GateFlow"
    assert record.tags[naming.TAG_RUN_ID] == naming.metaflow_run_id(run1)
    assert record.remote_job_origin.location_name == "gateflow_dagster.py"


def _task_processes(run_id) -> list:
    """pids of live processes whose command line runs a step of the Dagster run's
    Metaflow run (the tasks run from the job's code package, not the flow's directory)."""
    metaflow_run_id = naming.metaflow_run_id(run_id).encode()
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"step" in argv and metaflow_run_id in argv:
            pids.append(int(pid))
    return pids


def _triggered_run_in_start(tmp_path, dagster_home):
    """A triggered run of the gate flow whose start step runs (waiting for its gate):
    (flow directory, target, Dagster run id, run state)."""
    directory = flow_dir(tmp_path, GATE)
    mf(directory, GATE, "dagster", "create")
    target = embedded(dagster_home)
    run_id = field(mf(directory, GATE, "dagster", "trigger", dagster_home=dagster_home),
                   "Dagster run id")
    return directory, target, run_id, _wait_step(target, run_id, "start", "IN_PROGRESS")


def test_terminate_stops_the_tasks_and_the_run_ends_canceled(tmp_path, dagster_home):
    directory, target, run_id, _ = _triggered_run_in_start(tmp_path, dagster_home)
    assert wait_until(lambda: _task_processes(run_id), 60)

    # By Metaflow run id, as `argo-workflows terminate` takes it.
    said = mf(directory, GATE, "dagster", "terminate", "--run-id",
              naming.metaflow_run_id(run_id), dagster_home=dagster_home)
    assert "Terminating GateFlow/%s" % naming.metaflow_run_id(run_id) in said.stderr
    state = wait_for(target, run_id, timeout=30)
    assert state.status == "CANCELED"
    assert {s.key: s.status for s in state.steps}["start"] == "FAILURE"
    assert "end" not in {s.key for s in state.steps}
    assert wait_until(lambda: not _task_processes(run_id), 15), _task_processes(run_id)
    assert not client(directory).Run("GateFlow/%s" % state.metaflow_run_id).successful
    # `status` says the step was stopped, not that it crashed.
    shown = mf(directory, GATE, "dagster", "status", "--run-id", run_id,
               dagster_home=dagster_home).stdout.splitlines()
    assert shown[0].endswith(": ABORTED (Dagster CANCELED)"), shown
    failed = shown[shown.index("Failed steps:") + 1:]
    assert failed[:2] == ["  start: 1 attempt", "      The run is CANCELING: the op's Metaflow "
                          "tasks were stopped."], shown
    assert "Error" not in "\n".join(shown)

    again = mf(directory, GATE, "dagster", "terminate", "--run-id", run_id,
               dagster_home=dagster_home, expect_rc=1)
    assert "already finished (CANCELED)" in again.stderr


def test_mistakes_are_clear_errors_and_start_nothing(tmp_path, dagster_home):
    directory = flow_dir(tmp_path, GATE)
    mf(directory, GATE, "dagster", "create")
    bad = mf(directory, GATE, "dagster", "trigger", "--count", "many",
             dagster_home=dagster_home, expect_rc=2)
    assert "Invalid value for '--count': many is not a valid integer" in bad.stderr
    bad_json = mf(directory, GATE, "dagster", "trigger", "--weights", "{not json",
                  dagster_home=dagster_home, expect_rc=2)
    assert "is not a valid JSON object" in bad_json.stderr
    assert embedded(dagster_home).flow_runs("GateFlow", 10) == []
    relative_home = mf(directory, GATE, "dagster", "trigger", expect_rc=1,
                       DAGSTER_HOME="relative/home")
    assert "DAGSTER_HOME=relative/home must be an absolute path" in relative_home.stderr
    no_step = mf(directory, GATE, "dagster", "resume", "--origin-run-id",
                 "dagster-0123456789abcdef", "--step-to-rerun", "nosuch",
                 dagster_home=dagster_home, expect_rc=1)
    assert "Error: Step nosuch is not a step of GateFlow" in no_step.stderr
    no_origin = mf(directory, GATE, "dagster", "resume", "--origin-run-id",
                   "dagster-0123456789abcdef", dagster_home=dagster_home, expect_rc=1)
    assert "has no parameters in the datastore" in no_origin.stderr
    not_ours = mf(directory, GATE, "dagster", "delete", "--definitions-file", GATE + ".py",
                  expect_rc=1)
    assert "not a definitions file of metaflow-dagster" in not_ours.stderr
    assert (directory / (GATE + ".py")).exists()
    assert embedded(dagster_home).flow_runs("GateFlow", 10) == []
    # The run processes these commands started ahead of their runs are gone, their logs too.
    assert wait_until(lambda: not _waiting_run_workers(dagster_home), 30, interval=0.2), \
        _waiting_run_workers(dagster_home)
    assert not list(Path(dagster_home).glob("metaflow_dagster/run_workers/*.log"))


def _waiting_run_workers(dagster_home) -> list:
    """The run processes (runtime/executors/run_worker.py) alive for this Dagster home."""
    return [pid for pid, argv in services.processes_with_env("DAGSTER_HOME=%s" % dagster_home)
            if "metaflow_dagster.runtime.executors.run_worker" in argv]


def test_run_whose_process_died_is_reported_failed(tmp_path, dagster_home):
    directory, target, run_id, state = _triggered_run_in_start(tmp_path, dagster_home)
    worker_pid = parse_worker_tag(state.tags[naming.TAG_RUN_WORKER]).pid
    os.killpg(worker_pid, signal.SIGKILL)
    try:
        shown = mf(directory, GATE, "dagster", "status", dagster_home=dagster_home).stdout
        assert ": FAILED (Dagster FAILURE)" in shown.splitlines()[0]
        assert target.run_state(run_id).status == "FAILURE"
    finally:
        (directory / "gate").touch()  # lets the orphaned task end


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    """One `dg dev` on 127.0.0.1 for the tests below, serving two flows."""
    tmp_path = tmp_path_factory.mktemp("dev")
    directory = flow_dir(tmp_path, GATE, RESUME)
    mf(directory, GATE, "dagster", "create")
    mf(directory, RESUME, "dagster", "create")
    home = tmp_path / "dagster_home"
    home.mkdir()
    definitions = ["gateflow_dagster.py", "resumeflow_dagster.py"]
    with DagsterDev(quiet_instance(home), [directory / d for d in definitions], directory) as dev:
        yield directory, home, dev.url


def test_submit_through_dagster_url(dev_server):
    directory, home, url = dev_server
    (directory / "gate").touch()
    server = graphql(url)
    submitted = mf(directory, GATE, "dagster", "trigger", "--dagster-url", url, "--count", "2")
    run_id = field(submitted, "Dagster run id")
    assert field(submitted, "Dagster UI") == "%s/runs/%s" % (url, run_id)
    assert wait_for(server, run_id).status == "SUCCESS"
    shown = mf(directory, GATE, "dagster", "status", "--run-id", run_id,
               METAFLOW_DAGSTER_URL=url).stdout
    assert ": SUCCEEDED (Dagster SUCCESS)" in shown.splitlines()[0]
    assert client(directory).Run(field(submitted, "Metaflow run"))[
        "start"].task.data.seen["count"] == 2


def test_trigger_through_dagster_url_needs_no_local_definitions_file(dev_server, tmp_path):
    """A copy of the flow with no definitions file beside it: the webserver runs the
    job it loaded, named and configured from the flow itself; --wait follows it
    through the webserver, --verbose with its event log."""
    directory, home, url = dev_server
    (directory / "gate").touch()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(directory / (GATE + ".py"), elsewhere)
    submitted = mf(elsewhere, GATE, "dagster", "trigger", "--dagster-url", url, "--count", "5",
                   "--wait", "--verbose")
    output = submitted.stdout + submitted.stderr
    assert "ended SUCCEEDED (Dagster SUCCESS)" in output
    assert "[2/2] end  SUCCESS" in output
    assert re.search(r"^\d\d:\d\d:\d\d DEBUG\s+start\s+STEP_SUCCESS ", output, re.M), output
    assert not list(elsewhere.glob("*_dagster.py"))
    assert client(directory).Run(field(submitted, "Metaflow run"))[
        "start"].task.data.seen["count"] == 5


def test_terminate_through_dagster_url(dev_server):
    directory, home, url = dev_server
    server = graphql(url)
    run_id = field(mf(directory, GATE, "dagster", "trigger", "--dagster-url", url,
                      "--gate", "never-opened"), "Dagster run id")
    _wait_step(server, run_id, "start", "IN_PROGRESS")
    mf(directory, GATE, "dagster", "terminate", "--run-id", run_id, "--dagster-url", url)
    state = wait_for(server, run_id, timeout=60)
    assert state.status == "CANCELED"
    assert {s.key: s.status for s in state.steps}["start"] == "FAILURE"
    assert wait_until(lambda: not _task_processes(run_id), 15), _task_processes(run_id)


REEXECUTE = """
mutation($params: ReexecutionParams!) {
  launchRunReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def test_reexecute_from_failure_through_graphql(dev_server):
    """A run triggered on the webserver's DAGSTER_HOME (not through it) fails; the
    webserver re-executes it from failure: the same Metaflow run continues."""
    directory, home, url = dev_server
    (directory / "fail_split").touch()
    target = embedded(home)
    triggered = mf(directory, RESUME, "dagster", "trigger", dagster_home=home)
    failed = field(triggered, "Dagster run id")
    assert wait_for(target, failed).status == "FAILURE"
    seen = graphql(url).run_state(failed)  # the webserver sees it, and why it failed
    assert seen.status == "FAILURE" and metaflow_status(graphql(url), seen, "end") == "FAILED"
    assert any("split 1 fails" in m or "Step body" in m
               for m in graphql(url).failure_messages(failed)), graphql(url).failure_messages(
        failed)
    assert graphql(url).run_state(failed).status == "FAILURE"  # the webserver sees it
    # `status` through the webserver names the failed split, its error and its logs.
    shown = mf(directory, RESUME, "dagster", "status", "--run-id", failed,
               "--dagster-url", url).stdout
    task = "%s/body/t-1" % naming.metaflow_run_id(failed)
    assert "  body[1]: ResumeFlow/%s, 1 attempt" % task in shown, shown
    assert "RuntimeError: split 1 fails while fail_split exists" in shown, shown
    assert "logs: python resume_flow.py logs %s --attempt 0" % task in shown, shown
    (directory / "fail_split").unlink()
    before = executions(directory)

    # What the UI's "Re-execute from failure" button sends.
    result = graphql(url).query(
        REEXECUTE, {"params": {"parentRunId": failed, "strategy": "FROM_FAILURE"}}
    )["launchRunReexecution"]
    assert result["__typename"] == "LaunchRunSuccess", result
    child = result["run"]["runId"]
    state = wait_for(target, child)
    assert state.status == "SUCCESS"
    assert state.metaflow_run_id == naming.metaflow_run_id(failed)

    ran_again = executions(directory) - before
    assert ran_again == {("body", "t-1", "1"): 1, ("join", "t", "0"): 1, ("end", "t", "0"): 1}
    run = client(directory).Run(field(triggered, "Metaflow run"))
    assert run.successful
    assert {t.id: t.current_attempt for t in run["body"]} == {"t-0": 0, "t-1": 1}
    assert run["join"].task.data.values == [0, 10]


def test_trigger_wait_follows_a_failing_run_and_exits_non_zero(tmp_path, dagster_home):
    directory = flow_dir(tmp_path, "failing_flow")
    mf(directory, "failing_flow", "dagster", "create")
    proc = mf(directory, "failing_flow", "dagster", "trigger", "--wait",
              dagster_home=dagster_home, expect_rc=1)
    output = proc.stdout + proc.stderr
    steps = re.findall(r"^    \[(\d)/(\d)\] (\w+)  (\w+)$", output, re.M)
    assert steps == [("1", "4", "start", "SUCCESS"), ("2", "4", "a", "SUCCESS"),
                     ("3", "4", "b", "FAILURE")], output
    assert re.search(r"Error: Run FailingFlow/dagster-\w+ ended FAILED \(Dagster FAILURE\)\. "
                     r"Its failures: `python failing_flow.py dagster status --run-id ", output)
    assert "DEBUG" not in output and "STEP_START" not in output


def _task_lines(lines, run_id):
    """{(step, text)} of the lines headed as `python flow.py run` heads a task's line:
    `YYYY-MM-DD HH:MM:SS.mmm [<run>/<step>/<task> (pid N)] text`."""
    head = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[%s/(\w+)/[\w-]+ \(pid \d+\)\] "
                      r"(.*)$" % re.escape(run_id))
    return {m.groups() for m in map(head.match, lines) if m}


def test_trigger_wait_prints_the_tasks_output_as_it_comes(tmp_path, dagster_home):
    directory = flow_dir(tmp_path, GATE)
    mf(directory, GATE, "dagster", "create")
    follow = Following(directory, GATE, "dagster", "trigger", "--wait", "--gate", "g-logs",
                       "--count", "3", dagster_home=dagster_home)
    waiting = follow.wait_for_line("start waits for the gate file g-logs")
    # Printed while the task still runs (it waits for the file).
    assert follow.proc.poll() is None
    (directory / "g-logs").touch()
    code, lines, err = follow.finish()
    assert code == 0, err
    run_id = naming.metaflow_run_id(field(err, "Dagster run id"))
    assert _task_lines([waiting], run_id) == {("start", "start waits for the gate file g-logs")}
    # stderr lines too; on stdout only the tasks' lines.
    assert _task_lines(lines, run_id) == {("start", "start waits for the gate file g-logs"),
                                          ("end", "end saw count 3")}, lines
    assert len(lines) == 2, lines
    assert "ended SUCCEEDED" in err

    # `python flow.py run` heads its tasks' lines the same way.
    ran = mf(directory, GATE, "run", "--gate", "g-logs", "--count", "3")
    metaflow_run = re.search(r"\[(\d+)/start/1 \(pid \d+\)\]", ran.stdout + ran.stderr).group(1)
    assert {("start", "start waits for the gate file g-logs"), ("end", "end saw count 3")} <= \
        _task_lines((ran.stdout + ran.stderr).splitlines(), metaflow_run)

    quiet = mf(directory, GATE, "dagster", "trigger", "--wait", "--no-logs", "--gate", "g-logs",
               dagster_home=dagster_home)
    assert quiet.stdout == "" and "ended SUCCEEDED" in quiet.stderr


def test_trigger_wait_through_dagster_url_prints_the_tasks_output(dev_server):
    """The same lines, read from the webserver (its captured logs, through GraphQL)."""
    directory, home, url = dev_server
    follow = Following(directory, GATE, "dagster", "trigger", "--dagster-url", url, "--wait",
                       "--gate", "g-url-logs", "--count", "4")
    waiting = follow.wait_for_line("start waits for the gate file g-url-logs")
    assert follow.proc.poll() is None
    (directory / "g-url-logs").touch()
    code, lines, err = follow.finish()
    assert code == 0, err
    run_id = naming.metaflow_run_id(field(err, "Dagster run id"))
    assert _task_lines([waiting], run_id)
    assert _task_lines(lines, run_id) == {
        ("start", "start waits for the gate file g-url-logs"), ("end", "end saw count 4")}, lines


def test_status_of_another_flows_run_says_whose_it_is(tmp_path, dagster_home):
    directory = flow_dir(tmp_path, "linear_flow", "failing_flow")
    mf(directory, "linear_flow", "dagster", "create")
    run_id = field(mf(directory, "linear_flow", "dagster", "trigger", "--wait",
                      dagster_home=dagster_home), "Dagster run id")
    for command in ("status", "terminate"):
        said = mf(directory, "failing_flow", "dagster", command, "--run-id", run_id,
                  dagster_home=dagster_home, expect_rc=1)
        assert said.stderr.splitlines()[-1] == (
            "Error: Dagster run %s is a run of flow LinearFlow (job LinearFlow), not of "
            "FailingFlow: run the command from LinearFlow's flow file." % run_id)
        assert "FailingFlow/dagster-" not in said.stdout + said.stderr
