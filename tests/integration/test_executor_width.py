"""The metaflow executor (runtime/executors/threads.py) with many steps ready at once: it shows
Dagster's ActiveExecution the ready steps a window at a time. A window whose steps are all held
by a tag concurrency limit must not hold back the ready steps behind it, and the limit must
hold.

A plain Dagster job on a SQLite instance: a fan-out of 80 whose steps are limited to one at a
time (as a foreach under --max-workers 1), and one of 8 free steps that become ready after them,
behind more than a window of held steps."""

import time

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DynamicOut,
    DynamicOutput,
    Out,
    Output,
    execute_job,
    job,
    op,
    reconstructable,
)

from metaflow_dagster.runtime.executors.threads import metaflow_task_executor

LIMITED = 80
FREE = 8


def _fan(width, output_name="result"):
    for i in range(width):
        yield DynamicOutput(i, mapping_key=str(i), output_name=output_name)


@op(out={"items": DynamicOut(int), "done": Out(int)})
def fan_limited():
    yield from _fan(LIMITED, "items")
    yield Output(0, "done")


@op(out=DynamicOut(int))
def fan_free(_after: int):
    # Runs once fan_limited is done: its steps become ready behind the limited ones.
    yield from _fan(FREE)


@op(tags={"group": "limited"})
def limited(x: int) -> int:
    time.sleep(0.01)
    return x


@op(tags={"group": "free"})
def free(x: int) -> int:
    return x


@op
def total(a, b) -> int:
    return sum(a) + sum(b)


@job(executor_def=metaflow_task_executor)
def two_fan_outs():
    items, done = fan_limited()
    total(items.map(limited).collect(), fan_free(done).map(free).collect())


RUN_CONFIG = {"execution": {"config": {
    "max_concurrent": 4,
    "tag_concurrency_limits": [{"key": "group", "value": "limited", "limit": 1}],
}}}


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def test_steps_behind_a_window_held_by_a_limit_still_start(instance):
    with execute_job(reconstructable(two_fan_outs), instance=instance,
                     run_config=RUN_CONFIG) as result:
        assert result.success
        assert result.output_for_node("total") == sum(range(LIMITED)) + sum(range(FREE))
        run_id = result.run_id
    starts, ends = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            ends[event.step_key] = record.timestamp
    limited_steps = sorted((starts[k], ends[k]) for k in starts if k.startswith("limited["))
    free_ends = [ends[k] for k in ends if k.startswith("free[")]
    assert len(limited_steps) == LIMITED and len(free_ends) == FREE
    # The limit held: each limited step started after the one before it had ended.
    for (_, previous_end), (start, _) in zip(limited_steps, limited_steps[1:]):
        assert start >= previous_end
    # The free steps did not wait behind the held ones (they would have waited until fewer
    # than a window of them was left).
    assert max(free_ends) < limited_steps[LIMITED // 2][1]
