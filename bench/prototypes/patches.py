"""The proposed changes, as exact text replacements on the current sources.
Each fails loudly if its anchor text moved (others are editing these files)."""

import os
from dataclasses import dataclass
from typing import List, Tuple


@dataclass
class Patch:
    name: str
    why: str
    edits: List[Tuple[str, str, str]]  # (file relative to the package, old, new)

    def apply(self, package_dir: str) -> None:
        for rel, old, new in self.edits:
            path = os.path.join(package_dir, rel)
            text = open(path).read() if os.path.exists(path) else ""
            if old == "":
                text = new  # a new file
            elif old.startswith("FUNC:"):  # replace a whole top-level function
                start = text.find("\ndef %s(" % old[5:]) + 1
                if start == 0:
                    raise RuntimeError("patch %s: no function %s in %s" % (self.name, old[5:], rel))
                end = text.find("\n\n\n", start)
                text = text[:start] + new.rstrip("\n") + text[end if end >= 0 else len(text):]
            else:
                if text.count(old) != 1:
                    raise RuntimeError("patch %s: anchor not found once in %s" % (self.name, rel))
                text = text.replace(old, new)
            with open(path, "w") as f:
                f.write(text)


NO_DAGSTER_IN_CLI = Patch(
    "no-dagster-in-cli",
    "Every `python flow.py ...` (each Metaflow task, under `run` too, whenever this package is "
    "installed) loads our CLI, which imported dagster via validate.py: ~1.2-2.6 s per process.",
    [(
        "validate.py",
        '''from typing import List

from dagster._core.definitions.utils import DISALLOWED_NAMES

# Op input names also carry step names, and the generated job body binds
# `<step>_task` variables; these names would clash with Dagster's own.
RESERVED_STEP_NAMES = DISALLOWED_NAMES | {"job", "op", "Definitions"}
''',
        '''import keyword
from typing import List

# Dagster's DISALLOWED_NAMES (dagster._core.definitions.utils), spelled out so that
# `python flow.py ...` (every Metaflow task loads this CLI) never imports dagster;
# tests/unit checks it still equals Dagster's set.
DAGSTER_DISALLOWED_NAMES = frozenset(keyword.kwlist) | {
    "arg_dict", "bool", "conf", "config", "context", "dict", "float", "input",
    "input_arg_dict", "int", "meta", "output", "output_arg_dict", "str", "type",
}
# Op input names also carry step names, and the generated job body binds
# `<step>_task` variables; these names would clash with Dagster's own.
RESERVED_STEP_NAMES = DAGSTER_DISALLOWED_NAMES | {"job", "op", "Definitions"}
''',
    ), (
        "schedules.py",
        "\n\nfrom dagster._utils.schedules import is_valid_cron_string\n",
        "\n",
    ), (
        "schedules.py",
        """def _require_valid(cron: str, expr: str) -> None:
    if not is_valid_cron_string(cron):""",
        """def _require_valid(cron: str, expr: str) -> None:
    # imported here: the CLI module is loaded by every `python flow.py ...`
    from dagster._utils.schedules import is_valid_cron_string

    if not is_valid_cron_string(cron):""",
    )],
)

