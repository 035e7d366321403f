"""runtime.hooks.wait_for_other_steps: when do the error hooks run, against an
event log scripted in (fake) time."""

from types import SimpleNamespace

import pytest
from dagster import DagsterEventType as E

from metaflow_dagster.runtime import hooks


class FakeInstance:
    """An event log whose records appear at given times of the fake clock."""

    def __init__(self, clock, events, status="STARTED"):
        self.clock = clock
        self.pending = sorted(events, key=lambda e: e[0])
        self.status = status

    def get_records_for_run(self, run_id, cursor=None, of_type=None):
        due = [e for e in self.pending if e[0] <= self.clock[0]]
        self.pending = self.pending[len(due):]
        records = [SimpleNamespace(event_log_entry=SimpleNamespace(
            step_key=key, dagster_event=SimpleNamespace(event_type=kind)))
            for _, key, kind in due]
        return SimpleNamespace(records=records, cursor=str(self.clock[0]))

    def get_run_by_id(self, run_id):
        return SimpleNamespace(is_finished=False, status=SimpleNamespace(value=self.status))


@pytest.fixture
def clock(monkeypatch):
    """Each sleep advances a fake monotonic clock instead of waiting."""
    now = [0.0]
    monkeypatch.setattr(hooks.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(hooks.time, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    return now


def _wait(instance, settle):
    log = SimpleNamespace(info=lambda message: None)
    context = SimpleNamespace(instance=instance, run_id="r", step_key="fails", log=log)
    hooks.wait_for_other_steps(context, settle=settle, poll=1)


def test_the_hooks_wait_for_the_steps_still_running_then_settle(clock):
    instance = FakeInstance(clock, [
        (0, "start", E.STEP_SUCCESS), (0, "fails", E.STEP_FAILURE), (0, "slow", E.STEP_START),
        (30, "slow", E.STEP_SUCCESS),
    ])
    _wait(instance, settle=5)
    assert 35 <= clock[0] <= 37  # slow ended at 30 s, then 5 s without a running step


def test_a_step_waiting_for_a_retry_or_being_launched_counts_as_running(clock):
    instance = FakeInstance(clock, [
        (0, "fails", E.STEP_FAILURE), (0, "flaky", E.STEP_UP_FOR_RETRY),
        (10, "flaky", E.STEP_RESTARTED), (12, "flaky", E.STEP_SUCCESS),
        (13, "next", E.STEP_WORKER_STARTING), (20, "next", E.STEP_SUCCESS),
    ])
    _wait(instance, settle=2)
    assert 22 <= clock[0] <= 24


def test_the_hooks_do_not_wait_for_a_run_being_cancelled(clock):
    instance = FakeInstance(clock, [(0, "slow", E.STEP_START)], status="CANCELING")
    _wait(instance, settle=5)
    assert clock[0] == 0
