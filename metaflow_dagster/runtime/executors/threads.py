"""A Dagster executor for compiled Metaflow jobs: each step runs in a thread of
the run process instead of a fresh worker process.

Why: a Metaflow step's real work already happens in its own process (`python
flow.py step`, as Metaflow isolates tasks). The op around it only launches that
process and waits, so starting a Dagster worker process per op (forkserver or
spawn, seconds each; bench/README.md) buys no isolation, only overhead.

What stays as under Dagster's stock executors:
- every step is its own Dagster step: own STEP_START / STEP_SUCCESS / failure
  events, own RetryPolicy (handled by Dagster's ActiveExecution, as in the
  multiprocess executor), own compute-log key (LOGS_CAPTURED per step);
- max_concurrent and tag_concurrency_limits (per-foreach caps) and global pools
  are enforced by the same ActiveExecution / InstanceConcurrencyContext;
- outputs go through the job's IO manager, so re-execution works across
  executors; the job runs unchanged under multiprocess, k8s or celery.

What differs:
- the op code shares one process, so a crash of the op code (not of the
  Metaflow task) takes the run down; our op code is small and ours;
- stdout/stderr capture cannot use Dagster's fd-level (dup2) capture, which is
  process-wide. Each step gets its own log stream from the compute log manager
  (`open_log_stream`); our step runner writes the task's output there.
- run termination: the executor sets a per-step cancel event that the step
  runner polls, so the task's process group is terminated, then reports the
  step as interrupted.

It uses Dagster's public executor API (`@executor`, `Executor`) and the same
internal building blocks Dagster's own executors use (ActiveExecution,
dagster_event_sequence_for_step); those are underscore modules, so this file is
tied to the Dagster minor version (tested: 1.13).
"""

import gc
import itertools
import logging
import os
import queue
import sys
import threading
from contextlib import ExitStack
from typing import Dict, Iterator, Optional, Tuple

from dagster import Field, Int, Noneable, executor, multiple_process_executor_requirements
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import PlanExecutionContext, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.execute_plan import _trigger_hook, dagster_event_sequence_for_step
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.plan.state import KnownExecutionState
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.execution.step_dependency_config import (
    StepDependencyConfig,
    get_step_dependency_config_field,
)
from dagster._core.execution.tags import get_tag_concurrency_limits_config
from dagster._core.executor.base import Executor
from dagster._core.storage.compute_log_manager import CapturedLogContext
from dagster._core.storage.tags import PRIORITY_TAG
from dagster._utils.error import serializable_error_info_from_exc_info

from ..launch import processes
from ..launch.step_logs import capture_files
from ..ops import FlowRuntime
from .workers import supervised_run

# Metaflow's own runtime runs at most 16 tasks at once by default (--max-workers).
DEFAULT_MAX_CONCURRENT = 16
POLL_SECONDS = 0.1
# Ready steps ActiveExecution is shown at a time (see _ActiveExecution).
READY_WINDOW = 32
_DONE = object()
# The events after which ActiveExecution may start, skip or abandon other steps.
_STATE_EVENTS = frozenset({
    DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_UP_FOR_RETRY, DagsterEventType.STEP_OUTPUT,
    DagsterEventType.RESOURCE_INIT_FAILURE,
})

