"""Plans made by hand, laid out into ops and rendered into a definitions file, which
is then executed in memory: assertions are on the built Dagster job (op names,
dependencies, dynamic mapping, retry policies, tags), not on the text."""

import itertools
import json
import types

import pytest
from harness import executor_of

from metaflow_dagster.compiler.layout import layout_ops
from metaflow_dagster.compiler.render import render
from metaflow_dagster.plan import FlowPlan, ParameterPlan, StepPlan

_modules = itertools.count()


def step(name, type_, next_=(), parents=(), **policies) -> StepPlan:
    return StepPlan(name=name, type=type_, next=list(next_), parents=list(parents), **policies)


def plan_of(steps, **fields) -> FlowPlan:
    return FlowPlan(flow_name="HandFlow", flow_file="hand_flow.py", job_name="HandFlow",
                    start_step="start", end_step="end", steps=steps, ops=layout_ops(steps),
                    **fields)


def build(plan: FlowPlan):
    """The rendered file, executed as a module (as Dagster loads it); its job."""
    text = render(plan, "python hand_flow.py dagster create")
    module = types.ModuleType("hand_defs_%d" % next(_modules))
    exec(compile(text, "<definitions>", "exec"), module.__dict__)
    return text, module.defs.get_job_def(plan.job_name)


def dependencies(job):
    structure = job.graph.dependency_structure
    deps = {}
    for node_input in structure.inputs():
        upstream = [(o.node.name, o.output_def.name) for o in structure.get_deps_list(node_input)]
        deps.setdefault(node_input.node.name, {})[node_input.input_def.name] = (
            structure.get_dependency_type(node_input).value, upstream)
    return deps


LINEAR = [
    step("start", "start", ["a"]),
    step("a", "linear", ["end"], ["start"], user_code_retries=2, retry_delay_seconds=60,
         timeout_seconds=90, resources={"cpu": "2", "memory": "4096"}),
    step("end", "end", [], ["a"]),
]

FOREACH = [
    step("start", "foreach", ["body"], matching_join="join"),
    step("body", "linear", ["join"], ["start"], foreach_stack=["start"]),
    step("join", "join", ["end"], ["body"], joins="start"),
    step("end", "end", [], ["join"]),
]

NESTED = [
    step("start", "foreach", ["outer"], matching_join="outer_join"),
    step("outer", "foreach", ["inner"], ["start"], foreach_stack=["start"],
         matching_join="inner_join"),
    step("inner", "linear", ["inner_join"], ["outer"], foreach_stack=["start", "outer"]),
    step("inner_join", "join", ["outer_join"], ["inner"], foreach_stack=["start"],
         joins="outer"),
    step("outer_join", "join", ["end"], ["inner_join"], joins="start"),
    step("end", "end", [], ["outer_join"]),
]

SWITCH = [
    step("start", "split-switch", ["high", "low"], switch_cases={"h": "high", "l": "low"}),
    step("high", "linear", ["end"], ["start"]),
    step("low", "linear", ["end"], ["start"]),
    step("end", "end", [], ["high", "low"]),
]


def test_a_linear_flow_is_a_chain_of_ops_with_the_steps_policies():
    _, job = build(plan_of(LINEAR))
    assert dependencies(job) == {
        "a": {"start": ("DIRECT", [("start", "result")])},
        "end": {"a": ("DIRECT", [("a", "result")])},
    }
    a = job.graph.node_named("a").definition
    assert (a.retry_policy.max_retries, a.retry_policy.delay) == (2, 60)
    assert a.tags["dagster/op_execution_timeout"] == "90"
    k8s = json.loads(a.tags["dagster-k8s/config"])  # Dagster keeps tag values as strings
    assert k8s["container_config"]["resources"]["requests"] == {"cpu": "2", "memory": "4096M"}
    assert job.graph.node_named("start").definition.retry_policy is None


def test_a_foreach_maps_its_body_and_the_join_collects():
    plan = plan_of(FOREACH, max_workers=7)
    _, job = build(plan)
    structure = job.graph.dependency_structure
    assert [n.name for n in job.graph.nodes if structure.is_dynamic_mapped(n.name)] == ["body"]
    assert dependencies(job)["join"] == {"splits": ("DYNAMIC_COLLECT", [("body", "result")])}
    assert job.graph.node_named("body").definition.tags["metaflow/foreach"] == "start"
    assert executor_of(job)._tag_concurrency_limits == [{"key": "metaflow/foreach",
                                     "value": {"applyLimitPerUniqueValue": True}, "limit": 7}]


def test_a_nested_foreach_runs_as_one_region_op_inside_the_outer_map():
    plan = plan_of(NESTED)
    assert [(op.name, op.kind, op.steps) for op in plan.ops] == [
        ("start", "foreach", ["start"]),
        ("outer", "region", ["outer", "inner", "inner_join"]),
        ("outer_join", "step", ["outer_join"]),
        ("end", "step", ["end"]),
    ]
    _, job = build(plan)
    assert {n.name for n in job.graph.nodes} == {"start", "outer", "outer_join", "end"}
    assert dependencies(job)["outer_join"] == {
        "splits": ("DYNAMIC_COLLECT", [("outer", "result")])}


def test_a_switch_has_one_optional_output_per_case_and_the_merge_takes_either():
    _, job = build(plan_of(SWITCH))
    outputs = {o.name: o.is_required for o in job.graph.node_named("start").definition.output_defs}
    assert outputs == {"high": False, "low": False}
    assert dependencies(job)["end"] == {
        "branches": ("FAN_IN", [("high", "result"), ("low", "result")])}


