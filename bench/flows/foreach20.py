"""Foreach of width 20: start -> body x20 -> join -> end (23 tasks), trivial bodies."""

from metaflow import FlowSpec, step

WIDTH = 20


class Foreach20Flow(FlowSpec):
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
    Foreach20Flow()
