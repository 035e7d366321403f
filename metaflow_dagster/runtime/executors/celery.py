"""The `celery` executor of compiled jobs: dagster-celery's workers, app and task,
driven by Dagster's StepDelegatingExecutor.

dagster-celery's own executor loop (core_celery_execution_loop) misses two things
a compiled flow needs:
- per-run limits (max_concurrent, tag_concurrency_limits): without them the
  per-foreach cap (--max-workers) is lost;
- any notice of a worker that dies mid-task (its host lost, SIGKILL): the loop
  waits on the task's Celery result, which never comes, and the run stays STARTED
  for ever.

StepDelegatingExecutor, the loop dagster-k8s and dagster-docker use, has both
limits and instance pools, reads each step's events from the instance (where the
Celery worker writes them), and asks a step handler about each running step's
health. The handler below submits dagster-celery's own `execute_plan` task, so
stock `dagster-celery worker start` processes run the steps, and answers health
checks from the task's Celery state and from its worker's answer to a ping. A
step launched again (a retry) goes to another live worker when the workers consume
their direct queues (Celery's `worker_direct`), so that a host that cannot do the
step (its datastore unreachable, say) does not take every attempt.

Imported only when a run uses Celery: dagster-celery is an optional extra.
"""

import os
import random
import time
from typing import Dict, Optional

from celery.utils.nodenames import worker_direct
from dagster import Field, Int, Noneable, StringSource
from dagster._core.event_api import EventLogCursor
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import (
    StepDependencyConfig,
    get_step_dependency_config_field,
)
from dagster._core.execution.tags import get_tag_concurrency_limits_config
from dagster._core.executor.step_delegating import (
    CheckStepHealthResult,
    StepDelegatingExecutor,
    StepHandler,
)
from dagster._serdes import pack_value
from dagster_celery.config import TASK_EXECUTE_PLAN_NAME
from dagster_celery.core_execution_loop import DELEGATE_MARKER
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG, DAGSTER_CELERY_STEP_PRIORITY_TAG
from dagster_celery.tasks import create_task

# Celery's own environment variables, read when the run config names no broker or
# result backend (so that a generated file holds no broker URL or password).
BROKER_ENV = "CELERY_BROKER_URL"
BACKEND_ENV = "CELERY_RESULT_BACKEND"
HEALTH_CHECK_SECONDS = 5
PING_TIMEOUT_SECONDS = 2.0
DEFAULT_LOST_WORKER_SECONDS = 15
# The metadata key under which dagster-celery's task names the worker running a step.
WORKER_METADATA_KEY = "Celery worker"


def celery_config_schema() -> dict:
    """dagster-celery's executor config, plus the per-run limits Dagster's other
    executors have, and how long a silent worker may keep a step."""
    schema = dict(CELERY_CONFIG)
    schema["broker"] = Field(
        Noneable(StringSource), is_required=False,
        description="URL of the Celery broker (default: $%s, else dagster-celery's "
        "default, pyamqp on localhost)." % BROKER_ENV)
    schema["backend"] = Field(
        Noneable(StringSource), is_required=False,
        description="URL of the Celery result backend (default: $%s, else rpc://)."
        % BACKEND_ENV)
    schema["max_concurrent"] = Field(
        Noneable(Int), default_value=None, description="Steps of a run running at once.")
    schema["tag_concurrency_limits"] = get_tag_concurrency_limits_config()
    schema["step_dependency_config"] = get_step_dependency_config_field()
    schema["lost_worker_seconds"] = Field(
        Int, default_value=DEFAULT_LOST_WORKER_SECONDS,
        description="A step whose Celery worker has not answered a ping for this long is "
        "failed (or retried, as its retry policy says).")
    return schema


def celery_step_executor(config: dict) -> StepDelegatingExecutor:
    retries = RetryMode.from_config(config["retries"])
    app = make_app(CeleryExecutor(
        retries=retries,
        broker=config.get("broker") or os.environ.get(BROKER_ENV),
        backend=config.get("backend") or os.environ.get(BACKEND_ENV) or "rpc://",
        include=config.get("include"),
        config_source=config.get("config_source"),
    ).app_args())
    return StepDelegatingExecutor(
        CeleryStepHandler(app, config["lost_worker_seconds"]),
        retries=retries,
        check_step_health_interval_seconds=HEALTH_CHECK_SECONDS,
        max_concurrent=config.get("max_concurrent"),
        tag_concurrency_limits=config.get("tag_concurrency_limits"),
        step_dependency_config=StepDependencyConfig.from_config(
            config.get("step_dependency_config")),
    )


