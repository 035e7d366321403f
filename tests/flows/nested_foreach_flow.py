"""Two levels of foreach: outer over ["x", "y"], inner over [1, 2, 3]."""

from metaflow import FlowSpec, step


class NestedForeachFlow(FlowSpec):
    @step
    def start(self):
        self.letters = ["x", "y"]
        self.next(self.outer, foreach="letters")

    @step
    def outer(self):
        self.letter = self.input
        self.numbers = [1, 2, 3]
        self.next(self.inner, foreach="numbers")

    @step
    def inner(self):
        self.label = "%s%d" % (self.letter, self.input)
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.labels = sorted(inp.label for inp in inputs)
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.results = sorted(label for inp in inputs for label in inp.labels)
        self.next(self.end)

    @step
    def end(self):
        assert self.results == ["x1", "x2", "x3", "y1", "y2", "y3"], self.results


if __name__ == "__main__":
    NestedForeachFlow()
