"""Which Metaflow task runs next, and the exact command and environment it gets.

Used by single-step ops and by region ops alike, so a task is launched the same
way wherever it runs: `python flow.py step ...` from the unpacked code package
(code_package.py), or, for a step Metaflow's compute layer runs (@kubernetes,
@batch), the compute layer's own command (`kubernetes step ...`), as Metaflow's
runtime launches it.
"""

import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional

from ... import naming
from ...files import write_atomically
from ...naming import (
    DAGSTER_OP_ENV,
    DAGSTER_RUN_ID_ENV,
    PARAMETERS_READY_ENV,
    PRODUCTION_TOKEN_ENV,
    RESULT_FILE_ENV,
    TRIGGERS_ENV,
)
from ...plan import FlowPlan, StepPlan
from ..attempts import AttemptCounter
from ..datastore import plan_datastore
from ..resume import task_result
from ..suspension import SuspendGate
from .code_package import code_package
from .processes import TaskOutcome, TaskTimeout, current_io, run_process
from .production_token import production_token
from .settings import task_settings, worker_environment, working_directory
from .task_template import starter

# Longer input-path lists go through a file (a 1,000-way join would not fit a
# command line comfortably).
MAX_INLINE_INPUT_PATHS = 4000
# Metaflow's own @timeout fires inside the task first (so @catch can handle it);
# this much later the runtime kills the task from outside.
TIMEOUT_GRACE_SECONDS = 5


@dataclass(frozen=True)
class Task:
    step: str
    task_id: str
    input_paths: List[str]
    split_index: Optional[int] = None

    def pathspec(self, run_id: str) -> str:
        return naming.task_pathspec(run_id, self.step, self.task_id)


def next_task(plan: FlowPlan, step_name: str, upstream: List[str], split_index=None) -> Task:
    """The task of `step_name` fed by the upstream task pathspecs.

    Task ids follow the foreach split indices (see naming.py): a foreach child adds
    its split index, a foreach join drops the last one, other steps keep them.
    """
    step = plan.step(step_name)
    upstream = sorted(upstream, key=lambda p: naming.split_indices(p.rsplit("/", 1)[1]))
    indices = naming.split_indices(upstream[0].rsplit("/", 1)[1]) if upstream else ()
    parent_step = upstream[0].split("/")[1] if upstream else None
    if step.type == "join" and plan.step(step.joins).type == "foreach":
        indices = indices[:-1]
    if parent_step in plan.step_names() and plan.step(parent_step).type == "foreach":
        indices = indices + (split_index,)
    else:
        split_index = None
    return Task(step_name, naming.task_id(indices), upstream, split_index)


