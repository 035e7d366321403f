"""Metaflow's Deployer API on Dagster (TYPE "dagster"), on real runs: create with
top-level options, trigger with Parameters, `from_deployment` in a second Python
process, `list_deployed_flows`, `delete`; a failing flow reports FAILURE."""

import json
import subprocess
import time

import pytest
from harness import PYTHON, env_for
from lifecycle_support import client, flow_dir

pytestmark = pytest.mark.e2e

FLOW = "lifecycle_deployer_flow"

SECOND_PROCESS = """
import json
import sys

from metaflow import DeployedFlow, metadata, namespace

identifier, flow_dir = sys.argv[1:]
deployed = DeployedFlow.from_deployment(identifier, impl="dagster")
listed = [d.name for d in DeployedFlow.list_deployed_flows(impl="dagster")]
others = list(DeployedFlow.list_dagster(flow_name="NoSuchFlow"))
triggered = deployed.trigger(label="second process", count=3)
triggered.wait_for_completion(check_interval=1, timeout=150)
metadata("local@" + flow_dir)
namespace(None)
print(json.dumps({
    "type": type(deployed).__name__,
    "listed": listed,
    "others": len(others),
    "status": triggered.status,
    "pathspec": triggered.pathspec,
    "seen": triggered.run["start"].task.data.seen,
    "successful": triggered.run.successful,
}))
"""


def test_deployer_round_trip(tmp_path, dagster_home, monkeypatch):
    from metaflow import Deployer

    from metaflow_dagster.deploy.deployed_flow import DagsterDeployedFlow

    directory = flow_dir(tmp_path, FLOW)
    deployer = Deployer(
        str(directory / ("%s.py" % FLOW)),
        show_output=False,
        cwd=str(directory),
        env={"LIFECYCLE_DEPLOYER_VAR": "from-deployer-env"},
        decospecs=['environment:vars={"LIFECYCLE_WITH_VAR": "from-with"}'],
        branch="feature",
        config_value=[("cfg", {"greeting": "hi"})],
    )
    deployed = deployer.dagster(dagster_home=str(dagster_home)).create()
    assert isinstance(deployed, DagsterDeployedFlow)
    assert deployed.flow_name == "LifecycleDeployerFlow"
    assert deployed.job_name == "lifecycle_test_feature_LifecycleDeployerFlow"

    # Several Parameters at once, a structured one included.
    triggered = deployed.trigger(count=7, weights={"k": [1, 2]}, label="two words")
    assert triggered.status is not None  # a Dagster state right away
    triggered.wait_for_completion(check_interval=1, timeout=150)
    assert triggered.status == "SUCCESS" and not triggered.is_running
    client(directory)
    run = triggered.run
    assert run.successful
    assert run["start"].task.data.seen == {
        "count": 7, "weights": {"k": [1, 2]}, "label": "two words", "greeting": "hi",
        "branch": "test.feature", "with_env": "from-with",
        "deployer_env": "from-deployer-env"}
    assert run["end"].task.data.end_with_env == "from-with"

    # A fresh Python process finds the deployment from its identifier alone.
    script = tmp_path / "second.py"
    script.write_text(SECOND_PROCESS)
    proc = subprocess.run([PYTHON, str(script), deployed.name, str(directory)],
                          cwd=tmp_path, capture_output=True, text=True,
                          env=env_for(dagster_home), timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    second = json.loads(proc.stdout.strip().splitlines()[-1])
    assert second["type"] == "DagsterDeployedFlow"
    assert second["listed"] == [deployed.name] and second["others"] == 0
    assert second["status"] == "SUCCESS" and second["successful"]
    assert second["pathspec"] != triggered.pathspec
    assert second["seen"]["label"] == "second process" and second["seen"]["count"] == 3
    assert second["seen"]["greeting"] == "hi"  # the deployment's config value

    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    definitions = deployed.definitions_file
    assert deployed.delete()
    assert not (directory / definitions).exists()
    assert list(DagsterDeployedFlow.list_deployed_flows()) == []


def test_failing_flow_reports_failure(tmp_path, dagster_home):
    from metaflow import Deployer

    directory = flow_dir(tmp_path, "failing_flow")
    deployed = Deployer(str(directory / "failing_flow.py"), show_output=False,
                        cwd=str(directory)).dagster(dagster_home=str(dagster_home)).create()
    triggered = deployed.trigger()
    triggered.wait_for_completion(check_interval=1, timeout=150)
    assert triggered.status == "FAILURE" and not triggered.is_running
    client(directory)
    run = triggered.run
    assert not run.successful
    assert "boom from step b" in str(run["b"].task.exception)


def test_terminate_a_triggered_run(tmp_path, dagster_home):
    from metaflow import Deployer

    directory = flow_dir(tmp_path, "lifecycle_gate_flow")
    deployed = Deployer(str(directory / "lifecycle_gate_flow.py"), show_output=False,
                        cwd=str(directory)).dagster(dagster_home=str(dagster_home)).create()
    triggered = deployed.trigger(gate="never-opened")
    deadline = time.monotonic() + 120
    while triggered.status != "STARTED":  # start waits for its gate
        assert time.monotonic() < deadline, triggered.status
        time.sleep(1)
    assert triggered.terminate() is True
    triggered.wait_for_completion(check_interval=1, timeout=60)
    assert triggered.status == "CANCELED" and not triggered.is_running
    client(directory)
    assert not triggered.run.successful