def _switch_meeting_at(kind):
    """start -(switch)-> {a | b} -> m, where m is a step of `kind`, then on to end."""
    meeting = "end" if kind == "end" else "m"
    head = [
        step("start", "split-switch", ["a", "b"], switch_cases={"x": "a", "y": "b"}),
        step("a", "linear", [meeting], ["start"]),
        step("b", "linear", [meeting], ["start"]),
    ]
    tails = {
        "linear": [step("m", "linear", ["end"], ["a", "b"]),
                   step("end", "end", [], ["m"])],
        "split": [step("m", "split", ["x", "y"], ["a", "b"], matching_join="j"),
                  step("x", "linear", ["j"], ["m"]),
                  step("y", "linear", ["j"], ["m"]),
                  step("j", "join", ["end"], ["x", "y"], joins="m"),
                  step("end", "end", [], ["j"])],
        "foreach": [step("m", "foreach", ["body"], ["a", "b"], matching_join="j"),
                    step("body", "linear", ["j"], ["m"], foreach_stack=["m"]),
                    step("j", "join", ["end"], ["body"], joins="m"),
                    step("end", "end", [], ["j"])],
        "split-switch": [step("m", "split-switch", ["c", "d"], ["a", "b"],
                              switch_cases={"c": "c", "d": "d"}),
                         step("c", "linear", ["end"], ["m"]),
                         step("d", "linear", ["end"], ["m"]),
                         step("end", "end", [], ["c", "d"])],
        "end": [step("end", "end", [], ["a", "b"])],
    }
    return head + tails[kind]


@pytest.mark.parametrize("kind", ["linear", "split", "foreach", "split-switch", "end"])
def test_the_step_where_a_switchs_cases_meet_takes_a_fan_in_list_whatever_its_type(kind):
    # Dagster skips an op as soon as one of its separate inputs is missing: with one
    # input per case, the meeting step (and all after it, the end too) would never run.
    plan = plan_of(_switch_meeting_at(kind))
    meeting = "end" if kind == "end" else "m"
    assert plan.op(meeting).fan_in and plan.op(meeting).inputs == ["a", "b"]
    _, job = build(plan)
    assert dependencies(job)[meeting] == {
        "branches": ("FAN_IN", [("a", "result"), ("b", "result")])}
    assert [op.name for op in plan.ops if op.fan_in] == [meeting] + (
        ["end"] if kind == "split-switch" else [])


def test_a_join_takes_each_branch_as_its_own_input():
    # Every branch of a split runs: the join waits for each of them.
    plan = plan_of(_switch_meeting_at("split"))
    assert not plan.op("j").fan_in
    _, job = build(plan)
    assert dependencies(job)["j"] == {"x": ("DIRECT", [("x", "result")]),
                                      "y": ("DIRECT", [("y", "result")])}


def test_parameters_are_typed_config_fields_of_the_start_op():
    params = [ParameterPlan("alpha", "alpha", "float", 0.5, help="Learning rate"),
              ParameterPlan("n-rows", "n_rows", "int", None, required=True)]
    _, job = build(plan_of(LINEAR, parameters=params))
    fields = job.graph.node_named("start").definition.config_schema.as_field().config_type.fields
    assert fields["alpha"].default_value == 0.5
    assert fields["alpha"].description == "Learning rate"
    assert fields["n_rows"].is_required


@pytest.mark.parametrize("steps", [LINEAR, FOREACH, NESTED, SWITCH])
def test_the_file_is_deterministic(steps):
    text, _ = build(plan_of(steps))
    assert render(plan_of(steps), "python hand_flow.py dagster create") == text


def test_resources_become_the_pod_spec_dagsters_k8s_executor_builds():
    """@resources(cpu, memory, disk, gpu, shared_memory) in the op's dagster-k8s/config
    tag, turned into a Job by dagster-k8s's own builders (the k8s executor's path; no
    cluster needed to build it)."""
    dagster_k8s_job = pytest.importorskip("dagster_k8s.job")
    resources = {"cpu": "4", "memory": "16000", "disk": "20480", "gpu": "1",
                 "shared_memory": "2048"}
    steps = [step("start", "start", ["a"]), step("a", "linear", ["end"], ["start"],
                                                  resources=resources),
             step("end", "end", [], ["a"])]
    _, job = build(plan_of(steps))
    tags = job.graph.node_named("a").definition.tags
    user_config = dagster_k8s_job.get_user_defined_k8s_config(tags)
    k8s_job = dagster_k8s_job.construct_dagster_k8s_job(
        dagster_k8s_job.DagsterK8sJobConfig(job_image="img", dagster_home="/opt/dagster"),
        ["dagster", "api", "execute_step"], "job-a", user_config)
    pod = k8s_job.spec.template.spec
    [container] = pod.containers
    assert container.resources.requests == {"cpu": "4", "memory": "16000M",
                                            "ephemeral-storage": "20480M"}
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    assert [(m.name, m.mount_path) for m in container.volume_mounts] == [("dshm", "/dev/shm")]
    [volume] = [v for v in pod.volumes if v.name == "dshm"]
    assert (volume.empty_dir.medium, volume.empty_dir.size_limit) == ("Memory", "2048Mi")


def test_a_compute_layer_step_requests_nothing_of_dagsters_k8s_executor():
    """Its resources go to Metaflow's own Kubernetes job; the op only waits for it."""
    compute = {"command": ["kubernetes", "step"], "options": ["--cpu", "4"]}
    steps = [step("start", "start", ["a"]), step("a", "linear", ["end"], ["start"],
                                                  resources={"cpu": "4"}, compute=compute),
             step("end", "end", [], ["a"])]
    _, job = build(plan_of(steps))
    tags = job.graph.node_named("a").definition.tags
    assert "dagster-k8s/config" not in tags and tags["metaflow-resources/cpu"] == "4"
