"""When a task may be forked from a task template, and when it takes the
ordinary path (a fresh `python flow.py step` process): decided from the plan,
the command and the environment, in memory."""

import ast
import sys

import pytest

from metaflow_dagster import naming
from metaflow_dagster.plan import FlowPlan, OpPlan, StepPlan
from metaflow_dagster.runtime.launch import task_template
from metaflow_dagster.task.template import preamble_is_safe

FLOW_FILE = __file__  # any existing .py file stands for the flow file


def plan_with(decorators):
    steps = [StepPlan(name="start", type="start", next=[], parents=[], decorators=decorators)]
    return FlowPlan(flow_name="F", flow_file=FLOW_FILE, job_name="F", start_step="start",
                    end_step="start", steps=steps,
                    ops=[OpPlan(name="start", kind="step", step="start", steps=["start"])])


def argv(*top_args):
    return [sys.executable, FLOW_FILE, *top_args, "--with", "dagster_internal", "step",
            "start", "--run-id", "r", "--task-id", "t"]


def forkable(command, env=None) -> bool:
    return task_template._forkable(command, env or {})


@pytest.mark.parametrize("decorators", [
    [], ["retry", "catch", "timeout"], ["environment", "card", "resources", "secrets"],
])
def test_steps_whose_decorators_act_only_inside_the_task_may_fork(decorators, monkeypatch):
    monkeypatch.delenv(naming.TASK_TEMPLATE_ENV, raising=False)
    assert task_template.starter(plan_with(decorators), "start") is not None


@pytest.mark.parametrize("decorators", [
    None,  # a plan written before the field existed: unknown
    ["kubernetes"], ["batch"], ["conda"], ["pypi"], ["parallel"],
    ["retry", "my_own_decorator"],
])
def test_compute_layers_other_interpreters_and_unknown_decorators_take_the_ordinary_path(
        decorators, monkeypatch):
    monkeypatch.delenv(naming.TASK_TEMPLATE_ENV, raising=False)
    assert task_template.starter(plan_with(decorators), "start") is None


def test_the_task_template_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(naming.TASK_TEMPLATE_ENV, "0")
    assert task_template.starter(plan_with([]), "start") is None
    assert task_template.starter(plan_with([]), None) is None


def test_only_this_interpreter_running_a_flow_file_forks():
    assert forkable(argv("--environment=local"))
    assert not forkable(["/usr/bin/python3.9"] + argv()[1:])
    assert not forkable([sys.executable, "-m", "mymodule"] + argv()[2:])
    assert not forkable([sys.executable, "/no/such/flow.py"] + argv()[2:])


@pytest.mark.parametrize("top_args, env", [
    (["--environment", "conda"], {}),
    (["--environment=pypi"], {}),
    ([], {"METAFLOW_DEFAULT_ENVIRONMENT": "conda"}),
    ([], {"METAFLOW_DEFAULT_DECOSPECS": "kubernetes"}),
])
def test_other_environments_and_default_decorators_take_the_ordinary_path(top_args, env):
    assert not forkable(argv(*top_args), env)


def test_tasks_share_a_template_unless_their_environments_differ():
    shared = {"PATH": "/bin", "METAFLOW_USER": "u"}

    def key(cwd="/flows", **env):
        return task_template.template_key(argv(), dict(shared, **env), cwd)

    per_task = [{name: "%s-%d" % (name, task) for name in task_template.PER_TASK_ENV}
                for task in range(2)]
    assert key(**per_task[0]) == key(**per_task[1]) == key()
    assert key(STEP_VAR="a") != key(STEP_VAR="b") != key()  # @environment
    assert key(METAFLOW_DEFAULT_DATASTORE="s3") != key()
    assert key(cwd="/elsewhere") != key()
    # The per-task variables are exactly those the runtime sets per task or op.
    assert task_template.PER_TASK_ENV == {
        naming.RESULT_FILE_ENV, naming.PARAMETERS_READY_ENV, naming.DAGSTER_OP_ENV,
        naming.TRIGGERS_ENV, naming.TASK_OWNER_ENV}


@pytest.mark.parametrize("source", [
    "from metaflow import FlowSpec",
    '"""Doc."""\nimport os\nimport sys, json\nfrom datetime import datetime\n'
    "from metaflow import FlowSpec\nimport numpy\nX = 1",
    "from __future__ import annotations\nimport metaflow",
    "import os, metaflow",
    "from metaflow.cards import Markdown",
])
def test_flow_files_that_only_import_the_standard_library_before_metaflow_fork(source):
    assert preamble_is_safe(ast.parse(source))


@pytest.mark.parametrize("source", [
    'import os\nos.environ["METAFLOW_DEFAULT_DATASTORE"] = "s3"\nfrom metaflow import step',
    "import numpy\nfrom metaflow import FlowSpec",
    "import numpy, metaflow",
    "from . import helpers\nfrom metaflow import FlowSpec",
    "import logging\nlogging.basicConfig()\nfrom metaflow import FlowSpec",
    "try:\n    import metaflow\nexcept ImportError:\n    pass",
    "import os",
])
def test_flow_files_that_run_code_before_importing_metaflow_get_a_fresh_interpreter(source):
    assert not preamble_is_safe(ast.parse(source))
