"""Metaflow's run heartbeat: while a run executes, the process executing it (the run worker,
whatever the executor) tells Metaflow's metadata service that the run is alive, as Argo's
heartbeat daemon does for a workflow. The service (and its UI) use it to tell a running run
from one whose scheduler died; each task sends its own task heartbeat too (Metaflow does).

Only for jobs whose tasks use the metadata service (`--metadata service` at `create`, or
METAFLOW_DEFAULT_METADATA=service on the worker). A heartbeat the service refuses or cannot
receive is retried on the next beat: the run itself never waits on it.
"""

import json
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from dagster._core.executor.base import Executor

from ... import naming
from ...plan import FlowPlan
from ..launch.preflight import metadata_service
from .wrapping import WrappingExecutor

# Metaflow's own default; the service may ask for another in its answer.
DEFAULT_INTERVAL_SECONDS = 10
TIMEOUT_SECONDS = (3, 10)  # connect, read


def heartbeat_url(service_url: str, flow_name: str, run_id: str) -> str:
    """The URL Metaflow's ServiceMetadataProvider posts a run's heartbeats to."""
    return "%s/flows/%s/runs/%s/heartbeat" % (service_url.rstrip("/"), flow_name, run_id)


class RunHeartbeat:
    """A daemon thread posting the run's heartbeat every interval until stopped."""

    def __init__(self, url: str):
        self.url = url
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="metaflow-run-heartbeat",
                                        daemon=True)

    def start(self) -> "RunHeartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.is_set():
            interval = self.send()
            self._stop.wait(interval or DEFAULT_INTERVAL_SECONDS)

    def send(self) -> Optional[float]:
        """One heartbeat; the interval the service asks for, if it says."""
        import requests
        from metaflow.metaflow_config import SERVICE_HEADERS

        try:
            response = requests.post(self.url, data="{}", headers=dict(SERVICE_HEADERS or {}),
                                     timeout=TIMEOUT_SECONDS)
        except requests.RequestException:
            return None
        if response.status_code != 200:
            return None  # e.g. the run is not registered yet: its start task does that
        self.sent += 1
        return _wait_time(response)


def _wait_time(response) -> Optional[float]:
    """metaflow-service answers a JSON string holding an object (Metaflow's own heartbeat
    decodes it twice); accept the object too."""
    try:
        body = response.json()
        if isinstance(body, str):
            body = json.loads(body)
        return float(body.get("wait_time_in_seconds"))
    except (ValueError, TypeError, AttributeError):
        return None


@contextmanager
def run_heartbeat(plan: Optional[FlowPlan], dagster_run) -> Iterator[Optional[RunHeartbeat]]:
    """Send the run's heartbeat while inside, if the job's tasks use a metadata service."""
    service = metadata_service(plan) if plan is not None else None
    if not service:
        yield None
        return
    beat = RunHeartbeat(heartbeat_url(service, plan.flow_name,
                                      naming.metaflow_run_id_of(dagster_run))).start()
    try:
        yield beat
    finally:
        beat.stop()


class HeartbeatingExecutor(WrappingExecutor):
    """Another executor's work, with the run's heartbeat sent meanwhile. `plan_of` gives the
    plan of a job by its name (None for a job that is not a compiled flow)."""

    def __init__(self, inner: Executor, plan_of: Callable[[str], Optional[FlowPlan]]):
        super().__init__(inner)
        self._plan_of = plan_of

    def execute(self, plan_context, execution_plan):
        plan = self._plan_of(plan_context.job.get_definition().name)
        with run_heartbeat(plan, plan_context.dagster_run):
            yield from self.inner.execute(plan_context, execution_plan)
