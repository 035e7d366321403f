"""Step decorators carried over to Dagster: @environment, @resources, @card,
@retry and @catch behave as under `flow.py run`, and show on the built job."""

import json

import pytest
from harness import (
    EXAMPLES,
    FLOWS,
    built_job,
    compile_flow,
    copy_flow,
    create,
    execute,
    load_definitions,
    metaflow_run,
)

pytestmark = pytest.mark.e2e


def test_decorators_flow(tmp_path, dagster_home):
    from metaflow.cards import get_cards

    compiled = compile_flow(tmp_path, "decorators_flow")
    job = built_job(compiled)

    # @resources: op tags of the built job, and Kubernetes requests for dagster-k8s.
    sized_tags = job.graph.node_named("sized").definition.tags
    assert sized_tags["metaflow-resources/cpu"] == "2"
    assert sized_tags["metaflow-resources/memory"] == "2048"
    k8s = sized_tags["dagster-k8s/config"]
    k8s = json.loads(k8s) if isinstance(k8s, str) else k8s
    assert k8s["container_config"]["resources"]["requests"] == {"cpu": "2", "memory": "2048M"}
    assert "dagster-k8s/config" not in job.graph.node_named("start").definition.tags

    # @retry(times=2): a RetryPolicy on that op only.
    assert job.graph.node_named("flaky").definition.retry_policy.max_retries == 2
    assert job.graph.node_named("carded").definition.retry_policy is None

    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    run = metaflow_run(compiled, result)
    assert run.successful

    # @environment reached the task's process.
    assert run["start"].task.data.my_var == "hello"
    # @card rendered a card for the task.
    assert len(get_cards(run["carded"].task)) >= 1
    # @retry: the first attempt failed, Dagster retried the op, and Metaflow saw
    # the retry as current.retry_count == 1.
    assert run["flaky"].task.data.retry_count == 1
    assert run["flaky"].task.current_attempt == 1
    assert result.steps["flaky"].attempts == 2
    assert result.steps["start"].attempts == 1


def test_catch_divide_by_zero(tmp_path, dagster_home):
    """Seed 001: the split dividing by zero fails on each of its 1 + 2 attempts
    (@retry(times=2)); @catch then stores the error and the run succeeds."""
    compiled = compile_flow(tmp_path, "catch_divide_flow", source_dir=EXAMPLES)
    result = execute(compiled, dagster_home)
    assert result.success, result.output[-3000:]
    run = metaflow_run(compiled, result)
    assert run.successful

    join = run["join"].task.data
    assert join.results == [10.0, 5.0]
    assert join.failures == 1

    divides = {t.id: t for t in run["divide"]}
    assert sorted(divides) == ["t-0", "t-1", "t-2"]
    failed = divides["t-0"]
    assert failed.data.divide_failed
    assert "ZeroDivisionError" in str(failed.data.divide_failed)
    assert not divides["t-1"].data.divide_failed and not divides["t-2"].data.divide_failed
    # Attempts 0, 1, 2: the user code ran 1 + 2 times; @catch caught the last failure.
    assert failed.current_attempt == 2
    assert result.steps["divide[0]"].attempts == 3
    assert result.steps["divide[1]"].attempts == 1
    assert result.steps["divide[2]"].attempts == 1


def _retry_policies(defs_file, job_name):
    job = load_definitions(defs_file).defs.get_job_def(job_name)
    return {node.name: node.definition.retry_policy for node in job.graph.nodes}


@pytest.mark.parametrize("where", ["create option", "top-level option"])
def test_with_retry_puts_a_retry_policy_on_every_op(tmp_path, where):
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    if where == "create option":
        create(flow_file, "--with", "retry")
    else:
        create(flow_file, top_args=("--with", "retry"))
    policies = _retry_policies(flow_file.parent / "linear_flow_dagster.py", "LinearFlow")
    assert set(policies) == {"start", "a", "b", "end"}
    # Metaflow's @retry defaults to times=3; no delay was asked for.
    assert {name: (p and p.max_retries) for name, p in policies.items()} == {
        "start": 3, "a": 3, "b": 3, "end": 3}
