"""A split nested inside a branch: start -> (a -> (a1, a2) -> a_join, b) -> join -> end."""

from metaflow import FlowSpec, step


class NestedBranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.a1, self.a2)

    @step
    def a1(self):
        self.label = "a1"
        self.next(self.a_join)

    @step
    def a2(self):
        self.label = "a2"
        self.next(self.a_join)

    @step
    def a_join(self, inputs):
        self.labels = sorted(inp.label for inp in inputs)
        self.next(self.join)

    @step
    def b(self):
        self.labels = ["b"]
        self.next(self.join)

    @step
    def join(self, inputs):
        self.labels = sorted(label for inp in inputs for label in inp.labels)
        self.next(self.end)

    @step
    def end(self):
        assert self.labels == ["a1", "a2", "b"], self.labels


if __name__ == "__main__":
    NestedBranchFlow()
