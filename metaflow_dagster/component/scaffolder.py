"""`dg scaffold defs metaflow_dagster.MetaflowFlowComponent flows/my_flow --flow-file
my_flow.py`: a defs.yaml naming the flow file (relative to it), and the flow itself,
a small example, when the file is not there yet."""

import os
from pathlib import Path
from typing import Optional

from dagster.components.component.component_scaffolder import Scaffolder
from dagster.components.component_scaffolding import scaffold_component
from dagster.components.scaffold.scaffold import ScaffoldRequest
from pydantic import BaseModel, Field

DEFAULT_FLOW_FILE = "flow.py"

EXAMPLE_FLOW = '''from metaflow import FlowSpec, Parameter, step


class {name}(FlowSpec):
    """An example flow: replace it with yours."""

    greeting = Parameter("greeting", default="hello", help="What start says")

    @step
    def start(self):
        self.message = "%s from %s" % (self.greeting, type(self).__name__)
        self.next(self.end)

    @step
    def end(self):
        print(self.message)


if __name__ == "__main__":
    {name}()
'''


class MetaflowFlowScaffoldParams(BaseModel):
    flow_file: Optional[str] = Field(
        default=None,
        description="The flow file: an existing one (relative to the current directory), or "
        "the name of an example flow to write beside defs.yaml (default: %s)."
        % DEFAULT_FLOW_FILE)


class MetaflowFlowScaffolder(Scaffolder[MetaflowFlowScaffoldParams]):
    @classmethod
    def get_scaffold_params(cls) -> type:
        return MetaflowFlowScaffoldParams

    def scaffold(self, request: ScaffoldRequest[MetaflowFlowScaffoldParams]) -> None:
        given = request.params.flow_file or DEFAULT_FLOW_FILE
        target = Path(request.target_path)
        target.mkdir(parents=True, exist_ok=True)
        if Path(given).is_file():
            flow_file = os.path.relpath(Path(given).resolve(), target.resolve())
        else:
            flow_file = given
            _write_example_flow(target / given)
        scaffold_component(request, {"flow_file": flow_file})


def _write_example_flow(path: Path) -> None:
    if path.exists():
        return
    words = path.stem.replace("-", "_").split("_")
    name = "".join(w.capitalize() for w in words if w) or "Example"
    if not name.endswith("Flow"):
        name += "Flow"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXAMPLE_FLOW.format(name=name))
