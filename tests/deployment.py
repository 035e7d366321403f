"""Dagster's own long-running pieces for the tests, as a production deployment starts them:
`dagster-webserver` and `dagster-daemon run`, each its own process on one workspace file and
one DAGSTER_HOME (see docs/deploy.md).

    with deployment.webserver_and_daemon(tmp, home, workspace, env) as dagster:
        dagster.graphql("{ version }")

Both listen on / talk to 127.0.0.1 only (or the address of the host they are started on), log
into `tmpdir`, and are stopped by their own process groups on exit (the code servers and run
workers they start are in those groups).
"""

import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import services

DAEMON_HEALTH = ('{ instance { daemonHealth { daemonStatus(daemonType: "QUEUED_RUN_COORDINATOR")'
                 ' { healthy } } } }')
LOCATIONS = ("{ workspaceOrError { ... on Workspace { locationEntries { name "
             "locationOrLoadError { __typename ... on PythonError { message } } } } } }")


def workspace_yaml(path: Path, defs_files: List[Path], working_directory: Path) -> Path:
    """A workspace file loading each definitions file by its absolute path (Celery workers
    import the job by the path the run was submitted with)."""
    lines = ["load_from:"]
    for defs in defs_files:
        lines += ["  - python_file:",
                  f"      relative_path: {Path(defs).resolve()}",
                  f"      working_directory: {Path(working_directory).resolve()}",
                  f"      location_name: {Path(defs).stem}"]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Deployment:
    webserver: subprocess.Popen
    daemon: subprocess.Popen
    port: int
    logs: List[Path]
    start_seconds: float
    _started: float = 0.0
    machine: services.Machine = services.THIS_MACHINE

    @property
    def url(self) -> str:
        return f"http://{self.machine.address}:{self.port}"

    def graphql(self, query: str, variables=None) -> dict:
        return self.machine.call(services.graphql, self.url, query, variables)

    def rss_mb(self) -> float:
        return services.rss_mb(services.process_tree(self.webserver.pid)
                               + services.process_tree(self.daemon.pid))

    def log_tails(self) -> str:
        return "\n".join(f"--- {log}\n{services.log_tail(log)}" for log in self.logs)

    def wait_ready(self, locations: int = 1, timeout: float = 120.0) -> None:
        """Until the webserver has loaded `locations` code locations and the daemon is
        healthy; start_seconds counts from the start of both."""
        services._wait_for(lambda: _locations_loaded(self, locations), self.webserver,
                           "dagster-webserver", self.logs[0], timeout=timeout, interval=0.5)
        services._wait_for(lambda: _daemon_healthy(self), self.daemon, "dagster-daemon",
                           self.logs[1], timeout=timeout, interval=0.5)
        self.start_seconds = round(time.monotonic() - self._started, 2)


def _locations_loaded(dagster: Deployment, count: int) -> bool:
    try:
        entries = dagster.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
    except OSError:
        return False
    errors = [e["locationOrLoadError"] for e in entries if e["locationOrLoadError"]
              and e["locationOrLoadError"]["__typename"] == "PythonError"]
    if errors:
        raise services.ServiceError(f"a code location failed to load: {errors}")
    loaded = [e for e in entries if e["locationOrLoadError"]
              and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"]
    return len(loaded) == count


def _daemon_healthy(dagster: Deployment) -> bool:
    try:
        status = dagster.graphql(DAEMON_HEALTH)["instance"]["daemonHealth"]["daemonStatus"]
    except OSError:
        return False
    return bool(status["healthy"])


@contextlib.contextmanager
def webserver_and_daemon(tmpdir, dagster_home: Path, workspace: Path, env: dict,
                         locations: Optional[int] = 1,
                         host: services.Machine = services.THIS_MACHINE) -> Iterator[Deployment]:
    """Start both (on `host`, whose paths `tmpdir`, `dagster_home` and `workspace` are); unless
    `locations` is None, wait until they are ready (else the caller calls wait_ready(), e.g.
    after starting other servers meanwhile)."""
    tmpdir = Path(tmpdir)
    host.path(tmpdir).mkdir(parents=True, exist_ok=True)
    env = dict(env, DAGSTER_HOME=str(dagster_home))
    port = host.free_port()
    bin_dir = services.VENV_BIN
    logs = [host.path(tmpdir / "webserver.log"), host.path(tmpdir / "daemon.log")]
    started = time.monotonic()
    procs = []
    try:
        for argv, log in (
            ([str(bin_dir / "dagster-webserver"), "-h", host.address, "-p", str(port),
              "-w", str(workspace)], logs[0]),
            ([str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)], logs[1]),
        ):
            with open(log, "wb") as out:
                procs.append(host.popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=tmpdir,
                                        env=env))
        dagster = Deployment(procs[0], procs[1], port, logs, 0.0, started, host)
        if locations is not None:
            dagster.wait_ready(locations)
        yield dagster
    finally:
        for proc in procs:
            services.stop_process(proc, sig=signal.SIGTERM, timeout=20, target="group")


def celery_workers_of(instance, run_id: str, step_key: str) -> list:
    """The Celery workers that took a step (one per attempt), from dagster-celery's events."""
    from dagster import DagsterEventType

    found = []
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event.step_key == step_key and "Celery worker" in event.engine_event_data.metadata:
            found.append(event.engine_event_data.metadata["Celery worker"].value)
    return found
