"""Linear shape: start -> a -> b -> end. Each step appends its name to ``trail``."""

from metaflow import FlowSpec, step


class LinearFlow(FlowSpec):
    @step
    def start(self):
        self.trail = ["start"]
        self.next(self.a)

    @step
    def a(self):
        self.trail = self.trail + ["a"]
        print("trail so far: %s" % self.trail)
        self.next(self.b)

    @step
    def b(self):
        self.trail = self.trail + ["b"]
        self.next(self.end)

    @step
    def end(self):
        self.trail = self.trail + ["end"]
        assert self.trail == ["start", "a", "b", "end"], self.trail


if __name__ == "__main__":
    LinearFlow()
