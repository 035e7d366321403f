"""A switch whose cases meet at a foreach: start -(route)-> {a | b} -> fan (foreach)
-> body -> join -> end."""

from metaflow import FlowSpec, Parameter, step


class SwitchMeetsAtForeachFlow(FlowSpec):
    route = Parameter("route", default="a", help="a or b")

    @step
    def start(self):
        self.next({"a": self.a, "b": self.b}, condition="route")

    @step
    def a(self):
        self.branch = "a"
        self.next(self.fan)

    @step
    def b(self):
        self.branch = "b"
        self.next(self.fan)

    @step
    def fan(self):
        self.items = [1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.label = "%s%d" % (self.branch, self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.labels = [i.label for i in inputs]
        self.merge_artifacts(inputs, include=["branch"])
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchMeetsAtForeachFlow()
