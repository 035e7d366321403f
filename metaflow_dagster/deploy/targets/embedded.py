"""The embedded default target: the Dagster instance of DAGSTER_HOME (SQLite
unless its dagster.yaml says otherwise).

The run record is created here, with the same origins a code location would give
it, so `dagster dev` on the same home shows the run and can re-execute it; the
run then executes in a detached process that does what Dagster's own `dagster api
execute_run` does (runtime/executors/run_worker.py), so the command returns at once.
That process is started before the run record (`prepare_launch`): it imports Dagster
while the command loads the definitions file, then reads the run's id from a pipe.

Every command opens the instance under a lock in DAGSTER_HOME (home.open_instance)
and first fails the runs whose worker process died (runtime/executors/workers.py).
"""

import logging
import os
import signal
import subprocess
import sys
import tempfile
import weakref
from contextlib import ExitStack, contextmanager, suppress
from typing import Dict, List, Optional, Tuple

from ... import naming
from ..definitions import DefinitionsFile
from ..errors import CommandError
from ..report import DEFAULT_UI_URL
from ..runs import RunState, StepState, failure_details
from .home import dagster_home, open_instance


class EmbeddedTarget:
    """Runs go to the Dagster instance of DAGSTER_HOME (or `home`)."""

    def __init__(self, home: Optional[str] = None):
        self.home = dagster_home(home)
        self.ui_base = os.environ.get(naming.UI_URL_ENV, DEFAULT_UI_URL)
        self._opened = None  # the instance, once opened (closed with this object)
        self._worker: Optional[_RunWorker] = None  # started, waiting for its run

    def describe(self) -> str:
        return "the Dagster instance at %s" % self.home

    def queue_warning(self) -> Optional[str]:
        return None  # runs start right away, past any run queue

    def _open(self):
        """The home's instance, opened at the first call and kept: opening one costs
        a few tenths of a second of CPU (its storage, the migration check), which
        `trigger --wait` would otherwise pay at every look at its run."""
        if self._opened is None:
            stack = ExitStack()
            self._opened = stack.enter_context(open_instance(self.home))
            weakref.finalize(self, stack.close)
        return self._opened

    @contextmanager
    def _instance(self):
        """The instance, once the runs whose worker died are failed."""
        from ...runtime.executors import workers  # imports dagster: only once a command runs

        instance = self._open()
        workers.fail_runs_whose_worker_died(instance)
        yield instance

    def prepare_launch(self, directory: str) -> None:
        """Start the process that will execute the run launched next, of a job whose
        definitions file is in `directory` (its working directory)."""
        if self._worker is None:
            self._worker = _RunWorker(self.home, directory)
            weakref.finalize(self, self._worker.release)

    def launch(self, job: DefinitionsFile, config: dict, tags: Dict[str, str]) -> str:
        from dagster import DagsterRunStatus
        from dagster._core.errors import DagsterInvalidConfigError
        from dagster._core.utils import make_new_run_id

        from ...runtime.executors.workers import worker_tag

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
            worker, self._worker = self._worker or _RunWorker(self.home, job.directory), None
            instance.add_run_tags(run_id, {naming.TAG_RUN_WORKER: worker_tag(run_id,
                                                                             worker.pid)})
            worker.execute(run_id)
            instance.report_engine_event(
                "metaflow-dagster started the process executing this run (pid %d)."
                % worker.pid, run)
        return run_id

    def run_state(self, run_id: str) -> Optional[RunState]:
        with self._instance() as instance:
            run = instance.get_run_by_id(run_id)
            if run is None:
                return None
            return self._state(instance, run)

    def terminate(self, run_id: str) -> None:
        """Cancel a run whose worker runs on this machine (started by `dagster trigger`,
        `dagster job execute` or `dagster dev`): mark it CANCELING and interrupt its
        worker. Dagster's run worker takes SIGINT as a request to stop (SIGTERM would
        kill it on the spot); the executor then terminates the running tasks' process
        groups and the run ends CANCELED."""
        from ...runtime.executors.workers import worker_of

        with self._instance() as instance:
            run = instance.get_run_by_id(run_id)
            worker = worker_of(run)
            if worker is None or not worker.on_this_host or not worker.alive():
                raise CommandError(
                    "Dagster run %s is not executed by a process of metaflow-dagster on this "
                    "machine%s; terminate it from the Dagster UI, or with --dagster-url."
                    % (run_id, " (it runs on %s)" % worker.host if worker else ""))
            instance.report_run_canceling(run, message="Terminating the run (metaflow-dagster).")
            os.kill(worker.pid, signal.SIGINT)

    def _state(self, instance, run) -> RunState:
        stats = instance.get_run_step_stats(run.run_id)
        failed = any(s.status and s.status.value == "FAILURE" for s in stats)
        failures = _step_failures(instance, run.run_id) if failed else {}
        steps = [
            StepState(s.step_key, s.status.value if s.status else "UNKNOWN", s.start_time,
                      s.attempts or 1, **failures.get(s.step_key, {}))
            for s in stats
        ]
        return RunState(run.run_id, run.status.value, run.job_name, run.root_run_id,
                        run.parent_run_id, dict(run.tags), steps)

    def flow_runs(self, flow_name: str, limit: int,
                  job_name: Optional[str] = None) -> List[RunState]:
        """Runs of the flow (of one job of it), newest first, without step states."""
        from dagster import RunsFilter

        with self._instance() as instance:
            runs = instance.get_runs(filters=RunsFilter(
                job_name=job_name, tags={naming.TAG_FLOW_NAME: flow_name}), limit=limit)
            return [RunState(r.run_id, r.status.value, r.job_name, r.root_run_id,
                             r.parent_run_id, dict(r.tags)) for r in runs]

    # --- suspend, failures and the event log (deploy/run_commands.py) ---

    def tag_run(self, run_id: str, tags: Dict[str, str]) -> None:
        with self._instance() as instance:
            instance.add_run_tags(run_id, tags)

    def failure_messages(self, run_id: str) -> List[str]:
        """What the failed steps of the run said."""
        from dagster import DagsterEventType

        with self._instance() as instance:
            records = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
            return [r.dagster_event.event_specific_data.error.message for r in records
                    if r.dagster_event.event_specific_data.error is not None]

    def run_events(self, run_id: str, cursor: Optional[str] = None):
        """The run's event log after `cursor`: ([(timestamp, level, step key, event
        type, message)], the next cursor)."""
        with self._instance() as instance:
            connection = instance.get_records_for_run(run_id, cursor=cursor)
            events = [(r.event_log_entry.timestamp, logging.getLevelName(r.event_log_entry.level),
                       r.event_log_entry.step_key, r.event_log_entry.dagster_event_type
                       and r.event_log_entry.dagster_event_type.value,
                       r.event_log_entry.message or "") for r in connection.records]
            return events, connection.cursor

    # --- the tasks' output (deploy/task_output.py) ---

    def log_captures(self, run_id: str, cursor: Optional[str] = None):
        """The run's captured-log files announced after `cursor`: ([(step keys, file
        key)], the next cursor)."""
        from dagster import DagsterEventType

        with self._instance() as instance:
            connection = instance.get_records_for_run(
                run_id, cursor=cursor, of_type=DagsterEventType.LOGS_CAPTURED)
            captures = [(list(data.step_keys or []), data.file_key) for data in (
                r.event_log_entry.dagster_event.event_specific_data
                for r in connection.records)]
            return captures, connection.cursor

    def captured_logs(self, reads: List[Tuple[List[str], Optional[str]]]
                      ) -> List[Tuple[str, str, Optional[str]]]:
        """For each (log key, cursor): (stdout, stderr, next cursor) written since."""
        manager = self._open().compute_log_manager
        chunks = [manager.get_log_data(key, cursor=cursor) for key, cursor in reads]
        return [(_text(c.stdout), _text(c.stderr), c.cursor) for c in chunks]


