"""Parameters of several types, including one with a dash in its name.

``start`` copies every parameter into an artifact; ``end`` checks that the
parameters are unchanged and still agree with the copies.
"""

from metaflow import FlowSpec, JSONType, Parameter, step


class ParamsFlow(FlowSpec):
    count = Parameter("count", type=int, default=3)
    ratio = Parameter("ratio", type=float, default=0.5)
    flag = Parameter("flag", type=bool, default=False)
    label = Parameter("label", type=str, default="hello world")
    config = Parameter("config", type=JSONType, default='{"a": 1, "b": [1, 2]}')
    learning_rate = Parameter("learning-rate", type=float, default=0.1)

    @step
    def start(self):
        self.seen = {
            "count": self.count,
            "ratio": self.ratio,
            "flag": self.flag,
            "label": self.label,
            "config": self.config,
            "learning_rate": self.learning_rate,
        }
        self.types = {k: type(v).__name__ for k, v in self.seen.items()}
        self.next(self.end)

    @step
    def end(self):
        now = {
            "count": self.count,
            "ratio": self.ratio,
            "flag": self.flag,
            "label": self.label,
            "config": self.config,
            "learning_rate": self.learning_rate,
        }
        assert now == self.seen, (now, self.seen)
        assert isinstance(self.count, int)
        assert isinstance(self.ratio, float)
        assert isinstance(self.flag, bool)
        assert isinstance(self.config, dict)


if __name__ == "__main__":
    ParamsFlow()
