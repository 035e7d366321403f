"""runtime.hooks.wait_for_other_steps against a scripted event log."""

from types import SimpleNamespace

import pytest
from dagster import DagsterEventType as E

from metaflow_dagster.runtime import hooks


class FakeInstance:
    """Each poll returns the next batch of (step_key, event type) records."""

    def __init__(self, batches, status="STARTED"):
        self.batches = list(batches)
        self.polls = 0
        self.status = status

    def get_records_for_run(self, run_id, cursor=None, of_type=None):
        self.polls += 1
        batch = self.batches.pop(0) if self.batches else []
        records = [SimpleNamespace(event_log_entry=SimpleNamespace(
            step_key=key, dagster_event=SimpleNamespace(event_type=kind))) for key, kind in batch]
        return SimpleNamespace(records=records, cursor=str(self.polls))

    def get_run_by_id(self, run_id):
        return SimpleNamespace(is_finished=False, status=SimpleNamespace(value=self.status))


def _context(instance):
    log = SimpleNamespace(info=lambda message: None)
    return SimpleNamespace(instance=instance, run_id="r", step_key="fails", log=log)


@pytest.fixture(autouse=True)
def fast_clock(monkeypatch):
    """Each sleep advances a fake monotonic clock instead of waiting."""
    now = [0.0]
    monkeypatch.setattr(hooks.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(hooks.time, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    return now


def test_waits_until_running_steps_end_then_settles(fast_clock):
    instance = FakeInstance([
        [("start", E.STEP_SUCCESS), ("fails", E.STEP_FAILURE), ("slow", E.STEP_START)],
        [], [],
        [("slow", E.STEP_SUCCESS)],
    ])
    hooks.wait_for_other_steps(_context(instance), settle=5, poll=1)
    # slow ended at poll 4; the run then stayed idle from poll 5 until 5 s later.
    assert instance.polls == 10


def test_a_step_waiting_for_a_retry_or_launching_counts_as_running(fast_clock):
    instance = FakeInstance([
        [("fails", E.STEP_FAILURE), ("flaky", E.STEP_UP_FOR_RETRY)],
        [], [("flaky", E.STEP_RESTARTED)], [("flaky", E.STEP_SUCCESS)],
        [("next", E.STEP_WORKER_STARTING)], [("next", E.STEP_SUCCESS)],
    ])
    hooks.wait_for_other_steps(_context(instance), settle=2, poll=1)
    assert instance.polls == 9


def test_returns_when_the_run_is_being_cancelled(fast_clock):
    instance = FakeInstance([[("slow", E.STEP_START)]], status="CANCELING")
    hooks.wait_for_other_steps(_context(instance), settle=5, poll=1)
    assert instance.polls == 1
