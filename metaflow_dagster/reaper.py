"""Tasks never outlive the process that launched them.

Each Metaflow task runs in its own process group, so that a timeout or a
cancellation kills the task and its children at once (runtime/launch/processes.py). But
if the process that launched it dies by a signal it cannot catch (SIGKILL, the
OOM killer), nobody is left to do that, and the tasks would run on as orphans.
Two guards (Linux: /proc and prctl):

- The first time a process launches a task, it starts a *reaper*: this module
  run as a program (`python -m metaflow_dagster.reaper`: standard library only,
  small and quick to start), holding the read end of a pipe whose write end
  only the launching process holds. When that process ends, the kernel closes the
  pipe; the reaper kills every process whose environment carries the launcher's
  mark (`TASK_OWNER_ENV`, inherited by the task's whole tree whatever group or
  session it moved to) and exits. Each task's mark also names the task, so a task
  that fails or is stopped has its whole tree killed at once (runtime/launch/processes.py).
- The task process itself also arms a parent-death signal, SIGKILL, before any
  user code runs (task/parent_death.py), for the case the reaper is killed too.
  (Armed in the child between fork and exec it would cost the launcher a full
  fork instead of a vfork, for every task, with the GIL held.)

The executors start one more reaper per run in the run worker (runtime/executors/workers.py):
it marks by the Dagster run id, and when the worker dies before it has released
the reaper (the end of the run), it also reports the run as failed.

A process that clears its environment escapes the mark; nothing else does.
"""

import importlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Iterable, List, Optional

from .naming import TASK_OWNER_ENV
from .process_groups import signal_process

# Scans of /proc until no marked process is left (each kill makes a zombie, which
# the scan skips, so a round only finds processes that were forked meanwhile).
MAX_ROUNDS = 50
RELEASE = b"."


class Reaper:
    """A reaper process guarding this one: when this process ends, or calls
    `release`, it kills every process carrying one of `marks` ("NAME=VALUE"
    environment entries). If this process ends without releasing it, the reaper
    also kills the tasks of this process (owner_mark) and calls `on_death`
    ("module:function", given `args` and the number of processes killed) in its
    own process. While one is not released, this process starts no other reaper
    for its tasks."""

    def __init__(self, marks: Iterable[str] = (), on_death: Optional[str] = None,
                 args: Optional[dict] = None):
        read_end, self._write_end = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=read_end,
                stdout=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        finally:
            os.close(read_end)
        # The configuration goes through the pipe: args may hold an instance's config.
        config = {"marks": list(marks), "owner": owner_mark(), "on_death": on_death,
                  "args": args or {}}
        os.write(self._write_end, json.dumps(config).encode() + b"\n")
        self.pid = self._proc.pid
        with _lock:
            _guards.add(self)

    def release(self) -> None:
        """This process is done with what the reaper guards: it kills leftovers only."""
        with _lock:
            _guards.discard(self)
        if self._write_end is None:
            return
        try:
            os.write(self._write_end, RELEASE)
        finally:
            os.close(self._write_end)
            self._write_end = None


_lock = threading.RLock()
_owner = None  # (pid, mark) of this process
# The unreleased reapers guarding this process's tasks (of this very process: a
# forked child has none, since it does not hold their pipes' write ends).
_guards: set = set()
_tasks = itertools.count()


def owner_mark() -> str:
    """The environment entry that marks the tasks this process launches."""
    global _owner, _guards
    with _lock:
        if _owner is None or _owner[0] != os.getpid():
            _owner = (os.getpid(), "%s=%s" % (TASK_OWNER_ENV, uuid.uuid4().hex))
            _guards = set()
        return _owner[1]


def task_mark() -> str:
    """The environment entry for one task this process launches: its owner's mark
    (which matches it) plus the task's own number (which matches only its tree).
    Starts a reaper for this process's tasks unless one guards them already (the
    run's reaper, in a run worker that runs its ops itself)."""
    with _lock:
        mark = owner_mark()
        if not _guards:
            Reaper()  # kept for as long as this process lives
    return "%s/%d" % (mark, next(_tasks))


def kill_marked(marks: Iterable[str]) -> int:
    """SIGKILL every process (but this one) whose environment holds one of `marks`,
    or an entry that extends one with "/..."; how many were killed."""
    wanted = [m.encode() for m in marks]
    killed = set()
    for _ in range(MAX_ROUNDS):
        found = [pid for pid in _marked(wanted) if pid != os.getpid()]
        if not found:
            break
        for pid in found:
            if signal_process(pid, signal.SIGKILL):
                killed.add(pid)
        time.sleep(0.05)
    return len(killed)


def _marked(wanted: List[bytes]) -> List[int]:
    pids = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                environ = f.read()
        except OSError:  # gone, or not ours to read
            continue
        # (A zombie's environment reads empty: it is dead already.)
        if any(m in environ for m in wanted) and any(
                _matches(item, m) for item in environ.split(b"\0") for m in wanted):
            pids.append(int(entry))
    return pids


def _matches(item: bytes, mark: bytes) -> bool:
    return item == mark or item.startswith(mark + b"/")


def main() -> None:
    stdin = os.fdopen(0, "rb", buffering=0)
    line = stdin.readline()
    if not line:  # the launching process died before it could say what to guard
        return
    config = json.loads(line)
    released = False
    while True:
        chunk = stdin.read(64)
        if not chunk:
            break
        released = released or RELEASE in chunk
    # A released reaper leaves the process's other tasks alone: they may belong to
    # other work of the same process.
    killed = kill_marked(config["marks"] + ([] if released else [config["owner"]]))
    if not released and config["on_death"]:
        module, _, function = config["on_death"].partition(":")
        getattr(importlib.import_module(module), function)(config["args"], killed)


if __name__ == "__main__":
    main()
