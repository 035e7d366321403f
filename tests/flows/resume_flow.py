"""start -> foreach body (n splits) -> join -> end, for resume and re-execution.

Split 1 of ``body`` raises while a file ``fail_split`` exists in the flow's
directory, so a test makes a run fail, removes the file and resumes. Every task
execution appends "<step> <task id> <attempt>" to ``executions.log`` there, so
tests count what ran again and what was cloned.
"""

import os

from metaflow import FlowSpec, Parameter, current, step


def state_dir():
    """Where the tests keep this flow's markers and logs: the folder of its local
    datastore, i.e. the flow's directory. (A deployed job's tasks run in its code
    package and get that folder as METAFLOW_DATASTORE_SYSROOT_LOCAL; under
    `python flow.py run` or `resume` it is the working directory.)"""
    return os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL", ".")


def record():
    with open(os.path.join(state_dir(), "executions.log"), "a") as f:
        f.write("%s %s %d\n" % (current.step_name, current.task_id, current.retry_count))


class ResumeFlow(FlowSpec):
    n = Parameter("n", type=int, default=2)

    @step
    def start(self):
        record()
        self.items = list(range(self.n))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        record()
        if self.input == 1 and os.path.exists(os.path.join(state_dir(), "fail_split")):
            raise RuntimeError("split 1 fails while fail_split exists")
        self.value = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        record()
        self.values = sorted(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        record()
        assert self.values == [i * 10 for i in range(self.n)]


if __name__ == "__main__":
    ResumeFlow()
