"""A switch inside a foreach body: each item routes to ``small`` or ``big``,
both reconverge in ``after``, then the foreach join collects the branch per item."""

from metaflow import FlowSpec, step


class SwitchInForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 7, 3, 9]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.item = self.input
        self.size = "big" if self.item > 5 else "small"
        self.next({"small": self.small, "big": self.big}, condition="size")

    @step
    def small(self):
        self.branch_taken = "small"
        self.next(self.after)

    @step
    def big(self):
        self.branch_taken = "big"
        self.next(self.after)

    @step
    def after(self):
        self.record = "%d:%s" % (self.item, self.branch_taken)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.records = sorted((inp.item, inp.branch_taken) for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        expected = [(1, "small"), (3, "small"), (7, "big"), (9, "big")]
        assert self.records == expected, self.records


if __name__ == "__main__":
    SwitchInForeachFlow()
