"""What every op of a generated definitions file calls: run the op's Metaflow
task(s) for the current Dagster run and emit the op's outputs."""

import time
from typing import Dict, Iterator, List, Optional

from dagster import DynamicOutput, Failure, MetadataValue, Output

from .. import naming
from ..plan import FlowPlan, OpPlan
from .datastore import open_in_background
from .hooks import run_exit_hooks
from .logs import save_task_logs
from .processes import TaskTimeout
from .region import RegionRunner
from .resume import Reuse, ReusedOutcome
from .task_forkserver import starter
from .tasks import ParametersFailed, Task, TaskLauncher, next_task

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
    def prepare_run(cls, job_name: str) -> None:
        """Called when a run of the job is about to execute in this process (our
        executor is created): start what its first task needs, while Dagster
        still sets up the run."""
        runtime = cls._by_job.get(job_name)
        if runtime is not None:
            TaskLauncher(runtime.plan, "", "", "").prepare_forkserver()

    def run_op(self, context, op_name: str, *inputs) -> Iterator[Output]:
        op = self.plan.op(op_name)
        if starter(self.plan, self.plan.start_step) is None:  # else the template saves logs
            open_in_background(self.plan)
        run_id = naming.metaflow_run_id_of(context.run)
        launcher = TaskLauncher(
            self.plan, run_id, context.run_id, op_name, context.run.tags.get(naming.TAG_TRIGGERS),
            reuse=Reuse.for_op(self.plan, run_id, context.run, op),  # resume / re-execution
            continues_run=context.run.parent_run_id is not None,
        )
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
            runner = RegionRunner(self.plan, launcher, op, self._task_done(context, launcher),
                                  deadline)
            exit_path = runner.run(upstream, _split_index(context))
            yield Output(exit_path, metadata={"metaflow_pathspec": self._pathspec(exit_path)})
            return
        task = next_task(self.plan, op.step, upstream, _split_index(context))
        # Metaflow's attempt number, which a re-execution continues (runtime/attempts.py).
        attempt = launcher.attempts.attempt(task.step, task.task_id, context.retry_number)
        context.log.info("Metaflow task %s (attempt %d)" % (
            self._pathspec(task.pathspec(launcher.run_id)), attempt))
        result = self.run_task_attempt(context, launcher, task, context.retry_number, deadline)
        yield from self._outputs(op, task.pathspec(launcher.run_id), result)

    def run_exit_hooks(self, context, kind: str) -> None:
        """Called by the job's success/failure hooks (see runtime/hooks.py)."""
        launcher = TaskLauncher(self.plan, "", context.run_id, "exit_hook")
        run_exit_hooks(self.plan, context, kind, launcher.base_env)

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
            raise Failure(
                description="Step *%s* failed (%s, attempt %d, exit code %d):\n%s" % (
                    step.name, self._pathspec(pathspec),
                    launcher.attempts.resolved(pathspec, retry_number), outcome.returncode,
                    outcome.error_tail()),
                metadata={"metaflow_pathspec": self._pathspec(pathspec)},
                allow_retries=outcome.returncode != EXIT_DISALLOW_RETRY,
            )
        return result

    def _task_done(self, context, launcher):
        def save(pathspec, attempt, outcome):
            # --- resume / re-execution: reused tasks leave no attempt; map retry -> attempt
            if isinstance(outcome, ReusedOutcome):
                return
            attempt = launcher.attempts.resolved(pathspec, attempt)
            # ---
            save_task_logs(self.plan, pathspec, attempt, outcome.stdout, outcome.stderr)
        return save

    def _outputs(self, op: OpPlan, pathspec: str, result: dict) -> Iterator[Output]:
        metadata = {"metaflow_pathspec": MetadataValue.text(self._pathspec(pathspec))}
        if op.kind == "foreach":
            splits = result[naming.RESULT_FOREACH_SPLITS]
            for index in range(splits):
                yield DynamicOutput(pathspec, mapping_key=str(index))
        elif op.kind == "switch":
            yield Output(pathspec, output_name=result[naming.RESULT_SWITCH_STEP], metadata=metadata)
        else:
            yield Output(pathspec, metadata=metadata)

    def _init_parameters(self, context, launcher: TaskLauncher, run_id: str) -> str:
        """Persist Parameters once per Metaflow run (alongside the start task);
        retries and re-executions of the start op reuse them."""
        if context.retry_number == 0 and not context.run.parent_run_id:
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
    return int(key) if key is not None else None
