"""What the user's commands say about runs, in memory: Metaflow's status words for
every Dagster run status, the progress lines of `--wait`, plain-text errors, the
default definitions file of a job, the Deployer options of an @project branch."""

import pytest

from metaflow_dagster import naming
from metaflow_dagster.compiler.layout import layout_ops
from metaflow_dagster.deploy.command import plain_text
from metaflow_dagster.deploy.deployed_flow import _project_kwargs
from metaflow_dagster.deploy.report import describe_state, progress_lines
from metaflow_dagster.deploy.runs import (
    FINISHED,
    METAFLOW_STATUS,
    RunState,
    StepState,
    metaflow_status,
)
from metaflow_dagster.plan import FlowPlan, StepPlan


def test_every_dagster_run_status_has_a_metaflow_word():
    from dagster import DagsterRunStatus

    assert set(METAFLOW_STATUS) == {s.value for s in DagsterRunStatus}
    assert set(METAFLOW_STATUS.values()) == {
        "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "ABORTED"}  # TIMED_OUT: a FAILED kind
    assert {METAFLOW_STATUS[s] for s in FINISHED} == {"SUCCEEDED", "FAILED", "ABORTED"}
    assert METAFLOW_STATUS["STARTED"] == "RUNNING" and METAFLOW_STATUS["QUEUED"] == "PENDING"


FOREACH = [
    StepPlan("start", "foreach", ["body"], [], matching_join="join"),
    StepPlan("body", "linear", ["join"], ["start"], foreach_stack=["start"]),
    StepPlan("join", "join", ["end"], ["body"], joins="start"),
    StepPlan("end", "end", [], ["join"]),
]
PLAN = FlowPlan(flow_name="HandFlow", flow_file="hand_flow.py", job_name="HandFlow",
                start_step="start", end_step="end", steps=FOREACH, ops=layout_ops(FOREACH))


def _state(*steps, status="STARTED", tags=None):
    return RunState("r1", status, "HandFlow", tags=tags or {},
                    steps=[StepState(key, st, t) for t, (key, st) in enumerate(steps)])


def test_progress_counts_the_splits_once_they_exist():
    shown = set()
    first = _state(("start", "SUCCESS"))
    assert list(progress_lines(first, PLAN, shown)) == ["    [1/4] start  SUCCESS"]
    mapped = _state(("start", "SUCCESS"), ("body[0]", "SUCCESS"), ("body[1]", "IN_PROGRESS"),
                    ("body[2]", "FAILURE"))
    assert list(progress_lines(mapped, PLAN, shown)) == [
        "    [2/6] body[0]  SUCCESS", "    [3/6] body[2]  FAILURE"]
    assert list(progress_lines(mapped, PLAN, shown)) == []  # each step said once
    assert list(progress_lines(mapped, None, set()))[-1] == "    [3/4] body[2]  FAILURE"


def test_status_shows_both_words_and_a_suspension():
    state = _state(("start", "IN_PROGRESS"),
                   tags={naming.TAG_SUSPENDED: naming.SUSPENDED, naming.TAG_FLOW_NAME: "F"})
    first = describe_state(state, "HandFlow", "RUNNING")[0]
    assert first.endswith("): RUNNING (Dagster STARTED), suspended")
    unsuspended = _state(tags={naming.TAG_SUSPENDED: naming.NOT_SUSPENDED})
    assert describe_state(unsuspended, "HandFlow", "RUNNING")[0].endswith(
        "): RUNNING (Dagster STARTED)")


class _NoTimeouts:
    """A target whose runs failed on nothing that says timeout."""

    def failure_messages(self, run_id):
        return []


def test_a_run_dagster_calls_successful_did_not_succeed_unless_its_end_step_ran():
    # Dagster counts a skipped step as no failure: a run that skipped its end step
    # (a definitions file written by an older version, run before its executor failed
    # such runs) ends SUCCESS, yet the Metaflow run never finished.
    skipped_end = _state(("start", "SUCCESS"), ("body[0]", "SUCCESS"), ("join", "SKIPPED"),
                         ("end", "SKIPPED"), status="SUCCESS")
    assert metaflow_status(_NoTimeouts(), skipped_end, "end") == "FAILED"
    lines = describe_state(skipped_end, "HandFlow", "FAILED", "hand_flow.py", None, "end")
    assert lines[0].endswith("): FAILED (Dagster SUCCESS)")
    assert lines[-1] == ("The end step end was skipped: the Metaflow run did not finish. "
                         "Regenerate the definitions file with `python hand_flow.py dagster "
                         "create`.")
    no_end = _state(("start", "SUCCESS"), status="SUCCESS")
    assert metaflow_status(_NoTimeouts(), no_end, "end") == "FAILED"
    # The end step has a name of the flow's choosing.
    assert metaflow_status(_NoTimeouts(), no_end, "start") == "SUCCEEDED"

    ran = _state(("start", "SUCCESS"), ("end", "SUCCESS"), status="SUCCESS")
    assert metaflow_status(_NoTimeouts(), ran, "end") == "SUCCEEDED"
    assert not any("skipped" in line for line in describe_state(
        ran, "HandFlow", "SUCCEEDED", "hand_flow.py", None, "end"))
    # A re-execution of some steps (not the end) continues a Metaflow run: Dagster says.
    some_steps = RunState("r2", "SUCCESS", "HandFlow", root_run_id="r1", parent_run_id="r1",
                          steps=[StepState("body[1]", "SUCCESS")])
    assert metaflow_status(_NoTimeouts(), some_steps, "end") == "SUCCEEDED"


def test_errors_lose_metaflows_bold_markers_only():
    assert plain_text("Step *nosuch* is not a step of *Flow*") == (
        "Step nosuch is not a step of Flow")
    assert plain_text("2 * 3 = 6, and *.py files") == "2 * 3 = 6, and *.py files"


def test_the_default_file_follows_the_job_name():
    assert naming.default_definitions_file("HelloFlow") == "helloflow_dagster.py"
    assert naming.default_definitions_file("proj_test_b1_HelloFlow") == (
        "proj_test_b1_helloflow_dagster.py")


@pytest.mark.parametrize("branch, kwargs", [
    (None, {}),
    ("user.alice", {}),
    ("test.feature", {"branch": "feature"}),
    ("prod", {"production": True}),
    ("prod.blue", {"production": True, "branch": "blue"}),
])
def test_the_deployer_options_of_a_branch(branch, kwargs):
    assert _project_kwargs(branch) == kwargs


# What a task stopped by Metaflow's @timeout leaves in its op's failure (its stderr,
# after the launcher's first line), as a run of tests/flows/timeout_flow.py gives it.
PACKAGE = "/tmp/metaflow-dagster-packages-0/bec28f71/.mf_code"
TIMEOUT_ERROR = "\n".join([
    "Step *slow* failed (TimeoutFlow/dagster-49c0947f/slow/t, attempt 0, exit code 1):",
    "<flow TimeoutFlow step slow> failed:",
    "    @timeout:",
    "    Step slow timed out after 0 hours, 0 minutes, 4 seconds",
    "    Stack when the timeout was raised:",
    '    >    File "<string>", line 21, in <module>',
] + [line for frame in range(12) for line in (
    '    >    File "%s/metaflow/cli.py", line %d, in main' % (PACKAGE, 700 + frame),
    "    >      start(auto_envvar_prefix=\"METAFLOW\", obj=state)")] + [
    '    >    File "/tmp/pkg/timeout_flow.py", line 30, in slow',
    "    >      time.sleep(120)",
])
# A step whose user code raised: Metaflow's "Internal error" and a Python traceback.
RAISED_ERROR = "\n".join([
    "Step *b* failed (FailingFlow/dagster-1/b/t, attempt 0, exit code 1):",
    "<flow FailingFlow step b> failed:",
    "    Internal error",
    "Traceback (most recent call last):",
] + ['  File "%s/metaflow/task.py", line %d, in run_step' % (PACKAGE, n)
     for n in range(20)] + [
    '  File "/tmp/pkg/failing_flow.py", line 12, in b',
    '    raise ValueError("boom from step b")',
    "ValueError: boom from step b",
])


def _shown_error(error):
    state = RunState("r1", "FAILURE", "F", steps=[StepState(
        "slow", "FAILURE", 0, error=error, pathspec="F/dagster-1/slow/t", metaflow_attempt=0)])
    lines = describe_state(state, "F", "FAILED", "f.py")
    return [line.strip() for line in lines[lines.index("Failed steps:") + 2:]
            if not line.strip().startswith("logs:")]


def test_status_shows_why_a_task_timed_out_then_the_end_of_its_stack():
    shown = _shown_error(TIMEOUT_ERROR)
    assert shown[:5] == [
        "Step *slow* failed (TimeoutFlow/dagster-49c0947f/slow/t, attempt 0, exit code 1):",
        "<flow TimeoutFlow step slow> failed:",
        "@timeout:",
        "Step slow timed out after 0 hours, 0 minutes, 4 seconds",
        "...",
    ]
    # The end of the stack, where the step was when time ran out.
    assert shown[-2:] == ['>    File "/tmp/pkg/timeout_flow.py", line 30, in slow',
                          ">      time.sleep(120)"]
    assert len(shown) == 5 + 8, shown


def test_status_shows_metaflow_headline_and_the_exception_of_a_raising_step():
    shown = _shown_error(RAISED_ERROR)
    assert shown[:4] == [
        "Step *b* failed (FailingFlow/dagster-1/b/t, attempt 0, exit code 1):",
        "<flow FailingFlow step b> failed:",
        "Internal error",
        "...",
    ]
    assert shown[-1] == "ValueError: boom from step b"
    assert len(shown) == 4 + 8, shown


def test_a_short_error_is_shown_whole():
    error = "Step *a* failed (F/1/a/t, attempt 0, exit code 1):\nValueError: no"
    assert _shown_error(error)[:2] == error.splitlines()
    assert "..." not in _shown_error(error)


def test_a_run_of_a_job_that_is_no_flow_is_named():
    from metaflow_dagster.deploy.errors import CommandError
    from metaflow_dagster.deploy.runs import _check_flow

    _check_flow(RunState("r1", "SUCCESS", "HandFlow", tags={naming.TAG_FLOW_NAME: "HandFlow"}),
                "HandFlow")
    with pytest.raises(CommandError, match="Dagster run r1 is a run of job etl, which is not a "
                       "Metaflow flow deployed with `dagster create`"):
        _check_flow(RunState("r1", "SUCCESS", "etl"), "HandFlow")


def test_the_op_keeps_why_a_task_failed_above_a_long_stack():
    """The op reports the end of the task's stderr; Metaflow's reason stays in it
    however deep the stack (here 60 frames) that follows."""
    from metaflow_dagster.runtime.launch.processes import ERROR_TAIL_LINES, TaskOutcome

    stack = ['    >    File "/lib/deep.py", line %d, in f\n    >      g()' % n for n in range(60)]
    stderr = "\n".join(TIMEOUT_ERROR.splitlines()[1:5] + stack)
    kept = TaskOutcome(1, b"", stderr.encode(), 1.0).error_tail().splitlines()
    assert kept[:5] == ["<flow TimeoutFlow step slow> failed:", "    @timeout:",
                        "    Step slow timed out after 0 hours, 0 minutes, 4 seconds", "...",
                        '    >    File "/lib/deep.py", line 40, in f']
    assert len(kept) == 4 + ERROR_TAIL_LINES
