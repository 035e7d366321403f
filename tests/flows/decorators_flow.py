"""Step decorators that a compiler must carry over: @environment, @resources,
@card and @retry. Each step saves an artifact proving its decorator applied."""

import os

from metaflow import FlowSpec, card, current, environment, resources, retry, step


class DecoratorsFlow(FlowSpec):
    @environment(vars={"MY_VAR": "hello"})
    @step
    def start(self):
        self.my_var = os.environ.get("MY_VAR")
        self.next(self.sized)

    @resources(cpu=2, memory=2048)
    @step
    def sized(self):
        self.sized_ran = True
        self.next(self.carded)

    @card
    @step
    def carded(self):
        self.card_value = "shown in the default card"
        self.next(self.flaky)

    @retry(times=2)
    @step
    def flaky(self):
        if current.retry_count < 1:
            raise RuntimeError("flaky failure on attempt %d" % current.retry_count)
        self.retry_count = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        assert self.my_var == "hello", self.my_var
        assert self.sized_ran
        assert self.retry_count == 1, self.retry_count


if __name__ == "__main__":
    DecoratorsFlow()
