"""A foreach of 50 tasks that each sleep a second, to measure --max-workers."""

import time

from metaflow import FlowSpec, step


class ProdWideForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(50))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        time.sleep(1)
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = sorted(inp.value for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.values == list(range(50))


if __name__ == "__main__":
    ProdWideForeachFlow()
