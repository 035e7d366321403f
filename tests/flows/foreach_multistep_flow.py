"""Foreach whose body is two steps: start -> body1 -> body2 -> join -> end."""

from metaflow import FlowSpec, step


class ForeachMultistepFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["a", "b", "c"]
        self.next(self.body1, foreach="items")

    @step
    def body1(self):
        self.item = self.input
        self.path = [self.item, "body1"]
        self.next(self.body2)

    @step
    def body2(self):
        self.path = self.path + ["body2"]
        self.next(self.join)

    @step
    def join(self, inputs):
        self.paths = sorted("/".join(inp.path) for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.paths == ["a/body1/body2", "b/body1/body2", "c/body1/body2"], self.paths


if __name__ == "__main__":
    ForeachMultistepFlow()
