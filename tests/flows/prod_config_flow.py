"""Config from cfg.json (or --config-value), read in every step, through a config_expr
Parameter default and through a FlowMutator that gives every step an environment variable."""

import os

from metaflow import Config, FlowMutator, FlowSpec, Parameter, config_expr, current, step


class EnvFromConfig(FlowMutator):
    def mutate(self, mutable_flow):
        cfg = dict(mutable_flow.configs)["cfg"]
        for _, mutable_step in mutable_flow.steps:
            mutable_step.add_decorator(
                "environment", deco_kwargs={"vars": {"CFG_LABEL": str(cfg.label)}}
            )


@EnvFromConfig
class ProdConfigFlow(FlowSpec):
    cfg = Config("cfg", default="cfg.json")
    label = Parameter("label", default=config_expr("cfg.label"))

    def _see(self):
        seen = dict(getattr(self, "seen", {}))
        seen[current.step_name] = {
            "x": self.cfg.x,
            "label": self.label,
            "env": os.environ.get("CFG_LABEL"),
        }
        self.seen = seen

    @step
    def start(self):
        self._see()
        self.next(self.middle)

    @step
    def middle(self):
        self._see()
        self.next(self.end)

    @step
    def end(self):
        self._see()


if __name__ == "__main__":
    ProdConfigFlow()