class _RunWorker:
    """The process that executes one run (runtime/executors/run_worker.py), started
    ahead of its run, in its own session: it outlives this process. Its output goes
    to <home>/metaflow_dagster/run_workers/<run id>.log."""

    def __init__(self, home: str, directory: str):
        self.log_dir = os.path.join(home, "metaflow_dagster", "run_workers")
        os.makedirs(self.log_dir, exist_ok=True)
        self.log = tempfile.NamedTemporaryFile(dir=self.log_dir, prefix="starting-",
                                               suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "metaflow_dagster.runtime.executors.run_worker"],
            cwd=directory,
            env=dict(os.environ, DAGSTER_HOME=home),
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        self.pid = self.proc.pid

    def execute(self, run_id: str) -> None:
        """Hand it the run to execute."""
        log = os.path.join(self.log_dir, "%s.log" % run_id)
        os.rename(self.log.name, log)
        self.log.close()
        try:
            self.proc.stdin.write(("%s\n" % run_id).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            raise CommandError("The process to execute run %s exited before it got the run; "
                               "what it printed is in %s." % (run_id, log)) from None

    def release(self) -> None:
        """No run for it: it exits when its stdin closes (its log goes too)."""
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
            self.log.close()
            with suppress(OSError):
                os.unlink(self.log.name)


def _text(data: Optional[bytes]) -> str:
    return (data or b"").decode("utf-8", "replace")


def _step_failures(instance, run_id: str) -> Dict[str, dict]:
    """Step key -> failure_details of its (last) STEP_FAILURE event."""
    from dagster import DagsterEventType

    failures = {}
    for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.event_specific_data
        user = data.user_failure_data
        description = user.description if user and user.description else (
            data.error.message if data.error else None)
        metadata = {k: v.value for k, v in (user.metadata if user else {}).items()}
        failures[record.dagster_event.step_key] = failure_details(description, metadata)
    return failures
