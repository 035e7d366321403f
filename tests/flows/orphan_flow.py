"""start -> work -> end, for killing the processes that run a flow.

``start`` records when it ran (``started_at``). While no file ``gate`` exists in the
working directory, ``work`` starts two children, one in its process group and one
that leaves it for a session of its own, writes the pids of the task and of both
children to ``work.pids`` (JSON), then waits for ``gate`` (at most 300 s). Every task
execution appends "<step> <task id> <attempt>" to ``executions.log``.
"""

import json
import os
import subprocess
import time

from metaflow import FlowSpec, current, step


def record():
    with open("executions.log", "a") as f:
        f.write("%s %s %d\n" % (current.step_name, current.task_id, current.retry_count))


class OrphanFlow(FlowSpec):
    @step
    def start(self):
        record()
        self.started_at = time.time()
        self.next(self.work)

    @step
    def work(self):
        record()
        if not os.path.exists("gate"):
            stay = subprocess.Popen(["sleep", "300"])
            leave = subprocess.Popen(["sleep", "300"], start_new_session=True)
            with open("work.pids.tmp", "w") as f:
                json.dump({"task": os.getpid(), "children": [stay.pid, leave.pid]}, f)
            os.rename("work.pids.tmp", "work.pids")
            deadline = time.time() + 300
            while not os.path.exists("gate") and time.time() < deadline:
                time.sleep(0.2)
            for child in (stay, leave):
                child.kill()
        self.value = 42
        self.next(self.end)

    @step
    def end(self):
        record()
        assert self.value == 42


if __name__ == "__main__":
    OrphanFlow()
