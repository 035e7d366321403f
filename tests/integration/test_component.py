"""The dg component (metaflow_dagster.MetaflowFlowComponent) against `dagster create`: the
same options give the same plan and the same Definitions (job snapshot, retry policies,
pools, hooks, executor, schedules, sensors, the flow's asset); job options apply without
new state; errors name defs.yaml, the field and what to do. Components are loaded with
Dagster's own test sandbox; the state is computed by the real CLI in a subprocess."""

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey
from dagster._serdes import serialize_value
from dagster.components.testing import create_defs_folder_sandbox
from harness import FLOWS, create, env_for, load_definitions

from metaflow_dagster.component import MetaflowFlowComponent
from metaflow_dagster.component.definitions import flow_definitions
from metaflow_dagster.runtime import FlowRuntime

# YAML attributes -> the same options of `python flow.py [top] dagster create [create]`.
TOP_LEVEL = {"branch": "--branch", "datastore": "--datastore", "metadata": "--metadata",
             "environment": "--environment", "package_suffixes": "--package-suffixes"}
CREATE = {"job_name": "--name", "executor": "--executor", "max_workers": "--max-workers",
          "pool": "--pool", "pool_limit": "--pool-limit", "workflow_timeout":
          "--workflow-timeout", "namespace": "--namespace", "schedule_status":
          "--schedule-status"}

CODE_REFERENCES = "dagster/code_references"
# What Dagster adds to the definitions of every component: where they come from.
COMPONENT_METADATA = {CODE_REFERENCES, "dagster/component_origin"}

CASES = [
    ("linear_flow", {}),
    ("foreach_flow", {"max_workers": 7, "pool": "shared", "pool_limit": 3, "tags": ["a", "b"],
                      "workflow_timeout": 60, "namespace": "team", "executor": "multiprocess"}),
    ("switch_flow", {}),
    ("nested_foreach_flow", {}),
    ("foreach_in_branch_flow", {}),
    ("prod_exit_hook_flow", {}),
    ("prod_schedule_flow", {"schedule_status": "stopped"}),
    ("prod_event_flow", {}),
    ("prod_downstream_flow", {"job_name": "downstream"}),
    ("params_flow", {"with_decorators": ["retry:times=2"]}),
    ("prod_project_flow", {"branch": "blue"}),
    ("prod_project_flow", {"production": True, "datastore": "local", "metadata": "local",
                           "environment": "local", "package_suffixes": ".py"}),
    ("prod_config_flow", {"config_values": {"cfg": {"x": 7, "label": "yaml"}}}),
]


def cli_args(attributes: dict):
    top, create_args = [], []
    for key, value in attributes.items():
        if key in TOP_LEVEL:
            top += [TOP_LEVEL[key], str(value)]
        elif key in CREATE:
            create_args += [CREATE[key], str(value)]
        elif key == "tags":
            create_args += [a for tag in value for a in ("--tag", tag)]
        elif key == "with_decorators":
            create_args += [a for spec in value for a in ("--with", spec)]
        elif key == "production":
            top.append("--production")
        elif key == "config_values":
            for name, config in value.items():
                top += ["--config-value", name, json.dumps(config, sort_keys=True)]
    return top, create_args


def generated(tmp_path: Path, flow: str, attributes: dict):
    """The definitions module `dagster create` writes for these options."""
    flow_dir = tmp_path / "generated"
    flow_dir.mkdir(parents=True)
    shutil.copy(FLOWS / ("%s.py" % flow), flow_dir)
    top, create_args = cli_args(attributes)
    create(flow_dir / ("%s.py" % flow), *create_args, top_args=top, defs_name="defs_file.py")
    return load_definitions(flow_dir / "defs_file.py")


def generated_default_plan(tmp_path: Path, flow: str):
    return generated(tmp_path / "default", flow, {}).FLOW.plan


