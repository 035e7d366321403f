"""Static split: start -> (a, b, c) -> join -> end."""

from metaflow import FlowSpec, step


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.base = 10
        self.next(self.a, self.b, self.c)

    @step
    def a(self):
        self.value = self.base + 1
        self.next(self.join)

    @step
    def b(self):
        self.value = self.base + 2
        self.next(self.join)

    @step
    def c(self):
        self.value = self.base + 3
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = sorted(inp.value for inp in inputs)
        self.merge_artifacts(inputs, exclude=["value"])
        self.next(self.end)

    @step
    def end(self):
        assert self.values == [11, 12, 13], self.values
        assert self.base == 10


if __name__ == "__main__":
    BranchFlow()
