"""Stop an op's tasks when its run is terminated, wherever the op runs.

Dagster's executors differ in how a termination reaches a running op: the
multiprocess executor interrupts the op's process, the k8s executor deletes its
pod, and the Celery executor only revokes tasks that have not started (a running
op, and the `flow.py step` processes it started, carry on: DAGSTER-NOTES 12).
What every op can do is ask the instance: a thread per op polls its run's status
and, once the run is being cancelled or has ended, sets the cancel event that
processes.run_process honours (through processes.bind_io), which terminates each
task's whole process group.

The metaflow executor binds its own cancel event (the run process sees the
termination itself); ops under it start no watcher.

An executor that delegates steps to other processes (Celery, k8s) may also give up
on a running attempt: its worker stopped answering, so the run records the
attempt as failed and retries the step elsewhere. If that worker comes back, its
op must report nothing while the run goes on: Dagster's step-delegating loop
fails the run on a step event it does not expect. So the watcher also checks,
every few seconds, whether the run has given up on the op's attempt, and then
stops its tasks; and an op asks once more before it reports (`has_given_up`).

The same binding gives the tasks the streams that reach the step's logs
(runtime/launch/step_logs.py). When the op ends, the process's task templates for the run are
retired (runtime/launch/task_template.py): in a process that outlives the op, a Celery worker's
say, they would otherwise idle on, marked with the run (another op of the run there
starts a new one).
"""

import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator, Optional, Tuple

from dagster import DagsterEventType

from .launch import processes
from .launch.step_logs import step_streams
from .launch.task_template import retire_run_templates

POLL_SECONDS = 1.0
# A run in any of these states has no use for the op's tasks any more.
STOP_STATUSES = frozenset({"CANCELING", "CANCELED", "FAILURE"})
# Every how many polls the watcher asks whether the run gave up on the op's attempt.
GIVEN_UP_EVERY = 5
# The events with which a run ends a step's attempt from outside it.
ATTEMPT_ENDS = {DagsterEventType.STEP_UP_FOR_RETRY, DagsterEventType.STEP_FAILURE}


class RunWatcher:
    """A daemon thread polling the run's status until stopped; `attempt` (step key,
    Dagster retry number) names the op's attempt, to notice the run giving up on it."""

    def __init__(self, instance, run_id: str, poll_seconds: float = POLL_SECONDS,
                 attempt: Optional[Tuple[str, int]] = None):
        self.instance = instance
        self.run_id = run_id
        self.poll_seconds = poll_seconds
        self.attempt = attempt
        self.cancel = threading.Event()
        # The status that fired the cancel event, e.g. "CANCELING"; None until then.
        self.seen: Optional[str] = None
        self.given_up = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="run-watch:%s" % run_id[:8],
                                        daemon=True)

    def start(self) -> "RunWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll_seconds + 5)

    def _watch(self) -> None:
        polls = 0
        while not self._stop.wait(self.poll_seconds):
            polls += 1
            try:
                run = self.instance.get_run_by_id(self.run_id)
                if self.attempt and polls % GIVEN_UP_EVERY == 0 and self._ask_given_up():
                    self.cancel.set()
                    return
            except Exception:  # a storage hiccup: ask again next time
                continue
            status = run.status.value if run is not None else "CANCELED"
            if status in STOP_STATUSES:
                self.seen = status
                self.cancel.set()
                return


    def has_given_up(self) -> bool:
        """Whether the run has given up on the op's attempt; asks until the instance
        answers (an op that cannot reach it could not report anything either)."""
        while not self.given_up:
            try:
                return self._ask_given_up()
            except Exception:
                time.sleep(self.poll_seconds)
        return True

    def _ask_given_up(self) -> bool:
        step_key, retry_number = self.attempt
        records = self.instance.get_records_for_run(self.run_id, of_type=ATTEMPT_ENDS).records
        ended = sum(1 for r in records if r.event_log_entry.step_key == step_key)
        # Each earlier attempt ended with one of these; one more is this attempt's end.
        self.given_up = ended > retry_number
        return self.given_up


@contextmanager
def watching_run(context) -> Iterator[Optional[RunWatcher]]:
    """Run the body with a RunWatcher's cancel event bound to this thread, unless
    the executor already bound one (yields None then)."""
    bound = processes.current_io()
    if bound is not None and bound.cancel is not None:
        yield None
        return
    with step_streams(context) as (stdout, stderr):
        attempt = (context.get_step_execution_context().step.key, context.retry_number)
        watcher = RunWatcher(context.instance, context.run_id, attempt=attempt).start()
        io = replace(bound, cancel=watcher.cancel) if bound else processes.StepIO(
            stdout=stdout, stderr=stderr, cancel=watcher.cancel)
        try:
            with processes.bind_io(io):
                yield watcher
        finally:
            watcher.stop()
            retire_run_templates(context.run_id)

