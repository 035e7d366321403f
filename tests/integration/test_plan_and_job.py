"""The plan and the Dagster job that `dagster create` builds, asserted on the
objects themselves: op names, dependencies, dynamic mapping, collects, retry
policies and tags of the built JobDefinition, and the plan embedded in the file.

Each flow is compiled once per module with the real CLI; the definitions file is
then imported in-process, as Dagster loads it."""

import fcntl
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from harness import EXAMPLES, FLOWS, compile_flow, load_definitions

from metaflow_dagster.plan import SPEC_VERSION, FlowPlan

FLOWS_UNDER_TEST = {
    "linear_flow": FLOWS,
    "branch_flow": FLOWS,
    "foreach_flow": FLOWS,
    "foreach_multistep_flow": FLOWS,
    "nested_foreach_flow": FLOWS,
    "nested_foreach3_flow": FLOWS,
    "switch_flow": FLOWS,
    "switch_in_foreach_flow": FLOWS,
    "decorators_flow": FLOWS,
    "params_flow": FLOWS,
    "timeout_flow": FLOWS,
    "catch_divide_flow": EXAMPLES,
    "retry_timeout_flow": EXAMPLES,
}


@dataclass
class Built:
    module: object
    job: object
    plan: FlowPlan
    defs_file: object


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    # pytest-xdist workers share one compile of each flow (the first worker to
    # get a flow's lock compiles it); the parent of a worker's basetemp is the
    # session's own temp dir.
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "built_flows"
    shared.mkdir(exist_ok=True)

    def compile_once(name):
        flow_dir = shared / name
        flow_dir.mkdir(exist_ok=True)
        with open(flow_dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (flow_dir / "done").exists():
                compile_flow(flow_dir, name, source_dir=FLOWS_UNDER_TEST[name])
                (flow_dir / "done").touch()
        return flow_dir / "flow" / ("%s_dagster.py" % name)

    def load(defs_file):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = load_definitions(defs_file)
        plan = module.FLOW.plan
        return Built(module, module.defs.get_job_def(plan.job_name), plan, defs_file)

    # Compile two at a time (subprocesses); load one at a time: building a Dagster
    # job uses a process-global composition stack that threads would corrupt.
    with ThreadPoolExecutor(max_workers=2) as pool:
        defs_files = dict(zip(FLOWS_UNDER_TEST, pool.map(compile_once, FLOWS_UNDER_TEST)))
    return {name: load(defs_file) for name, defs_file in defs_files.items()}


def op_names(job):
    return {node.name for node in job.graph.nodes}


def dependencies(job):
    """{op: {input: (dependency type, [(upstream op, upstream output), ...])}}."""
    structure = job.graph.dependency_structure
    deps = {}
    for node_input in structure.inputs():
        upstream = [(o.node.name, o.output_def.name) for o in structure.get_deps_list(node_input)]
        kind = structure.get_dependency_type(node_input).value
        deps.setdefault(node_input.node.name, {})[node_input.input_def.name] = (kind, upstream)
    return deps


def mapped(job):
    structure = job.graph.dependency_structure
    return {node.name for node in job.graph.nodes if structure.is_dynamic_mapped(node.name)}


def definition(job, name):
    return job.graph.node_named(name).definition


def retry_policies(job):
    return {node.name: node.definition.retry_policy for node in job.graph.nodes}


# --- graph shapes -------------------------------------------------------------


def test_linear(built):
    job = built["linear_flow"].job
    assert op_names(job) == {"start", "a", "b", "end"}
    assert dependencies(job) == {
        "a": {"start": ("DIRECT", [("start", "result")])},
        "b": {"a": ("DIRECT", [("a", "result")])},
        "end": {"b": ("DIRECT", [("b", "result")])},
    }
    assert mapped(job) == set()


def test_static_branch_join_takes_every_branch(built):
    job = built["branch_flow"].job
    deps = dependencies(job)
    for branch in "abc":
        assert deps[branch] == {"start": ("DIRECT", [("start", "result")])}
    assert {name: dep for name, (_, [dep]) in deps["join"].items()} == {
        "a": ("a", "result"), "b": ("b", "result"), "c": ("c", "result")}


def test_foreach_maps_the_body_and_the_join_collects(built):
    job = built["foreach_flow"].job
    [start_out] = definition(job, "start").output_defs
    assert start_out.is_dynamic
    assert mapped(job) == {"body"}
    deps = dependencies(job)
    assert deps["body"] == {"start": ("DIRECT", [("start", "result")])}
    assert deps["join"] == {"splits": ("DYNAMIC_COLLECT", [("body", "result")])}
    assert deps["end"] == {"join": ("DIRECT", [("join", "result")])}
    # --max-workers applies per foreach: the mapped ops carry their foreach's tag.
    assert definition(job, "body").tags["metaflow/foreach"] == "start"
    assert "metaflow/foreach" not in definition(job, "join").tags


def test_foreach_multistep_body_is_mapped_op_by_op(built):
    job = built["foreach_multistep_flow"].job
    assert mapped(job) == {"body1", "body2"}
    deps = dependencies(job)
    assert deps["body2"] == {"body1": ("DIRECT", [("body1", "result")])}
    assert deps["join"] == {"splits": ("DYNAMIC_COLLECT", [("body2", "result")])}


def test_nested_foreach_becomes_a_region_op(built):
    b = built["nested_foreach_flow"]
    assert op_names(b.job) == {"start", "outer", "outer_join", "end"}
    region = b.plan.op("outer")
    assert region.kind == "region"
    assert region.steps == ["outer", "inner", "inner_join"]
    assert mapped(b.job) == {"outer"}
    assert dependencies(b.job)["outer_join"] == {
        "splits": ("DYNAMIC_COLLECT", [("outer", "result")])}
    # One plain output: the region runs its inner foreach itself.
    assert [o.is_dynamic for o in definition(b.job, "outer").output_defs] == [False]


def test_three_level_foreach_is_one_region_below_the_top_level(built):
    b = built["nested_foreach3_flow"]
    assert op_names(b.job) == {"start", "l1", "j1", "end"}
    assert b.plan.op("l1").kind == "region"
    assert b.plan.op("l1").steps == ["l1", "l2", "l3", "j3", "j2"]
    assert mapped(b.job) == {"l1"}


def test_switch_inside_a_foreach_becomes_a_region(built):
    b = built["switch_in_foreach_flow"]
    region = b.plan.op("body")
    assert region.kind == "region"
    assert set(region.steps) == {"body", "small", "big"}
    assert region.steps[0] == "body"
    assert op_names(b.job) == {"start", "body", "after", "join", "end"}
    assert mapped(b.job) == {"body", "after"}
    assert dependencies(b.job)["join"] == {
        "splits": ("DYNAMIC_COLLECT", [("after", "result")])}


def test_top_level_switch_has_one_optional_output_per_case(built):
    b = built["switch_flow"]
    outputs = {o.name: o.is_required for o in definition(b.job, "start").output_defs}
    assert outputs == {"high": False, "low": False}
    assert b.plan.op("start").kind == "switch"
    deps = dependencies(b.job)
    assert deps["high"] == {"start": ("DIRECT", [("start", "high")])}
    assert deps["low"] == {"start": ("DIRECT", [("start", "low")])}
    # Where the branches meet: a fan-in of both; only the taken one will hold a value.
    assert deps["merge"] == {"branches": ("FAN_IN", [("high", "result"), ("low", "result")])}


# --- policies -------------------------------------------------------------------


def test_retry_policies_follow_retry_decorators(built):
    policies = retry_policies(built["decorators_flow"].job)
    assert {name for name, policy in policies.items() if policy} == {"flaky"}
    assert policies["flaky"].max_retries == 2
    assert policies["flaky"].delay is None  # no minutes_between_retries: retry at once


def test_retry_with_delay_and_timeout(built):
    """Seed 000's RetryFlow: RetryPolicy(max_retries=3, delay=120) and a 120 s timeout tag."""
    b = built["retry_timeout_flow"]
    process = definition(b.job, "process")
    assert (process.retry_policy.max_retries, process.retry_policy.delay) == (3, 120)
    assert process.tags["dagster/op_execution_timeout"] == "120"
    assert "dagster/op_execution_timeout" not in definition(b.job, "start").tags
    step = b.plan.step("process")
    assert step.env == {"MY_VAR": "hello", "OTHER": "world"}
    assert (step.user_code_retries, step.retry_delay_seconds, step.timeout_seconds) == (
        3, 120, 120)


def test_timeout_tag(built):
    b = built["timeout_flow"]
    assert definition(b.job, "slow").tags["dagster/op_execution_timeout"] == "4"
    assert b.plan.step("slow").timeout_seconds == 4


def test_catch_adds_metaflows_fallback_attempts(built):
    from metaflow.plugins.catch_decorator import NUM_FALLBACK_RETRIES

    b = built["catch_divide_flow"]
    step = b.plan.step("divide")
    assert (step.user_code_retries, step.error_retries) == (2, NUM_FALLBACK_RETRIES)
    assert definition(b.job, "divide").retry_policy.max_retries == 2 + NUM_FALLBACK_RETRIES
    assert mapped(b.job) == {"divide"}


def test_resources_tags(built):
    tags = definition(built["decorators_flow"].job, "sized").tags
    assert tags["metaflow-resources/cpu"] == "2"
    assert tags["metaflow-resources/memory"] == "2048"
    assert "dagster-k8s/config" in tags
    assert built["decorators_flow"].plan.step("sized").resources == {"cpu": "2",
                                                                      "memory": "2048"}


def test_the_plan_names_every_decorator_of_a_step(built):
    # What runtime/launch/task_template.py decides from (a step's own decorators).
    plan = built["decorators_flow"].plan
    assert "resources" in plan.step("sized").decorators
    assert {"retry", "catch"} <= set(built["catch_divide_flow"].plan.step("divide").decorators)
    assert plan.step("end").decorators == []


def test_op_tags_are_valid_dagster_tag_keys(built):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        load_definitions(built["decorators_flow"].defs_file)


# --- parameters -------------------------------------------------------------------


def test_parameters_are_the_start_ops_config(built):
    b = built["params_flow"]
    fields = definition(b.job, "start").config_schema.as_field().config_type.fields
    assert set(fields) == {"count", "ratio", "flag", "label", "config", "learning_rate"}
    assert not any(field.is_required for field in fields.values())
    assert fields["count"].default_value == 3
    assert fields["learning_rate"].default_value == 0.1
    params = {p.name: (p.field, p.type) for p in b.plan.parameters}
    assert params == {
        "count": ("count", "int"), "ratio": ("ratio", "float"), "flag": ("flag", "bool"),
        "label": ("label", "str"), "config": ("config", "json"),
        "learning-rate": ("learning_rate", "float"),
    }


# --- the plan ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FLOWS_UNDER_TEST))
def test_plan_round_trips_through_json(built, name):
    plan = built[name].plan
    assert FlowPlan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize("name", sorted(FLOWS_UNDER_TEST))
def test_every_step_runs_in_exactly_one_op(built, name):
    b = built[name]
    steps = [s for op in b.plan.ops for s in op.steps]
    assert sorted(steps) == sorted(b.plan.step_names())
    assert op_names(b.job) == {op.name for op in b.plan.ops}


def test_plan_from_another_spec_version_is_refused(built):
    text = built["linear_flow"].plan.to_json().replace(
        '"spec_version": %d' % SPEC_VERSION, '"spec_version": 99')
    with pytest.raises(ValueError, match="Regenerate"):
        FlowPlan.from_json(text)


def test_reserved_step_names_cover_dagsters_own():
    """validate.py spells out Dagster's reserved names so that compiling never
    imports dagster; they must stay the same set."""
    from dagster._core.definitions.utils import DISALLOWED_NAMES

    from metaflow_dagster.compiler.validate import DAGSTER_DISALLOWED_NAMES

    assert DAGSTER_DISALLOWED_NAMES == DISALLOWED_NAMES
