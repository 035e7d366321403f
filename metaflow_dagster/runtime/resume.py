"""Tasks whose work is already done, and how a run reuses it.

- Resume (`python flow.py dagster resume`) starts a new Dagster run, hence a new
  Metaflow run, tagged with the origin run. As Metaflow's own `resume` does, each
  task whose origin task succeeded is *cloned* (`flow.py step --clone-only`, no
  user code runs) unless its step is to be re-run: the step given with
  --step-to-rerun and every step after it. Everything else runs as usual. Task ids
  are deterministic (naming.py), so the origin of a task is the task with the same
  id in the origin run; in a foreach only the splits that failed run again.
- Re-executing a region op (Dagster's "re-execute from failure") continues the
  same Metaflow run: the region's tasks that already succeeded are not run again.

A reused task reports what the dagster_internal decorator would have reported
(foreach cardinality, switch branch), read from the task's artifacts.
"""

import json
from typing import Dict, Iterable, List, Optional, Tuple

from .. import naming
from ..plan import FlowPlan, OpPlan, reachable
from .datastore import plan_datastore
from .launch.processes import TaskOutcome


def rerun_steps(plan: FlowPlan, step_to_rerun: Optional[str]) -> List[str]:
    """The step and every step reachable from it, in topological order."""
    if not step_to_rerun:
        return []
    if step_to_rerun not in plan.step_names():
        raise ValueError(
            "Step *%s* is not a step of %s; steps are: %s"
            % (step_to_rerun, plan.flow_name, ", ".join(plan.step_names()))
        )
    rerun = reachable(plan.successors(), [step_to_rerun])
    return [name for name in plan.step_names() if name in rerun]


def resume_tags(origin_run_id: str, rerun: Iterable[str]) -> Dict[str, str]:
    return {naming.TAG_RESUME_ORIGIN: origin_run_id,
            naming.TAG_RESUME_RERUN_STEPS: json.dumps(sorted(rerun))}


class ReusedOutcome(TaskOutcome):
    """Outcome of a task that was cloned or was already done: it leaves no new
    attempt, so no logs are saved for it."""


def task_result(flow_ds, plan: FlowPlan, run_id: str, step: str, task_id: str) -> Optional[dict]:
    """What the task reported when it succeeded; None unless its latest attempt succeeded."""
    from metaflow.datastore.exceptions import DataException

    try:
        task_ds = flow_ds.get_task_datastore(run_id, step, task_id)
    except DataException:
        return None
    if "_task_ok" not in task_ds or not task_ds["_task_ok"]:
        return None
    kind = plan.step(step).type
    transition = task_ds["_transition"] if "_transition" in task_ds else None
    result = {naming.RESULT_NEXT_STEPS: list(transition[0]) if transition else []}
    if kind == "foreach":
        result[naming.RESULT_FOREACH_SPLITS] = task_ds["_foreach_num_splits"]
        if "_foreach_values" in task_ds:
            result[naming.RESULT_FOREACH_VALUES] = task_ds["_foreach_values"]
    elif kind == "split-switch" and transition:
        result[naming.RESULT_SWITCH_STEP] = transition[0][0]
    return result


class Reuse:
    """Decides, for each task an op is about to launch, whether its work is done."""

    def __init__(self, plan: FlowPlan, run_id: str, origin_run_id: Optional[str] = None,
                 rerun: Iterable[str] = (), skip_done: bool = False):
        self.plan = plan
        self.run_id = run_id
        self.origin_run_id = origin_run_id
        self.rerun = frozenset(rerun)
        self.skip_done = skip_done

    @classmethod
    def for_op(cls, plan: FlowPlan, run_id: str, dagster_run, op: OpPlan) -> Optional["Reuse"]:
        origin = dagster_run.tags.get(naming.TAG_RESUME_ORIGIN)
        skip_done = op.kind == "region" and dagster_run.parent_run_id is not None
        if not origin and not skip_done:
            return None
        rerun = json.loads(dagster_run.tags.get(naming.TAG_RESUME_RERUN_STEPS) or "[]")
        return cls(plan, run_id, origin, rerun, skip_done)

    def reuse(self, launcher, task, prefix: str = "") -> Optional[Tuple[TaskOutcome, dict]]:
        """(outcome, result) if the task needs no run; None to run it."""
        flow_ds = plan_datastore(self.plan)
        if self.skip_done:
            result = task_result(flow_ds, self.plan, self.run_id, task.step, task.task_id)
            if result is not None:
                _say(prefix, "Task %s already succeeded in this run; not run again."
                     % self._path(self.run_id, task))
                return ReusedOutcome(0, b"", b"", 0.0), result
        if self.origin_run_id and task.step not in self.rerun:
            result = task_result(flow_ds, self.plan, self.origin_run_id, task.step, task.task_id)
            if result is not None:
                return self._clone(launcher, task, prefix), result
        return None

    def _clone(self, launcher, task, prefix: str) -> TaskOutcome:
        args = launcher.step_args(task, retry_count=0) + [
            "--clone-only", naming.task_pathspec(self.origin_run_id, task.step, task.task_id),
            "--clone-run-id", self.origin_run_id,
        ]
        _say(prefix, "Cloning %s from %s (resume)." % (
            self._path(self.run_id, task), self._path(self.origin_run_id, task)))
        outcome = launcher.run_command(args, prefix)
        return ReusedOutcome(outcome.returncode, outcome.stdout, outcome.stderr, outcome.seconds)

    def _path(self, run_id: str, task) -> str:
        pathspec = naming.task_pathspec(run_id, task.step, task.task_id)
        return "%s/%s" % (self.plan.flow_name, pathspec)


def _say(prefix: str, message: str) -> None:
    # Goes to the op's captured stdout, like the tasks' own output.
    print(prefix + message, flush=True)
