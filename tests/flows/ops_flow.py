"""start -> work -> end, for the operations tests (priority, retries of whole runs,
notifications).

`hold` names a file in the flow's directory (the folder of its local datastore): `start`
waits while it exists (a run that keeps the run queue busy until the test lets it go).
`fail` makes `work` raise: "always", or "first_attempt" (only while current.retry_count is
0, so a retried run succeeds). Every task execution appends "<step> <task id> <attempt>" to
executions.log in the flow's directory."""

import os
import time

from metaflow import FlowSpec, Parameter, current, step

HOLD_LIMIT_SECONDS = 300


def folder():
    return os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL", ".")


def record():
    with open(os.path.join(folder(), "executions.log"), "a") as f:
        f.write("%s %s %d\n" % (current.step_name, current.task_id, current.retry_count))


class OpsFlow(FlowSpec):
    """Operations test flow."""

    hold = Parameter("hold", default="")
    fail = Parameter("fail", default="no")

    @step
    def start(self):
        record()
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        while self.hold and os.path.exists(os.path.join(folder(), self.hold)) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        self.next(self.work)

    @step
    def work(self):
        record()
        if self.fail == "always" or (self.fail == "first_attempt" and current.retry_count == 0):
            raise RuntimeError("work failed on purpose at attempt %d" % current.retry_count)
        self.done = True
        self.next(self.end)

    @step
    def end(self):
        record()


if __name__ == "__main__":
    OpsFlow()
