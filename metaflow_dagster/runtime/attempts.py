"""Attempt numbers of the Metaflow tasks a Dagster run launches.

Within one Dagster run, a task's attempt is Dagster's retry number. But a Dagster
re-execution ("re-execute from failure") continues the *same* Metaflow run (see
naming.py), and its ops count retries from 0 again: reusing that number would
overwrite the attempt that failed. So a task's attempt is the number of attempts
the datastore already holds for it. Metaflow reads attempts 0, 1, 2, ... up to
MAX_ATTEMPTS and stops at the first gap, so the numbers must stay contiguous;
counting what is recorded keeps them so, also when an attempt died before
Metaflow recorded it (that number is simply used again).
"""

import threading
from typing import Dict, Tuple

from dagster import Failure

from ..plan import FlowPlan
from .datastore import plan_datastore


def recorded_attempts(flow_ds, run_id: str, step: str, task_id: str) -> int:
    """How many attempts of the task the datastore holds (finished or not)."""
    from metaflow.datastore.exceptions import DataException

    try:
        task_ds = flow_ds.get_task_datastore(run_id, step, task_id, allow_not_done=True)
    except DataException:
        return 0
    return 0 if task_ds.attempt is None else task_ds.attempt + 1


class AttemptCounter:
    """Maps (task, Dagster retry number) to the task's Metaflow attempt, once:
    the launcher asks before starting the task, the log saver after it ended."""

    def __init__(self, plan: FlowPlan, run_id: str, continues_run: bool = True):
        self.plan = plan
        self.run_id = run_id
        # Only a re-execution continues a Metaflow run that already has attempts;
        # in a new run, the attempt is Dagster's retry number (no datastore read).
        self.continues_run = continues_run
        self._known: Dict[Tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def attempt(self, step: str, task_id: str, retry_number: int) -> int:
        if not self.continues_run:
            return retry_number
        key = ("%s/%s" % (step, task_id), retry_number)
        with self._lock:
            if key not in self._known:
                self._known[key] = recorded_attempts(
                    plan_datastore(self.plan), self.run_id, step, task_id
                )
            attempt = self._known[key]
        from metaflow.metaflow_config import MAX_ATTEMPTS  # imported by plan_datastore

        if attempt >= MAX_ATTEMPTS:
            raise Failure(
                description="Task %s/%s/%s/%s already has %d attempts, the most Metaflow "
                "keeps (MAX_ATTEMPTS); start a new run, or resume this one with "
                "`python flow.py dagster resume`."
                % (self.plan.flow_name, self.run_id, step, task_id, attempt),
                allow_retries=False,
            )
        return attempt

    def resolved(self, pathspec: str, retry_number: int) -> int:
        """The attempt given to a task (run_id/step/task_id) at this retry number."""
        _, step, task_id = pathspec.split("/")
        with self._lock:
            return self._known.get(("%s/%s" % (step, task_id), retry_number), retry_number)
