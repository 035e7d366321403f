"""A step that exceeds its @timeout.

Before sleeping, ``slow`` starts a child ``sleep 120`` process and writes two
lines to the file named by $TIMEOUT_PID_FILE (if set): its own pid, then the
child's pid. A test can then check that neither process outlives the timeout.
"""

import os
import subprocess
import time

from metaflow import FlowSpec, step, timeout


class TimeoutFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.slow)

    @timeout(seconds=4)
    @step
    def slow(self):
        child = subprocess.Popen(["sleep", "120"])
        pid_file = os.environ.get("TIMEOUT_PID_FILE")
        if pid_file:
            with open(pid_file, "w") as f:
                f.write("%d\n%d\n" % (os.getpid(), child.pid))
                f.flush()
                os.fsync(f.fileno())
        time.sleep(120)
        self.finished = True
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TimeoutFlow()
