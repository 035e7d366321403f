"""CatchDivideByZeroFlow, from the "Handling failures" chapter.

The ``divide`` task for 0 fails on every attempt; after its two retries,
@catch stores the exception in ``divide_failed`` and the flow carries on. The
join keeps the results of the splits that succeeded.
"""

from metaflow import FlowSpec, catch, retry, step


class CatchDivideByZeroFlow(FlowSpec):
    @step
    def start(self):
        self.divisors = [0, 1, 2]
        self.next(self.divide, foreach="divisors")

    @catch(var="divide_failed")
    @retry(times=2)
    @step
    def divide(self):
        self.res = 10 / self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = [inp.res for inp in inputs if not inp.divide_failed]
        self.failures = sum(1 for inp in inputs if inp.divide_failed)
        print("results", self.results)
        self.next(self.end)

    @step
    def end(self):
        print("done!")


if __name__ == "__main__":
    CatchDivideByZeroFlow()
