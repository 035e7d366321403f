"""Suspended runs (`dagster suspend`, `TriggeredRun.suspend()`): while a run
carries the tag naming.TAG_SUSPENDED = "true", no new task of it starts; the
tasks that run finish. The task launcher asks before starting each task, clones
included (runtime/launch/launcher.py); a task held back waits, looking again every second, until
the run is unsuspended or terminated.

Reading the run record opens a connection to the run storage each time, so the
answer is shared by the op threads of a run process and read at
most once a second: a suspension takes effect within a second.
"""

import sys
import threading
import time
from typing import Dict, Optional, Tuple

from .. import naming
from .launch.processes import TaskCancelled

POLL_SECONDS = 1.0
READ_ATTEMPTS = 5
_ENDING = ("CANCELING", "CANCELED")

# Dagster run id -> (when it was read, suspended, ending), for this process.
_seen: Dict[str, Tuple[float, bool, bool]] = {}
_seen_lock = threading.Lock()


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
        with _seen_lock:
            read_at, suspended, ending = _seen.get(self._run_id, (None, False, False))
            if read_at is None or time.monotonic() - read_at >= POLL_SECONDS:
                run, read = self._read_run(first=read_at is None)
                if read:
                    suspended = run is not None and (
                        run.tags.get(naming.TAG_SUSPENDED) == naming.SUSPENDED)
                    ending = run is not None and run.status.value in _ENDING
                    _seen[self._run_id] = (time.monotonic(), suspended, ending)
        if ending:
            raise TaskCancelled()
        return suspended

    def _read_run(self, first: bool):
        """(the run, True), or (None, False) after a storage hiccup (a locked SQLite
        table, say) once the run has been read before: what was seen last holds
        until the next poll. The first read is retried a few times, then raises."""
        for attempt in range(READ_ATTEMPTS):
            try:
                return self._instance.get_run_by_id(self._run_id), True
            except Exception:
                if not first:
                    return None, False
                if attempt == READ_ATTEMPTS - 1:
                    raise
                time.sleep(0.2)

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
