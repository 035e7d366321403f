"""Runs whose worker is gone (runtime/executors/workers.py), as every command of ours and the
start of every run check them: on a real SQLite instance, with run records made by
hand and workers that are real processes, dead or alive."""

import os
import socket
import subprocess

import pytest
from _dagster_home import temp_instance
from dagster import DagsterEventType, DagsterRunStatus, job, op

from metaflow_dagster import naming
from metaflow_dagster.runtime.executors.workers import fail_runs_whose_worker_died, worker_tag


@op
def noop():
    pass


@job
def some_job():
    noop()


@pytest.fixture
def instance():
    with temp_instance() as (_, instance):
        yield instance


def _run(instance, tag=None, status=DagsterRunStatus.STARTED):
    run = instance.create_run_for_job(some_job, status=status)
    if tag is not None:
        instance.add_run_tags(run.run_id, {naming.TAG_RUN_WORKER: tag(run.run_id)})
    return run.run_id


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_only_runs_whose_worker_here_is_gone_are_failed(instance):
    dead = _dead_pid()
    gone = _run(instance, lambda run_id: "%s@%s:%d:12345" % (run_id, socket.gethostname(), dead))
    never_started = _run(instance, lambda run_id: "%s@%s:%d" % (
        run_id, socket.gethostname(), dead), status=DagsterRunStatus.NOT_STARTED)
    alive = _run(instance, lambda run_id: worker_tag(run_id, os.getpid()))
    # A worker whose pid now belongs to another process: the start time differs.
    reused = _run(instance, lambda run_id: "%s@%s:%d:1" % (run_id, socket.gethostname(),
                                                            os.getpid()))
    elsewhere = _run(instance, lambda run_id: "%s@another-host:%d" % (run_id, dead))
    copied = _run(instance, lambda run_id: "some-other-run@%s:%d" % (socket.gethostname(), dead))
    untagged = _run(instance)

    assert sorted(fail_runs_whose_worker_died(instance)) == sorted([gone, never_started, reused])
    status = {run_id: instance.get_run_by_id(run_id).status for run_id in
              (gone, never_started, alive, reused, elsewhere, copied, untagged)}
    assert status == {gone: DagsterRunStatus.FAILURE, never_started: DagsterRunStatus.FAILURE,
                      alive: DagsterRunStatus.STARTED, reused: DagsterRunStatus.FAILURE,
                      elsewhere: DagsterRunStatus.STARTED, copied: DagsterRunStatus.STARTED,
                      untagged: DagsterRunStatus.STARTED}
    events = [r.message for r in instance.all_logs(gone, of_type=DagsterEventType.ENGINE_EVENT)]
    assert any("(pid %d on %s) died before the run finished" % (dead, socket.gethostname())
               in m for m in events), events
    assert "died before the run finished" in instance.get_run_by_id(gone).tags[
        naming.TAG_RUN_WORKER_LOST]
    assert fail_runs_whose_worker_died(instance) == []  # once


def test_a_run_being_cancelled_ends_canceled(instance):
    dead = _dead_pid()
    run_id = _run(instance, lambda r: "%s@%s:%d" % (r, socket.gethostname(), dead),
                  status=DagsterRunStatus.CANCELING)
    assert fail_runs_whose_worker_died(instance) == [run_id]
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.CANCELED
