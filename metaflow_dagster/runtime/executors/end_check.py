"""A run whose end step did not run has not succeeded, whatever Dagster thinks.

Dagster counts a run successful when no step failed, and a skipped step is no
failure: were the end op ever skipped (its inputs never produced, as in files
written before the step where a switch's cases meet took a fan-in list), the run
would end SUCCESS while the Metaflow run never finished. Every compiled job's
executor (selector.py) therefore runs inside `EndMustRun`, which fails the
Dagster run itself in that case, so the UI, the run's status, its hooks and every
command of ours see a failed run.
"""

from typing import Optional

from dagster import DagsterEventType

from ... import naming
from ..ops import FlowRuntime
from .wrapping import WrappingExecutor


class EndStepSkipped(Exception):
    """The run skipped the flow's end step."""


class EndMustRun(WrappingExecutor):
    """Another executor's work, then the check that the end op was not skipped."""

    def execute(self, plan_context, execution_plan):
        yield from self.inner.execute(plan_context, execution_plan)
        plan = FlowRuntime.plan_of_job(plan_context.job.get_definition().name)
        # A re-execution of some steps need not include the end.
        if plan is not None and plan.end_step in execution_plan.step_keys_to_execute:
            problem = skipped_end(plan_context.instance, plan_context.dagster_run, plan)
            if problem:
                raise EndStepSkipped(problem)


def skipped_end(instance, dagster_run, plan) -> Optional[str]:
    """Why the run failed if Dagster skipped its end op (the end is an op of its own,
    named after its step); None if it did not."""
    records = instance.get_records_for_run(
        dagster_run.run_id, of_type=DagsterEventType.STEP_SKIPPED).records
    skipped = [record.event_log_entry.step_key for record in records]  # in the order skipped
    if plan.end_step not in skipped:
        return None
    return (
        "The end step *%s* was skipped, so the Metaflow run %s/%s did not finish (skipped: "
        "%s). This definitions file may have been written by an older metaflow-dagster, "
        "whose ops skipped a step where the cases of a switch meet: regenerate it with "
        "`python %s dagster create`."
        % (plan.end_step, plan.flow_name, naming.metaflow_run_id_of(dagster_run),
           ", ".join(skipped), plan.flow_file)
    )
