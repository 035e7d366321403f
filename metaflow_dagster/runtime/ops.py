"""What every op of a generated definitions file calls: run the op's Metaflow
task(s) for the current Dagster run and emit the op's outputs."""

import os
import sys
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

from dagster import DynamicOutput, Failure, MetadataValue, Output

from .. import naming
from ..plan import FlowPlan, OpPlan
from .datastore import task_is_done
from .hooks import run_exit_hooks
from .launch import DeploymentUnavailable
from .launch.launcher import ParametersFailed, Task, TaskLauncher, next_task
from .launch.processes import TaskCancelled, TaskTimeout
from .region import RegionRunner
from .report.metadata import flow_materialization, task_metadata
from .report.metaflow_logs import save_task_logs
from .resume import Reuse, ReusedOutcome
from .run_tags import tag_run_once
from .run_watch import STOP_STATUSES, watching_run
from .transitions import check_transition

# Metaflow's exit code for a task that must not be retried (METAFLOW_EXIT_DISALLOW_RETRY).
EXIT_DISALLOW_RETRY = 202


class FlowRuntime:
    """The compiled flow, as seen from inside Dagster."""

    _by_job: Dict[str, "FlowRuntime"] = {}

    def __init__(self, plan: FlowPlan):
        self.plan = plan
        FlowRuntime._by_job[plan.job_name] = self

    @classmethod
    def from_json(cls, text: str) -> "FlowRuntime":
        return cls(FlowPlan.from_json(text))

    @classmethod
    def plan_of_job(cls, job_name: str) -> Optional[FlowPlan]:
        """The plan of a compiled job loaded in this process; None for another job."""
        runtime = cls._by_job.get(job_name)
        return runtime.plan if runtime is not None else None

    @classmethod
    def prepare_run(cls, job_name: str, dagster_run_id: str) -> None:
        """Called when a run of the job starts executing in this process (our
        executor's `execute`): start what its first task needs, while Dagster
        still sets up the run's first step."""
        runtime = cls._by_job.get(job_name)
        if runtime is None:
            return
        try:
            launcher = TaskLauncher.outside_the_run(runtime.plan, dagster_run_id,
                                                    "task_template")
        except DeploymentUnavailable:
            return  # the op reports it
        launcher.prepare_task_template()

    def run_op(self, context, op_name: str, *inputs) -> Iterator[Output]:
        # The run's termination stops the op's tasks on every executor (run_watch.py).
        with watching_run(context) as watcher:
            try:
                outputs = self._run_op(context, op_name, *inputs)
                if watcher is not None:
                    outputs = _reported_only_if_current(watcher, outputs)
                yield from outputs
            except TaskCancelled:
                # The metaflow executor cancels its ops itself (no watcher): the run
                # is being terminated if its status says so.
                seen = watcher.seen if watcher is not None else _stopping_status(context)
                if seen is None:
                    raise
                raise Failure(
                    description="The run is %s: the op's Metaflow tasks were stopped." % seen,
                    allow_retries=False,
                ) from None

    def _run_op(self, context, op_name: str, *inputs) -> Iterator[Output]:
        op = self.plan.op(op_name)
        run_id = naming.metaflow_run_id_of(context.run)
        with _deployment_errors():
            launcher = TaskLauncher(
                self.plan, run_id, context.run_id, op_name,
                context.run.tags.get(naming.TAG_TRIGGERS),
                reuse=Reuse.for_op(self.plan, run_id, context.run, op),  # resume / re-execution
                continues_run=context.run.parent_run_id is not None,
            )
        tag_run_once(context, launcher.base_env)
        deadline = self._seconds_left(context)
        upstream = _flatten(inputs)
        if op.step == self.plan.start_step and not upstream:
            upstream = [self._init_parameters(context, launcher, run_id)]
        try:
            yield from self._run_op_tasks(context, launcher, op, upstream, deadline)
        except ParametersFailed as failed:
            raise Failure(
                description="Could not initialise the Parameters of %s:\n%s"
                % (self._pathspec(naming.parameters_pathspec(run_id)), failed.outcome.error_tail()),
                allow_retries=False,
            ) from None

    def _run_op_tasks(self, context, launcher: TaskLauncher, op: OpPlan, upstream: List[str],
                      deadline: Optional[float]) -> Iterator[Output]:
        if op.kind == "region":
            done: dict = {}  # the region's tasks that succeeded: pathspec -> attempt
            runner = RegionRunner(self.plan, launcher, op,
                                  self._task_done(context, launcher, done), deadline)
            exit_path = runner.run(upstream, _split_index(context))
            metadata = self._task_metadata(context, launcher, exit_path, done.get(exit_path, 0),
                                           list(done))
            yield Output(exit_path, metadata=metadata or self._pathspec_metadata(exit_path))
            return
        task = next_task(self.plan, op.step, upstream, _split_index(context))
        # Metaflow's attempt number, which a re-execution continues (runtime/attempts.py).
        attempt = launcher.attempts.attempt(task.step, task.task_id, context.retry_number)
        context.log.info("Metaflow task %s (attempt %d)" % (
            self._pathspec(task.pathspec(launcher.run_id)), attempt))
        result = self.run_task_attempt(context, launcher, task, context.retry_number, deadline)
        pathspec = task.pathspec(launcher.run_id)
        metadata = self._task_metadata(context, launcher, pathspec, attempt)
        if op.step == self.plan.end_step:
            yield from self._flow_materialization(context, launcher, pathspec)
        yield from self._outputs(op, pathspec, result, metadata)

    def run_exit_hooks(self, context, kind: str) -> None:
        """Called by the job's success/failure hooks (see runtime/hooks.py)."""
        with _deployment_errors():
            launcher = TaskLauncher.outside_the_run(self.plan, context.run_id, "exit_hook")
        run_exit_hooks(self.plan, context, kind, launcher.base_env, launcher.code.flow_file,
                       launcher.cwd)

    def run_task_attempt(self, context, launcher: TaskLauncher, task: Task, retry_number: int,
                 deadline: Optional[float], prefix: str = "") -> dict:
        """Run one attempt of a task; raise Failure if it fails."""
        step = self.plan.step(task.step)
        pathspec = task.pathspec(launcher.run_id)
        try:
            outcome, result = launcher.run(task, retry_number, prefix, deadline)
        except TaskTimeout as timeout:
            raise Failure(
                description="Step *%s* (%s): %s" % (task.step, self._pathspec(pathspec), timeout),
                metadata={"metaflow_pathspec": self._pathspec(pathspec)},
            ) from None
        self._task_done(context, launcher)(pathspec, retry_number, outcome)
        if outcome.returncode != 0:
            attempt = launcher.attempts.resolved(pathspec, retry_number)
            raise Failure(
                description="Step *%s* failed (%s, attempt %d, exit code %d):\n%s" % (
                    step.name, self._pathspec(pathspec), attempt, outcome.returncode,
                    outcome.error_tail()),
                metadata={"metaflow_pathspec": self._pathspec(pathspec),
                          "metaflow_attempt": attempt},
                allow_retries=outcome.returncode != EXIT_DISALLOW_RETRY,
            )
        check_transition(step, result, self._pathspec(pathspec))
        return result

    def _task_done(self, context, launcher, done: Optional[dict] = None):
        """Called after each attempt of a task; records the tasks that succeeded in
        `done` (pathspec -> attempt)."""
        def save(pathspec, attempt, outcome):
            # --- resume / re-execution: reused tasks leave no attempt; map retry -> attempt
            if isinstance(outcome, ReusedOutcome):
                if done is not None and outcome.returncode == 0:
                    done[pathspec] = attempt
                return
            attempt = launcher.attempts.resolved(pathspec, attempt)
            # ---
            if done is not None and outcome.returncode == 0:
                done[pathspec] = attempt
            save_task_logs(self.plan, pathspec, attempt, outcome.stdout, outcome.stderr,
                           launcher_only=launcher.ran_remotely(pathspec, attempt))
        return save

    def _task_metadata(self, context, launcher: TaskLauncher, pathspec: str, attempt: int,
                       card_tasks=None) -> Optional[dict]:
        """The task's metadata (runtime/report/metadata.py); None, with a warning in the op's
        log, if it cannot be read: the task has succeeded, its op must not fail."""
        try:
            return task_metadata(self.plan, pathspec, attempt, card_tasks,
                                 launcher.reported_artifacts.get(pathspec))
        except Exception as error:
            context.log.warning("Could not read the artifacts or cards of %s: %s: %s" % (
                self._pathspec(pathspec), type(error).__name__, error))
            return None

    def _flow_materialization(self, context, launcher: TaskLauncher, end_pathspec: str):
        """The flow asset's materialization (runtime/report/metadata.py), after the end task."""
        try:
            materialization = flow_materialization(
                self.plan, launcher.run_id, end_pathspec,
                launcher.reported_artifacts.get(end_pathspec))
        except Exception as error:
            context.log.warning("Could not record the flow asset's materialization: %s: %s"
                                % (type(error).__name__, error))
            return
        yield materialization

    def _pathspec_metadata(self, pathspec: str) -> dict:
        return {"metaflow_pathspec": MetadataValue.text(self._pathspec(pathspec))}

    def _outputs(self, op: OpPlan, pathspec: str, result: dict,
                 metadata: Optional[dict]) -> Iterator[Output]:
        metadata = metadata or self._pathspec_metadata(pathspec)
        if op.kind == "foreach":
            # The task's metadata goes on its first split's output, not on every one.
            splits = result[naming.RESULT_FOREACH_SPLITS]
            items = result.get(naming.RESULT_FOREACH_VALUES) or []
            for index in range(splits):
                item = items[index] if index < len(items) else None
                split_metadata = dict(metadata if index == 0 else
                                      self._pathspec_metadata(pathspec))
                if item is not None:
                    split_metadata["foreach_item"] = MetadataValue.text(str(item))
                yield DynamicOutput(pathspec, mapping_key=naming.split_mapping_key(index, item),
                                   metadata=split_metadata)
        elif op.kind == "switch":
            yield Output(pathspec, output_name=result[naming.RESULT_SWITCH_STEP], metadata=metadata)
        else:
            yield Output(pathspec, metadata=metadata)

    def _init_parameters(self, context, launcher: TaskLauncher, run_id: str) -> str:
        """Persist Parameters once per Metaflow run (alongside the start task);
        re-executions of the start op reuse them, and so do its retries once an
        attempt got that far (one may have failed before: its host could not reach
        the datastore)."""
        if context.run.parent_run_id:
            return naming.parameters_pathspec(run_id)
        if context.retry_number == 0 or not task_is_done(
                self.plan, run_id, naming.PARAMETERS_STEP, naming.PARAMETERS_TASK_ID):
            launcher.start_parameters(dict(context.op_config or {}))
        return naming.parameters_pathspec(run_id)

    def _seconds_left(self, context) -> Optional[float]:
        """--workflow-timeout: what is left of it; fails the op once it is spent."""
        limit = self.plan.workflow_timeout_seconds
        if not limit:
            return None
        record = context.instance.get_run_record_by_id(context.run_id)
        started = record.start_time or time.time()
        left = limit - (time.time() - started)
        if left <= 0:
            raise Failure(
                description="The run exceeded its workflow timeout of %d seconds." % limit,
                allow_retries=False,
            )
        return left

    def _pathspec(self, task_path: str) -> str:
        return "%s/%s" % (self.plan.flow_name, task_path)


