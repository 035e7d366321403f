"""A scheduled flow of the dg project test: orders per day, counted in a foreach."""

from metaflow import FlowSpec, Parameter, schedule, step


@schedule(daily=True)
class DgOrdersFlow(FlowSpec):
    scale = Parameter("scale", type=int, default=2, help="Orders per day number")

    @step
    def start(self):
        self.days = [1, 2, 3]
        self.next(self.count, foreach="days")

    @step
    def count(self):
        self.orders = self.input * self.scale
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.orders for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total orders:", self.total)


if __name__ == "__main__":
    DgOrdersFlow()