class MetaflowTaskExecutor(Executor):
    def __init__(self, retries: RetryMode, max_concurrent: Optional[int] = None,
                 tag_concurrency_limits=None,
                 step_dependency_config: Optional[StepDependencyConfig] = None,
                 max_tasks: Optional[int] = None):
        self._retries = retries
        self._max_concurrent = max_concurrent or DEFAULT_MAX_CONCURRENT
        self._max_tasks = max_tasks or DEFAULT_MAX_CONCURRENT
        self._tag_concurrency_limits = tag_concurrency_limits or []
        self._step_dependency_config = step_dependency_config or StepDependencyConfig.default()

    @property
    def retries(self) -> RetryMode:
        return self._retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._step_dependency_config

    def execute(self, plan_context: PlanOrchestrationContext,
                execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        # By now the run process has imported dagster, its storage, this package and
        # the definitions (~200k objects that live as long as the process). Moving
        # them to the collector's permanent generation spares every full collection
        # during the run from walking them again, and the interpreter's teardown when
        # the run process exits (bench/README.md has the figures).
        # First, start the template the run's first task forks from
        # (runtime/launch/task_template.py).
        FlowRuntime.prepare_run(plan_context.job.get_definition().name, plan_context.run_id)
        gc.freeze()
        # The run worker is recorded; if it dies, the run is failed (workers.py).
        with supervised_run(plan_context):
            yield DagsterEvent.engine_event(
                plan_context,
                "Executing steps in threads of the run process (pid: %d), at most %d at "
                "once; each Metaflow task runs in its own process, at most %d at once"
                % (os.getpid(), self._max_concurrent, self._max_tasks),
                event_specific_data=EngineEventData.in_process(
                    os.getpid(), execution_plan.step_keys_to_execute),
            )
            yield from iter(ExecuteRunWithPlanIterable(
                execution_plan=plan_context.execution_plan,
                iterator=self._threaded_iterator,
                execution_context_manager=PlanExecutionContextManager(
                    job=plan_context.job,
                    retry_mode=plan_context.retry_mode,
                    execution_plan=plan_context.execution_plan,
                    run_config=plan_context.run_config,
                    dagster_run=plan_context.dagster_run,
                    instance=plan_context.instance,
                    raise_on_error=plan_context.raise_on_error,
                    output_capture=plan_context.output_capture,
                    step_dependency_config=self.step_dependency_config,
                ),
            ))

    def _threaded_iterator(self, job_context: PlanExecutionContext,
                           execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        # At most max_tasks Metaflow task processes of the run at once, over all ops
        # and regions (as Metaflow's --max-workers): ops are cheap threads, but each
        # task is a process, and ten 10-way regions would otherwise start 100
        # processes on a 2-core box.
        task_slots = threading.BoundedSemaphore(self._max_tasks)
        events: "queue.Queue" = queue.Queue()
        # One entry per step *attempt*: after STEP_UP_FOR_RETRY, Dagster may start the
        # next attempt before the previous attempt's thread has returned.
        running: Dict[int, Tuple[str, threading.Event, threading.Thread]] = {}
        attempts = itertools.count()
        stopping = False
        # Whether what happened since the executor last asked ActiveExecution for steps
        # to start, skip or abandon can change its answer: a step ended or produced an
        # output. Asking costs time linear in the run's steps, so it is asked after
        # such events only, and when POLL_SECONDS pass without any (for retries that
        # wait and pool slots, which free up with time).
        changed = True
        with ExitStack() as stack:
            concurrency = stack.enter_context(
                InstanceConcurrencyContext(job_context.instance, job_context.dagster_run))
            active = stack.enter_context(_ActiveExecution(
                execution_plan,
                retry_mode=job_context.retry_mode,
                max_concurrent=self._max_concurrent,
                tag_concurrency_limits=self._tag_concurrency_limits,
                instance_concurrency_context=concurrency,
                step_dependency_config=self._step_dependency_config,
            ))
            try:
                while (not stopping and not active.is_complete) or running:
                    if active.check_for_interrupts() and not stopping:
                        stopping = True
                        active.mark_interrupted()
                        yield DagsterEvent.engine_event(
                            job_context, "Termination requested: cancelling running steps",
                            EngineEventData.interrupted(sorted({k for k, _, _ in
                                                                running.values()})))
                        for _, cancel, _ in running.values():
                            cancel.set()
                    if not stopping and changed:
                        steps = active.get_steps_to_execute(
                            limit=self._max_concurrent - len(running))
                        yield from active.concurrency_event_iterator(job_context)
                        for step in steps:
                            step_context = job_context.for_step(step, active.get_known_state())
                            cancel = threading.Event()
                            token = next(attempts)
                            thread = threading.Thread(
                                target=_run_step, name="step:%s" % step.key, daemon=True,
                                args=(token, job_context, step_context, events, cancel, task_slots))
                            running[token] = (step.key, cancel, thread)
                            thread.start()
                    try:
                        item = events.get(timeout=POLL_SECONDS)
                        changed = False
                    except queue.Empty:
                        item, changed = None, True
                    while item is not None:
                        token, payload = item
                        key = running[token][0]
                        changed = changed or payload is _DONE or not isinstance(
                            payload, DagsterEvent) or payload.event_type in _STATE_EVENTS
                        if payload is _DONE:
                            running.pop(token)[2].join()
                            if all(k != key for k, _, _ in running.values()):
                                active.verify_complete(job_context, key)
                        elif isinstance(payload, DagsterEvent):
                            yield payload
                            active.handle_event(payload)
                        else:  # an error outside the step's own error handling
                            step_context = job_context.for_step(active.get_step_by_key(key))
                            yield DagsterEvent.engine_event(
                                step_context, "Step %s crashed in the executor" % key,
                                EngineEventData.engine_error(payload))
                            failure = self.log_failure_or_retry_event_after_error(
                                step_context, payload, active.get_known_state())
                            yield failure
                            active.handle_event(failure)
                        try:
                            item = events.get_nowait()
                        except queue.Empty:
                            item = None
                    if changed:
                        yield from active.plan_events_iterator(job_context)
            except BaseException:
                for _, cancel, _ in running.values():
                    cancel.set()
                for _, _, thread in list(running.values()):
                    thread.join(timeout=30)
                raise
        if stopping:
            raise DagsterExecutionInterruptedError()


class _ActiveExecution(ActiveExecution):
    """Dagster's ActiveExecution, without two costs that grow with the run's width.

    A foreach of N makes N steps ready at once, and the executor asks for steps to
    start each time one ends; a cost linear in N at each ask makes the run quadratic:
    - get_steps_to_execute sorts every ready step by priority at each call. When all
      the plan's steps have the same priority, the sort keeps their order, so showing
      it the ready steps a window at a time (the next window only if the first one
      filled no free slot, e.g. all its steps held by a tag concurrency limit) starts
      the same steps in the same order;
    - get_known_state builds a KnownExecutionState, whose constructor checks every
      output produced so far. It only changes with retry attempts and resolved dynamic
      outputs (the set of produced outputs is handed on, not copied), so it is built
      again only when those change.
    """

    def __init__(self, execution_plan: ExecutionPlan, **kwargs):
        super().__init__(execution_plan, **kwargs)
        priorities = {step.tags.get(PRIORITY_TAG) for step in execution_plan.steps}
        self._in_ready_order = len(priorities) <= 1
        self._known_state: Optional[Tuple[tuple, KnownExecutionState]] = None

    def get_steps_to_execute(self, limit: Optional[int] = None):
        if not self._in_ready_order:
            return super().get_steps_to_execute(limit)
        self._update()
        ready, self._executable = self._executable, []
        batch, offered = [], 0
        try:
            while True:
                # The ready steps the last window left (held by a limit) stay first.
                self._executable.extend(ready[offered:offered + READY_WINDOW])
                offered += READY_WINDOW
                batch.extend(super().get_steps_to_execute(
                    None if limit is None else limit - len(batch)))
                full = (limit is not None and len(batch) >= limit) or (
                    self._max_concurrent is not None
                    and len(self._in_flight) >= self._max_concurrent)
                if full or offered >= len(ready):
                    return batch
        finally:
            self._executable.extend(ready[offered:])

    def get_known_state(self) -> KnownExecutionState:
        key = (tuple(sorted(self._retry_state.snapshot_attempts().items())),
               len(self._completed_dynamic_outputs))
        if self._known_state is None or self._known_state[0] != key:
            self._known_state = (key, super().get_known_state())
        return self._known_state[1]


def _run_step(token, job_context, step_context, events, cancel, task_slots) -> None:
    key = step_context.step.key
    manager = job_context.instance.compute_log_manager
    # A step's DEBUG messages that are not Dagster events are the IO manager's
    # "Writing file at"/"Loading file from" lines (the path is in the handled-output
    # event's metadata): a quarter of a foreach's event-log writes, and each write is
    # a SQLite transaction. Dagster events are logged whatever the level.
    if step_context.log.getEffectiveLevel() < logging.INFO:
        step_context.log.setLevel(logging.INFO)
    try:
        file_key = create_compute_log_file_key()
        log_key = manager.build_log_key_for_run(job_context.run_id, file_key)
        with capture_files(manager, log_key, complete=True) as (out, err):
            events.put((token, DagsterEvent.capture_logs(
                job_context, [key], log_key, CapturedLogContext(log_key))))
            step_events = []
            io = processes.StepIO(stdout=_Mirror(out, sys.__stdout__),
                                  stderr=_Mirror(err, sys.__stderr__), cancel=cancel,
                                  slots=task_slots)
            with processes.bind_io(io):
                for event in dagster_event_sequence_for_step(step_context):
                    step_events.append(event)
                    events.put((token, event))
                for event in _trigger_hook(step_context, step_events):
                    events.put((token, event))
        _mark_complete(manager, log_key)
    except DagsterExecutionInterruptedError:
        pass  # dagster_event_sequence_for_step has reported the step as failed
    except BaseException:
        events.put((token, serializable_error_info_from_exc_info(sys.exc_info())))
    finally:
        events.put((token, _DONE))


def _mark_complete(manager, log_key) -> None:
    """Tell log readers (the UI's live tail) that this step's capture is over."""
    path_of = getattr(manager, "complete_artifact_path", None)
    if path_of is not None:
        path = path_of(log_key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a"):
            pass


class _Mirror:
    """Bytes to a step's compute-log file and to the run's console."""

    def __init__(self, log_file, console):
        self._file = log_file.buffer if hasattr(log_file, "buffer") else log_file
        self._console = getattr(console, "buffer", None)
        self._lock = threading.Lock()

    @property
    def buffer(self):
        return self

    def write(self, data: bytes):
        with self._lock:
            self._file.write(data)
            if self._console is not None:
                self._console.write(data)

    def flush(self):
        with self._lock:
            self._file.flush()
            if self._console is not None:
                self._console.flush()


@executor(
    name="metaflow_tasks",
    config_schema={
        "max_concurrent": Field(
            Noneable(Int), default_value=None,
            description="Steps running at once (default %d, as Metaflow's --max-workers)."
            % DEFAULT_MAX_CONCURRENT),
        "max_tasks": Field(
            Noneable(Int), default_value=None,
            description="Metaflow task processes running at once over the whole run, "
            "regions included (default %d)." % DEFAULT_MAX_CONCURRENT),
        "tag_concurrency_limits": get_tag_concurrency_limits_config(),
        "retries": get_retries_config(),
        "step_dependency_config": get_step_dependency_config_field(),
    },
    requirements=multiple_process_executor_requirements(),
)
def metaflow_task_executor(init_context):
    """Runs each step of a compiled Metaflow job in a thread of the run process;
    every Metaflow task still runs in its own `python flow.py step` process."""
    config = init_context.executor_config
    return MetaflowTaskExecutor(
        retries=RetryMode.from_config(config["retries"]),
        max_concurrent=config.get("max_concurrent"),
        tag_concurrency_limits=config.get("tag_concurrency_limits"),
        step_dependency_config=StepDependencyConfig.from_config(
            config.get("step_dependency_config")),
        max_tasks=config.get("max_tasks"),
    )
