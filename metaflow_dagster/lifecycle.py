"""Starting runs of a compiled job and reading their state, on either target.

- `EmbeddedTarget`, the default: the Dagster instance of DAGSTER_HOME (SQLite
  unless its dagster.yaml says otherwise). The run record is created here, with
  the same origins a code location would give it, so `dagster dev` on the same
  home shows the run and can re-execute it; the run then executes in a detached
  `dagster api execute_run` process (what Dagster's own run launcher starts), so
  the command returns at once.
- `GraphQLTarget`: a running Dagster deployment (`dagster dev`, or a webserver and
  a daemon), reached through its GraphQL API. The webserver queues the run; its
  daemon launches it.

Both answer the same questions: launch a run, the state of a run and of its
steps, the latest run of a flow, the latest Dagster run of a Metaflow run.
"""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional
from urllib.parse import urlparse

from . import ids
from .plan import FlowPlan

DAGSTER_URL_ENV = "METAFLOW_DAGSTER_URL"
UI_URL_ENV = "METAFLOW_DAGSTER_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
# "host:pid" of the detached process executing an embedded run.
TAG_RUN_WORKER = "metaflow/dagster_run_worker"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
# How many recent runs of a flow are searched for a Metaflow run id.
RUN_SEARCH_LIMIT = 1000


class LifecycleError(Exception):
    """A problem the user can fix; the CLI shows the message alone."""


@dataclass(frozen=True)
class StepState:
    key: str
    status: str
    start_time: Optional[float] = None


@dataclass(frozen=True)
class RunState:
    run_id: str
    status: str
    job_name: str
    root_run_id: Optional[str] = None
    parent_run_id: Optional[str] = None
    tags: Dict[str, str] = field(default_factory=dict)
    steps: List[StepState] = field(default_factory=list)

    @property
    def metaflow_run_id(self) -> str:
        return ids.metaflow_run_id_of(self)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class CompiledJob:
    """A definitions file written by `dagster create`, loaded."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            raise LifecycleError(
                "No definitions file at %s. Write it with `python <flow>.py dagster create`, "
                "or pass --definitions-file." % self.path
            )
        name = "metaflow_dagster_definitions_%x" % abs(hash((self.path, os.path.getmtime(path))))
        spec = importlib.util.spec_from_file_location(name, self.path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # a stale or hand-edited file: say which and why
            raise LifecycleError("Could not load %s: %s" % (self.path, error)) from error
        flow = getattr(module, "FLOW", None)
        if flow is None or not hasattr(flow, "plan"):
            raise LifecycleError("%s is not a definitions file of metaflow-dagster." % self.path)
        self.plan: FlowPlan = flow.plan
        self.definitions_attr, self.definitions = _find_definitions(module, self.path)

    @property
    def job_name(self) -> str:
        return self.plan.job_name

    def job_def(self):
        return self.definitions.get_job_def(self.job_name)

    def recon_job(self):
        from dagster._core.definitions.reconstruct import ReconstructableRepository

        repo = ReconstructableRepository.for_file(
            self.path, self.definitions_attr, working_directory=self.plan.cwd
        )
        return repo.get_reconstructable_job(self.job_name)

    def remote_origin(self):
        """The origin `dagster dev -f <this file>` gives the job's runs: with it, the
        UI finds the job of a run started here, e.g. to re-execute it."""
        from dagster._core.remote_origin import RemoteRepositoryOrigin
        from dagster._core.workspace.load import location_origin_from_python_file

        location = location_origin_from_python_file(self.path, None, self.plan.cwd)
        return RemoteRepositoryOrigin(location, "__repository__").get_job_origin(self.job_name)


def _find_definitions(module, path):
    from dagster import Definitions

    for attr, value in vars(module).items():
        if isinstance(value, Definitions):
            return attr, value
    raise LifecycleError("%s holds no Dagster Definitions." % path)


def run_config(plan: FlowPlan, values: Dict[str, object]) -> dict:
    """Run config setting the flow's Parameters (by Metaflow name) on the start op."""
    known = {p.name: p for p in plan.parameters}
    config = {}
    for name, value in values.items():
        if name not in known:
            raise LifecycleError(
                "Parameter *%s* is not in the definitions file of %s; regenerate it with "
                "`python <flow>.py dagster create`." % (name, plan.flow_name)
            )
        param = known[name]
        if param.type == "json" and not isinstance(value, str):
            value = json.dumps(value)
        config[param.field] = value
    return {"ops": {plan.start_step: {"config": config}}} if config else {}


def ui_url(target, run_id: str) -> str:
    return "%s/runs/%s" % (target.ui_base.rstrip("/"), run_id)


