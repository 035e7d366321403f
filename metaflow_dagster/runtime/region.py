"""Runs a region of steps inside one op: the parts of a flow Dagster cannot
express (a foreach nested in a foreach, a switch inside a foreach).

Each task is still its own `python flow.py step` subprocess; independent tasks
run concurrently, at most `max_workers` at a time, and each task gets the
retries its @retry/@catch ask for, as under Metaflow's own runtime.
"""

import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable, Dict, List, Optional, Tuple

from dagster import Failure

from .. import naming
from ..plan import FlowPlan, OpPlan
from .launch.launcher import Task, TaskLauncher, next_task
from .launch.processes import TaskCancelled, TaskTimeout
from .transitions import check_transition


class RegionRunner:
    def __init__(self, plan: FlowPlan, launcher: TaskLauncher, op: OpPlan,
                 on_task_done: Callable, deadline: Optional[float]):
        self.plan = plan
        self.launcher = launcher
        self.entry_step = op.step
        self.members = set(op.steps)
        self.on_task_done = on_task_done
        self.started = time.monotonic()
        self.deadline = deadline
        self.cancel = threading.Event()
        # Arrivals at a join, keyed by (join step, split indices of the join task).
        self.arrived: Dict[Tuple[str, tuple], List[str]] = defaultdict(list)
        # Number of splits of each foreach task, keyed like arrivals at its join.
        self.splits: Dict[Tuple[str, tuple], int] = {}

    def run(self, upstream: List[str], split_index: Optional[int]) -> str:
        """Runs the region from its entry task; returns the pathspec of the task
        whose successor lies outside the region."""
        entry = next_task(self.plan, self.entry_step, upstream, split_index)
        exits: List[str] = []
        with ThreadPoolExecutor(max_workers=self.plan.max_workers) as pool:
            running = {pool.submit(self._attempts, entry): entry}
            try:
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        task = running.pop(future)
                        result = future.result()
                        for follower in self._followers(task, result, exits):
                            running[pool.submit(self._attempts, follower)] = follower
            except BaseException:
                self.cancel.set()
                raise
        return exits[0]

    def _attempts(self, task: Task) -> dict:
        """Run a task with the retries its decorators allow."""
        step = self.plan.step(task.step)
        prefix = "[%s/%s] " % (task.step, task.task_id)
        for attempt in range(step.total_retries + 1):
            try:
                outcome, result = self.launcher.run(
                    task, attempt, prefix, self._seconds_left(), self.cancel
                )
            except TaskTimeout as timeout:
                failure = str(timeout)
            else:
                self.on_task_done(task.pathspec(self.launcher.run_id), attempt, outcome)
                if outcome.returncode == 0:
                    check_transition(step, result, "%s/%s" % (
                        self.plan.flow_name, task.pathspec(self.launcher.run_id)))
                    return result
                failure = outcome.error_tail()
            if self.cancel.is_set():
                raise TaskCancelled()
            if attempt < step.total_retries:
                time.sleep(step.retry_delay_seconds)
        pathspec = "%s/%s" % (self.plan.flow_name, task.pathspec(self.launcher.run_id))
        raise Failure(
            description="Step *%s* failed (%s, %d attempts):\n%s" % (
                task.step, pathspec, step.total_retries + 1, failure),
            metadata={"metaflow_pathspec": pathspec, "metaflow_attempt":
                      self.launcher.attempts.resolved(task.pathspec(self.launcher.run_id),
                                                      attempt)},
        )

    def _seconds_left(self) -> Optional[float]:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - (time.monotonic() - self.started))

    def _followers(self, task: Task, result: dict, exits: List[str]) -> List[Task]:
        """The tasks that can start now that `task` has succeeded."""
        step = self.plan.step(task.step)
        path = task.pathspec(self.launcher.run_id)
        indices = naming.split_indices(task.task_id)
        if step.type == "foreach":
            count = result[naming.RESULT_FOREACH_SPLITS]
            self.splits[(step.matching_join, indices)] = count
            return [next_task(self.plan, step.next[0], [path], i) for i in range(count)]
        nexts = [result[naming.RESULT_SWITCH_STEP]] if step.type == "split-switch" else step.next
        followers = []
        for name in nexts:
            if name not in self.members:
                exits.append(path)
            elif self.plan.step(name).type == "join":
                followers.extend(self._arrive(name, path, indices))
            else:
                followers.append(next_task(self.plan, name, [path]))
        return followers

    def _arrive(self, join: str, path: str, indices: tuple) -> List[Task]:
        split = self.plan.step(self.plan.step(join).joins)
        if split.type == "foreach":
            key = (join, indices[:-1])
            expected = self.splits[key]
        else:
            key = (join, indices)
            expected = len(split.next)
        self.arrived[key].append(path)
        if len(self.arrived[key]) < expected:
            return []
        return [next_task(self.plan, join, self.arrived.pop(key))]
