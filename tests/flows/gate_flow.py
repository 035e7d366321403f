"""start waits for a file to appear in the flow's directory, so tests can look
at a run while it runs: the file is named by Parameter ``gate``; after 120 s the
step gives up and fails. ``end`` checks the Parameters arrived with their types.
Both say what they do on stdout and stderr.
"""

import os
import sys
import time

from metaflow import FlowSpec, JSONType, Parameter, step


def state_dir():
    """Where the tests keep this flow's markers and logs: the folder of its local
    datastore, i.e. the flow's directory. (A deployed job's tasks run in its code
    package and get that folder as METAFLOW_DATASTORE_SYSROOT_LOCAL; under
    `python flow.py run` or `resume` it is the working directory.)"""
    return os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL", ".")


class GateFlow(FlowSpec):
    gate = Parameter("gate", default="gate")
    count = Parameter("count", type=int, default=1)
    weights = Parameter("weights", type=JSONType, default='{"a": 1}')

    @step
    def start(self):
        print("start waits for the gate file %s" % self.gate, flush=True)
        deadline = time.time() + 120
        while not os.path.exists(os.path.join(state_dir(), self.gate)):
            if time.time() > deadline:
                raise RuntimeError("the gate file %s never appeared" % self.gate)
            time.sleep(0.5)
        self.seen = {"count": self.count, "weights": self.weights}
        self.next(self.end)

    @step
    def end(self):
        assert isinstance(self.count, int) and isinstance(self.weights, dict)
        print("end saw count %d" % self.count, file=sys.stderr)


if __name__ == "__main__":
    GateFlow()