def target_for(dagster_url: Optional[str] = None, dagster_home: Optional[str] = None):
    """The GraphQL target if a URL is given (or METAFLOW_DAGSTER_URL is set), else
    the embedded instance of DAGSTER_HOME."""
    url = dagster_url or os.environ.get(DAGSTER_URL_ENV)
    if url:
        return GraphQLTarget(url)
    return EmbeddedTarget(dagster_home)


class EmbeddedTarget:
    def __init__(self, home: Optional[str] = None):
        home = home or os.environ.get("DAGSTER_HOME")
        if not home:
            raise LifecycleError(
                "DAGSTER_HOME is not set. Set it to the Dagster home to run in (the one "
                "`dagster dev` uses), or pass --dagster-url to submit to a running Dagster."
            )
        if not os.path.isabs(home) or not os.path.isdir(home):
            raise LifecycleError(
                "DAGSTER_HOME=%s must be an absolute path to an existing directory." % home
            )
        self.home = home
        self.ui_base = os.environ.get(UI_URL_ENV, DEFAULT_UI_URL)

    def describe(self) -> str:
        return "the Dagster instance at %s" % self.home

    def queue_warning(self) -> Optional[str]:
        return None  # runs start right away, past any run queue

    def _instance(self):
        from dagster import DagsterInstance

        return DagsterInstance.from_config(self.home)

    def launch(self, job: CompiledJob, config: dict, tags: Dict[str, str]) -> str:
        from dagster import DagsterRunStatus
        from dagster._core.errors import DagsterInvalidConfigError
        from dagster._core.utils import make_new_run_id

        job_def = job.job_def()
        run_id = make_new_run_id()
        run_tags = dict(job_def.run_tags or {})
        run_tags.update(tags)
        run_tags[ids.TAG_RUN_ID] = ids.metaflow_run_id(run_id)
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
                raise LifecycleError(
                    "Invalid run config: %s" % "; ".join(e.message for e in error.errors)
                ) from None
            pid = self._spawn_worker(instance, run, job.plan.cwd)
            instance.add_run_tags(run_id, {TAG_RUN_WORKER: _worker_tag(run_id, pid)})
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
                raise LifecycleError(
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
            runs = instance.get_runs(filters=RunsFilter(tags={ids.TAG_FLOW_NAME: flow_name}),
                                     limit=limit)
            return [RunState(r.run_id, r.status.value, r.job_name, r.root_run_id,
                             r.parent_run_id, dict(r.tags)) for r in runs]


def _worker_tag(run_id: str, pid: int) -> str:
    return "%s@%s:%d" % (run_id, socket.gethostname(), pid)


def _worker_pid(run) -> Optional[int]:
    """The pid of the worker `dagster trigger` started on this machine for this
    very run (a re-execution copies its parent's tags, not its run id)."""
    owner, _, pid = run.tags.get(TAG_RUN_WORKER, "").rpartition(":")
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


RUN_FIELDS = "runId status jobName rootRunId parentRunId tags { key value }"
RUN_STATE_QUERY = """
query RunState($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { %s stepStats { stepKey status startTime } }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
""" % RUN_FIELDS
DAEMON_QUERY = """
{
  instance {
    runQueuingSupported
    daemonHealth { daemonStatus(daemonType: "QUEUED_RUN_COORDINATOR") { healthy } }
  }
}
"""
FLOW_RUNS_QUERY = """
query FlowRuns($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { %s } }
    ... on InvalidPipelineRunsFilterError { message }
    ... on PythonError { message }
  }
}
""" % RUN_FIELDS


class GraphQLTarget:
    def __init__(self, url: str):
        from dagster_graphql import DagsterGraphQLClient

        parsed = urlparse(url if "://" in url else "http://" + url)
        if not parsed.hostname:
            raise LifecycleError("Not a URL of a Dagster webserver: %r" % url)
        self.url = url
        self.ui_base = "%s://%s%s" % (parsed.scheme, parsed.netloc, parsed.path.rstrip("/"))
        self.client = DagsterGraphQLClient(
            parsed.hostname,
            port_number=parsed.port,
            use_https=parsed.scheme == "https",
            path_prefix=parsed.path.rstrip("/"),
            timeout=60,
        )

    def describe(self) -> str:
        return "the Dagster webserver at %s" % self.ui_base

    def _execute(self, query: str, variables: dict) -> dict:
        from dagster_graphql import DagsterGraphQLClientError

        try:
            return self.client._execute(query, variables)
        except DagsterGraphQLClientError as error:
            raise LifecycleError(str(error)) from None

    def launch(self, job: CompiledJob, config: dict, tags: Dict[str, str]) -> str:
        from dagster_graphql import DagsterGraphQLClientError

        try:
            return self.client.submit_job_execution(job.job_name, run_config=config, tags=tags)
        except DagsterGraphQLClientError as error:
            detail = error.body if getattr(error, "body", None) else ""
            raise LifecycleError(
                "%s could not start job %s: %s %s" % (self.describe(), job.job_name, error, detail)
            ) from None

    def terminate(self, run_id: str) -> None:
        """Ask the webserver to terminate the run (as the UI's Terminate button)."""
        from dagster_graphql import DagsterGraphQLClientError

        try:
            self.client.terminate_run(run_id)
        except DagsterGraphQLClientError as error:
            raise LifecycleError("%s could not terminate run %s: %s"
                                 % (self.describe(), run_id, error)) from None

    def queue_warning(self) -> Optional[str]:
        """Why a submitted run may stay QUEUED: the deployment queues runs and no
        daemon is there to dequeue them (a webserver alone)."""
        data = self._execute(DAEMON_QUERY, {})["instance"]
        status = data["daemonHealth"]["daemonStatus"]
        if data["runQueuingSupported"] and not status["healthy"]:
            return ("%s queues runs, and its daemon is not running: the run stays QUEUED "
                    "until a daemon starts (`dagster-daemon run`, or use `dagster dev`)."
                    % self.describe())
        return None

    def run_state(self, run_id: str) -> Optional[RunState]:
        data = self._execute(RUN_STATE_QUERY, {"runId": run_id})["runOrError"]
        if data["__typename"] == "RunNotFoundError":
            return None
        if data["__typename"] != "Run":
            raise LifecycleError(data.get("message", data["__typename"]))
        steps = [StepState(s["stepKey"], s["status"] or "UNKNOWN", s["startTime"])
                 for s in data["stepStats"]]
        return _run_from_graphql(data, steps)

    def flow_runs(self, flow_name: str, limit: int) -> List[RunState]:
        variables = {"filter": {"tags": [{"key": ids.TAG_FLOW_NAME, "value": flow_name}]},
                     "limit": limit}
        data = self._execute(FLOW_RUNS_QUERY, variables)["runsOrError"]
        if data["__typename"] != "Runs":
            raise LifecycleError(data.get("message", data["__typename"]))
        return [_run_from_graphql(r) for r in data["results"]]


def _run_from_graphql(data: dict, steps=()) -> RunState:
    return RunState(data["runId"], data["status"], data["jobName"], data["rootRunId"],
                    data["parentRunId"], {t["key"]: t["value"] for t in data["tags"]}, list(steps))


def latest_run(target, flow_name: str) -> Optional[RunState]:
    runs = target.flow_runs(flow_name, 1)
    return target.run_state(runs[0].run_id) if runs else None


def find_run(target, flow_name: str, run_id: str) -> RunState:
    """A Dagster run by its id, or the latest Dagster run of a Metaflow run (a
    re-execution continues the Metaflow run of its root run)."""
    if not ids.is_dagster_run_id_prefix(run_id):
        state = target.run_state(run_id)
        if state is None:
            raise LifecycleError("No run %s in %s." % (run_id, target.describe()))
        return state
    for run in target.flow_runs(flow_name, RUN_SEARCH_LIMIT):
        if run.metaflow_run_id == run_id:
            return target.run_state(run.run_id)
    raise LifecycleError(
        "No Dagster run of Metaflow run %s/%s in %s." % (flow_name, run_id, target.describe())
    )


def metaflow_run_of(target, flow_name: str, run_id: str) -> str:
    """The Metaflow run id of a Metaflow or Dagster run id."""
    if ids.is_dagster_run_id_prefix(run_id):
        return run_id
    return find_run(target, flow_name, run_id).metaflow_run_id


def describe_state(state: RunState, flow_name: str) -> List[str]:
    """What `dagster status` prints: the run's state, then each step's."""
    lines = ["Run %s of job %s (Metaflow run %s/%s): %s" % (
        state.run_id, state.job_name, flow_name, state.metaflow_run_id, state.status)]
    if state.parent_run_id:
        lines.append("  re-execution of run %s" % state.parent_run_id)
    steps = sorted(state.steps, key=lambda s: (s.start_time is None, s.start_time or 0, s.key))
    width = max([len(s.key) for s in steps] + [4])
    for step in steps:
        lines.append("  %s  %s" % (step.key.ljust(width), step.status))
    if not steps:
        lines.append("  (no step has started yet)")
    return lines
