"""Foreach of a given width: start -> body x width -> join -> end (width + 3 tasks),
trivial bodies. The benchmark runs it as foreach20, foreach100 and foreach1000."""

from metaflow import FlowSpec, Parameter, step


class ForeachFlow(FlowSpec):
    width = Parameter("width", type=int, default=20)

    @step
    def start(self):
        self.items = list(range(self.width))
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
        assert self.total == self.width * (self.width - 1), self.total


if __name__ == "__main__":
    ForeachFlow()
