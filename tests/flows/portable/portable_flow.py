"""A flow whose code spans two files (the flow and a helper module beside it): what
`dagster create` packages, and what every task runs wherever the job runs."""

import portable_helper
from metaflow import FlowSpec, Parameter, step


class PortableFlow(FlowSpec):
    n = Parameter("n", type=int, default=3, help="Number of foreach splits")

    @step
    def start(self):
        self.greeting = portable_helper.GREETING
        self.items = list(range(1, self.n + 1))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = portable_helper.square(self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = sorted(inp.value for inp in inputs)
        self.greeting = inputs[0].greeting
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.values)
        print("total %d, greeting %s" % (self.total, self.greeting))


if __name__ == "__main__":
    PortableFlow()
