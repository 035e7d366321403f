"""The task template: a process that has imported Metaflow once and forks one
child per Metaflow task; each child then becomes what `python flow.py step ...`
would be, and runs the flow file as `__main__`, its module-level code included.

Why: a task spends most of its CPU starting Python and importing Metaflow. The
template pays that once per run; a forked task costs a small fraction of it
(bench/README.md has the figures).

The runtime starts it (runtime/launch/task_template.py) as

    python -c BOOTSTRAP <the flow's directory> <control fd> <padding>

with the environment its tasks share, so everything Metaflow reads while it is
imported (metaflow_config reads os.environ then) is what a fresh task would read.
Each child, before any user code runs:
- leads its own session (the op signals the group, as for a subprocess), dies
  with the template (parent-death signal), and closes the template's own fds;
- takes the op's pipes as stdout and stderr (and writes there what importing
  Metaflow wrote, warnings say), /dev/null stays its stdin;
- gets its working directory, environment, sys.argv, sys.orig_argv and command
  line (/proc/<pid>/cmdline, what `ps` shows), fresh import caches and
  multiprocessing key, and a new `__main__` module;
- runs the flow file as `python flow.py` would, and exits as the interpreter
  does: non-daemon threads joined, atexit handlers run, stdout and stderr
  flushed, the modules the task imported itself (the flow's among them) torn
  down, last imported first, so that what they hold is finalised (a
  module-level file flushed and closed, a NamedTemporaryFile removed), cyclic
  garbage collected, then the exit status `sys.exit` gave (an uncaught
  KeyboardInterrupt takes the interpreter's own exit, which reports SIGINT).
  Left out: tearing down the modules inherited from the template (Metaflow's),
  which would write to, and so copy, most of the template's memory (CPU every
  task would pay), and whose objects are the template's, not the task's.
A flow file that runs anything but imports of the standard library before it
first imports metaflow (for example, sets METAFLOW_* variables) would see
Metaflow imported too early: that child execs `python flow.py ...` instead.

Protocol (AF_UNIX SOCK_SEQPACKET sockets, one JSON object a message):
- template -> control: {"ready": pid, "threads": n} once Metaflow is imported;
- op -> control: {"argv", "env", "cwd"} with three fds: a connection for this
  task, the task's stdout and its stderr (SCM_RIGHTS);
- child -> connection: {"pid": pid} once it leads its session;
- template -> connection: {"pid": pid, "returncode": n} (as subprocess reports it).
A request {"read": {function, kwargs}} with the connection and two memfds forks a
child that writes what `function` ("module:name" under metaflow_dagster.task)
returns, as JSON, into the first memfd and exits, having sent {"error": traceback}
if it could not.
A request {"save_logs": {flow, ds_type, ds_root, pathspec, attempt, source}} with the
connection and two memfds holding a finished task's stdout and stderr forks a
child that saves them as the task's Metaflow logs (task/metaflow_logs.py) and exits, having
sent {"error": traceback} if it could not.
The template exits when the control socket closes (its owner has exited), killing
the tasks still running, or after IDLE_EXIT_SECONDS without tasks; it kills a task
whose connection closes before it ends (its op has gone away).
"""

import ast
import atexit
import ctypes
import functools
import gc
import importlib
import io
import json
import os
import selectors
import signal
import socket
import sys
import threading
import traceback
import types
from importlib.machinery import SourceFileLoader

from ..process_groups import signal_group

