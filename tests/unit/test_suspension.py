"""The suspend gate on a real (in-memory) Dagster instance: a task passes at once
unless its run carries metaflow/suspended=true; then it waits, says so once, and
goes on when the tag turns "false"; a cancel or a canceling run ends the wait."""

import io
import threading
import uuid

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.storage.dagster_run import DagsterRun

from metaflow_dagster import naming
from metaflow_dagster.runtime.launch.processes import TaskCancelled
from metaflow_dagster.runtime.suspension import SuspendGate


@pytest.fixture(scope="module")
def instance():
    with DagsterInstance.ephemeral() as instance:
        yield instance


def _gate(instance, status=DagsterRunStatus.STARTED):
    run = instance.add_run(DagsterRun(job_name="HandFlow", run_id=str(uuid.uuid4()),
                                      status=status))
    return run.run_id, SuspendGate(instance, run.run_id, io.StringIO())


def _waiting(gate, cancels=()):
    """gate.wait in a thread; (thread, what it raised)."""
    raised = []

    def wait():
        try:
            gate.wait("task T/dagster-1/b/t", cancels)
        except TaskCancelled as error:
            raised.append(error)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, raised


def test_a_run_that_is_not_suspended_passes(instance):
    run_id, gate = _gate(instance)
    gate.wait("task")
    instance.add_run_tags(run_id, {naming.TAG_SUSPENDED: naming.NOT_SUSPENDED})
    gate.wait("task")
    assert gate._stream.getvalue() == ""


def test_a_suspended_run_holds_the_task_until_unsuspended(instance):
    run_id, gate = _gate(instance)
    instance.add_run_tags(run_id, {naming.TAG_SUSPENDED: naming.SUSPENDED})
    thread, raised = _waiting(gate)
    thread.join(3)
    assert thread.is_alive()  # still held after 3 s
    instance.add_run_tags(run_id, {naming.TAG_SUSPENDED: naming.NOT_SUSPENDED})
    thread.join(10)
    assert not thread.is_alive() and not raised
    assert gate._stream.getvalue().splitlines() == [
        "The run is suspended: task T/dagster-1/b/t starts once it is unsuspended.",
        "The run is unsuspended: task T/dagster-1/b/t starts."]


def test_a_cancel_ends_the_wait(instance):
    run_id, gate = _gate(instance)
    instance.add_run_tags(run_id, {naming.TAG_SUSPENDED: naming.SUSPENDED})
    cancel = threading.Event()
    thread, raised = _waiting(gate, (None, cancel))
    cancel.set()
    thread.join(10)
    assert not thread.is_alive() and len(raised) == 1


def test_a_canceling_run_starts_no_task(instance):
    _, gate = _gate(instance, status=DagsterRunStatus.CANCELING)
    with pytest.raises(TaskCancelled):
        gate.wait("task")


class _Hiccups:
    """An instance whose run storage fails every other read after the first (a locked
    SQLite table)."""

    def __init__(self, instance):
        self._instance = instance
        self.reads = 0

    def get_run_by_id(self, run_id):
        self.reads += 1
        if self.reads > 1 and self.reads % 2 == 0:
            raise RuntimeError("database table is locked: runs")
        return self._instance.get_run_by_id(run_id)


def test_a_storage_hiccup_keeps_what_was_seen_until_the_next_poll(instance):
    run_id, _ = _gate(instance)
    flaky = _Hiccups(instance)
    gate = SuspendGate(flaky, run_id, io.StringIO())
    instance.add_run_tags(run_id, {naming.TAG_SUSPENDED: naming.SUSPENDED})
    thread, raised = _waiting(gate)
    thread.join(3)
    assert thread.is_alive()
    instance.add_run_tags(run_id, {naming.TAG_SUSPENDED: naming.NOT_SUSPENDED})
    thread.join(10)
    assert not thread.is_alive() and not raised
    assert flaky.reads >= 4
    assert gate._stream.getvalue().splitlines()[-1] == \
        "The run is unsuspended: task T/dagster-1/b/t starts."
