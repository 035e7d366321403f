"""Nested foreach 10x10: start -> outer x10 -> inner x100 -> inner_join x10 -> outer_join -> end
(123 tasks), trivial bodies."""

from metaflow import FlowSpec, step

WIDTH = 10


class Nested10x10Flow(FlowSpec):
    @step
    def start(self):
        self.outers = list(range(WIDTH))
        self.next(self.outer, foreach="outers")

    @step
    def outer(self):
        self.o = self.input
        self.inners = list(range(WIDTH))
        self.next(self.inner, foreach="inners")

    @step
    def inner(self):
        self.v = self.o * WIDTH + self.input
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.part = sum(inp.v for inp in inputs)
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.total = sum(inp.part for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        n = WIDTH * WIDTH
        assert self.total == n * (n - 1) // 2, self.total


if __name__ == "__main__":
    Nested10x10Flow()
