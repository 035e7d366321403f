"""The process executing a run (its *worker*), and what becomes of a run whose
worker died before the run finished: it is marked FAILURE (CANCELED if it was
being cancelled) with an engine event saying what happened, and the task
processes it left on this host are killed.

- The executors (ours and the multiprocess one) record the worker at the start of
  every run, as the tag TAG_RUN_WORKER = "<run id>@<host>:<pid>:<start time>",
  and start a run reaper (metaflow_dagster/reaper.py) in the run worker: the
  moment the worker dies, the reaper kills the run's tasks and reports the run
  failed; no command needs to be typed. (Dagster's run monitoring cannot: its
  default run launcher has no worker health check.)
- The start of every run and every command of ours on an instance also fail the
  runs whose worker on this host is gone, for what the reaper cannot see: a
  worker killed before its executor started, a reaper killed too, a reboot.

The start time (from /proc) tells a live worker from another process that got its
pid later. A run re-executed from another copies its tags: a worker tag names its
own run, so a copied one is ignored.
"""

import os
import re
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from typing import List, Optional

from ... import naming
from ...reaper import Reaper, kill_marked

_TAG_RE = re.compile(r"^(?P<run_id>[^@]+)@(?P<host>[^:]+):(?P<pid>\d+)(?::(?P<start>\d+))?$")


@dataclass(frozen=True)
class Worker:
    run_id: str
    host: str
    pid: int
    # Start time of the process (clock ticks since boot), where /proc tells it.
    start: Optional[str] = None

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Is the worker still running? (Only answerable on its own host.)"""
        start = process_start(self.pid)
        if start is not None:
            return self.start is None or start == self.start
        if os.path.isdir("/proc"):
            return False
        try:  # no /proc: only whether the pid exists
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def describe(self) -> str:
        return "pid %d on %s" % (self.pid, self.host)


def process_start(pid: int) -> Optional[str]:
    """The start time of a live (not zombie) process, None if there is none."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def worker_tag(run_id: str, pid: int) -> str:
    start = process_start(pid)
    return "%s@%s:%d%s" % (run_id, socket.gethostname(), pid, ":%s" % start if start else "")


def parse_worker_tag(tag: str) -> Optional[Worker]:
    match = _TAG_RE.match(tag)
    if match is None:
        return None
    return Worker(match.group("run_id"), match.group("host"), int(match.group("pid")),
                  match.group("start"))


def worker_of(run) -> Optional[Worker]:
    """The recorded worker of this very run, if any."""
    worker = parse_worker_tag(run.tags.get(naming.TAG_RUN_WORKER, ""))
    return worker if worker is not None and worker.run_id == run.run_id else None


def run_mark(run_id: str) -> str:
    """What marks the environment of every task of a Dagster run (see reaper.py)."""
    return "%s=%s" % (naming.DAGSTER_RUN_ID_ENV, run_id)


def kill_run_tasks(run_id: str) -> int:
    """Kill what is left on this host of the run's tasks; how many processes."""
    return kill_marked([run_mark(run_id)])


@contextmanager
def supervised_run(plan_context):
    """Around an executor's work in the run worker: record the worker, fail the
    instance's runs whose worker died, and keep a run reaper until the run ends."""
    instance, run = plan_context.instance, plan_context.dagster_run
    tag = worker_tag(run.run_id, os.getpid())
    if run.tags.get(naming.TAG_RUN_WORKER) != tag:
        instance.add_run_tags(run.run_id, {naming.TAG_RUN_WORKER: tag})
    fail_runs_whose_worker_died(instance, but=run.run_id)
    reaper = None
    if not instance.is_ephemeral:
        from dagster._serdes import serialize_value

        reaper = Reaper([run_mark(run.run_id)], on_death="%s:report_dead_worker" % __name__,
                        args={"instance_ref": serialize_value(instance.get_ref()),
                              "run_id": run.run_id, "worker": parse_worker_tag(tag).describe()})
    try:
        yield
    finally:
        if reaper is not None:
            reaper.release()


def report_dead_worker(args: dict, killed: int) -> None:
    """Called by the run reaper (in its own process) once the worker has died."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import deserialize_value

    ref = deserialize_value(args["instance_ref"], InstanceRef)
    with DagsterInstance.from_ref(ref) as instance:
        fail_run(instance, args["run_id"], args["worker"], killed)


def fail_runs_whose_worker_died(instance, but: Optional[str] = None) -> List[str]:
    """Fail the unfinished runs of the instance whose worker, on this host, is gone;
    their ids."""
    from dagster import DagsterRunStatus, RunsFilter

    statuses = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    failed = []
    for run in instance.get_runs(filters=RunsFilter(statuses=statuses)):
        worker = worker_of(run)
        if run.run_id == but or worker is None or not worker.on_this_host or worker.alive():
            continue
        if fail_run(instance, run.run_id, worker.describe(), kill_run_tasks(run.run_id)):
            failed.append(run.run_id)
    return failed


def fail_run(instance, run_id: str, worker: str, killed: int = 0) -> bool:
    """Mark the run FAILURE (CANCELED if it was being cancelled) because its worker
    died; False if it has finished meanwhile."""
    from dagster import DagsterRunStatus
    from dagster._core.events import JobFailureData, RunFailureReason

    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished:
        return False
    reason = "The process executing this run (%s) died before the run finished" % worker
    left = " (%d task processes it left were stopped)" % killed if killed else ""
    instance.add_run_tags(run_id, {naming.TAG_RUN_WORKER_LOST: reason})
    instance.report_engine_event(
        "%s%s: metaflow-dagster marks the run %s. Steps that had succeeded can be reused "
        "with `python <flow>.py dagster resume --origin-run-id %s`." % (
            reason, left, "CANCELED" if run.status == DagsterRunStatus.CANCELING else "FAILURE",
            run_id), run)
    if run.status == DagsterRunStatus.CANCELING:
        instance.report_run_canceled(run, message=reason + ".")
    else:
        instance.report_run_failed(run, message=reason + ".", job_failure_data=JobFailureData(
            error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION))
    return True
