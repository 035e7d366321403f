"""Starts Metaflow tasks as children of a task template (task/template.py), a
process that has imported Metaflow once, instead of as fresh interpreters.

A task started this way is still its own process, in its own session, with its
own environment, working directory, stdout/stderr pipes, command line and exit
status; `start` returns an object with what processes.py uses of a Popen (pid,
poll, wait, stdout, stderr), so timeouts, cancellation (killpg of the task's
group), output streaming and exit codes work as for a subprocess.

Templates belong to the process that starts them (the run process under our
executor, each op's process under the multiprocess executor), one per distinct
(interpreter, flow directory, working directory, environment): a task whose
environment differs in anything but the per-task variables below (@environment,
say) gets its own template, so what Metaflow read at import is what it would
read in a fresh process. The ordinary path (`subprocess.Popen`, `start` returns
None) is taken when:
- METAFLOW_DAGSTER_TASK_TEMPLATE=0 in the op's environment, or the OS lacks pidfds;
- the command is not `<this interpreter> <flow file>.py ...`, or asks for an
  environment other than `local` (@conda/@pypi: --environment, or
  METAFLOW_DEFAULT_ENVIRONMENT), or METAFLOW_DEFAULT_DECOSPECS adds decorators;
- the step has a decorator outside FORKABLE_DECORATORS (a compute layer such as
  @kubernetes or @batch, @conda, @pypi, anything unknown), or the plan predates
  the list of decorators;
- the template cannot start, or something else runs threads in it.
"""

import array
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Dict, List, Optional

from ... import naming, reaper
from ...plan import FlowPlan
from ...process_groups import signal_group
from ...task.template import BOOTSTRAP, COMMAND_LINE_BYTES
from .settings import datastore_location

# Decorators that act only inside the task, the same in a forked task as in a
# fresh one.
FORKABLE_DECORATORS = frozenset({
    "card", "catch", "dagster_internal", "environment", "resources", "retry", "secrets",
    "timeout",
})
# Set per task (or per op) by launcher.py and processes.py and read by the task only
# while it runs (task/decorator.py), never while Metaflow is imported: not part of
# the key. The Dagster run id is: a process's initial environment
# (/proc/<pid>/environ), which a forked task shares with its template, marks the
# run's tasks for the reaper (runtime/executors/workers.py) and for whoever looks for them.
PER_TASK_ENV = frozenset({
    naming.RESULT_FILE_ENV, naming.PARAMETERS_READY_ENV, naming.DAGSTER_OP_ENV,
    naming.TRIGGERS_ENV, naming.TASK_OWNER_ENV,
})
READY_TIMEOUT_SECONDS = 300
MAX_TEMPLATES = 8  # per process; more distinct environments take the ordinary path


def starter(plan: FlowPlan, step: Optional[str]) -> Optional["TaskStarter"]:
    """How processes.run_process should start a task of `step` (None: `init`):
    a TaskStarter, or None for subprocess.Popen."""
    if os.environ.get(naming.TASK_TEMPLATE_ENV, "1") == "0" or not hasattr(os, "pidfd_open"):
        return None
    if step is not None:
        decorators = plan.step(step).decorators
        if decorators is None or not set(decorators) <= FORKABLE_DECORATORS:
            return None
    return TaskStarter(plan)


class TaskStarter:
    def __init__(self, plan: FlowPlan):
        self.plan = plan

    def __call__(self, argv: List[str], env: Dict[str, str], cwd: str):
        """Fork the task from its template: a ForkedProcess, or None when it must
        be started the ordinary way."""
        if not _forkable(argv, env):
            return None
        template = _template_for(argv, env, cwd)
        if template is None or not template.wait_ready():
            return None
        _flow_templates[self.plan.flow_file] = template
        return template.start(argv, env, cwd)

    def prepare(self, argv: List[str], env: Dict[str, str], cwd: str) -> None:
        """Start the template such a task will fork from, without waiting for it."""
        if _forkable(argv, env):
            _template_for(argv, env, cwd)


def _forkable(argv: List[str], env: Dict[str, str]) -> bool:
    # `<this interpreter> <a flow file> ...` (the flow file may be the plan's, or a
    # copy of it from a code package).
    if len(argv) < 3 or argv[0] != sys.executable:
        return False
    if not argv[1].endswith(".py") or not os.path.isfile(argv[1]):
        return False
    if env.get("METAFLOW_DEFAULT_ENVIRONMENT", "local") not in ("", "local"):
        return False
    if env.get("METAFLOW_DEFAULT_DECOSPECS"):
        return False
    for i, arg in enumerate(argv):
        if arg == "--environment" and argv[i + 1:i + 2] != ["local"]:
            return False
        if arg.startswith("--environment=") and arg != "--environment=local":
            return False
    return True


_templates: Dict[tuple, "Template"] = {}
_templates_lock = threading.Lock()
# Per flow file, the template that last forked one of its tasks: its children save
# the tasks' logs and read their artifacts for the op.
_flow_templates: Dict[str, "Template"] = {}


