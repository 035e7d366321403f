"""@trigger_on_finish(flow="ProdUpstreamFlow"): start keeps the upstream run it was given."""

from metaflow import FlowSpec, current, step, trigger_on_finish


@trigger_on_finish(flow="ProdUpstreamFlow")
class ProdDownstreamFlow(FlowSpec):
    @step
    def start(self):
        upstream = current.trigger.run
        self.upstream_pathspec = upstream.pathspec
        self.upstream_message = upstream.data.message
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProdDownstreamFlow()