STEP_IO = Patch(
    "step-io",
    "What an executor running several ops in one process (metaflow_dagster/executor.py) "
    "binds to an op's thread: the op's own log streams, a cancel event (run termination) "
    "and a run-wide cap on task processes. Unbound (every other executor): sys.stdout, "
    "sys.stderr, no cancel, no cap -- today's behaviour.",
    [(
        "runtime/step_runner.py",
        """import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import List, Optional
""",
        """import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, List, Optional
""",
    ), (
        "runtime/step_runner.py",
        """class TaskCancelled(Exception):
    \"\"\"Another task of the same op failed; this one was stopped.\"\"\"
""",
        """class TaskCancelled(Exception):
    \"\"\"Another task of the same op failed, or the run is being terminated;
    this one was stopped.\"\"\"


@dataclass(frozen=True)
class StepIO:
    \"\"\"Bound by an executor that runs several ops in one process: where the op's
    task output goes (its own compute log), what stops its tasks (run termination)
    and a run-wide cap on task processes. Other executors bind nothing.\"\"\"

    stdout: Optional[IO] = None
    stderr: Optional[IO] = None
    cancel: Optional[threading.Event] = None
    slots: Optional[threading.Semaphore] = None


_bound = threading.local()


def current_io() -> StepIO:
    return getattr(_bound, "io", None) or StepIO()


@contextmanager
def bind_io(io: StepIO):
    \"\"\"Bind io to this thread (an op's thread, or a region's worker thread).\"\"\"
    previous = getattr(_bound, "io", None)
    _bound.io = io
    try:
        yield io
    finally:
        _bound.io = previous


class _AnyEvent:
    def __init__(self, *events):
        self._events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)


@contextmanager
def _slot(slots, cancel):
    while slots is not None and not slots.acquire(timeout=0.2):
        if cancel is not None and cancel.is_set():
            raise TaskCancelled()
    try:
        yield
    finally:
        if slots is not None:
            slots.release()
""",
    ), (
        "runtime/step_runner.py",
        """    the op) kills the task's process group and re-raises.\"\"\"
    started = time.monotonic()
    proc = subprocess.Popen(""",
        """    the op) kills the task's process group and re-raises.\"\"\"
    io = current_io()
    if io.cancel is not None:
        cancel = _AnyEvent(cancel, io.cancel) if cancel is not None else io.cancel
    with _slot(io.slots, cancel):
        return _run(argv, env, cwd, timeout_seconds, prefix, cancel, io)


def _run(argv, env, cwd, timeout_seconds, prefix, cancel, io: StepIO) -> TaskOutcome:
    started = time.monotonic()
    proc = subprocess.Popen(""",
    ), (
        "runtime/step_runner.py",
        """        _start_tee(proc.stdout, sys.stdout, out_buf, prefix),
        _start_tee(proc.stderr, sys.stderr, err_buf, prefix),""",
        """        _start_tee(proc.stdout, io.stdout or sys.stdout, out_buf, prefix),
        _start_tee(proc.stderr, io.stderr or sys.stderr, err_buf, prefix),""",
    ), (
        "runtime/region.py",
        "from .step_runner import TaskCancelled, TaskTimeout\n",
        "from .step_runner import TaskCancelled, TaskTimeout, bind_io, current_io\n",
    ), (
        "runtime/region.py",
        """        self.cancel = threading.Event()
""",
        """        self.cancel = threading.Event()
        # the op's log streams and run-termination event reach the worker threads
        self.io = current_io()
""",
    ), (
        "runtime/region.py",
        """    def _attempts(self, task: Task) -> dict:
        \"\"\"Run a task with the retries its decorators allow.\"\"\"
""",
        """    def _attempts(self, task: Task) -> dict:
        \"\"\"Run a task with the retries its decorators allow.\"\"\"
        with bind_io(self.io):
            return self._attempts_bound(task)

    def _attempts_bound(self, task: Task) -> dict:
""",
    ), (
        "runtime/job.py",
        "from .step_runner import TaskTimeout\n",
        "from .step_runner import TaskCancelled, TaskTimeout, current_io\n",
    ), (
        "runtime/job.py",
        """    def run_op(self, context, op_name: str, *inputs) -> Iterator[Output]:
""",
        """    def run_op(self, context, op_name: str, *inputs) -> Iterator[Output]:
        try:
            yield from self._run_op(context, op_name, *inputs)
        except TaskCancelled:
            cancel = current_io().cancel
            if cancel is None or not cancel.is_set():
                raise
            # the executor is terminating the run; Dagster reports the step as interrupted
            raise DagsterExecutionInterruptedError("The run was terminated.") from None

    def _run_op(self, context, op_name: str, *inputs) -> Iterator[Output]:
""",
    ), (
        "runtime/job.py",
        "from dagster import DynamicOutput, Failure, MetadataValue, Output\n",
        "from dagster import (\n    DagsterExecutionInterruptedError,\n    DynamicOutput,\n"
        "    Failure,\n    MetadataValue,\n    Output,\n)\n",
    )],
)

