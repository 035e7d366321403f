"""RetryFlow: @retry, @timeout and @environment on the same step.

Compiled to Dagster, ``process`` becomes an op with
``retry_policy=RetryPolicy(max_retries=3, delay=120)`` and the tag
``dagster/op_execution_timeout: "120"``; MY_VAR and OTHER are set in the
step's environment.
"""

import os

from metaflow import FlowSpec, environment, retry, step, timeout


class RetryFlow(FlowSpec):
    @step
    def start(self):
        self.value = 1
        self.next(self.process)

    @retry(times=3, minutes_between_retries=2)
    @timeout(seconds=120)
    @environment(vars={"MY_VAR": "hello", "OTHER": "world"})
    @step
    def process(self):
        self.result = self.value * 2
        self.env = "%s %s" % (os.environ["MY_VAR"], os.environ["OTHER"])
        self.next(self.end)

    @step
    def end(self):
        print("result", self.result, "env", self.env)


if __name__ == "__main__":
    RetryFlow()