def save_logs_in_template(plan: FlowPlan, pathspec: str, attempt: int, stdout: bytes,
                          stderr: bytes, source: str = "task") -> bool:
    """Save a finished task's logs (task/metaflow_logs.py) in a child of the template that
    forks the flow's tasks; False if there is none (the caller saves them)."""
    template = _flow_templates.get(plan.flow_file)
    if template is None:
        return False
    ds_type, ds_root = datastore_location(plan)
    spec = {"flow": plan.flow_name, "ds_type": ds_type, "ds_root": ds_root,
            "pathspec": pathspec, "attempt": attempt, "source": source}
    return template.save_logs(spec, stdout, stderr)


def read_in_template(plan: FlowPlan, function: str, **kwargs):
    """What `function` ("module:name", a task/ module that reads Metaflow's datastore)
    returns for `kwargs`, computed in a child of the template that forks the flow's
    tasks; None if there is none (the caller reads in this process)."""
    template = _flow_templates.get(plan.flow_file)
    if template is None:
        return None
    return template.read(function, kwargs)


def template_key(argv: List[str], env: Dict[str, str], cwd: str) -> tuple:
    """Tasks with equal keys share a template: same interpreter, sys.path[0] (the
    flow's directory, as `python flow.py` sets it), working directory and
    environment but for the per-task variables."""
    path0 = os.path.dirname(os.path.realpath(argv[1]))
    shared_env = tuple(sorted((k, v) for k, v in env.items() if k not in PER_TASK_ENV))
    return argv[0], path0, cwd, shared_env


def _template_for(argv: List[str], env: Dict[str, str], cwd: str) -> Optional["Template"]:
    key = template_key(argv, env, cwd)
    with _templates_lock:
        template = _templates.get(key)
        if template is not None and not template.alive():  # killed: start another
            del _templates[key]
            template = None
        if template is None:
            if len(_templates) >= MAX_TEMPLATES:
                return None
            python, path0, cwd, shared_env = key
            # The launcher's reaper mark (reaper.py): its reaper finds the template
            # and the tasks forked from it, whose initial environment
            # (/proc/<pid>/environ) is the template's.
            name, _, value = reaper.owner_mark().partition("=")
            template = _templates[key] = Template(python, path0, cwd,
                                                  dict(shared_env, **{name: value}))
    return template


def retire_run_templates(dagster_run_id: str) -> None:
    """This process has no more tasks of the run to start (an op ended in a process
    that is not the run's own, a Celery worker's say): its templates for the run exit
    once their running tasks have ended, instead of idling with the run's mark."""
    entry = (naming.DAGSTER_RUN_ID_ENV, dagster_run_id)
    with _templates_lock:
        keys = [key for key in _templates if entry in key[3]]
        retired = [_templates.pop(key) for key in keys]
        for flow_file, template in list(_flow_templates.items()):
            if template in retired:
                del _flow_templates[flow_file]
    for template in retired:
        template.retire()


