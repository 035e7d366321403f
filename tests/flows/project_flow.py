"""@project flow: start records the project and branch Metaflow assigns."""

from metaflow import FlowSpec, current, project, step


@project(name="demo_project")
class ProjectFlow(FlowSpec):
    @step
    def start(self):
        self.project_name = current.project_name
        self.branch_name = current.branch_name
        self.project_flow_name = current.project_flow_name
        self.next(self.end)

    @step
    def end(self):
        assert self.project_name == "demo_project", self.project_name


if __name__ == "__main__":
    ProjectFlow()