# What `python -c` runs: import Metaflow as the flow file's first import would
# (binding no name in __main__), noting what the import changed and what it
# wrote to stdout and stderr (a fresh task writes that too: each child repeats
# it), then serve.
BOOTSTRAP = """\
import os, sys
sys.path[0] = sys.argv[1]
_before = (dict(os.environ), set(globals()) | {"_before", "_fds", "_after", "_output"})
_fds = (os.dup(1), os.dup(2), os.memfd_create("stdout"), os.memfd_create("stderr"))
os.dup2(_fds[2], 1)
os.dup2(_fds[3], 2)
try:
    __import__("metaflow")
finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(_fds[0], 1)
    os.dup2(_fds[1], 2)
    _output = tuple(os.pread(fd, os.fstat(fd).st_size, 0) for fd in _fds[2:])
    list(map(os.close, _fds))
    if "metaflow" not in sys.modules:  # the import failed: show what it said
        os.write(1, _output[0])
        os.write(2, _output[1])
_after = (set(sys.modules), dict(globals()))
from metaflow_dagster.task.template import serve
serve(int(sys.argv[2]), _before, _after, _output)()
"""
# The template's own command line is padded so that a child can write its
# task's command line over it (a process's command line cannot grow).
COMMAND_LINE_BYTES = 16384
MAX_REQUEST_BYTES = 1 << 20
# A template with no task and no request for this long exits (in a long-lived
# process, one whose flows no longer run); the next task starts another.
IDLE_EXIT_SECONDS = 600
PR_SET_PDEATHSIG = 1
PR_SET_MM = 35
PR_SET_MM_ARG_END = 9
# Modules a flow file may import before metaflow (see preamble_is_safe).
STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))

_libc = ctypes.CDLL(None, use_errno=True)


def serve(control_fd: int, before: tuple, after: tuple, output: tuple):
    """Run the template until its owner goes away. Returns only in a forked
    child: the function that runs the task's flow file as `__main__`.
    `before` and `after` are what the bootstrap saw around `import metaflow`,
    `output` what the import wrote to stdout and stderr."""
    return _Template(control_fd, before, after, output).serve()


