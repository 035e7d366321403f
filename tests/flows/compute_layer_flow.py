"""A step that needs more than the Dagster host has (seed 001: "a step needs 64 GB"):
@kubernetes hands it to Metaflow's compute layer, with @resources, @retry and
@timeout mapped as Metaflow maps them. The other steps run on the Dagster host."""

from metaflow import FlowSpec, kubernetes, resources, retry, step, timeout


class ComputeLayerFlow(FlowSpec):
    @step
    def start(self):
        self.rows = 1000
        self.next(self.train)

    @kubernetes(cpu=4, memory=16000)
    @resources(disk=20480, shared_memory=2048, memory=64000)
    @retry(times=1, minutes_between_retries=0)
    @timeout(minutes=10)
    @step
    def train(self):
        self.model = "fit on %d rows" % self.rows
        self.next(self.end)

    @step
    def end(self):
        print(self.model)


if __name__ == "__main__":
    ComputeLayerFlow()