def component_defs(sandbox, flow: str, attributes: dict, name: str = "flow"):
    """Scaffold the component beside a copy of the flow and build its definitions, the
    state computed as `dg` commands compute it."""
    defs_path = sandbox.defs_folder_path / name
    defs_path.mkdir(exist_ok=True)
    shutil.copy(FLOWS / ("%s.py" % flow), defs_path)
    write_defs_yaml(defs_path, dict(flow_file="%s.py" % flow, **attributes))
    with sandbox.build_component_tree() as tree:
        return tree.load_component(defs_path), tree.build_defs(defs_path)


def write_defs_yaml(defs_path: Path, attributes: dict):
    (defs_path / "defs.yaml").write_text(yaml.safe_dump(
        {"type": "metaflow_dagster.MetaflowFlowComponent", "attributes": attributes}))


@pytest.fixture
def sandbox(monkeypatch):
    # What every `dg` command sets: a state-backed component refreshes its state on load.
    monkeypatch.setenv("DAGSTER_IS_DEV_CLI", "1")
    with create_defs_folder_sandbox() as sandbox:
        yield sandbox


def _snapshot(job) -> dict:
    """The job's snapshot, but for its metadata (see _metadata), with the component's
    op definition names (`<job>__<op>`, invoked as `<op>`) as the file's."""
    text = serialize_value(job.get_job_snapshot()).replace('"%s__' % job.name, '"')
    snapshot = json.loads(text)
    snapshot.pop("metadata", None)
    return snapshot


def _metadata(job) -> dict:
    return {k: v for k, v in job.metadata.items() if k not in COMPONENT_METADATA}


def _policies(job) -> dict:
    nodes = job.graph.nodes
    return {n.name: (n.definition.retry_policy, n.definition.pool,
                     sorted(h.name for h in n.hook_defs)) for n in nodes}


def _schedules(defs) -> list:
    return [(s.name, s.cron_schedule, s.execution_timezone, s.default_status, s.job_name)
            for s in defs.schedules or []]


def _sensors(defs) -> list:
    return [(s.name, type(s).__name__, s.has_jobs and s.job_name, s.default_status,
             s.minimum_interval_seconds)
            for s in defs.sensors or []]


def _assets(defs) -> list:
    specs = list(defs.assets or [])
    return [(s.key, sorted(d.asset_key for d in s.deps), s.description, s.kinds) for s in specs]


@pytest.mark.parametrize("flow,attributes", CASES,
                         ids=["%s-%d" % (c[0], i) for i, c in enumerate(CASES)])
def test_the_component_builds_what_dagster_create_writes(tmp_path, sandbox, flow, attributes):
    module = generated(tmp_path, flow, attributes)
    component, defs = component_defs(sandbox, flow, attributes)
    expected = module.defs
    plan = module.FLOW.plan
    ours = FlowRuntime._by_job[plan.job_name].plan
    job, expected_job = defs.get_job_def(plan.job_name), expected.get_job_def(plan.job_name)

    # One compiler: the same plan, but for where each copy of the flow keeps its runs.
    assert replace(ours, package={}, settings={}) == replace(plan, package={}, settings={})
    assert ours.package["sha"] == plan.package["sha"]  # the same code, packaged once each
    # Two front doors, the same Definitions.
    assert _snapshot(job) == _snapshot(expected_job)
    assert {n.definition.name for n in job.graph.nodes} == {
        "%s__%s" % (job.name, n.name) for n in expected_job.graph.nodes}
    assert _metadata(job) == _metadata(expected_job)
    assert CODE_REFERENCES in job.metadata
    assert _policies(job) == _policies(expected_job)
    assert sorted(h.name for h in job.hook_defs) == sorted(h.name for h in expected_job.hook_defs)
    assert job.executor_def.name == expected_job.executor_def.name
    assert job.tags == expected_job.tags
    assert _schedules(defs) == _schedules(expected)
    assert _sensors(defs) == _sensors(expected)
    assert _assets(defs) == _assets(expected)

    # The flow's options really reached the plan.
    if "config_values" in attributes:
        assert ours.step("start").env == {"CFG_LABEL": "yaml"}
    elif {"production", "with_decorators", "branch"} & set(attributes):
        assert ours != generated_default_plan(tmp_path, flow)