EXECUTOR_OPTION = Patch(
    "executor-option",
    "`dagster create --executor metaflow|multiprocess|in_process` (default metaflow: steps in "
    "threads of the run process, each Metaflow task its own process; the stock executors "
    "one option away, and any executor can still be chosen in run config).",
    [(
        "plan.py",
        "    max_workers: int = 100\n    workflow_timeout_seconds: Optional[int] = None\n"
        "    # Working directory",
        "    max_workers: int = 100\n"
        "    # Dagster executor of the job: metaflow (metaflow_dagster.executor), multiprocess\n"
        "    # or in_process (Dagster's own).\n"
        "    executor: str = \"metaflow\"\n"
        "    workflow_timeout_seconds: Optional[int] = None\n    # Working directory",
    ), (
        "compile.py",
        "    max_workers: int = 100\n    workflow_timeout_seconds: Optional[int] = None\n"
        "    top_level_args",
        "    max_workers: int = 100\n    executor: str = \"metaflow\"\n"
        "    workflow_timeout_seconds: Optional[int] = None\n    top_level_args",
    ), (
        "compile.py",
        "        max_workers=options.max_workers,\n",
        "        max_workers=options.max_workers,\n        executor=options.executor,\n",
    ), (
        "cli.py",
        """@click.option("--workflow-timeout", default=None, type=int,""",
        """@click.option("--executor", default="metaflow", show_default=True,
              type=click.Choice(["metaflow", "multiprocess", "in_process"]),
              help="Dagster executor of the job. metaflow: each step in a thread of the run "
              "process (every Metaflow task still its own process); multiprocess: Dagster's, "
              "each step in a forkserver process; in_process: Dagster's, one step at a time.")
@click.option("--workflow-timeout", default=None, type=int,""",
    ), (
        "cli.py",
        "def create(obj, file, name, tags, namespace, decospecs, max_workers, workflow_timeout,",
        "def create(obj, file, name, tags, namespace, decospecs, max_workers, executor,\n"
        "           workflow_timeout,",
    ), (
        "cli.py",
        "        max_workers=max_workers,\n",
        "        max_workers=max_workers,\n        executor=executor,\n",
    ), (
        "render.py",
        """    names = {"Definitions", "job", "multiprocess_executor", "op"}""",
        """    names = {"Definitions", "job", "op"}
    if plan.executor != "metaflow":
        names.add("%s_executor" % plan.executor)""",
    ), (
        "render.py",
        """    lines.append("from metaflow_dagster.runtime import MetaflowJob")
""",
        """    if plan.executor == "metaflow":
        lines.append("from metaflow_dagster.executor import metaflow_task_executor")
    lines.append("from metaflow_dagster.runtime import MetaflowJob")
""",
    ), (
        "render.py",
        "FUNC:_executor",
        """def _executor(plan: FlowPlan) -> str:
    \"\"\"The job's executor, with --max-workers as a per-foreach cap.

    metaflow (default): steps run in threads of the run process, each Metaflow
    task in its own process (~0.2 s per op instead of ~2.5 s of worker start).
    multiprocess: Dagster's, forkserver with Dagster, our runtime and Metaflow
    preloaded (the op imports Metaflow to read and write the datastore).
    in_process: Dagster's, one step at a time; takes no per-foreach cap.\"\"\"
    per_foreach = {"applyLimitPerUniqueValue": True}
    limits = [{"key": FOREACH_TAG, "value": per_foreach, "limit": plan.max_workers}]
    if plan.executor == "in_process":
        return "EXECUTOR = in_process_executor"
    if plan.executor == "metaflow":
        config = {"tag_concurrency_limits": limits}
        return "EXECUTOR = metaflow_task_executor.configured(\\n    %s\\n)" % _py(config, 4, 1)
    preload = ["dagster", "metaflow_dagster.runtime", "metaflow", "metaflow.datastore",
               "metaflow.plugins"]
    config = {
        "start_method": {"forkserver": {"preload_modules": preload}},
        "tag_concurrency_limits": limits,
    }
    return "EXECUTOR = multiprocess_executor.configured(\\n    %s\\n)" % _py(config, 4, 1)
""",
    )],
)

PATCHES = [NO_DAGSTER_IN_CLI, STEP_IO, EXECUTOR_OPTION]
