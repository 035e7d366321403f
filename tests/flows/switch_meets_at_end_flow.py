"""A switch whose cases meet at the end step: start -(route)-> {a | b} -> end."""

from metaflow import FlowSpec, Parameter, step


class SwitchMeetsAtEndFlow(FlowSpec):
    route = Parameter("route", default="a", help="a or b")

    @step
    def start(self):
        self.next({"a": self.a, "b": self.b}, condition="route")

    @step
    def a(self):
        self.branch = "a"
        self.next(self.end)

    @step
    def b(self):
        self.branch = "b"
        self.next(self.end)

    @step
    def end(self):
        self.result = "ended after " + self.branch


if __name__ == "__main__":
    SwitchMeetsAtEndFlow()
