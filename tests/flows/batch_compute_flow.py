"""A step for AWS Batch: @batch hands it to Metaflow's compute layer (`batch step`),
with its resources and @timeout mapped as Metaflow maps them."""

from metaflow import FlowSpec, batch, step, timeout


class BatchComputeFlow(FlowSpec):
    @step
    def start(self):
        self.rows = 10
        self.next(self.crunch)

    @batch(cpu=2, memory=8000, shared_memory=1024, image="python:3.11",
           queue="metaflow-queue", iam_role="arn:aws:iam::123456789012:role/metaflow-batch")
    @timeout(minutes=5)
    @step
    def crunch(self):
        self.result = self.rows * 2
        self.next(self.end)

    @step
    def end(self):
        print(self.result)


if __name__ == "__main__":
    BatchComputeFlow()
