"""A foreach nested in a foreach (one Dagster op runs each outer split's inner
foreach). Task ``inner`` of split y/2 raises while a file ``fail_inner`` exists in
the working directory; every task execution appends "<step> <task id> <attempt>"
to ``executions.log`` there."""

import os

from metaflow import FlowSpec, current, step


def record():
    with open("executions.log", "a") as f:
        f.write("%s %s %d\n" % (current.step_name, current.task_id, current.retry_count))


class LifecycleRegionFlow(FlowSpec):
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
        if self.label == "y2" and os.path.exists("fail_inner"):
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
    LifecycleRegionFlow()
