"""A foreach inside one branch of a static split:
start -> (a -> body[foreach] -> fjoin, b) -> join -> end."""

from metaflow import FlowSpec, step


class ForeachInBranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.items = [1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.doubled = self.input * 2
        self.next(self.fjoin)

    @step
    def fjoin(self, inputs):
        self.source = "fjoin"
        self.result = sorted(inp.doubled for inp in inputs)
        self.next(self.join)

    @step
    def b(self):
        self.source = "b"
        self.result = ["b"]
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = {inp.source: inp.result for inp in inputs}
        self.next(self.end)

    @step
    def end(self):
        assert self.results == {"fjoin": [2, 4, 6], "b": ["b"]}, self.results


if __name__ == "__main__":
    ForeachInBranchFlow()
