"""Three levels of foreach, 2 x 2 x 2 = 8 leaf tasks."""

from metaflow import FlowSpec, step


class NestedForeach3Flow(FlowSpec):
    @step
    def start(self):
        self.level1 = ["a", "b"]
        self.next(self.l1, foreach="level1")

    @step
    def l1(self):
        self.p1 = self.input
        self.level2 = ["c", "d"]
        self.next(self.l2, foreach="level2")

    @step
    def l2(self):
        self.p2 = self.input
        self.level3 = ["e", "f"]
        self.next(self.l3, foreach="level3")

    @step
    def l3(self):
        self.label = self.p1 + self.p2 + self.input
        self.next(self.j3)

    @step
    def j3(self, inputs):
        self.labels = sorted(inp.label for inp in inputs)
        self.next(self.j2)

    @step
    def j2(self, inputs):
        self.labels = sorted(label for inp in inputs for label in inp.labels)
        self.next(self.j1)

    @step
    def j1(self, inputs):
        self.results = sorted(label for inp in inputs for label in inp.labels)
        self.next(self.end)

    @step
    def end(self):
        expected = sorted(a + b + c for a in "ab" for b in "cd" for c in "ef")
        assert self.results == expected, self.results


if __name__ == "__main__":
    NestedForeach3Flow()
