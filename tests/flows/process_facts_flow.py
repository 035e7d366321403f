"""Each task records what its process looks like, for the tests of how tasks are
started (a fresh interpreter, or forked from a task template).

Module-level code appends "<pid> <argv>" to the file named by
$PROCESS_FACTS_FILE (if set) once per process that runs the flow file, and
registers an atexit handler that appends "<pid> atexit" to $PROCESS_EXITS_FILE
(if set); it also leaves, in module globals, "<pid> buffered" written to
$PROCESS_EXITS_FILE.buffered but neither flushed nor closed, and a
NamedTemporaryFile next to it (which the interpreter removes at exit). Every
step stores its process's facts as the artifact `facts`.
`start` fans out to `visit` (a foreach of 3) whose @environment differs from
the other steps'; `end` starts a thread that appends "<pid> thread" to
$PROCESS_EXITS_FILE a moment after the step has returned, prints to stdout and
stderr (the last line without a newline), then exits with the status
`exit_code` if that Parameter is set.
"""

import atexit
import os
import sys
import tempfile
import threading
import time

from metaflow import FlowSpec, Parameter, current, environment, step

MODULE_RUNS_FILE = os.environ.get("PROCESS_FACTS_FILE")
if MODULE_RUNS_FILE:
    with open(MODULE_RUNS_FILE, "a") as f:
        f.write("%d %s\n" % (os.getpid(), " ".join(sys.argv[1:])))

EXITS_FILE = os.environ.get("PROCESS_EXITS_FILE")


def note_exit(what):
    if EXITS_FILE:
        with open(EXITS_FILE, "a") as f:
            f.write("%d %s\n" % (os.getpid(), what))


atexit.register(note_exit, "atexit")
if EXITS_FILE:
    UNFLUSHED = open(EXITS_FILE + ".buffered", "a")
    UNFLUSHED.write("%d buffered\n" % os.getpid())
    SCRATCH = tempfile.NamedTemporaryFile(prefix="scratch-", dir=os.path.dirname(EXITS_FILE))


def note_later():
    time.sleep(0.3)
    note_exit("thread")


def process_facts():
    with open("/proc/%d/cmdline" % os.getppid(), "rb") as f:
        parent = f.read().split(b"\0")
    with open("/proc/self/cmdline", "rb") as f:
        own = [a.decode() for a in f.read().split(b"\0") if a]
    main = sys.modules["__main__"]
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        "parent_is_template": b"metaflow_dagster.task.template" in b" ".join(parent),
        "argv": list(sys.argv),
        "orig_argv": list(sys.orig_argv),
        "cmdline": own,
        "path0": sys.path[0],
        "cwd": os.getcwd(),
        "main_name": main.__name__,
        "main_file": main.__file__,
        "main_is_this_module": main.__dict__ is globals(),
        "stdin": os.readlink("/proc/self/fd/0"),
        "open_fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "step_var": os.environ.get("STEP_VAR"),
        "shared_var": os.environ.get("SHARED_VAR"),
        "run_id": current.run_id,
        "step_name": current.step_name,
        "task_id": current.task_id,
        "retry_count": current.retry_count,
        "pathspec": current.pathspec,
    }


class ProcessFactsFlow(FlowSpec):
    exit_code = Parameter("exit_code", type=int, default=0)

    @environment(vars={"STEP_VAR": "start"})
    @step
    def start(self):
        self.facts = process_facts()
        self.items = [0, 1, 2]
        self.next(self.visit, foreach="items")

    @environment(vars={"STEP_VAR": "visit"})
    @step
    def visit(self):
        self.facts = process_facts()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.facts = process_facts()
        self.visited = sorted(i.facts["task_id"] for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.facts = process_facts()
        threading.Thread(target=note_later).start()
        print("to stdout from %s" % current.pathspec)
        print("to stderr from %s" % current.pathspec, file=sys.stderr)
        print("unterminated", end="")
        if self.exit_code:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(self.exit_code)


if __name__ == "__main__":
    ProcessFactsFlow()
