"""What the user's commands print about runs."""

from typing import List

from .runs import RunState

DEFAULT_UI_URL = "http://127.0.0.1:3000"


def ui_url(target, run_id: str) -> str:
    return "%s/runs/%s" % (target.ui_base.rstrip("/"), run_id)


def describe_state(state: RunState, flow_name: str) -> List[str]:
    """What `dagster status` prints: the run's state, then each step's."""
    lines = ["Run %s of job %s (Metaflow run %s/%s): %s" % (
        state.run_id, state.job_name, flow_name, state.metaflow_run_id, state.status)]
    if state.parent_run_id:
        lines.append("  re-execution of run %s" % state.parent_run_id)
    steps = sorted(state.steps, key=lambda s: (s.start_time is None, s.start_time or 0, s.key))
    width = max([len(s.key) for s in steps] + [4])
    for step in steps:
        lines.append("  %s  %s" % (step.key.ljust(width), step.status))
    if not steps:
        lines.append("  (no step has started yet)")
    return lines
