"""A foreach nested in a foreach (one Dagster op runs each outer split's inner
foreach). Task ``inner`` of split y/2 raises while a file ``fail_inner`` exists in
the flow's directory; every task execution appends "<step> <task id> <attempt>"
to ``executions.log`` there."""

import os

from metaflow import FlowSpec, current, step


def state_dir():
    """Where the tests keep this flow's markers and logs: the folder of its local
    datastore, i.e. the flow's directory. (A deployed job's tasks run in its code
    package and get that folder as METAFLOW_DATASTORE_SYSROOT_LOCAL; under
    `python flow.py run` or `resume` it is the working directory.)"""
    return os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL", ".")


def record():
    with open(os.path.join(state_dir(), "executions.log"), "a") as f:
        f.write("%s %s %d\n" % (current.step_name, current.task_id, current.retry_count))


class RegionFlow(FlowSpec):
    @step
    def start(self):
        record()
        self.letters = ["x", "y"]
        self.next(self.outer, foreach="letters")

    @step
    def outer(self):
        record()
        self.letter = self.input
        self.numbers = [1, 2]
        self.next(self.inner, foreach="numbers")

    @step
    def inner(self):
        record()
        self.label = "%s%d" % (self.letter, self.input)
        if self.label == "y2" and os.path.exists(os.path.join(state_dir(), "fail_inner")):
            raise RuntimeError("y2 fails while fail_inner exists")
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        record()
        self.labels = sorted(inp.label for inp in inputs)
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        record()
        self.results = sorted(label for inp in inputs for label in inp.labels)
        self.next(self.end)

    @step
    def end(self):
        record()
        assert self.results == ["x1", "x2", "y1", "y2"], self.results


if __name__ == "__main__":
    RegionFlow()
