"""The check Metaflow's runtime makes after each task that succeeded: the steps
its self.next() named are those of the flow's graph (metaflow/runtime.py,
NativeRuntime._queue_tasks). A step whose code never calls self.next(), e.g. a
user decorator's fallback, fails the run there with the messages below; so it
does here, without retries (as there: the task ran, the flow is wrong)."""

from typing import List, Optional

from dagster import Failure

from .. import naming
from ..plan import StepPlan


def transition_error(step: StepPlan, next_steps: List[str]) -> Optional[str]:
    """Metaflow's runtime's message for a task of `step` whose self.next() named
    `next_steps`; None if they are those the graph has."""
    expected = step.next
    if step.type == "split-switch":
        if len(next_steps) != 1:
            msg = (
                "Switch step *{step}* should transition to exactly "
                "one step at runtime, but got: {actual}"
            )
            return msg.format(step=step.name, actual=", ".join(next_steps))
        if next_steps[0] not in expected:
            msg = (
                "Switch step *{step}* transitioned to unexpected "
                "step *{actual}*. Expected one of: {expected}"
            )
            return msg.format(step=step.name, actual=next_steps[0],
                              expected=", ".join(expected))
        return None
    if next_steps != expected:
        msg = (
            "Based on static analysis of the code, step *{step}* "
            "was expected to transition to step(s) *{expected}*. "
            "However, when the code was executed, self.next() was "
            "called with *{actual}*. Make sure there is only one "
            "unconditional self.next() call in the end of your "
            "step. "
        )
        return msg.format(step=step.name, expected=", ".join(expected),
                          actual=", ".join(next_steps))
    return None


def check_transition(step: StepPlan, result: dict, pathspec: str) -> None:
    """Raise Failure (no retries) if the task of `pathspec` (flow/run/step/task), which
    succeeded and reported `result`, named other steps than the graph's. A result
    without the steps (a task that reported nothing) is not checked."""
    if naming.RESULT_NEXT_STEPS not in result:
        return
    error = transition_error(step, result[naming.RESULT_NEXT_STEPS])
    if error:
        raise Failure(
            description="Internal error:\n%s" % error,
            metadata={"metaflow_pathspec": pathspec},
            allow_retries=False,
        )