class _Template:
    def __init__(self, control_fd: int, before: tuple, after: tuple, output: tuple):
        self.control = socket.socket(fileno=control_fd)
        self.import_output = output
        self.start_env, main_names = before
        loaded, main_after = after
        # What importing Metaflow set on __main__ (tuple_util.py puts its named
        # tuples there, for pickling): in a fresh task, the flow module gets it.
        self.main_additions = {k: v for k, v in main_after.items() if k not in main_names}
        # What this module imported on top of `import metaflow`: a fresh task
        # would not have it.
        self.ours = set(sys.modules) - loaded
        self.selector = selectors.DefaultSelector()
        self.tasks = {}  # pid -> (connection, pidfd)

    def serve(self):
        _warm_caches(self.ours)
        # Objects that live as long as the template: no collection in a child
        # walks (and so copies) them again. (Importing Metaflow leaves no garbage
        # to collect first.)
        gc.freeze()
        self._send(self.control, ready=os.getpid(), threads=threading.active_count())
        self.selector.register(self.control, selectors.EVENT_READ, "control")
        try:
            while True:
                ready = self.selector.select(timeout=IDLE_EXIT_SECONDS)
                if not ready and not self.tasks:
                    raise _OwnerGone()  # idle: the next task starts a new template
                for key, _ in ready:
                    if key.data == "control":
                        child = self._receive_request()
                        if child is not None:
                            return child  # in the child
                    else:
                        kind, pid = key.data
                        if kind == "exit":
                            self._report_exit(pid)
                        else:
                            self._connection_event(pid)
        except _OwnerGone:
            self._kill_all()
            raise SystemExit(0) from None

    # --- requests -----------------------------------------------------------

    def _receive_request(self):
        fd_space = socket.CMSG_SPACE(3 * ctypes.sizeof(ctypes.c_int))
        data, ancillary, flags, _ = self.control.recvmsg(MAX_REQUEST_BYTES, fd_space)
        fds = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % ctypes.sizeof(ctypes.c_int)
                fds.extend(memoryview(payload)[:usable].cast("i"))
        if not data:
            raise _OwnerGone()
        if len(fds) != 3 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            return None  # the op sees its connection close without a pid
        return self._fork(json.loads(data), *fds)

    def _fork(self, request: dict, conn_fd: int, out_fd: int, err_fd: int):
        conn = socket.socket(fileno=conn_fd)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            if "save_logs" in request:
                self._save_logs(request["save_logs"], conn, out_fd, err_fd)
            if "read" in request:
                self._read(request["read"], conn, out_fd, err_fd)
            try:
                return self._become_task(request, conn, out_fd, err_fd)
            except BaseException:
                os.write(err_fd, ("metaflow-dagster: the task template could not start "
                                  "this task:\n%s" % traceback.format_exc()).encode())
                os._exit(1)
        os.close(out_fd)
        os.close(err_fd)
        pidfd = os.pidfd_open(pid)
        self.tasks[pid] = (conn, pidfd)
        self.selector.register(pidfd, selectors.EVENT_READ, ("exit", pid))
        self.selector.register(conn, selectors.EVENT_READ, ("conn", pid))
        return None

    def _report_exit(self, pid: int) -> None:
        conn, pidfd = self.tasks.pop(pid)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        if conn.fileno() in self.selector.get_map():
            self.selector.unregister(conn)
        _, status = os.waitpid(pid, 0)
        try:
            self._send(conn, pid=pid, returncode=os.waitstatus_to_exitcode(status))
        except OSError:
            pass  # the op has gone away meanwhile
        conn.close()

    def _connection_event(self, pid: int) -> None:
        conn, _ = self.tasks[pid]
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
        if not data:  # the op that launched the task has gone away
            self.selector.unregister(conn)
            signal_group(pid, signal.SIGKILL)

    def _kill_all(self) -> None:
        for pid in list(self.tasks):
            signal_group(pid, signal.SIGKILL)
        for pid in list(self.tasks):
            os.waitpid(pid, 0)

    @staticmethod
    def _send(conn, **message) -> None:
        conn.send(json.dumps(message).encode())

    # --- in the child -------------------------------------------------------

    def _close_template_fds(self) -> None:
        self.selector.close()
        self.control.close()
        for other_conn, pidfd in self.tasks.values():
            other_conn.close()
            os.close(pidfd)

    def _save_logs(self, spec: dict, conn, out_fd: int, err_fd: int) -> None:
        """In a child: save a finished task's logs, whose bytes the op sent as two
        memfds. Never returns."""
        def save():
            from .datastore import open_flow_datastore
            from .metaflow_logs import save_logs

            with open(out_fd, "rb") as out, open(err_fd, "rb") as err:
                stdout, stderr = out.read(), err.read()
            flow_datastore = open_flow_datastore(spec["flow"], spec["ds_type"], spec["ds_root"])
            save_logs(flow_datastore, spec["pathspec"], spec["attempt"], stdout, stderr,
                      spec["source"])

        self._exit_after(save, conn)

    def _read(self, spec: dict, conn, result_fd: int, unused_fd: int) -> None:
        """In a child: what a task/ function returns (JSON) for the op, which reads
        Metaflow's datastore here rather than import Metaflow itself. Never returns."""
        def read():
            os.close(unused_fd)
            module, name = spec["function"].split(":")
            value = getattr(importlib.import_module(module), name)(**spec["kwargs"])
            _write_all(result_fd, json.dumps(value).encode())

        self._exit_after(read, conn)

    def _exit_after(self, work, conn) -> None:
        """In a child: do `work`, send its traceback on `conn` if it fails, and exit
        (its status goes to the op as for a task). Never returns."""
        code = 0
        try:
            self._close_template_fds()
            work()
        except BaseException:
            code = 1
            try:
                self._send(conn, error=traceback.format_exc())
            except OSError:
                pass
        os._exit(code)

    def _become_task(self, request: dict, conn, out_fd: int, err_fd: int):
        template = os.getppid()
        os.setsid()
        if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or \
                os.getppid() != template:
            os._exit(1)
        self._close_template_fds()
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        for fd, data in zip((1, 2), self.import_output):
            _write_all(fd, data)
        os.chdir(request["cwd"])
        env = request["env"]
        argv = request["argv"]
        self._take_environment(env)
        sys.argv = argv[1:]
        sys.orig_argv = list(argv)
        _set_command_line(argv)
        for name in self.ours:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        process = sys.modules.get("multiprocessing.process")
        if process is not None:  # a fresh process draws its own key at import
            process.current_process().authkey = os.urandom(32)
        self._send(conn, pid=os.getpid())
        conn.close()
        return functools.partial(_run_as_main, argv, env, self.main_additions)

    def _take_environment(self, env: dict) -> None:
        """The task's environment, keeping what importing Metaflow changed in it
        (a fresh task would have made the same changes)."""
        for name in set(self.start_env) | set(env):
            if name not in env:
                os.environ.pop(name, None)
            elif self.start_env.get(name) != env[name]:
                os.environ[name] = env[name]


class _OwnerGone(Exception):
    """The control socket closed (the process that started the template exited),
    or the template was idle too long: time to exit."""


