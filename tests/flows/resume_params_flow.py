"""start -> foreach process (items 1, 2, 3) -> join -> end, for resume with new
Parameter values (the shape of Metaflow's UX resume tests).

``process`` raises for the item equal to ``fail-on`` (-1, the default: none). Every
task execution appends "<step> <task id>" to ``executions.log`` in the flow's
directory, so tests tell what ran from what was cloned.
"""

import os

from metaflow import FlowSpec, Parameter, current, step


def record():
    directory = os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL", ".")
    with open(os.path.join(directory, "executions.log"), "a") as f:
        f.write("%s %s\n" % (current.step_name, current.task_id))


class ResumeParamsFlow(FlowSpec):
    fail_on = Parameter("fail-on", type=int, default=-1)
    label = Parameter("label", default="first")

    @step
    def start(self):
        record()
        self.items = [1, 2, 3]
        self.next(self.process, foreach="items")

    @step
    def process(self):
        record()
        if self.input == self.fail_on:
            raise RuntimeError("item %d fails" % self.input)
        self.result = self.input * 2
        self.seen_fail_on = self.fail_on
        self.next(self.join)

    @step
    def join(self, inputs):
        record()
        self.results = sorted(i.result for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        record()
        self.final = (self.fail_on, self.label)


if __name__ == "__main__":
    ResumeParamsFlow()
