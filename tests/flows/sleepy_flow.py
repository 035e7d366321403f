"""start -> nap -> end, where ``nap`` sleeps ``seconds`` (default 60) and has no @timeout.

Before sleeping, ``nap`` starts a child ``sleep`` process and writes its own pid
to the file named by $SLEEPY_PID_FILE and the child's pid to the file named by
$SLEEPY_CHILD_PID_FILE (each if set). A test can then interrupt the run and
check that neither process outlives it.
"""

import os
import subprocess
import time

from metaflow import FlowSpec, Parameter, step


def write_pid(env_var, pid):
    path = os.environ.get(env_var)
    if path:
        with open(path + ".tmp", "w") as f:
            f.write("%d\n" % pid)
        os.replace(path + ".tmp", path)  # readers never see a half-written file


class SleepyFlow(FlowSpec):
    seconds = Parameter("seconds", type=int, default=60, help="How long nap sleeps")

    @step
    def start(self):
        self.next(self.nap)

    @step
    def nap(self):
        child = subprocess.Popen(["sleep", str(self.seconds + 60)])
        write_pid("SLEEPY_CHILD_PID_FILE", child.pid)
        write_pid("SLEEPY_PID_FILE", os.getpid())
        time.sleep(self.seconds)
        self.slept = self.seconds
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SleepyFlow()
