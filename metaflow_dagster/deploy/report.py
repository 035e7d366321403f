"""What the user's commands print about runs."""

import time
from typing import Iterator, List, Optional, Set
from urllib.parse import quote

from .. import naming
from .runs import STEP_FINISHED, RunState, StepState

DEFAULT_UI_URL = naming.DEFAULT_UI_URL
# Lines of the end of a failed step's error shown by `dagster status` (after its first
# line, which names the task and attempt, and the lines that say why the task failed).
ERROR_TAIL_LINES = 8


def ui_url(target, run_id: str) -> str:
    return "%s/runs/%s" % (target.ui_base.rstrip("/"), run_id)


def describe_state(state: RunState, flow_name: str, status: str, flow_file: str = "flow.py",
                   ui_base: Optional[str] = None, end_step: Optional[str] = None) -> List[str]:
    """What `dagster status` prints: the run's state (Metaflow's word, then
    Dagster's), then each step's, then for each failed step its error, its attempts
    and where its logs are, and whether the end step (`end_step`) was skipped."""
    suspended = state.tags.get(naming.TAG_SUSPENDED) == naming.SUSPENDED
    lines = ["Run %s of job %s (Metaflow run %s/%s): %s (Dagster %s)%s" % (
        state.run_id, state.job_name, flow_name, state.metaflow_run_id, status, state.status,
        ", suspended" if suspended and not state.finished else "")]
    if state.parent_run_id:
        lines.append("  re-execution of run %s" % state.parent_run_id)
    steps = sorted(state.steps, key=lambda s: (s.start_time is None, s.start_time or 0, s.key))
    width = max([len(s.key) for s in steps] + [4])
    for step in steps:
        attempts = "  (%d attempts)" % step.attempts if step.attempts > 1 else ""
        lines.append("  %s  %s%s" % (step.key.ljust(width), step.status, attempts))
    if not steps:
        lines.append("  (no step has started yet)")
    failed = [s for s in steps if s.status == "FAILURE"]
    if failed:
        lines.append("Failed steps:")
    for step in failed:
        lines += _failure(state, step, flow_file, ui_base)
    if any(s.key == end_step and s.status == "SKIPPED" for s in steps):
        lines.append("The end step %s was skipped: the Metaflow run did not finish. Regenerate "
                     "the definitions file with `python %s dagster create`."
                     % (end_step, flow_file))
    return lines


def _failure(state: RunState, step: StepState, flow_file: str,
             ui_base: Optional[str]) -> List[str]:
    what = [step.pathspec] if step.pathspec else []
    attempts = "%d attempt%s" % (step.attempts, "" if step.attempts == 1 else "s")
    if step.metaflow_attempt is not None:
        attempts += " (the last: Metaflow attempt %d)" % step.metaflow_attempt
    what.append(attempts)
    lines = ["  %s: %s" % (step.key, ", ".join(what))]
    lines += ["      " + line for line in error_excerpt(step.error or "(no error recorded)")]
    logs = []
    if step.pathspec:
        attempt = (" --attempt %d" % step.metaflow_attempt
                   if step.metaflow_attempt is not None else "")
        logs.append("python %s logs %s%s" % (
            flow_file, step.pathspec.split("/", 1)[1], attempt))
    if ui_base:
        logs.append("%s/runs/%s?logs=%s  (the op's log in the Dagster UI)" % (
            ui_base.rstrip("/"), state.run_id, quote("step:%s" % step.key)))
    for i, where in enumerate(logs):
        lines.append("    %s %s" % ("logs:" if i == 0 else "     ", where))
    return lines


def error_excerpt(error: str) -> List[str]:
    """The lines of a step's error that `status` shows: its first line (which task,
    which attempt), the lines that say why the task failed, then the end of the
    traceback; "..." where lines are left out."""
    return naming.failure_excerpt(error.splitlines(), ERROR_TAIL_LINES, keep_first=True)


def progress_lines(state: RunState, plan, shown: Set[str]) -> Iterator[str]:
    """A line for each step of the run that finished since the keys in `shown`
    (which it adds to), in the order they started: `[done/known] step STATUS`.
    The steps known are those that started, and one for each op of the plan none
    of whose steps has (a foreach's splits count once they exist), if the plan is
    known."""
    started_ops = {s.key.split("[", 1)[0] for s in state.steps}
    known = len(state.steps) + sum(
        1 for op in (plan.ops if plan else ()) if op.name not in started_ops)
    for step in sorted(state.steps, key=lambda s: (s.start_time or 0, s.key)):
        if step.status in STEP_FINISHED and step.key not in shown:
            shown.add(step.key)
            yield "    [%d/%d] %s  %s" % (len(shown), known, step.key, step.status)


def event_line(timestamp: float, level: str, step_key, event_type, message: str) -> str:
    """One event of a run's Dagster event log, as `trigger --wait --verbose` prints it."""
    return "%s %-7s %-20s %-16s %s" % (
        time.strftime("%H:%M:%S", time.localtime(timestamp)), level, step_key or "-",
        event_type or "LOG", message)