class CeleryStepHandler(StepHandler):
    def __init__(self, app, lost_worker_seconds: int):
        self._app = app
        self._task = create_task(app)
        self._lost_after = lost_worker_seconds
        # Per step key, for its latest launch: the Celery result, and the storage id
        # of the run's last event at launch (the worker's events come after it).
        self._results: Dict[str, object] = {}
        self._launched_after: Dict[str, int] = {}
        # Worker node name -> monotonic time it first failed to answer a ping.
        self._silent_since: Dict[str, float] = {}
        # Step key -> the worker its latest launch was sent to, if sent to one.
        self._directed: Dict[str, str] = {}

    @property
    def name(self) -> str:
        return "CeleryStepHandler"

    def launch_step(self, step_handler_context):
        step_context = step_handler_context.get_step_context(_only_step_key(step_handler_context))
        step = step_context.step
        queue = step.tags.get(DAGSTER_CELERY_QUEUE_TAG, self._app.conf.task_default_queue)
        priority = int(step.tags.get(DAGSTER_CELERY_STEP_PRIORITY_TAG,
                                     self._app.conf.task_default_priority))
        signature = self._task.si(
            execute_step_args_packed=pack_value(step_handler_context.execute_step_args),
            executable_dict=step_context.reconstructable_job.to_dict(),
        )
        route = {"queue": queue, "routing_key": "%s.%s" % (queue, TASK_EXECUTE_PLAN_NAME)}
        where = 'queue "%s"' % queue
        previous = self._worker_of(step_handler_context, step.key) \
            if step.key in self._results else None
        other = self._another_worker(queue, previous) if previous else None
        self._directed.pop(step.key, None)
        if other is not None:
            # A retry: the worker that took the last attempt may be what failed it (its
            # host cannot reach the datastore, say), so another worker takes this one.
            route = {"queue": worker_direct(other)}
            self._directed[step.key] = other
            where = "worker %s (the last attempt ran on %s)" % (other, previous)
        event = DagsterEvent.engine_event(
            step_context,
            'Submitting Celery task for step "%s" to %s.' % (step.key, where),
            EngineEventData(marker_start=DELEGATE_MARKER),
        )
        self._launched_after[step.key] = _last_storage_id(step_handler_context)
        self._results[step.key] = signature.apply_async(priority=priority, **route)
        yield event

    def check_step_health(self, step_handler_context) -> CheckStepHealthResult:
        key = _only_step_key(step_handler_context)
        result = self._results.get(key)
        if result is None:
            # A step in flight when an earlier run worker died: launch it again.
            return CheckStepHealthResult.unhealthy("this run worker did not launch it")
        if result.state == "FAILURE":
            return CheckStepHealthResult.unhealthy(
                "its Celery task failed: %r" % (result.result,))
        if result.state == "SUCCESS":
            return CheckStepHealthResult.healthy()  # its events are in the instance
        # The worker that took it; else the one it was sent to, which must take it.
        worker = self._worker_of(step_handler_context, key) or self._directed.get(key)
        if worker is None:
            return CheckStepHealthResult.healthy()  # still queued
        silent = self._silent_seconds(worker)
        if silent >= self._lost_after:
            return CheckStepHealthResult.unhealthy(
                "Celery worker %s, which was running it, has not answered for %d seconds"
                % (worker, silent))
        return CheckStepHealthResult.healthy()

    def terminate_step(self, step_handler_context):
        """Revoke the task: a queued step never starts. A running op watches its run's
        status and stops its own tasks (run_watch.py)."""
        key = _only_step_key(step_handler_context)
        result = self._results.get(key)
        if result is not None:
            result.revoke()
        yield DagsterEvent.engine_event(
            step_handler_context.get_step_context(key),
            'Revoked the Celery task of step "%s"; a running op stops its own tasks.' % key,
            EngineEventData(),
        )

    def _worker_of(self, step_handler_context, step_key: str) -> Optional[str]:
        """The worker that took the step's latest launch: from the task's STARTED state,
        which workers with `task_track_started` store the moment a process takes the task,
        else from the engine event dagster-celery's task writes once it has loaded the job
        (seconds later: a worker lost in between would otherwise leave the step "queued")."""
        result = self._results.get(step_key)
        if result is not None and result.state == "STARTED" and isinstance(result.info, dict):
            hostname = result.info.get("hostname")
            if hostname:
                return hostname
        floor = self._launched_after.get(step_key, 0)
        records = step_handler_context.instance.get_records_for_run(
            step_handler_context.execute_step_args.run_id,
            EventLogCursor.from_storage_id(floor).to_string(),
            of_type=DagsterEventType.ENGINE_EVENT,
        ).records
        for record in reversed(records):
            event = record.event_log_entry.dagster_event
            if event is not None and event.step_key == step_key:
                worker = event.engine_event_data.metadata.get(WORKER_METADATA_KEY)
                if worker is not None:
                    return worker.value
        return None

    def _another_worker(self, queue: str, previous: str) -> Optional[str]:
        """A live worker other than `previous` that consumes `queue` and its own direct
        queue (Celery's `worker_direct`); None if there is none."""
        replies = self._app.control.inspect(timeout=PING_TIMEOUT_SECONDS).active_queues() or {}
        others = sorted(
            name for name, queues in replies.items()
            if name != previous and {queue, worker_direct(name).name} <= {
                q.get("name") for q in queues or ()})
        return random.choice(others) if others else None

    def _silent_seconds(self, worker: str) -> float:
        """How long the worker has failed to answer pings (0 if it answers now)."""
        replies = self._app.control.ping(destination=[worker], timeout=PING_TIMEOUT_SECONDS,
                                         limit=1)
        if any(worker in reply for reply in replies):
            self._silent_since.pop(worker, None)
            return 0.0
        since = self._silent_since.setdefault(worker, time.monotonic() - PING_TIMEOUT_SECONDS)
        return time.monotonic() - since


def _only_step_key(step_handler_context) -> str:
    keys = step_handler_context.execute_step_args.step_keys_to_execute
    assert keys is not None and len(keys) == 1, "one step per Celery task"
    return keys[0]


def _last_storage_id(step_handler_context) -> int:
    records = step_handler_context.instance.get_records_for_run(
        step_handler_context.execute_step_args.run_id, limit=1, ascending=False).records
    return records[0].storage_id if records else 0