def test_the_cases_cover_every_kind_of_definition(tmp_path, sandbox):
    """The comparison above would pass on empty lists: these flows do have them."""
    _, scheduled = component_defs(sandbox, "prod_schedule_flow", {"schedule_status": "stopped"})
    assert [s[1:4] for s in _schedules(scheduled)] == [
        ("0 10 * * *", "Europe/Berlin", scheduled.schedules[0].default_status)]
    assert scheduled.schedules[0].default_status.value == "STOPPED"
    _, downstream = component_defs(sandbox, "prod_downstream_flow", {}, name="downstream")
    assert [s[0] for s in _sensors(downstream)] == ["ProdDownstreamFlow_finish_sensor"]
    assert _assets(downstream)[0][1] == [AssetKey(["metaflow", "ProdUpstreamFlow"])]
    _, hooked = component_defs(sandbox, "prod_exit_hook_flow", {}, name="hooked")
    assert {h.name for h in hooked.get_job_def("ProdExitHookFlow").hook_defs} == {"on_error"}


def _state_files(sandbox) -> list:
    return sorted(sandbox.defs_folder_path.glob(".local_defs_state/*/state"))


def test_job_options_apply_without_new_state_and_flow_options_ask_for_it(sandbox, monkeypatch):
    component_defs(sandbox, "foreach_flow", {"max_workers": 5})
    [state] = _state_files(sandbox)
    stored = state.stat().st_mtime_ns
    # A code server: no refresh on load.
    monkeypatch.delenv("DAGSTER_IS_DEV_CLI")
    _, defs = component_defs(sandbox, "foreach_flow", {"max_workers": 9, "tags": ["x"],
                                                      "executor": "multiprocess"})
    plan = FlowRuntime._by_job["ForeachFlow"].plan
    assert (plan.max_workers, plan.tags, plan.executor) == (9, ["x"], "multiprocess")
    assert state.stat().st_mtime_ns == stored and _state_files(sandbox) == [state]

    with pytest.raises(Exception) as error:
        component_defs(sandbox, "foreach_flow", {"with_decorators": ["retry"]})
    message = str(error.value) + str(error.value.__cause__)
    assert "defs.yaml" in message and "no stored state for these options" in message
    assert "dg utils refresh-defs-state" in message


@pytest.mark.parametrize("attributes,field,expected", [
    ({"flow_file": "no_such_flow.py"}, "flow_file",
     "no_such_flow.py does not exist"),
    ({"flow_file": "linear_flow.py", "max_workers": 0}, "max_workers",
     "--max-workers must be at least 1 (got 0)."),
    ({"flow_file": "linear_flow.py", "pool": "two words"}, "pool",
     "--pool must be a name without spaces (got 'two words')."),
    ({"flow_file": "linear_flow.py", "workflow_timeout": -5}, "workflow_timeout",
     "--workflow-timeout must be a positive number of seconds."),
    ({"flow_file": "linear_flow.py", "tag": ["x"]}, "",
     "tag is not a field of metaflow_dagster.MetaflowFlowComponent: did you mean tags?"),
])
def test_a_bad_field_names_defs_yaml_the_field_and_the_clis_message(sandbox, attributes, field,
                                                                    expected):
    defs_path = sandbox.defs_folder_path / "flow"
    defs_path.mkdir()
    shutil.copy(FLOWS / "linear_flow.py", defs_path)
    write_defs_yaml(defs_path, attributes)
    with pytest.raises(Exception) as error, sandbox.build_component_tree() as tree:
        tree.build_defs(defs_path)
    message = "%s\n%s" % (error.value, error.value.__cause__)
    assert "defs.yaml" in message and "attributes%s" % (field and "." + field) in message
    assert expected in message


