"""start -> a -> b -> end, where b always raises ValueError("boom from step b")."""

from metaflow import FlowSpec, step


class FailingFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.a_ran = True
        self.next(self.b)

    @step
    def b(self):
        if self.a_ran:  # always true; keeps the self.next() below reachable
            raise ValueError("boom from step b")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailingFlow()
