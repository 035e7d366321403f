"""The job a command works on, from the flow and Metaflow's options alone.

Every command computes it the same way, so `trigger`, `status`, `resume`,
`terminate`, `delete` and the Deployer find what `create` made under the same
top-level options (@project's --branch and --production among them): the flow
name, prefixed by project and branch as `current.project_flow_name` says once
Metaflow has initialised the flow decorators (compiler/compile.py `job_name_for`
makes it a valid Dagster name).
"""

from typing import Dict, Optional

from metaflow import current

from .. import naming
from ..compiler.compile import job_name_for


def project_info(obj) -> Dict[str, str]:
    """@project's names for this invocation ({} without @project)."""
    if "project" not in obj.flow._flow_decorators:
        return {}
    return {
        key: str(current.get(key))
        for key in ("project_name", "branch_name", "project_flow_name", "is_production")
        if current.get(key) is not None
    }


def job_name(obj, name: Optional[str] = None) -> str:
    """The job name of this flow under these options (`name`: create's --name)."""
    return name or job_name_for(obj.flow.name, project_info(obj))


def definitions_file(obj, given: Optional[str] = None, name: Optional[str] = None) -> str:
    """The definitions file a command works on: the one given, or the default one,
    named after the job."""
    return given or naming.default_definitions_file(job_name(obj, name))
