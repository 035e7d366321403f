"""The upstream flow that ProdDownstreamFlow waits for."""

from metaflow import FlowSpec, step


class ProdUpstreamFlow(FlowSpec):
    @step
    def start(self):
        self.message = "from upstream"
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProdUpstreamFlow()
