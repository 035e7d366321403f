"""The job of a flow on a running Dagster webserver, for `trigger --dagster-url` when no
definitions file is at hand (the deployment holds it, e.g. on another host).

The job is found by the tags every compiled job carries (the flow name, and the
@project name and branch): the one `dagster create` names by default if the
deployment has it, else the only one; its Parameters, as run config, come from the
flow itself, as `dagster create` maps them.
"""

from typing import Dict, List

from .. import naming
from ..compiler.compile import job_name_for
from ..compiler.parameters import parameter_fields
from ..plan import FlowPlan
from .errors import CommandError

JOBS_QUERY = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name jobs { name tags { key value } } } }
    ... on PythonError { message }
  }
}
"""


class DeployedJob:
    """What triggering needs of a job: its name, and a plan holding the flow's
    Parameters and start step (not its steps or ops)."""

    def __init__(self, job_name: str, plan: FlowPlan):
        self.job_name = job_name
        self.plan = plan


def deployed_job(target, flow, graph) -> DeployedJob:
    project = _project(flow)
    wanted = {naming.TAG_FLOW_NAME: flow.name}
    if project.get("project_name"):
        wanted[naming.TAG_PROJECT] = project["project_name"]
        wanted[naming.TAG_BRANCH] = project.get("branch_name", "")
    names = sorted({job["name"] for job in _jobs(target)
                    if all(job["tags"].get(k) == v for k, v in wanted.items())})
    if not names:
        raise CommandError(
            "%s has no job of flow %s: add its definitions file (`dagster create`) to the "
            "deployment's workspace, or pass --definitions-file." % (target.describe(), flow.name))
    default = job_name_for(flow.name, project)
    if default in names:
        names = [default]
    elif len(names) > 1:
        raise CommandError(
            "%s has several jobs of flow %s (%s): pass --definitions-file to say which."
            % (target.describe(), flow.name, ", ".join(names)))
    plan = FlowPlan(flow_name=flow.name, flow_file="", job_name=names[0],
                    start_step=graph.start_step, end_step=graph.end_step, steps=[], ops=[],
                    parameters=parameter_fields(flow))
    return DeployedJob(names[0], plan)


def _project(flow) -> Dict[str, str]:
    """@project's names for this invocation (--branch, --production), as at `create`."""
    from metaflow import current

    if "project" not in flow._flow_decorators:
        return {}
    return {key: str(current.get(key)) for key in ("project_name", "branch_name",
                                                  "project_flow_name")
            if current.get(key) is not None}


def _jobs(target) -> List[dict]:
    data = target.query(JOBS_QUERY, {})["repositoriesOrError"]
    if data["__typename"] != "RepositoryConnection":
        raise CommandError("%s could not list its jobs: %s" % (
            target.describe(), data.get("message", data["__typename"])))
    return [{"name": job["name"], "tags": {t["key"]: t["value"] for t in job["tags"]}}
            for repo in data["nodes"] for job in repo["jobs"]]
