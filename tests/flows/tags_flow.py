"""start -> a -> end. ``start`` records the namespace its Client calls see, so a
test can check `dagster create --namespace`; tests read the tasks' tags."""

from metaflow import FlowSpec, get_namespace, step


class TagsFlow(FlowSpec):
    @step
    def start(self):
        self.client_namespace = get_namespace()
        self.next(self.a)

    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TagsFlow()