class TaskLauncher:
    """Launches the tasks of one Metaflow run on behalf of one Dagster op.

    Raises DeploymentUnavailable when the deployment cannot be found from this host."""

    def __init__(self, plan: FlowPlan, run_id: str, dagster_run_id: str, op_name: str,
                 triggers: Optional[str] = None, reuse=None, continues_run: bool = False):
        self.plan = plan
        self.run_id = run_id
        self.code = code_package(plan)
        self.cwd = working_directory(plan, self.code.root)
        self.base_env = self._base_env(dagster_run_id, op_name, triggers)
        # Resume and re-execution (runtime/resume.py, runtime/attempts.py).
        self.reuse = reuse
        self.attempts = AttemptCounter(plan, run_id, continues_run)
        # The op thread's log streams and cancel event (see processes.bind_io),
        # kept for the region's worker threads, which run the op's tasks.
        self.io = current_io()
        self._pending_init: Optional[ParametersInit] = None
        # `dagster suspend` holds back new tasks (runtime/suspension.py).
        self.suspension = SuspendGate.of_current_op(dagster_run_id, self.io and self.io.stderr)
        # (pathspec, attempt) of the attempts the compute layer ran
        # (see runtime/report/metaflow_logs.py).
        self._remote_attempts = set()
        # Artifacts the tasks reported as they ended (naming.RESULT_ARTIFACTS), by pathspec.
        self.reported_artifacts: Dict[str, List[dict]] = {}

    @classmethod
    def outside_the_run(cls, plan: FlowPlan, dagster_run_id: str,
                        purpose: str) -> "TaskLauncher":
        """A launcher for a Dagster run's work that is no task of its Metaflow run
        (the task template started ahead of the first task, the exit hooks): the
        run's environment and code package, no Metaflow run id. `purpose` stands
        where an op's name would (DAGSTER_OP_ENV)."""
        return cls(plan, run_id="", dagster_run_id=dagster_run_id, op_name=purpose)

    def _base_env(self, dagster_run_id, op_name, triggers) -> dict:
        env = worker_environment()
        env.update(task_settings(self.plan))
        env.update(self.code.env)
        env[PRODUCTION_TOKEN_ENV] = production_token(self.plan)
        env.update(self.plan.env)
        # Metaflow refuses to run without a user name (e.g. as root in a container).
        if not any(env.get(k) for k in ("METAFLOW_USER", "USERNAME", "USER", "SUDO_USER")):
            env["METAFLOW_USER"] = "dagster"
        env["PYTHONUNBUFFERED"] = "1"
        env[DAGSTER_RUN_ID_ENV] = dagster_run_id
        env[DAGSTER_OP_ENV] = op_name
        if triggers:
            env[TRIGGERS_ENV] = triggers
        return env

    def command(self, subcommand: List[str], decospecs=()) -> List[str]:
        """`python flow.py [top-level options] --with dagster_internal ... <subcommand>`,
        flow.py being the flow file in the unpacked code package."""
        argv = [sys.executable, self.code.flow_file] + list(self.plan.top_level_args)
        for spec in ["dagster_internal"] + list(decospecs):
            argv += ["--with", spec]
        return argv + subcommand

    def prepare_task_template(self) -> None:
        """Start the task template the start task will fork from, ahead of it."""
        start = starter(self.plan, self.plan.start_step)
        if start is not None:
            step = self.plan.step(self.plan.start_step)
            start.prepare(self.command(["step", step.name], step.decospecs),
                          dict(self.base_env, **step.env), self.cwd)

    def start_parameters(self, values: dict) -> None:
        """Persist the run's Parameters (`flow.py init`), alongside the start task."""
        self._pending_init = ParametersInit(self, values)

    def await_parameters(self) -> None:
        """Wait for `flow.py init`; raise ParametersFailed if it failed."""
        init, self._pending_init = self._pending_init, None
        if init is not None:
            init.join()
            init.raise_if_failed()

    def init_parameters(self, values: dict) -> TaskOutcome:
        """`flow.py init`: persist the run's Parameters as the _parameters task."""
        args = ["init", "--run-id", self.run_id, "--task-id", naming.PARAMETERS_TASK_ID]
        for tag in self.plan.tags:
            args += ["--tag", tag]
        for param in self.plan.parameters:
            value = values.get(param.field)
            if value is None:
                continue
            args += ["--" + param.name, _cli_value(value)]
        return run_process(self.command(args), self.base_env, self.cwd, io=self.io,
                           start=starter(self.plan, None))

    def run_command(self, subcommand: List[str], prefix: str = "") -> TaskOutcome:
        """Run a Metaflow command of this run (init, a clone) with the run's environment."""
        return run_process(self.command(subcommand), self.base_env, self.cwd,
                           prefix=prefix, io=self.io)

    def run(self, task: Task, retry_count: int, prefix: str = "",
            deadline_seconds: Optional[float] = None, cancel=None):
        """Run one attempt of a task. Returns (outcome, result) where result is
        what the dagster_internal decorator reported (foreach splits, switch case)."""
        if self.suspension is not None:
            self.suspension.wait("task %s" % task.pathspec(self.run_id),
                                 (cancel, self.io and self.io.cancel))
        # The start task starts while `flow.py init` still runs and waits for it
        # itself (see ParametersInit); anything else, a clone too, needs the
        # Parameters persisted first.
        # A compute layer's container cannot wait for init: it starts once init is done.
        init = self._pending_init
        if init is None or self.reuse is not None or task.step != self.plan.start_step \
                or self.plan.step(task.step).compute:
            self.await_parameters()
            return self._run(task, retry_count, prefix, deadline_seconds, cancel)
        try:
            ran = self._run(task, retry_count, prefix, deadline_seconds, cancel,
                            parameters_ready=init.ready_file)
        except BaseException:
            init.join()
            raise
        self.await_parameters()
        return ran

    def _run(self, task: Task, retry_count: int, prefix: str, deadline_seconds, cancel,
             parameters_ready: Optional[str] = None):
        # --- resume / re-execution hooks (runtime/resume.py, runtime/attempts.py) ---
        if self.reuse is not None:
            reused = self.reuse.reuse(self, task, prefix)
            if reused is not None:
                return reused
        attempt = self.attempts.attempt(task.step, task.task_id, retry_count)
        # A re-execution continues the run at a later attempt: the user code keeps
        # the retries its @retry gives it from there.
        user_code_retries = self.plan.step(task.step).user_code_retries + max(
            0, attempt - retry_count)
        # ---
        step = self.plan.step(task.step)
        # Metaflow's runtime hands an attempt to the compute layer while the user code
        # may still be retried; @catch's last, fallback attempt runs here.
        remote = bool(step.compute) and attempt <= user_code_retries
        with tempfile.TemporaryDirectory(prefix="mfdagster-") as scratch:
            result_file = os.path.join(scratch, "result.json")
            env = dict(self.base_env, **step.env)
            env[RESULT_FILE_ENV] = result_file
            if parameters_ready:
                env[PARAMETERS_READY_ENV] = parameters_ready
            if remote:
                argv = self.command(self._compute_args(task, step, attempt, user_code_retries),
                                    step.decospecs)
                self._remote_attempts.add((task.pathspec(self.run_id), attempt))
                self._say(prefix, "Launching on Metaflow's compute layer: %s" % shlex.join(argv))
                # The compute layer enforces @timeout itself (the pod's or the job's
                # deadline), as under Metaflow's runtime: the op only keeps the
                # workflow timeout.
                timeout = None
            else:
                argv = self.command(self._task_args(task, attempt, user_code_retries, scratch),
                                    step.decospecs)
                timeout = step.timeout_seconds and step.timeout_seconds + TIMEOUT_GRACE_SECONDS
            run_limited = deadline_seconds is not None and deadline_seconds < (timeout or 1e12)
            try:
                # SIGINT first for a compute layer's launcher: its exit handler then
                # deletes the Kubernetes job / kills the Batch job (SIGTERM would not).
                outcome = run_process(
                    argv, env, self.cwd,
                    deadline_seconds if run_limited else timeout, prefix, cancel, self.io,
                    interrupt_first=remote,
                    start=starter(self.plan, task.step),
                    task_path=task.pathspec(self.run_id),
                )
            except TaskTimeout:
                if run_limited:
                    raise TaskTimeout(
                        "The run exceeded its workflow timeout of %d seconds; the task was "
                        "terminated." % self.plan.workflow_timeout_seconds) from None
                raise TaskTimeout(
                    "Task timed out after %d seconds (@timeout) and was terminated."
                    % step.timeout_seconds) from None
            result = {}
            if outcome.returncode == 0 and os.path.exists(result_file):  # see naming.RESULT_*
                with open(result_file) as f:
                    result = json.load(f)
                artifacts = result.pop(naming.RESULT_ARTIFACTS, None)
                if artifacts is not None:
                    self.reported_artifacts[task.pathspec(self.run_id)] = artifacts
            elif outcome.returncode == 0 and remote:
                # The task ran in a container: what it reported is in its artifacts.
                result = task_result(plan_datastore(self.plan), self.plan, self.run_id,
                                     task.step, task.task_id) or {}
        return outcome, result

    def _say(self, prefix: str, line: str) -> None:
        """A line of the launcher's own in the op's log (stderr, as Metaflow's echo)."""
        sink = (self.io.stderr if self.io is not None else None) or sys.stderr
        sink = getattr(sink, "buffer", sink)
        sink.write(("%s%s\n" % (prefix, line)).encode())
        sink.flush()

    def ran_remotely(self, pathspec: str, attempt: int) -> bool:
        """Did Metaflow's compute layer run this attempt (not this host)?"""
        return (pathspec, attempt) in self._remote_attempts

    def _compute_args(self, task: Task, step: StepPlan, retry_count: int,
                      user_code_retries: int) -> List[str]:
        """`kubernetes step STEP <package metadata> <sha> <url> [options]` plus the
        task's own options, as Metaflow's runtime passes them (metaflow/runtime.py,
        CLIArgs; the compute layer's command takes neither --ubf-context none nor an
        input-paths file)."""
        package = self.plan.package
        args = list(step.compute["command"]) + [
            task.step, package["metadata"], package["sha"], self.code.url,
        ] + list(step.compute["options"])
        return args + self.step_args(task, retry_count)[2:] + self._task_options(
            task, user_code_retries, ["--input-paths", ",".join(task.input_paths)])

    def step_args(self, task: Task, retry_count: int) -> List[str]:
        """`step` with the options every task of the run gets, clones included."""
        args = [
            "step", task.step,
            "--run-id", self.run_id,
            "--task-id", task.task_id,
            "--retry-count", str(retry_count),
        ]
        for tag in self.plan.tags:
            args += ["--tag", tag]
        if self.plan.namespace is not None:
            args += ["--namespace", self.plan.namespace]
        return args

    def _task_args(self, task: Task, retry_count: int, user_code_retries: int,
                   scratch: str) -> List[str]:
        paths = ",".join(task.input_paths)
        if len(paths) > MAX_INLINE_INPUT_PATHS:
            paths_file = os.path.join(scratch, "input-paths")
            with open(paths_file, "w") as f:
                f.write(paths)
            input_paths = ["--input-paths-filename", paths_file]
        else:
            input_paths = ["--input-paths", paths]
        return self.step_args(task, retry_count) + ["--ubf-context", "none"] + \
            self._task_options(task, user_code_retries, input_paths)

    def _task_options(self, task: Task, user_code_retries: int,
                      input_paths: List[str]) -> List[str]:
        """The options after `step_args` that a task gets on either path (here, or
        on the compute layer): its retries, its inputs, its split, its origin run."""
        args = ["--max-user-code-retries", str(user_code_retries)] + input_paths
        if task.split_index is not None:
            args += ["--split-index", str(task.split_index)]
        if self.reuse is not None and self.reuse.origin_run_id:
            # A resume run: the task knows its origin (current.origin_run_id), as in Metaflow.
            args += ["--clone-run-id", self.reuse.origin_run_id]
        return args