def _warm_caches(ours: set) -> None:
    """Fill, once, a cache every task fills the same way: the tokenizer's compiled
    patterns (Metaflow reads each step's source to build the flow's graph, and
    compiling them is a part of every task's CPU). Only a cache: a task sees no difference. Only
    if importing Metaflow imported the tokenizer; a child drops what it did not."""
    tokenize = sys.modules.get("tokenize")
    if tokenize is not None and "tokenize" not in ours:
        list(tokenize.generate_tokens(io.StringIO("pass\n").readline))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _set_command_line(argv) -> None:
    """Write the task's argv over the template's, so /proc/<pid>/cmdline (ps,
    tools that find a task by its command) shows the task's command."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # proc(5): fields 48 and 49 (arg_start, arg_end); fields[0] is field 3.
    start, end = int(fields[45]), int(fields[46])
    text = b"\0".join(os.fsencode(a) for a in argv)[: end - start - 1] + b"\0"
    ctypes.memmove(start, text + b"\0" * (end - start - len(text)), end - start)
    # Where allowed (CAP_SYS_RESOURCE), also end the command line there instead
    # of leaving the rest of the padding as empty arguments.
    _libc.prctl(PR_SET_MM, PR_SET_MM_ARG_END, start + len(text), 0, 0)


def preamble_is_safe(tree: ast.Module) -> bool:
    """True when the module runs nothing but standard-library imports (and a
    docstring, `from __future__`) before it first imports metaflow: importing
    Metaflow before them, as the template did, then changes nothing."""
    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(
                getattr(node, "value", None), ast.Constant) and isinstance(
                node.value.value, str):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [(node.module or "").split(".")[0]]
        else:
            return False
        for name in names:
            if name == "metaflow":
                return True
            if name not in STDLIB and name != "__future__":
                return False
    return False


def _run_as_main(argv, env, main_additions: dict) -> None:
    """Run the flow file as `python <flow file>` runs it, then end the process."""
    path = argv[1]
    filename = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    with open(filename, "rb") as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        tree = None
    if tree is None or not preamble_is_safe(tree):
        os.execve(argv[0], argv, env)  # the ordinary path, nothing of the flow run yet
    code = compile(tree, filename, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(__annotations__={}, __builtins__=sys.modules["builtins"],
                         __file__=filename, __cached__=None,
                         __loader__=SourceFileLoader("__main__", filename))
    main.__dict__.update(main_additions)
    inherited = dict(sys.modules)
    sys.modules["__main__"] = main
    if "__mp_main__" in sys.modules:  # multiprocessing names the main module so
        sys.modules["__mp_main__"] = main
    status = 0
    try:
        exec(code, main.__dict__)
    except SystemExit as exit_request:
        status = _exit_status(exit_request)
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        # As the interpreter reports an uncaught exception, without this frame.
        sys.excepthook(type(error), error, error.__traceback__.tb_next)
        status = 1
    _end_process(status, inherited)


def _exit_status(exit_request: SystemExit) -> int:
    """The status the interpreter exits with for an uncaught SystemExit."""
    code = exit_request.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _end_process(status: int, inherited: dict) -> None:
    """End a forked task as the interpreter ends, but for the teardown of the
    modules it `inherited` from the template (see the module's docstring).
    Never returns."""
    threading._shutdown()
    atexit._run_exitfuncs()
    status = _flush_std_streams(status)
    own = [name for name, module in list(sys.modules.items())
           if inherited.get(name) is not module]
    modules = [sys.modules.pop(name) for name in reversed(own)]
    for module in modules:
        _clear_module(module)
    del modules
    gc.collect()
    os._exit(_flush_std_streams(status))


def _flush_std_streams(status: int) -> int:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            status = status or 120  # as the interpreter does when its flush fails
    return status


def _clear_module(module) -> None:
    """Drop what a module holds as the interpreter's teardown does: names with a
    single leading underscore first, then all others but __builtins__ (which the
    finalisers that run meanwhile may need)."""
    namespace = getattr(module, "__dict__", None)
    if namespace is None:
        return
    for private_only in (True, False):
        for name in list(namespace):
            private = name.startswith("_") and not name.startswith("__")
            if name != "__builtins__" and (private or not private_only):
                namespace[name] = None
