"""A switch whose cases meet at a static split: start -(route)-> {a | b} -> fork
-> {x, y} -> join -> end."""

from metaflow import FlowSpec, Parameter, step


class SwitchMeetsAtSplitFlow(FlowSpec):
    route = Parameter("route", default="a", help="a or b")

    @step
    def start(self):
        self.next({"a": self.a, "b": self.b}, condition="route")

    @step
    def a(self):
        self.branch = "a"
        self.next(self.fork)

    @step
    def b(self):
        self.branch = "b"
        self.next(self.fork)

    @step
    def fork(self):
        self.next(self.x, self.y)

    @step
    def x(self):
        self.label = self.branch + "x"
        self.next(self.join)

    @step
    def y(self):
        self.label = self.branch + "y"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.labels = sorted(i.label for i in inputs)
        self.merge_artifacts(inputs, include=["branch"])
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchMeetsAtSplitFlow()
