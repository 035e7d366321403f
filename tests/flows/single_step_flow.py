"""A flow with exactly one step; Metaflow treats it as both start and end."""

from metaflow import FlowSpec, step


class SingleStepFlow(FlowSpec):
    @step
    def only(self):
        self.answer = 42


if __name__ == "__main__":
    SingleStepFlow()
