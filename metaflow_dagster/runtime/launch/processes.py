"""Runs one Metaflow task (`python flow.py step ...`) as a subprocess.

- The task gets its own session, so on timeout or cancellation the whole process
  group is terminated: SIGTERM, then SIGKILL after KILL_GRACE_SECONDS. Dagster
  itself only interrupts the op's own process and would orphan the task.
- If this process dies outright, its reaper kills the task and everything the
  task started, and the task's parent-death signal kills it too (see
  metaflow_dagster/reaper.py).
- stdout and stderr are forwarded line by line as they arrive (into Dagster's
  captured logs) and kept, to be saved as the task's Metaflow logs. A task's
  forwarded lines start as `python flow.py run` shows them: the time, the task
  and its pid (naming.task_line_head); the kept ones are the task's own.
- An executor that runs ops as threads (runtime/executors/threads.py) binds each
  op's own log streams, the run's cancel event and the run-wide task slots with
  `bind_io`; other executors bind nothing and the process's stdout/stderr are used.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, List, Optional

from ... import reaper
from ...naming import LAUNCHER_PID_ENV, failure_excerpt, task_line_head
from ...process_groups import signal_group

KILL_GRACE_SECONDS = 10
ERROR_TAIL_LINES = 40


class TaskTimeout(Exception):
    """The task ran past the time it was given and was terminated."""


class TaskCancelled(Exception):
    """Another task of the same op failed; this one was stopped."""


@dataclass(frozen=True)
class StepIO:
    """Where an op's tasks write, what cancels them, and how many may run at once."""

    stdout: object = None
    stderr: object = None
    cancel: Optional[threading.Event] = None
    slots: Optional[threading.Semaphore] = None


_bound = threading.local()


@contextmanager
def bind_io(io: StepIO):
    """Bind `io` to the current thread (the op's thread) for the duration."""
    previous = getattr(_bound, "io", None)
    _bound.io = io
    try:
        yield
    finally:
        _bound.io = previous


def current_io() -> Optional[StepIO]:
    return getattr(_bound, "io", None)


@dataclass
class TaskOutcome:
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float

    def error_tail(self) -> str:
        """The end of the task's stderr, and above it the lines that say why it
        failed (naming.failure_excerpt)."""
        lines = self.stderr.decode("utf-8", "replace").splitlines()
        return "\n".join(failure_excerpt(lines, ERROR_TAIL_LINES))


def run_process(
    argv: List[str],
    env: dict,
    cwd: str,
    timeout_seconds: Optional[float] = None,
    prefix: str = "",
    cancel: Optional[threading.Event] = None,
    io: Optional[StepIO] = None,
    interrupt_first: bool = False,
    start=None,
    task_path: Optional[str] = None,
) -> TaskOutcome:
    """Run argv to completion. Raises TaskTimeout after timeout_seconds and
    TaskCancelled once `cancel` is set; on any interruption (Dagster cancelling
    the op) kills the task's process group and re-raises. `io` defaults to what
    is bound to this thread. interrupt_first: stop the task with SIGINT before
    SIGTERM (a compute layer's launcher cleans up its remote job on SIGINT).
    `start(argv, env, cwd)`, if given, starts the process instead of
    subprocess.Popen (task_template.py) or returns None to let it.
    `task_path` (run/step/task), if given, heads each forwarded line as Metaflow's
    runtime does, instead of `prefix`."""
    io = io or current_io() or StepIO()
    cancel = _either(cancel, io.cancel)
    args = (argv, env, cwd, timeout_seconds, prefix, cancel, io, interrupt_first, start,
            task_path)
    if io.slots is None:
        return _run(*args)
    while not io.slots.acquire(timeout=0.2):
        if cancel is not None and cancel.is_set():
            raise TaskCancelled()
    try:
        return _run(*args)
    finally:
        io.slots.release()


def _run(argv, env, cwd, timeout_seconds, prefix, cancel, io: StepIO,
         interrupt_first: bool, start, task_path: Optional[str]) -> TaskOutcome:
    started = time.monotonic()
    mark = reaper.task_mark()
    name, _, value = mark.partition("=")
    env = dict(env, **{name: value})
    # A forked task's parent is its template, which arms its parent-death signal.
    proc = (start and start(argv, env, cwd)) or subprocess.Popen(
        argv,
        # The task arms its parent-death signal with this pid (task/parent_death.py).
        env=dict(env, **{LAUNCHER_PID_ENV: str(os.getpid())}),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out_buf, err_buf = [], []
    head = _line_head(prefix, task_path, proc.pid)
    readers = [
        _start_tee(proc.stdout, io.stdout or sys.stdout, out_buf, head),
        _start_tee(proc.stderr, io.stderr or sys.stderr, err_buf, head),
    ]
    try:
        _wait(proc, timeout_seconds, cancel)
    except subprocess.TimeoutExpired:
        terminate_group(proc, interrupt_first)
        raise TaskTimeout(timeout_seconds) from None
    except BaseException:
        terminate_group(proc, interrupt_first)
        raise
    finally:
        # A task's own children must not outlive it (e.g. after Metaflow's @timeout):
        # its process group; and unless it succeeded, whatever of its tree left the
        # group (a scan of /proc, a few ms), which may hold its output pipes open.
        signal_group(proc.pid, signal.SIGKILL)
        if proc.returncode != 0:
            reaper.kill_marked([mark])
        for reader in readers:
            reader.join(timeout=5)
    return TaskOutcome(
        returncode=proc.returncode,
        stdout=b"".join(out_buf),
        stderr=b"".join(err_buf),
        seconds=time.monotonic() - started,
    )


class _Either:
    """Set when either event is (a region's own cancel, or the run's termination)."""

    def __init__(self, first, second):
        self._events = (first, second)

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)


def _either(first, second):
    if first is None or second is None:
        return first or second
    return _Either(first, second)


def _wait(proc, timeout_seconds, cancel) -> None:
    if cancel is None:
        proc.wait(timeout=timeout_seconds)
        return
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while proc.poll() is None:
        if cancel.is_set():
            raise TaskCancelled()
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout_seconds)
        try:
            proc.wait(timeout=0.2 if left is None else min(0.2, left))
        except subprocess.TimeoutExpired:
            pass


def terminate_group(proc: subprocess.Popen, interrupt_first: bool = False) -> None:
    """SIGTERM the task's process group (SIGINT first if asked), SIGKILL what is
    left after the grace."""
    for sig in (signal.SIGINT, signal.SIGTERM) if interrupt_first else (signal.SIGTERM,):
        signal_group(proc.pid, sig)
        try:
            proc.wait(timeout=KILL_GRACE_SECONDS)
            break
        except subprocess.TimeoutExpired:
            pass
    # Children of the task may outlive it; the group id is still theirs.
    signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _line_head(prefix: str, task_path: Optional[str], pid: int) -> Callable[[], bytes]:
    """What each forwarded line of the process starts with."""
    if task_path is None:
        fixed = prefix.encode()
        return lambda: fixed
    return lambda: task_line_head(datetime.now(), task_path, pid).encode()


def _start_tee(pipe, sink, buffer: list, head: Callable[[], bytes]) -> threading.Thread:
    def pump():
        out = sink.buffer if hasattr(sink, "buffer") else None
        for line in iter(pipe.readline, b""):
            buffer.append(line)
            # The task's last line may lack its newline; the next writer's line must
            # not continue it.
            forwarded = head() + (line if line.endswith(b"\n") else line + b"\n")
            if out is not None:
                out.write(forwarded)
                out.flush()
            else:
                sink.write(forwarded.decode("utf-8", "replace"))
                sink.flush()
        pipe.close()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread
