"""@project flow: start records the project, branch and namespace Metaflow assigns."""

from metaflow import FlowSpec, current, get_namespace, project, step


@project(name="prod_demo")
class ProdProjectFlow(FlowSpec):
    @step
    def start(self):
        self.project_name = current.project_name
        self.branch_name = current.branch_name
        self.project_flow_name = current.project_flow_name
        self.is_production = current.is_production
        self.namespace_seen = get_namespace()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProdProjectFlow()
