"""Custom entry and terminal step names via @step(start=True) / @step(end=True)."""

from metaflow import FlowSpec, step


class CustomStartEndFlow(FlowSpec):
    @step(start=True)
    def begin(self):
        self.trail = ["begin"]
        self.next(self.middle)

    @step
    def middle(self):
        self.trail = self.trail + ["middle"]
        self.next(self.finish)

    @step(end=True)
    def finish(self):
        self.trail = self.trail + ["finish"]
        assert self.trail == ["begin", "middle", "finish"], self.trail


if __name__ == "__main__":
    CustomStartEndFlow()
