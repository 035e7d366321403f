"""The embedded default target: the Dagster instance of DAGSTER_HOME (SQLite
unless its dagster.yaml says otherwise).

The run record is created here, with the same origins a code location would give
it, so `dagster dev` on the same home shows the run and can re-execute it; the
run then executes in a detached `dagster api execute_run` process (what Dagster's
own run launcher starts), so the command returns at once.
"""

import os
import signal
import socket
import subprocess
import sys
from typing import Dict, List, Optional

from .. import naming
from .definitions import DefinitionsFile
from .errors import CommandError
from .home import dagster_home
from .report import DEFAULT_UI_URL
from .runs import FINISHED, RunState, StepState


class EmbeddedTarget:
    """Runs go to the Dagster instance of DAGSTER_HOME (or `home`)."""

    def __init__(self, home: Optional[str] = None):
        self.home = dagster_home(home)
        self.ui_base = os.environ.get(naming.UI_URL_ENV, DEFAULT_UI_URL)

    def describe(self) -> str:
        return "the Dagster instance at %s" % self.home

    def queue_warning(self) -> Optional[str]:
        return None  # runs start right away, past any run queue

    def _instance(self):
        from dagster import DagsterInstance

        return DagsterInstance.from_config(self.home)

    def launch(self, job: DefinitionsFile, config: dict, tags: Dict[str, str]) -> str:
        from dagster import DagsterRunStatus
        from dagster._core.errors import DagsterInvalidConfigError
        from dagster._core.utils import make_new_run_id

        job_def = job.job_def()
        run_id = make_new_run_id()
        run_tags = dict(job_def.run_tags or {})
        run_tags.update(tags)
        run_tags[naming.TAG_RUN_ID] = naming.metaflow_run_id(run_id)
        with self._instance() as instance:
            try:
                run = instance.create_run_for_job(
                    job_def,
                    run_id=run_id,
                    run_config=config,
                    tags=run_tags,
                    status=DagsterRunStatus.NOT_STARTED,
                    job_code_origin=job.recon_job().get_python_origin(),
                    remote_job_origin=job.remote_origin(),
                )
            except DagsterInvalidConfigError as error:
                raise CommandError(
                    "Invalid run config: %s" % "; ".join(e.message for e in error.errors)
                ) from None
            pid = self._spawn_worker(instance, run, job.directory)
            instance.add_run_tags(run_id, {naming.TAG_RUN_WORKER: _worker_tag(run_id, pid)})
            instance.report_engine_event(
                "metaflow-dagster started the process executing this run (pid %d)." % pid, run)
        return run_id

    def _spawn_worker(self, instance, run, cwd: str) -> int:
        """`dagster api execute_run` in its own session: it outlives this process."""
        from dagster._grpc.types import ExecuteRunArgs

        args = ExecuteRunArgs(
            job_origin=run.job_code_origin,
            run_id=run.run_id,
            instance_ref=instance.get_ref(),
            set_exit_code_on_failure=True,
        )
        log_dir = os.path.join(self.home, "metaflow_dagster", "run_workers")
        os.makedirs(log_dir, exist_ok=True)
        env = dict(os.environ, DAGSTER_HOME=self.home)
        with open(os.path.join(log_dir, "%s.log" % run.run_id), "ab") as log:
            proc = subprocess.Popen(
                # The origin's entry point is a bare `dagster`, maybe not on PATH.
                [sys.executable, "-m", "dagster"] + list(args.get_command_args())[-3:],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        return proc.pid

    def run_state(self, run_id: str) -> Optional[RunState]:
        with self._instance() as instance:
            run = instance.get_run_by_id(run_id)
            if run is None:
                return None
            if run.status.value not in FINISHED + ("NOT_STARTED", "QUEUED"):
                run = self._fail_if_worker_died(instance, run)
            return self._state(instance, run)

    def terminate(self, run_id: str) -> None:
        """Cancel a run started by `dagster trigger` here: mark it CANCELING and
        interrupt its worker. Dagster's run worker takes SIGINT as a request to stop
        (SIGTERM would kill it on the spot); the executor then terminates the running
        tasks' process groups and the run ends CANCELED."""
        with self._instance() as instance:
            run = instance.get_run_by_id(run_id)
            pid = _worker_pid(run)
            if pid is None or not _is_run_worker(pid):
                raise CommandError(
                    "Dagster run %s was not started by `dagster trigger` on this machine, or "
                    "its process is gone; terminate it from the Dagster UI, or with "
                    "--dagster-url." % run_id)
            instance.report_run_canceling(run, message="Terminating the run (metaflow-dagster).")
            os.kill(pid, signal.SIGINT)

    def _fail_if_worker_died(self, instance, run):
        """A run whose worker process is gone will never finish: say so, as
        Dagster's run monitoring would, instead of showing it running forever.
        (Only for runs executed by a worker started here: a re-execution launched
        by the webserver copies its parent's tags, but not this one's run id.)"""
        pid = _worker_pid(run)
        if pid is None or _is_run_worker(pid):
            return run
        # The worker may have finished the run just now.
        run = instance.get_run_by_id(run.run_id)
        if run.status.value in FINISHED:
            return run
        instance.report_run_failed(
            run, "The process executing this run (pid %s) exited before the run finished." % pid
        )
        return instance.get_run_by_id(run.run_id)

    def _state(self, instance, run) -> RunState:
        steps = [
            StepState(s.step_key, s.status.value if s.status else "UNKNOWN", s.start_time)
            for s in instance.get_run_step_stats(run.run_id)
        ]
        return RunState(run.run_id, run.status.value, run.job_name, run.root_run_id,
                        run.parent_run_id, dict(run.tags), steps)

    def flow_runs(self, flow_name: str, limit: int) -> List[RunState]:
        """Runs of the flow, newest first, without step states."""
        from dagster import RunsFilter

        with self._instance() as instance:
            runs = instance.get_runs(filters=RunsFilter(tags={naming.TAG_FLOW_NAME: flow_name}),
                                     limit=limit)
            return [RunState(r.run_id, r.status.value, r.job_name, r.root_run_id,
                             r.parent_run_id, dict(r.tags)) for r in runs]


def _worker_tag(run_id: str, pid: int) -> str:
    return "%s@%s:%d" % (run_id, socket.gethostname(), pid)


def _worker_pid(run) -> Optional[int]:
    """The pid of the worker `dagster trigger` started on this machine for this
    very run (a re-execution copies its parent's tags, not its run id)."""
    owner, _, pid = run.tags.get(naming.TAG_RUN_WORKER, "").rpartition(":")
    if owner != "%s@%s" % (run.run_id, socket.gethostname()) or not pid.isdigit():
        return None
    return int(pid)


def _is_run_worker(pid: int) -> bool:
    """Is pid a live `dagster api execute_run` process (not a zombie, not reused)?"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"execute_run" in f.read()
    except FileNotFoundError:
        return False
    except OSError:
        # No /proc (not Linux): only ask whether the pid exists.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
