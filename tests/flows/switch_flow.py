"""Conditional branch (switch): start -> (high | low) -> merge -> end.

Only the branch selected by ``route`` runs. Switch branches reconverge in an
ordinary linear step (``merge`` takes no ``inputs``), not in a join.
"""

from metaflow import FlowSpec, Parameter, step


class SwitchFlow(FlowSpec):
    value = Parameter("value", type=int, default=10, help="Routes to 'high' when > 5")

    @step
    def start(self):
        self.route = "high" if self.value > 5 else "low"
        self.next({"high": self.high, "low": self.low}, condition="route")

    @step
    def high(self):
        self.branch_taken = "high"
        self.next(self.merge)

    @step
    def low(self):
        self.branch_taken = "low"
        self.next(self.merge)

    @step
    def merge(self):
        self.result = "%s:%d" % (self.branch_taken, self.value)
        self.next(self.end)

    @step
    def end(self):
        assert self.branch_taken == self.route, (self.branch_taken, self.route)


if __name__ == "__main__":
    SwitchFlow()
