"""start -> body (a foreach over ``width`` items) -> join -> end, for runs spread over workers.

``body`` squares its item, ``join`` counts its inputs. The splits listed in ``hold``
(comma-separated indices) first sleep ``hold_seconds`` on their first attempt only, so that
a test can terminate the run or kill the worker while they run. Every step has
``@retry(times=1)`` (a test makes a worker fail every op it takes), and a retried split
does not sleep.
"""

import time

from metaflow import FlowSpec, Parameter, current, retry, step


class DistributedFlow(FlowSpec):
    width = Parameter("width", type=int, default=20, help="Number of foreach splits")
    hold = Parameter("hold", type=str, default="", help="Splits that sleep first")
    hold_seconds = Parameter("hold_seconds", type=int, default=300)

    @retry(times=1)
    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.body, foreach="items")

    @retry(times=1)
    @step
    def body(self):
        held = [int(i) for i in self.hold.split(",") if i]
        if self.input in held and current.retry_count == 0:
            print("split %d holds for %d s" % (self.input, self.hold_seconds), flush=True)
            time.sleep(self.hold_seconds)
        self.square = self.input * self.input
        print("square of %d is %d" % (self.input, self.square))
        self.next(self.join)

    @retry(times=1)
    @step
    def join(self, inputs):
        # Not each input's artifacts: on S3, Metaflow fetches every input's separately.
        self.count = sum(1 for _ in inputs)
        self.next(self.end)

    @retry(times=1)
    @step
    def end(self):
        pass


if __name__ == "__main__":
    DistributedFlow()
