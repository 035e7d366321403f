"""The check Metaflow's runtime makes after each task (the steps its self.next()
named are the graph's), with Metaflow's own messages, in memory."""

import pytest

from metaflow_dagster.plan import StepPlan
from metaflow_dagster.runtime.transitions import check_transition, transition_error

SPLIT = StepPlan("fork", "split", ["x", "y"], ["start"], matching_join="join")
SWITCH = StepPlan("route", "split-switch", ["high", "low"], ["start"],
                  switch_cases={"h": "high", "l": "low"})
END = StepPlan("end", "end", [], ["join"])


def test_the_transitions_of_the_graph_pass():
    assert transition_error(SPLIT, ["x", "y"]) is None
    assert transition_error(SWITCH, ["low"]) is None
    assert transition_error(END, []) is None


def test_a_step_that_never_called_next_gets_metaflows_message():
    assert transition_error(SPLIT, []) == (
        "Based on static analysis of the code, step *fork* was expected to transition to "
        "step(s) *x, y*. However, when the code was executed, self.next() was called with **. "
        "Make sure there is only one unconditional self.next() call in the end of your step. ")
    assert "called with *y, x*" in transition_error(SPLIT, ["y", "x"])


def test_a_switch_goes_to_exactly_one_of_its_cases():
    assert transition_error(SWITCH, []) == (
        "Switch step *route* should transition to exactly one step at runtime, but got: ")
    assert transition_error(SWITCH, ["middle"]) == (
        "Switch step *route* transitioned to unexpected step *middle*. Expected one of: "
        "high, low")


def test_the_op_fails_without_retries_and_names_the_task():
    from dagster import Failure

    with pytest.raises(Failure) as failure:
        check_transition(SPLIT, {"next_steps": ["x"]}, "F/dagster-1/fork/t")
    assert failure.value.description.startswith("Internal error:\nBased on static analysis")
    assert not failure.value.allow_retries
    assert failure.value.metadata["metaflow_pathspec"].value == "F/dagster-1/fork/t"
    # A task that reported nothing (its datastore could not be read): not checked.
    check_transition(SPLIT, {}, "F/dagster-1/fork/t")