def _stopping_status(context) -> Optional[str]:
    """The run's status if it is being stopped (terminated, or failed), else None."""
    run = context.instance.get_run_by_id(context.run_id)
    status = run.status.value if run is not None else None
    return status if status in STOP_STATUSES else None


def _reported_only_if_current(watcher, outputs: Iterator) -> Iterator:
    """The op's outputs, or its error, unless the run has given up on this attempt
    (run_watch.py): then the process ends at once, reporting nothing, as if its host
    had stayed lost. The run has recorded the attempt's end and retried the step."""
    asked = False
    try:
        for item in outputs:
            if not asked:
                asked = True
                _leave_if_given_up(watcher)
            yield item
    except Exception:
        if not asked:
            _leave_if_given_up(watcher)
        raise


def _leave_if_given_up(watcher) -> None:
    if not watcher.has_given_up():
        return
    step_key, retry_number = watcher.attempt
    sys.stderr.write(
        "The run has given up on this attempt of step %s (Dagster retry %d) and retried the "
        "step elsewhere: this process ends without reporting.\n" % (step_key, retry_number))
    sys.stderr.flush()
    os._exit(0)


@contextmanager
def _deployment_errors():
    """The code package or the deployment's record cannot be had from this host: fail
    the op at once, saying why and which setting to fix; retried (as the op's retry
    policy says) only when the datastore or service did not answer this host."""
    try:
        yield
    except DeploymentUnavailable as error:
        raise Failure(description=str(error), allow_retries=error.network) from None


def _flatten(inputs) -> List[str]:
    paths = []
    for item in inputs:
        if isinstance(item, (list, tuple)):
            paths.extend(p for p in item if p)
        elif item:
            paths.append(item)
    return paths


def _split_index(context) -> Optional[int]:
    key = context.get_mapping_key()
    return naming.split_index_of(key) if key is not None else None
