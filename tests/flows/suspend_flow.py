"""start -> a -> b -> end, each step writing when it starts and ends to steps.log in
the working directory, so a test can see which tasks ran when. ``a`` waits for a
file ``a_gate`` (at most 120 s) before it ends."""

import os
import time

from metaflow import FlowSpec, step


def note(step_name, what):
    with open("steps.log", "a") as f:
        f.write("%s %s %f\n" % (step_name, what, time.time()))


class SuspendFlow(FlowSpec):
    @step
    def start(self):
        note("start", "start")
        note("start", "end")
        self.next(self.a)

    @step
    def a(self):
        note("a", "start")
        deadline = time.time() + 120
        while not os.path.exists("a_gate"):
            if time.time() > deadline:
                raise RuntimeError("the file a_gate never appeared")
            time.sleep(0.2)
        note("a", "end")
        self.next(self.b)

    @step
    def b(self):
        note("b", "start")
        note("b", "end")
        self.next(self.end)

    @step
    def end(self):
        note("end", "start")


if __name__ == "__main__":
    SuspendFlow()
