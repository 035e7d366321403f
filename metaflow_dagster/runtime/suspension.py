"""Suspended runs (`dagster suspend`, `TriggeredRun.suspend()`): while a run
carries the tag naming.TAG_SUSPENDED = "true", no new task of it starts; the
tasks that run finish. The task launcher asks before starting each task, clones
included (tasks.py); a task held back waits, looking again every second, until
the run is unsuspended or terminated.
"""

import sys
import time
from typing import Optional

from .. import naming
from .processes import TaskCancelled

POLL_SECONDS = 1.0
_ENDING = ("CANCELING", "CANCELED")


class SuspendGate:
    """Holds back the tasks of one Dagster run while it is suspended."""

    def __init__(self, instance, dagster_run_id: str, stream=None):
        self._instance = instance
        self._run_id = dagster_run_id
        self._stream = stream

    @classmethod
    def of_current_op(cls, dagster_run_id: str, stream=None) -> Optional["SuspendGate"]:
        """The gate for the op executing in this thread (None outside an op)."""
        from dagster import OpExecutionContext
        from dagster._core.errors import DagsterInvariantViolationError

        try:
            instance = OpExecutionContext.get().instance
        except DagsterInvariantViolationError:
            return None
        return cls(instance, dagster_run_id, stream)

    def _suspended(self) -> bool:
        run = self._instance.get_run_by_id(self._run_id)
        if run is None:
            return False
        if run.status.value in _ENDING:
            raise TaskCancelled()
        return run.tags.get(naming.TAG_SUSPENDED) == naming.SUSPENDED

    def wait(self, what: str, cancels=()) -> None:
        """Return once the run is not suspended, at once if it is not. Raises
        TaskCancelled if the run is terminated (or one of the `cancels` events,
        the op's and the run's, is set) meanwhile."""
        if not self._suspended():
            return
        self._say("The run is suspended: %s starts once it is unsuspended." % what)
        while True:
            if any(event is not None and event.is_set() for event in cancels):
                raise TaskCancelled()
            time.sleep(POLL_SECONDS)
            if not self._suspended():
                break
        self._say("The run is unsuspended: %s starts." % what)

    def _say(self, line: str) -> None:
        """A line in the op's stderr (the step's captured logs), as tasks' output is
        written: bytes to a stream's buffer where it has one."""
        stream = self._stream or sys.stderr
        out = getattr(stream, "buffer", None)
        if out is not None:
            out.write((line + "\n").encode())
            out.flush()
        else:
            stream.write(line + "\n")
            stream.flush()
