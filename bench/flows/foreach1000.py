"""Foreach of width 1000: start -> body x1000 -> join -> end (1003 tasks), trivial bodies."""

from metaflow import FlowSpec, step

WIDTH = 1000


class Foreach1000Flow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(WIDTH))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.y = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(inp.y for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.total == WIDTH * (WIDTH - 1), self.total


if __name__ == "__main__":
    Foreach1000Flow()
