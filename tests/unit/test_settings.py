"""The plan's Metaflow settings as they take effect on a worker: the worker's own
environment wins, setting by setting (runtime/launch/settings.py)."""

import os
import sys

import pytest

from metaflow_dagster.plan import FlowPlan
from metaflow_dagster.runtime.launch import settings


def _plan(**plan_settings) -> FlowPlan:
    return FlowPlan(flow_name="F", flow_file="f.py", job_name="F", start_step="start",
                    end_step="end", steps=[], ops=[], settings=plan_settings)


@pytest.fixture
def worker(monkeypatch):
    env = {}
    monkeypatch.setattr(settings, "WORKER_ENV", env)
    return env


S3 = {"METAFLOW_DEFAULT_DATASTORE": "s3", "METAFLOW_DATASTORE_SYSROOT_S3": "s3://plan/root",
      "METAFLOW_S3_ENDPOINT_URL": "http://plan:9000", "METAFLOW_DEFAULT_METADATA": "local"}


def test_the_workers_environment_overrides_each_setting_it_sets(worker):
    worker["METAFLOW_S3_ENDPOINT_URL"] = "http://worker:9000"
    plan = _plan(**S3)
    assert settings.effective_settings(plan) == dict(S3, METAFLOW_S3_ENDPOINT_URL="http://worker:9000")
    assert settings.datastore_location(plan) == ("s3", "s3://plan/root")
    assert settings.setting_source(plan, "METAFLOW_S3_ENDPOINT_URL") == \
        "METAFLOW_S3_ENDPOINT_URL, set in this worker's environment"
    assert settings.setting_source(plan, "METAFLOW_DATASTORE_SYSROOT_S3") == \
        "METAFLOW_DATASTORE_SYSROOT_S3, from the definitions file"


def test_a_local_datastore_lives_in_the_metaflow_folder_of_its_sysroot(worker):
    plan = _plan(METAFLOW_DEFAULT_DATASTORE="local",
                 METAFLOW_DATASTORE_SYSROOT_LOCAL="/laptop/project")
    assert settings.datastore_location(plan) == ("local", "/laptop/project/.metaflow")
    worker["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = "/shared/project"
    assert settings.datastore_location(plan) == ("local", "/shared/project/.metaflow")
    # Local metadata goes where the datastore is.
    assert settings.task_settings(plan)["METAFLOW_DATASTORE_SYSROOT_LOCAL"] == "/shared/project"


def test_settings_given_to_the_process_leave_the_tasks_environment_alone(worker, monkeypatch):
    # (set then deleted: monkeypatch restores the variable's absence afterwards)
    for name in S3:
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    monkeypatch.setattr(settings, "_applied", set())
    # Where Metaflow has read its configuration already (the user's process), nothing.
    monkeypatch.setitem(sys.modules, "metaflow.metaflow_config", object())
    settings.apply_to_process(_plan(**S3))
    assert "METAFLOW_S3_ENDPOINT_URL" not in os.environ
    # Before the first `import metaflow` (an op's process), the plan's settings.
    monkeypatch.delitem(sys.modules, "metaflow.metaflow_config")
    settings.apply_to_process(_plan(**S3))
    assert os.environ["METAFLOW_S3_ENDPOINT_URL"] == "http://plan:9000"
    # Another plan's tasks do not inherit it as if the worker had set it.
    assert "METAFLOW_S3_ENDPOINT_URL" not in settings.worker_environment()


def test_tasks_run_in_the_package_or_beside_a_local_datastore(worker):
    assert settings.working_directory(_plan(**S3), "/cache/abc") == "/cache/abc"
    local = _plan(METAFLOW_DEFAULT_DATASTORE="local",
                  METAFLOW_DATASTORE_SYSROOT_LOCAL="/laptop/project")
    assert settings.working_directory(local, "/cache/abc") == "/laptop/project"
