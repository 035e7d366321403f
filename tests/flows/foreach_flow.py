"""Foreach with a one-step body; the fan-out width comes from Parameter ``n``."""

from metaflow import FlowSpec, Parameter, step


class ForeachFlow(FlowSpec):
    n = Parameter("n", type=int, default=3, help="Number of foreach splits")

    @step
    def start(self):
        self.items = list(range(1, self.n + 1))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = sorted(inp.square for inp in inputs)
        self.total = sum(self.squares)
        self.width = len(self.squares)
        self.next(self.end)

    @step
    def end(self):
        expected = list(range(1, self.n + 1))
        assert self.squares == [i * i for i in expected], self.squares
        assert self.width == self.n


if __name__ == "__main__":
    ForeachFlow()
