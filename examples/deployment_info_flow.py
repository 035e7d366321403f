"""DeploymentInfoFlow: a deploy-time Parameter.

The default of ``deployment_info`` is a function. It is evaluated once when the
flow is compiled (``dagster create``), not on every run, so every run of the
deployed job sees who deployed it and when (unless the value is overridden).
"""

import json
from datetime import datetime

from metaflow import FlowSpec, JSONType, Parameter, step


def deployment_info(context):
    return json.dumps({"who": context.user_name, "when": datetime.now().isoformat()})


class DeploymentInfoFlow(FlowSpec):
    info = Parameter("deployment_info", type=JSONType, default=deployment_info)

    @step
    def start(self):
        print("This flow was deployed at %s by %s" % (self.info["when"], self.info["who"]))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DeploymentInfoFlow()
