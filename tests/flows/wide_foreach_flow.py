"""A foreach of `width` splits (2,000 by default), each returning its own input, and a join
that records what it saw of every one of them."""

from metaflow import FlowSpec, Parameter, step


class WideForeachFlow(FlowSpec):
    width = Parameter("width", type=int, default=2000)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = sorted(inp.value for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WideForeachFlow()
