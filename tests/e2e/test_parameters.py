"""Metaflow Parameters become the start op's run config: defaults, values set at
launch, required parameters and deploy-time defaults reach every step."""

import json
import os

import pytest
from harness import (
    EXAMPLES,
    built_job,
    compile_flow,
    execute,
    failure_messages,
    load_definitions,
    metaflow_run,
    run_dagster,
    step_statuses,
)

pytestmark = pytest.mark.e2e

PARAMS = ("count", "ratio", "flag", "label", "config", "learning_rate")


def start_config_fields(job):
    return job.graph.node_named("start").definition.config_schema.as_field().config_type.fields


def params_seen(task):
    """The values of the flow's parameters as `self.<param>` in this task."""
    return {name: getattr(task.data, name) for name in PARAMS}


def assert_every_step_sees(run, expected):
    assert run["start"].task.data.seen == expected
    for step in ("start", "end"):
        assert params_seen(run[step].task) == expected, step


def test_defaults_reach_every_step(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "params_flow")
    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    run = metaflow_run(compiled, result)
    assert_every_step_sees(run, {
        "count": 3, "ratio": 0.5, "flag": False, "label": "hello world",
        "config": {"a": 1, "b": [1, 2]}, "learning_rate": 0.1,
    })
    assert run["start"].task.data.types == {
        "count": "int", "ratio": "float", "flag": "bool", "label": "str",
        "config": "dict", "learning_rate": "float",
    }


def test_run_config_values_reach_every_step(tmp_path, dagster_home):
    compiled = compile_flow(tmp_path, "params_flow")
    # The dashed parameter `learning-rate` is the config field `learning_rate`.
    assert set(start_config_fields(built_job(compiled))) == set(PARAMS)
    config = {
        "count": 7, "ratio": 2.5, "flag": True, "label": "set at launch",
        "config": '{"x": [3, 4], "y": "z"}', "learning_rate": 0.25,
    }
    result = execute(compiled, dagster_home, {"ops": {"start": {"config": config}}})
    assert result.success, result.output[-3000:]
    run = metaflow_run(compiled, result)
    assert_every_step_sees(run, dict(config, config={"x": [3, 4], "y": "z"}))
    assert run["start"].task.data.types["flag"] == "bool"
    assert run["start"].task.data.types["count"] == "int"


def test_a_value_init_rejects_fails_the_start_op_before_start_runs(tmp_path, dagster_home):
    """`flow.py init` runs alongside the start task, which waits for it: when init
    rejects a value (JSONType given text that is not JSON), the start op fails with
    init's own error, once (no retries), and the start step's code never runs."""
    from metaflow.exception import MetaflowNotFound

    compiled = compile_flow(tmp_path, "params_flow")
    config = {"config": "{not json"}
    result = execute(compiled, dagster_home, {"ops": {"start": {"config": config}}})
    assert result.status == "FAILURE"
    assert step_statuses(result)["start"] == "FAILURE"
    assert step_statuses(result).get("end") in (None, "SKIPPED")
    (message,) = failure_messages(dagster_home, result.dagster_run_id)
    assert "Could not initialise the Parameters of ParamsFlow/%s/_parameters" % (
        result.metaflow_run_id) in message, message
    assert "config" in message and "JSON" in message, message
    # init failed parsing the value, before registering the run; start never ran.
    with pytest.raises(MetaflowNotFound):
        metaflow_run(compiled, result)


def test_required_parameter(tmp_path, dagster_home):
    from dagster import DagsterInstance
    from metaflow import Flow, metadata, namespace
    from metaflow.exception import MetaflowNotFound

    compiled = compile_flow(tmp_path, "required_param_flow")
    field = start_config_fields(built_job(compiled))["who"]
    assert field.is_required

    # Without a value: a config error, before any run or task starts.
    proc = run_dagster(compiled, dagster_home)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "who" in output and "config" in output.lower(), output[-3000:]
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.get_runs() == []
    metadata("local@%s" % compiled.flow_dir)
    namespace(None)
    try:
        assert list(Flow(compiled.flow_name)) == []
    except MetaflowNotFound:
        pass

    result = execute(compiled, dagster_home, {"ops": {"start": {"config": {"who": "Ada"}}}})
    assert result.success, result.output[-3000:]
    run = metaflow_run(compiled, result)
    assert run["end"].task.data.greeting == "hello Ada"
    assert run["end"].task.data.who == "Ada"


def test_deploy_time_default_is_evaluated_once_at_create(tmp_path, dagster_home):
    """Seeds 003/004: DeploymentInfoFlow's default is a function of the deployment,
    evaluated by `dagster create`; every run sees that same value."""
    compiled = compile_flow(tmp_path, "deployment_info_flow", source_dir=EXAMPLES)
    module = load_definitions(compiled.defs_file)
    (param,) = module.FLOW.plan.parameters
    assert param.name == "deployment_info"
    deployed = json.loads(param.default)
    assert set(deployed) == {"who", "when"}
    assert deployed["who"] == os.environ["METAFLOW_USER"]
    job = module.defs.get_job_def(compiled.job_name)
    assert json.loads(start_config_fields(job)["deployment_info"].default_value) == deployed

    seen = []
    for _ in range(2):
        result = execute(compiled, dagster_home)
        assert result.success, result.output[-3000:]
        seen.append(metaflow_run(compiled, result)["start"].task.data.info)
    assert seen[0] == seen[1] == deployed
