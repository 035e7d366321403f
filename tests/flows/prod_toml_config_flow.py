"""Configs read through parsers, as Metaflow's docs show them: cfg.toml through
`parser="tomllib.loads"`, and counted.toml through a parser of the flow's own that
appends a line to a log file (named in the TOML itself) each time it runs. Every task
records what it sees, a foreach body included."""

import tomllib
from metaflow import Config, FlowSpec, current, step


def parse_and_count(text):
    """tomllib.loads, plus a side effect (as a parser recording the git commit has):
    one line in the file the TOML names, each time it runs."""
    value = tomllib.loads(text)
    with open(value["parse_log"], "a") as log:
        log.write("parsed\n")
    return value


class ProdTomlConfigFlow(FlowSpec):
    cfg = Config("cfg", default="cfg.toml", parser="tomllib.loads")
    counted = Config("counted", default="counted.toml", parser=parse_and_count)

    def _see(self):
        seen = dict(getattr(self, "seen", {}))
        seen[current.step_name] = {
            "model": self.cfg.model.name,
            "layers": self.cfg.model.layers,
            "rate": self.cfg.train.rate,
            "release": self.counted.release,
        }
        self.seen = seen

    @step
    def start(self):
        self._see()
        self.shards = list(range(self.cfg.train.shards))
        self.next(self.body, foreach="shards")

    @step
    def body(self):
        self._see()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = inputs[0].seen
        self.bodies = sorted(i.seen["body"]["release"] for i in inputs)
        self._see()
        self.next(self.end)

    @step
    def end(self):
        self._see()


if __name__ == "__main__":
    ProdTomlConfigFlow()
