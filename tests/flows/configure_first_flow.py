"""A flow file that sets a Metaflow setting before it imports metaflow (which
reads its settings once, when first imported): every task must see it."""

import os

os.environ["METAFLOW_CLIENT_CACHE_MAX_SIZE"] = "1234"

from metaflow import FlowSpec, step  # noqa: E402
from metaflow.metaflow_config import CLIENT_CACHE_MAX_SIZE  # noqa: E402


class ConfigureFirstFlow(FlowSpec):
    @step
    def start(self):
        self.cache_size = CLIENT_CACHE_MAX_SIZE
        self.next(self.end)

    @step
    def end(self):
        self.cache_size = CLIENT_CACHE_MAX_SIZE


if __name__ == "__main__":
    ConfigureFirstFlow()
