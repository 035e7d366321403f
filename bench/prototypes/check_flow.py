"""Correctness probe for executor prototypes: a flaky @retry step, a foreach, a nested
foreach (a region op), prints
on stdout and stderr in every step, and an optional long sleep (SLEEP env) to test
termination."""

import os
import sys
import time

from metaflow import FlowSpec, current, retry, step


class CheckFlow(FlowSpec):
    @step
    def start(self):
        print("hello from start")
        self.items = [0, 1, 2]
        self.next(self.flaky)

    @retry(times=2, minutes_between_retries=0)
    @step
    def flaky(self):
        print("flaky attempt %d" % current.retry_count)
        print("flaky stderr %d" % current.retry_count, file=sys.stderr)
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails on purpose")
        self.next(self.body, foreach="items")

    @step
    def body(self):
        print("body %d" % self.input)
        time.sleep(float(os.environ.get("SLEEP", "0")))
        self.y = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.ys = sorted(i.y for i in inputs)
        self.next(self.mid)

    @step
    def mid(self):
        self.outers = [0, 1]
        self.next(self.outer, foreach="outers")

    @step
    def outer(self):
        self.o = self.input
        self.inners = [0, 1]
        self.next(self.inner, foreach="inners")

    @step
    def inner(self):
        print("inner %d.%d" % (self.o, self.input))
        self.v = self.o * 2 + self.input
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.vs = [i.v for i in inputs]
        self.ys = inputs[0].ys
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.ys = inputs[0].ys
        self.vs = sorted(v for i in inputs for v in i.vs)
        self.next(self.end)

    @step
    def end(self):
        print("end ys=%s vs=%s" % (self.ys, self.vs))


if __name__ == "__main__":
    CheckFlow()