def test_a_flow_the_cli_refuses_fails_the_refresh_with_the_clis_message(sandbox):
    defs_path = sandbox.defs_folder_path / "flow"
    defs_path.mkdir()
    shutil.copy(FLOWS / "bad_parallel_flow.py", defs_path)
    write_defs_yaml(defs_path, {"flow_file": "bad_parallel_flow.py"})
    with pytest.raises(Exception) as error, sandbox.build_component_tree() as tree:
        tree.build_defs(defs_path)
    message = "%s\n%s" % (error.value, error.value.__cause__)
    assert "defs.yaml: compiling the flow failed" in message
    assert "not supported" in message and "dg utils refresh-defs-state" in message


LOAD_FROM_STATE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from dagster.components.core.component_tree import ComponentTree
    import importlib
    root = Path(sys.argv[1])
    sys.path.insert(0, str(root / "src"))
    tree = ComponentTree(defs_module=importlib.import_module(sys.argv[2] + ".defs"),
                         project_root=root)
    defs = tree.build_defs()
    print(sorted(j.name for j in defs.jobs))
    print(sorted(m for m in sys.modules if m == "metaflow" or m.startswith("metaflow.")
                 or m.startswith("metaflow_dagster.deploy.") or m.endswith("_flow")))
""")


def test_loading_from_state_imports_neither_the_flow_nor_metaflow(sandbox):
    component_defs(sandbox, "foreach_flow", {})
    proc = subprocess.run([sys.executable, "-c", LOAD_FROM_STATE, str(sandbox.project_root),
                           sandbox.project_name], capture_output=True, text=True,
                          env=env_for(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    jobs, imported = proc.stdout.splitlines()[-2:]
    assert jobs == "['ForeachFlow']"
    assert imported == "[]"


def test_the_class_is_what_dg_lists():
    assert "Metaflow flow" in MetaflowFlowComponent.__doc__.splitlines()[0]


def test_the_scaffolder_writes_a_defs_yaml_and_an_example_flow_that_load(sandbox):
    defs_path = sandbox.scaffold_component(MetaflowFlowComponent, defs_path="flows/hello",
                                           scaffold_params={"flow_file": "hello_flow.py"})
    written = yaml.safe_load((defs_path / "defs.yaml").read_text())
    assert written["attributes"] == {"flow_file": "hello_flow.py"}
    with sandbox.build_component_tree() as tree:
        defs = tree.build_defs(defs_path)
    assert [j.name for j in defs.jobs] == ["HelloFlow"]
    assert sorted(n.name for n in defs.get_job_def("HelloFlow").graph.nodes) == ["end", "start"]


def test_the_builder_makes_the_files_operations_definitions(tmp_path):
    """Options the component does not take yet (titles, priority, run retries,
    notifications) are in a plan's definitions all the same: built from the file's plan,
    they are the file's."""
    flow_dir = tmp_path / "generated"
    flow_dir.mkdir()
    shutil.copy(FLOWS / "foreach_flow.py", flow_dir)
    create(flow_dir / "foreach_flow.py", "--workflow-title", "T", "--workflow-priority", "3",
           "--run-retries", "2", "--notify-on-error", "--notify-slack-webhook-url",
           "env:SLACK_URL", "--notify-msteams-webhook-url", "env:TEAMS_URL",
           defs_name="defs_file.py")
    module = load_definitions(flow_dir / "defs_file.py")
    defs = flow_definitions(module.FLOW.plan)
    job, expected_job = defs.get_job_def("ForeachFlow"), module.defs.get_job_def("ForeachFlow")
    assert job.tags == expected_job.tags and "dagster/priority" in job.tags
    assert _sensors(defs) == _sensors(module.defs) and len(_sensors(defs)) >= 1
    assert {k: type(r).__name__ for k, r in defs.resources.items()} == \
        {k: type(r).__name__ for k, r in module.defs.resources.items()}
    assert len(defs.resources) == 2
