"""``start`` goes to a step that does not exist (``self.ending``): Metaflow's graph
checks (`python flow.py check`) refuse the flow, and so must `dagster create`."""

from metaflow import FlowSpec, step


class UnknownStepFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.ending)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UnknownStepFlow()
