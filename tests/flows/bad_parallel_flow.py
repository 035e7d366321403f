"""A num_parallel foreach into a @parallel step, which Dagster cannot run:
`dagster create` must refuse it and name the step."""

from metaflow import FlowSpec, parallel, step


class BadParallelFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @parallel
    @step
    def train(self):
        self.rank = 0
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BadParallelFlow()
