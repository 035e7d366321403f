"""@exit_hook: each hook appends "<kind> <run pathspec>" to hooks.log next to this file.
Parameter fail makes step work raise."""

import os

from metaflow import FlowSpec, Parameter, exit_hook, step

# The flow's directory (a deployed job's hooks run in its code package and get
# it as METAFLOW_DATASTORE_SYSROOT_LOCAL, the folder of the flow's local datastore).
LOG = os.path.join(os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL")
                   or os.path.dirname(os.path.abspath(__file__)), "hooks.log")


def _record(kind, run):
    with open(LOG, "a") as f:
        f.write("%s %s\n" % (kind, run.pathspec if run is not None else None))


def notify_success(run=None):
    _record("success", run)


def notify_error(run=None):
    _record("error", run)


@exit_hook(on_success=[notify_success], on_error=[notify_error])
class ProdExitHookFlow(FlowSpec):
    fail = Parameter("fail", type=bool, default=False)

    @step
    def start(self):
        self.next(self.work)

    @step
    def work(self):
        if self.fail:
            raise RuntimeError("work failed on purpose")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProdExitHookFlow()
