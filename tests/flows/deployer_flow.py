"""Records what reached its steps from the Deployer API: Parameters, a Config
value, the @project branch, an environment variable set by a decorator added
with top-level ``--with``, and one from the Deployer's own environment."""

import os

from metaflow import Config, FlowSpec, JSONType, Parameter, current, project, step


@project(name="deployer")
class DeployerFlow(FlowSpec):
    cfg = Config("cfg", default_value={"greeting": "default"})
    count = Parameter("count", type=int, default=1)
    weights = Parameter("weights", type=JSONType, default='{"a": 1}')
    label = Parameter("label", default="none")

    @step
    def start(self):
        self.seen = {
            "count": self.count,
            "weights": self.weights,
            "label": self.label,
            "greeting": self.cfg.greeting,
            "branch": current.branch_name,
            "with_env": os.environ.get("DEPLOYER_WITH_VAR"),
            "deployer_env": os.environ.get("DEPLOYER_ENV_VAR"),
        }
        self.next(self.end)

    @step
    def end(self):
        self.end_with_env = os.environ.get("DEPLOYER_WITH_VAR")


if __name__ == "__main__":
    DeployerFlow()
