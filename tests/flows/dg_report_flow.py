"""The flow of the dg project test that runs when DgOrdersFlow finishes."""

from metaflow import FlowSpec, current, step, trigger_on_finish


@trigger_on_finish(flow="DgOrdersFlow")
class DgReportFlow(FlowSpec):
    @step
    def start(self):
        # Metaflow sets current.trigger only in a triggered run.
        trigger = getattr(current, "trigger", None)
        self.source = trigger.run.pathspec if trigger else "manual"
        self.next(self.end)

    @step
    def end(self):
        self.report = "report of %s" % self.source


if __name__ == "__main__":
    DgReportFlow()
