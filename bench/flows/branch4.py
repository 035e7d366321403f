"""Static branch: start -> (a, b, c, d) -> join -> end (7 tasks), trivial bodies."""

from metaflow import FlowSpec, step


class Branch4Flow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b, self.c, self.d)

    @step
    def a(self):
        self.v = "a"
        self.next(self.join)

    @step
    def b(self):
        self.v = "b"
        self.next(self.join)

    @step
    def c(self):
        self.v = "c"
        self.next(self.join)

    @step
    def d(self):
        self.v = "d"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.vs = sorted(inp.v for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.vs == ["a", "b", "c", "d"], self.vs


if __name__ == "__main__":
    Branch4Flow()