class ParametersFailed(Exception):
    """`flow.py init` failed: the run has no Parameters, so no step can run."""

    def __init__(self, outcome: TaskOutcome):
        super().__init__(outcome.error_tail())
        self.outcome = outcome


class ParametersInit:
    """`flow.py init` of a new run, launched alongside the start task.

    Both processes spend most of their time starting Python and loading the flow;
    only then does the start task read the _parameters task init persists. So the
    two start together and the start task waits (dagster_internal's step_init) for
    `ready_file`, which says "ok" or "failed" once init has exited: the start op
    saves part of init's start-up on few cores, up to all of it on more.
    """

    def __init__(self, launcher: TaskLauncher, values: dict):
        self._scratch = tempfile.mkdtemp(prefix="mfdagster-init-")
        self.ready_file = os.path.join(self._scratch, "ready")
        self._outcome: Optional[TaskOutcome] = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._init, args=(launcher, values),
                                        name="flow-init", daemon=True)
        self._thread.start()

    def _init(self, launcher: TaskLauncher, values: dict) -> None:
        try:
            self._outcome = launcher.init_parameters(values)
        except BaseException as error:  # e.g. TaskCancelled: the run is being terminated
            self._error = error
        finally:
            ok = self._outcome is not None and self._outcome.returncode == 0
            write_atomically(self.ready_file, "ok" if ok else "failed")

    def join(self) -> None:
        self._thread.join()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
        if self._outcome.returncode != 0:
            raise ParametersFailed(self._outcome)


def _cli_value(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
