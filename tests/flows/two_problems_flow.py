"""Two things `dagster create` refuses in one flow: a @parallel step (``train``)
and a step named ``output``, a name Dagster reserves. Both must be reported at once."""

from metaflow import FlowSpec, parallel, step


class TwoProblemsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @parallel
    @step
    def train(self):
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.next(self.output)

    @step
    def output(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TwoProblemsFlow()