class Template:
    """One template process and the control socket to it."""

    def __init__(self, python: str, path0: str, cwd: str, env: Dict[str, str]):
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.usable = False
        # Tasks forked and not yet ended; once retiring, the template is closed
        # when none is left.
        self._running = 0
        self._retiring = False
        self._count_lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = ours
        padding = "-" * COMMAND_LINE_BYTES
        try:
            self.process = subprocess.Popen(
                [python, "-c", BOOTSTRAP, path0, str(theirs.fileno()), padding],
                env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except OSError as error:
            _warn("could not start a task template (%s); tasks start as fresh "
                  "processes" % error)
            self._ready.set()
            return
        finally:
            theirs.close()
        for pipe in (self.process.stdout, self.process.stderr):
            threading.Thread(target=_relay, args=(pipe,), name="task-template-output",
                             daemon=True).start()
        threading.Thread(target=self._await_ready, name="task-template-start",
                         daemon=True).start()

    def _await_ready(self) -> None:
        try:
            self._control.settimeout(READY_TIMEOUT_SECONDS)
            message = json.loads(self._control.recv(4096) or b"{}")
            self._control.settimeout(None)
        except (OSError, ValueError):
            message = {}
        if message.get("threads") == 1:
            self.usable = True
        elif message:
            _warn("the task template runs %s threads after importing Metaflow, so it "
                  "does not fork; tasks start as fresh processes" % message["threads"])
        else:
            _warn("the task template did not start (its output is above); tasks "
                  "start as fresh processes")
        self._ready.set()

    def alive(self) -> bool:
        """False once the template process has exited (a started one, that is)."""
        process = getattr(self, "process", None)
        return process is None or process.poll() is None

    def wait_ready(self) -> bool:
        self._ready.wait()
        return self.usable

    def start(self, argv: List[str], env: Dict[str, str], cwd: str):
        """Fork a task; None if the template cannot (the caller uses Popen)."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            conn = self._request({"argv": argv, "env": env, "cwd": cwd}, out_w, err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        if conn is None:
            os.close(out_r)
            os.close(err_r)
            return None
        with self._count_lock:
            self._running += 1
        process = ForkedProcess(argv, conn, os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"),
                                on_exit=self._task_ended)
        if process.pid is None and process.returncode is None:
            process.close_pipes()
            self._task_ended()
            return None  # the template refused the request: nothing ran
        return process

    def retire(self) -> None:
        """Close the template once no task of it runs (now, if none does)."""
        with self._count_lock:
            self._retiring = True
            idle = self._running == 0
        if idle:
            self._close()

    def _task_ended(self) -> None:
        with self._count_lock:
            self._running -= 1
            close = self._retiring and self._running == 0
        if close:
            self._close()

    def _close(self) -> None:
        """The template exits when its control socket closes; reap it meanwhile."""
        self._control.close()
        process = getattr(self, "process", None)
        if process is not None:
            threading.Thread(target=process.wait, name="task-template-exit",
                             daemon=True).start()

    def save_logs(self, spec: dict, stdout: bytes, stderr: bytes) -> bool:
        """Have a child of the template save a task's logs; False if the template
        is gone (nothing saved); raises if the child failed to save them."""
        files = []
        try:
            for data in (stdout, stderr):
                fd = os.memfd_create("task-log")
                files.append(fd)
                _write_all(fd, data)
                os.lseek(fd, 0, os.SEEK_SET)
            return self._child_done({"save_logs": spec}, files,
                                    "Could not save the logs of %s" % spec["pathspec"])
        finally:
            for fd in files:
                os.close(fd)

    def read(self, function: str, kwargs: dict):
        """What a child of the template computes (see read_in_template); None if the
        template is gone; raises if the child failed."""
        files = [os.memfd_create("read-result"), os.memfd_create("unused")]
        try:
            if not self._child_done({"read": {"function": function, "kwargs": kwargs}},
                                    files, "Could not read %s" % function):
                return None
            os.lseek(files[0], 0, os.SEEK_SET)
            with os.fdopen(os.dup(files[0]), "rb") as result:
                return json.loads(result.read())
        finally:
            for fd in files:
                os.close(fd)

    def _child_done(self, request: dict, fds: List[int], failure: str) -> bool:
        """Send a request for a child and wait until it has exited: True if it did
        its work, False if the template is gone; raises if the child failed."""
        conn = self._request(request, *fds)
        if conn is None:
            return False
        error = None
        with conn:
            for data in iter(lambda: conn.recv(65536), b""):
                message = json.loads(data)
                error = message.get("error", error)
                if "returncode" in message:
                    break
            else:
                return False  # the template died meanwhile
        if message["returncode"] != 0:
            raise RuntimeError("%s:\n%s" % (failure, error or "exit code %d"
                                             % message["returncode"]))
        return True

    def _request(self, request: dict, *fds: int) -> Optional[socket.socket]:
        """Send a request with its fds; the connection its answers come on, or
        None if the template cannot take it (too large, or the template is gone)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with self._lock:
                self._control.sendmsg([json.dumps(request).encode()], [(
                    socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_array([theirs.fileno(), *fds]))])
        except OSError:
            mine.close()
            return None
        finally:
            theirs.close()
        return mine


class ForkedProcess:
    """A task forked by a template: what processes.py uses of subprocess.Popen.
    Its exit status comes from the template (its parent), over `conn`."""

    def __init__(self, args: List[str], conn: socket.socket, stdout, stderr, on_exit=None):
        self.args = args
        self._on_exit = on_exit
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: Optional[int] = None
        self.pid: Optional[int] = None
        self._conn = conn
        # The child reports its pid once it leads its own session; the template
        # reports its exit status instead if it died before that.
        self._receive(timeout=None)

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self._receive(timeout=0)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is None:
            self._receive(timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def close_pipes(self) -> None:
        self.stdout.close()
        self.stderr.close()

    def _receive(self, timeout: Optional[float]) -> None:
        self._conn.settimeout(timeout)
        try:
            data = self._conn.recv(4096)
        except (socket.timeout, BlockingIOError):
            return
        except OSError:
            data = b""
        if not data:  # the template died: so did the task (its parent-death signal)
            self._conn.close()
            if self.pid is not None:
                signal_group(self.pid, signal.SIGKILL)
                self._ended(-signal.SIGKILL)
            return
        message = json.loads(data)
        self.pid = message.get("pid", self.pid)
        if "returncode" in message:
            self._conn.close()
            self._ended(message["returncode"])

    def _ended(self, returncode: int) -> None:
        self.returncode = returncode
        if self._on_exit is not None:
            self._on_exit()


def _fd_array(fds):
    return array.array("i", fds)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _relay(pipe) -> None:
    """The template's own output (normally none: tasks have their own pipes)."""
    for line in iter(pipe.readline, b""):
        sys.__stderr__.write("[task template] " + line.decode("utf-8", "replace"))
        sys.__stderr__.flush()
    pipe.close()


def _warn(message: str) -> None:
    sys.__stderr__.write("metaflow-dagster: %s\n" % message)
    sys.__stderr__.flush()
