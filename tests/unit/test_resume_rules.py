"""What a resumed or re-executed run reuses, decided from the plan and the Dagster
run's tags alone: the steps to run again, and whether an op reuses anything."""

from dataclasses import replace

import pytest
from dagster._core.storage.dagster_run import DagsterRun

from metaflow_dagster import naming
from metaflow_dagster.compiler.layout import layout_ops
from metaflow_dagster.plan import FlowPlan, StepPlan
from metaflow_dagster.runtime.resume import Reuse, rerun_steps, resume_tags

STEPS = [
    StepPlan("start", "split", ["left", "right"], [], matching_join="join"),
    StepPlan("left", "linear", ["join"], ["start"]),
    StepPlan("right", "linear", ["after_right"], ["start"]),
    StepPlan("after_right", "linear", ["join"], ["right"]),
    StepPlan("join", "join", ["end"], ["left", "after_right"], joins="start"),
    StepPlan("end", "end", [], ["join"]),
]
PLAN = FlowPlan(flow_name="ResumeRules", flow_file="f.py", job_name="ResumeRules",
                start_step="start", end_step="end", steps=STEPS, ops=layout_ops(STEPS))


@pytest.mark.parametrize("step,rerun", [
    (None, []),
    ("end", ["end"]),
    ("right", ["right", "after_right", "join", "end"]),
    ("start", [s.name for s in STEPS]),
])
def test_the_steps_to_rerun_are_the_step_and_all_after_it_in_order(step, rerun):
    assert rerun_steps(PLAN, step) == rerun


def test_a_step_to_rerun_that_is_not_a_step_names_the_steps():
    with pytest.raises(ValueError, match="Step \\*middle\\* is not a step of ResumeRules; "
                                         "steps are: start, left, right"):
        rerun_steps(PLAN, "middle")


def _run(tags=None, parent_run_id=None) -> DagsterRun:
    return DagsterRun(job_name="ResumeRules", tags=tags or {}, parent_run_id=parent_run_id,
                      root_run_id=parent_run_id)


def test_a_resumed_run_reuses_the_origin_except_the_steps_to_rerun():
    run = _run(resume_tags("mfdagster-origin", ["join", "end"]))
    reuse = Reuse.for_op(PLAN, "mfdagster-new", run, PLAN.op("left"))
    assert reuse.origin_run_id == "mfdagster-origin"
    assert reuse.rerun == {"join", "end"}
    assert not reuse.skip_done


def test_a_fresh_run_reuses_nothing():
    assert Reuse.for_op(PLAN, "mfdagster-new", _run(), PLAN.op("left")) is None


def test_a_re_execution_skips_done_tasks_only_in_regions():
    """Dagster re-executes a step op whole or not at all; a region op runs many
    tasks, and those that succeeded before are not run again."""
    run = _run(parent_run_id="0f3b4c0d-0000-0000-0000-000000000000")
    assert Reuse.for_op(PLAN, "mfdagster-same", run, PLAN.op("left")) is None
    region = replace(PLAN, ops=[replace(op, kind="region") for op in PLAN.ops])
    reuse = Reuse.for_op(region, "mfdagster-same", run, region.op("left"))
    assert reuse.skip_done and reuse.origin_run_id is None


def test_resume_tags_carry_the_origin_and_the_sorted_steps():
    assert resume_tags("mfdagster-origin", ["end", "join"]) == {
        naming.TAG_RESUME_ORIGIN: "mfdagster-origin",
        naming.TAG_RESUME_RERUN_STEPS: '["end", "join"]',
    }
