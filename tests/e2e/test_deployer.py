"""Metaflow's Deployer API on Dagster (TYPE "dagster"), on real runs, holding the
contract Metaflow's other schedulers keep: create with top-level options, trigger with
Parameters, `status` in Metaflow's words (a status loop written for Argo or Step
Functions ends), `from_deployment` / `get_triggered_run` / `list_deployed_flows` in a
fresh Python process, `production_token`, `delete`, `terminate`, `suspend` and
`unsuspend`; two @project branch deployments that never touch each other."""

import json
import subprocess
import time
from pathlib import Path

import pytest
from commands import client, embedded, flow_dir
from harness import PYTHON, env_for, wait_until

from metaflow_dagster import naming

pytestmark = pytest.mark.e2e

FLOW = "deployer_flow"


def fresh_python(script: str, *args, cwd, dagster_home=None, timeout=400, **env) -> dict:
    """Run `script` in a fresh Python process; what it printed last, as JSON."""
    proc = subprocess.run([PYTHON, "-c", script, *[str(a) for a in args]], cwd=cwd,
                          capture_output=True, text=True,
                          env=env_for(dagster_home, **env), timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


SECOND_PROCESS = """
import json
import sys

from metaflow import DeployedFlow, metadata, namespace

identifier, flow_dir, first_run = sys.argv[1:]
deployed = DeployedFlow.from_deployment(identifier, impl="dagster")
listed = [d.name for d in DeployedFlow.list_deployed_flows(impl="dagster")]
others = list(DeployedFlow.list_dagster(flow_name="NoSuchFlow"))
earlier = DeployedFlow.get_triggered_run(identifier, first_run, impl="dagster")
triggered = deployed.trigger(label="second process", count=3)
triggered.wait_for_completion(check_interval=1, timeout=150)
metadata("local@" + flow_dir)
namespace(None)
print(json.dumps({
    "type": type(deployed).__name__,
    "listed": listed,
    "others": len(others),
    "earlier": [earlier.status, earlier.dagster_status, earlier.is_running],
    "status": triggered.status,
    "pathspec": triggered.pathspec,
    "seen": triggered.run["start"].task.data.seen,
    "successful": triggered.run.successful,
    "token": deployed.production_token,
}))
"""

DEFAULT_IMPL = """
import json
import sys

from metaflow import DeployedFlow

identifier = sys.argv[1]
print(json.dumps([type(DeployedFlow.from_deployment(identifier)).__name__,
                  type(DeployedFlow.from_dagster(identifier)).__name__]))
"""


def test_deployer_round_trip(tmp_path, dagster_home, monkeypatch):
    from metaflow import Deployer

    from metaflow_dagster.deploy.deployed_flow import DagsterDeployedFlow

    directory = flow_dir(tmp_path, FLOW)
    deployer = Deployer(
        str(directory / ("%s.py" % FLOW)),
        show_output=False,
        cwd=str(directory),
        env={"DEPLOYER_ENV_VAR": "from-deployer-env"},
        decospecs=['environment:vars={"DEPLOYER_WITH_VAR": "from-with"}'],
        branch="feature",
        config_value=[("cfg", {"greeting": "hi"})],
    )
    deployed = deployer.dagster(dagster_home=str(dagster_home)).create()
    assert isinstance(deployed, DagsterDeployedFlow)
    assert deployed.flow_name == "DeployerFlow"
    assert deployed.job_name == "deployer_test_feature_DeployerFlow"
    assert deployed.definitions_file == str(
        directory / "deployer_test_feature_deployerflow_dagster.py")

    # Several Parameters at once, a structured one included.
    triggered = deployed.trigger(count=7, weights={"k": [1, 2]}, label="two words")
    assert triggered.status in ("PENDING", "RUNNING", "SUCCEEDED")  # Metaflow's words
    triggered.wait_for_completion(check_interval=1, timeout=150)
    assert (triggered.status, triggered.dagster_status) == ("SUCCEEDED", "SUCCESS")
    assert not triggered.is_running
    client(directory)
    run = triggered.run
    assert run.successful
    assert run["start"].task.data.seen == {
        "count": 7, "weights": {"k": [1, 2]}, "label": "two words", "greeting": "hi",
        "branch": "test.feature", "with_env": "from-with",
        "deployer_env": "from-deployer-env"}
    assert run["end"].task.data.end_with_env == "from-with"
    # The production token is the one of the run's namespace.
    assert "production:%s" % deployed.production_token in run.system_tags

    # A fresh Python process finds the deployment, and the run, from the identifier alone.
    second = fresh_python(SECOND_PROCESS, deployed.name, directory,
                          triggered.pathspec.split("/")[1], cwd=tmp_path,
                          dagster_home=dagster_home)
    assert second["type"] == "DagsterDeployedFlow"
    assert second["listed"] == [deployed.name] and second["others"] == 0
    assert second["earlier"] == ["SUCCEEDED", "SUCCESS", False]
    assert second["status"] == "SUCCEEDED" and second["successful"]
    assert second["pathspec"] != triggered.pathspec
    assert second["seen"]["label"] == "second process" and second["seen"]["count"] == 3
    assert second["seen"]["greeting"] == "hi"  # the deployment's config value
    assert second["seen"]["branch"] == "test.feature"
    assert second["token"] == deployed.production_token
    # Metaflow's default implementation, when configured so, and the per-type form.
    assert fresh_python(DEFAULT_IMPL, deployed.name, cwd=tmp_path, dagster_home=dagster_home,
                        METAFLOW_DEFAULT_FROM_DEPLOYMENT_IMPL="dagster") == [
        "DagsterDeployedFlow", "DagsterDeployedFlow"]

    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    definitions = deployed.definitions_file
    assert deployed.delete()
    assert not (directory / definitions).exists()
    assert list(DagsterDeployedFlow.list_deployed_flows()) == []


STATUS_LOOP = """
import json
import sys
import time

from metaflow import DeployedFlow

# As code written for Metaflow's other schedulers waits for a run.
identifier, run_id = sys.argv[1:]
run = DeployedFlow.get_triggered_run(identifier, run_id, impl="dagster")
deadline = time.time() + 200
while (run.status or "").upper() not in ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"):
    assert time.time() < deadline, run.status
    time.sleep(1)
time.sleep(2)  # an ABORTED run may still be stopping its tasks
print(json.dumps([run.status, run.dagster_status, run.is_running]))
"""


def _status_loop(tmp_path, dagster_home, deployed, triggered):
    return fresh_python(STATUS_LOOP, deployed.name, triggered.pathspec.split("/")[1],
                        cwd=tmp_path, dagster_home=dagster_home)


def _deploy(tmp_path, dagster_home, flow, **create_options):
    from metaflow import Deployer

    directory = flow_dir(tmp_path, flow)
    return directory, Deployer(str(directory / ("%s.py" % flow)), show_output=False,
                               cwd=str(directory)).dagster(
        dagster_home=str(dagster_home)).create(**create_options)


def test_a_failed_run_reads_failed(tmp_path, dagster_home):
    directory, deployed = _deploy(tmp_path, dagster_home, "failing_flow")
    triggered = deployed.trigger()
    assert _status_loop(tmp_path, dagster_home, deployed, triggered) == [
        "FAILED", "FAILURE", False]
    assert (triggered.status, triggered.is_running) == ("FAILED", False)
    client(directory)
    run = triggered.run
    assert not run.successful
    assert "boom from step b" in str(run["b"].task.exception)


def test_a_run_past_its_workflow_timeout_reads_timed_out(tmp_path, dagster_home):
    directory, deployed = _deploy(tmp_path, dagster_home, "sleepy_flow", workflow_timeout=5)
    triggered = deployed.trigger(seconds=60)
    assert _status_loop(tmp_path, dagster_home, deployed, triggered) == [
        "TIMED_OUT", "FAILURE", False]


def test_a_terminated_run_reads_aborted(tmp_path, dagster_home):
    directory, deployed = _deploy(tmp_path, dagster_home, "gate_flow")
    triggered = deployed.trigger(gate="never-opened")
    assert wait_until(lambda: triggered.dagster_status == "STARTED", 120, interval=1)
    assert triggered.terminate() is True
    assert _status_loop(tmp_path, dagster_home, deployed, triggered) == [
        "ABORTED", "CANCELED", False]
    client(directory)
    assert not triggered.run.successful


# --- suspend / unsuspend ------------------------------------------------------------------

SUSPEND = "suspend_flow"


def _held_back(dagster_home, step) -> bool:
    """Has an op said, in the step logs Dagster captured, that the task of `step`
    waits until the run is unsuspended (runtime/suspension.py)?"""
    phrase = "/%s/t starts once it is unsuspended." % step
    return any(phrase in path.read_text(errors="replace")
               for path in Path(dagster_home).rglob("*.err"))


def _steps_log(directory):
    """{(step, "start" | "end"): time} from the flow's steps.log."""
    path = directory / "steps.log"
    if not path.exists():
        return {}
    return {(s, what): float(t) for s, what, t in
            (line.split() for line in path.read_text().splitlines())}


def _suspended_tag(dagster_home, triggered):
    state = embedded(dagster_home).run_state(triggered.dagster_run_id)
    return state.tags.get(naming.TAG_SUSPENDED)


def test_a_suspended_run_starts_no_new_task_until_unsuspended(tmp_path, dagster_home):
    directory, deployed = _deploy(tmp_path, dagster_home, SUSPEND)
    triggered = deployed.trigger()
    assert wait_until(lambda: ("a", "start") in _steps_log(directory), 120), _steps_log(
        directory)
    assert triggered.suspend() is True
    assert _suspended_tag(dagster_home, triggered) == "true"  # what the UI shows

    # a's task, running, finishes; b's does not start while the run is suspended.
    (directory / "a_gate").touch()
    assert wait_until(lambda: ("a", "end") in _steps_log(directory), 60)
    held_from = time.time()
    # b's op says, in its captured logs, that its task waits for the run to be unsuspended.
    assert wait_until(lambda: _held_back(dagster_home, "b"), 60)
    assert ("b", "start") not in _steps_log(directory), _steps_log(directory)
    assert (triggered.status, triggered.is_running) == ("RUNNING", True)
    state = embedded(dagster_home).run_state(triggered.dagster_run_id)
    assert {s.key: s.status for s in state.steps}.get("b") in (None, "IN_PROGRESS")

    released = time.time()
    assert triggered.unsuspend() is True
    triggered.wait_for_completion(check_interval=1, timeout=120)
    assert triggered.status == "SUCCEEDED"
    assert _suspended_tag(dagster_home, triggered) == "false"
    log = _steps_log(directory)
    assert log[("a", "end")] < held_from and log[("b", "start")] > released, log
    client(directory)
    assert triggered.run.successful
    assert len(list(triggered.run["b"])) == 1  # b ran once, after all


def test_a_suspended_run_can_be_terminated(tmp_path, dagster_home):
    directory, deployed = _deploy(tmp_path, dagster_home, SUSPEND)
    triggered = deployed.trigger()
    assert wait_until(lambda: ("a", "start") in _steps_log(directory), 120)
    assert triggered.suspend() is True
    (directory / "a_gate").touch()
    assert wait_until(lambda: ("a", "end") in _steps_log(directory), 60)
    assert triggered.terminate() is True
    triggered.wait_for_completion(check_interval=1, timeout=60)
    assert (triggered.status, triggered.dagster_status) == ("ABORTED", "CANCELED")
    assert ("b", "start") not in _steps_log(directory)


# --- two @project branches, deployed and triggered side by side ------------------------------

BRANCHES = """
import json
import sys

from metaflow import namespace, Deployer

flow_file = sys.argv[1]
deployed = {b: Deployer(flow_file, show_output=False, branch=b).dagster().create()
            for b in ("b1", "b2")}
runs = {b: d.trigger() for b, d in deployed.items()}  # both started before any is waited for
for run in runs.values():
    run.wait_for_completion(check_interval=1, timeout=300)
namespace(None)
print(json.dumps({b: {
    "status": run.status,
    "file": deployed[b].definitions_file,
    "token": deployed[b].production_token,
    "branch": run.run["start"].task.data.branch_name,
    "namespace": run.run["start"].task.data.namespace_seen,
    "tags": sorted(run.run.system_tags),
} for b, run in runs.items()}))
"""


def test_two_branch_deployments_never_touch_each_other(tmp_path):
    """In a fresh process, with no DAGSTER_HOME (the default home, under the test's own
    home directory): each deployment has its own file, and each run its own branch,
    namespace and production token."""
    directory = flow_dir(tmp_path, "prod_project_flow")
    seen = fresh_python(BRANCHES, directory / "prod_project_flow.py", cwd=directory,
                        DAGSTER_HOME="")
    assert {b: s["status"] for b, s in seen.items()} == {"b1": "SUCCEEDED", "b2": "SUCCEEDED"}
    assert seen["b1"]["token"] != seen["b2"]["token"]
    for branch, s in seen.items():
        assert s["file"] == str(directory / (
            "prod_demo_test_%s_prodprojectflow_dagster.py" % branch))
        assert s["branch"] == "test.%s" % branch
        assert s["namespace"] == "production:%s" % s["token"]
        assert {"project_branch:test.%s" % branch, "production:%s" % s["token"]} <= set(
            s["tags"])


# --- resume with new Parameter values ------------------------------------------------------

RESUME_PARAMS = "resume_params_flow"


def _executed(directory):
    """(step, task id) of each task that ran (cloned ones do not), from executions.log."""
    path = directory / "executions.log"
    return [tuple(line.split()) for line in path.read_text().splitlines()]


def test_resume_takes_parameters_and_the_steps_it_runs_read_them(tmp_path, dagster_home):
    """The shape of Metaflow's UX suite (test_resume.py, deployer mode): a foreach run
    fails on the item a Parameter names; resumed with another value (the Parameter's
    default, given explicitly), the failed split runs again and reads it, the splits
    that succeeded are cloned, the Parameters not given keep the origin run's values."""
    directory, deployed = _deploy(tmp_path, dagster_home, RESUME_PARAMS)
    failed = deployed.trigger(fail_on=2, label="origin")
    failed.wait_for_completion(check_interval=1, timeout=150)
    assert failed.status == "FAILED"
    client(directory)
    ran_before = len(_executed(directory))

    with pytest.raises(TypeError, match="unexpected keyword argument 'fail_onn'.*fail_on"):
        deployed.resume(origin_run_id=failed.run.id, fail_onn=-1)

    resumed = deployed.resume(origin_run_id=failed.run.id, fail_on=-1)
    resumed.wait_for_completion(check_interval=1, timeout=150)
    assert resumed.status == "SUCCEEDED"
    run = resumed.run
    assert run.successful and run.id != failed.run.id
    assert run["join"].task.data.results == [2, 4, 6]
    assert run["end"].task.data.final == (-1, "origin")  # label: the origin run's
    splits = {t.data.result: t for t in run["process"]}
    assert splits[4].data.seen_fail_on == -1  # the split that ran again read the new value
    # The splits that had succeeded were cloned, with what they had.
    assert [t.data.seen_fail_on for r, t in sorted(splits.items()) if r != 4] == [2, 2]
    assert all("origin-task-id" in t.metadata_dict for r, t in splits.items() if r != 4)
    ran = sorted(step for step, _ in _executed(directory)[ran_before:])
    assert ran == ["end", "join", "process"]

    # From the triggered run, with step_to_rerun: everything from start runs again.
    again = resumed.resume(step_to_rerun="start", label="again")
    again.wait_for_completion(check_interval=1, timeout=150)
    assert again.status == "SUCCEEDED"
    run = again.run
    assert run["end"].task.data.final == (-1, "again")
    assert all(t.data.label == "again" for t in run["process"])
    assert not any("origin-task-id" in t.metadata_dict for s in run for t in s)


# --- from_deployment by name; terminate / suspend of another user's deployment ------------


def test_from_deployment_by_dotted_job_name_by_path_and_from_the_deployer(
        tmp_path, dagster_home, monkeypatch):
    """As Argo's template names: `project.branch.FlowName` (in any case) finds the
    @project deployment among those of the Dagster home; so do its job name and the
    path of its definitions file; `Deployer(flow).dagster().from_deployment` gives the
    deployment with that deployer's options."""
    from metaflow import DeployedFlow, Deployer

    directory = flow_dir(tmp_path, "prod_project_flow")
    flow_file = str(directory / "prod_project_flow.py")
    deployed = Deployer(flow_file, show_output=False, cwd=str(directory), branch="b1").dagster(
        dagster_home=str(dagster_home)).create()
    Deployer(flow_file, show_output=False, cwd=str(directory), branch="b2").dagster(
        dagster_home=str(dagster_home)).create()

    from_deployer = Deployer(flow_file, show_output=False, env={"FROM_DEPLOYER": "1"}).dagster(
        dagster_home=str(dagster_home)).from_deployment("prod_demo.test.b1.ProdProjectFlow")
    assert from_deployer.name == deployed.name
    assert from_deployer.deployer.env_vars["FROM_DEPLOYER"] == "1"
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    for identifier in ("prod_demo.test.b1.prodprojectflow", "prod_demo_test_b1_ProdProjectFlow",
                       deployed.definitions_file, deployed.name):
        assert DeployedFlow.from_deployment(identifier, impl="dagster").name == deployed.name
        assert DeployedFlow.from_dagster(identifier).job_name == deployed.job_name
    with pytest.raises(ValueError, match="No Dagster deployment 'prod_demo.test.b3.Prod"
                       "ProjectFlow'.*prod_demo_test_b1_ProdProjectFlow, prod_demo_test_b2_"):
        DeployedFlow.from_dagster("prod_demo.test.b3.ProdProjectFlow")

    # The recovered deployment runs on its own branch.
    triggered = from_deployer.trigger()
    triggered.wait_for_completion(check_interval=1, timeout=150)
    assert triggered.status == "SUCCEEDED"
    client(directory)
    assert triggered.run["start"].task.data.branch_name == "test.b1"


ANOTHER_USER = """
import json
import sys

from metaflow import DeployedFlow

identifier, run_id, token = sys.argv[1:]
run = DeployedFlow.get_triggered_run(identifier, run_id, impl="dagster")
print(json.dumps([run.suspend(), run.terminate(), run.terminate(authorize="production:wrong"),
                  run.status, run.terminate(authorize="production:" + token)]))
"""


def test_another_user_terminates_or_suspends_only_with_the_production_token(
        tmp_path, dagster_home):
    """As on Argo: whoever deployed the flow may stop its runs; anyone else needs the
    deployment's production token (`terminate(authorize=...)`, `suspend(authorize=...)`)."""
    directory, deployed = _deploy(tmp_path, dagster_home, "gate_flow")
    triggered = deployed.trigger(gate="never-opened")
    assert wait_until(lambda: triggered.dagster_status == "STARTED", 120, interval=1)
    seen = fresh_python(ANOTHER_USER, deployed.name, triggered.pathspec.split("/")[1],
                        deployed.production_token, cwd=tmp_path, dagster_home=dagster_home,
                        METAFLOW_USER="someone-else",
                        METAFLOW_TOKEN_HOME=tmp_path / "their-tokens")
    assert seen == [False, False, False, "RUNNING", True]
    triggered.wait_for_completion(check_interval=1, timeout=60)
    assert (triggered.status, triggered.dagster_status) == ("ABORTED", "CANCELED")
    assert _suspended_tag(dagster_home, triggered) is None  # the refused suspend did nothing
