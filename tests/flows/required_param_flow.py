"""A flow with one required string Parameter and no default."""

from metaflow import FlowSpec, Parameter, step


class RequiredParamFlow(FlowSpec):
    who = Parameter("who", type=str, required=True, help="Who to greet")

    @step
    def start(self):
        self.greeting = "hello %s" % self.who
        self.next(self.end)

    @step
    def end(self):
        assert self.greeting == "hello %s" % self.who


if __name__ == "__main__":
    RequiredParamFlow()
