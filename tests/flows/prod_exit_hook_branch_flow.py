"""@exit_hook on a flow whose branch `fails` raises at once while branch `slow` is still
running. The error hook appends to hooks.log whether `slow` had finished when it ran:
on Argo the exit hook runs after every running task has ended."""

import os
import time

from metaflow import FlowSpec, exit_hook, step

# The flow's directory (a deployed job's hooks run in its code package and get
# it as METAFLOW_DATASTORE_SYSROOT_LOCAL, the folder of the flow's local datastore).
LOG = os.path.join(os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL")
                   or os.path.dirname(os.path.abspath(__file__)), "hooks.log")


def notify_error(run=None):
    slow_done = "slow" in run and run["slow"].task.finished
    with open(LOG, "a") as f:
        f.write("error slow_done=%s\n" % slow_done)


@exit_hook(on_error=[notify_error])
class ProdExitHookBranchFlow(FlowSpec):
    @step
    def start(self):
        self.doomed = True
        self.next(self.fails, self.slow)

    @step
    def fails(self):
        if self.doomed:  # always true; keeps the self.next() below reachable
            raise RuntimeError("fails on purpose")
        self.next(self.join)

    @step
    def slow(self):
        time.sleep(10)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProdExitHookBranchFlow()
