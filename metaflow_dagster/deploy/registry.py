"""The deployments a Dagster home knows of.

A deployment is a definitions file. Its identifier is a JSON object naming the
file, the job, the flow and where runs go (DAGSTER_HOME, or a webserver URL), so
`DeployedFlow.from_deployment(identifier)` needs nothing else. Each deployment is
also recorded in the Dagster home of the commands (deploy/targets/home.py), for
`list_deployed_flows`.
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import List, Optional

from ..files import write_atomically
from ..naming import DAGSTER_URL_ENV
from .targets.home import dagster_home as resolve_home

REGISTRY_DIR = os.path.join("metaflow_dagster", "deployments")


@dataclass(frozen=True)
class RegisteredDeployment:
    """What identifies a deployment: its definitions file and where its runs go."""

    definitions_file: str
    flow_name: str
    job_name: str
    flow_file: str
    # Where `dagster create` ran: the tasks' working directory.
    cwd: str
    dagster_home: Optional[str] = None
    dagster_url: Optional[str] = None
    # The @project branch (`test.x`, `prod`...) the deployment was made for.
    branch_name: Optional[str] = None
    # The flow's end step: a run that did not run it has not succeeded (None in
    # records written before this field existed).
    end_step: Optional[str] = None

    def identifier(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_identifier(cls, identifier: str) -> "RegisteredDeployment":
        try:
            data = json.loads(identifier)
            return cls(**data)
        except (ValueError, TypeError):
            raise ValueError(
                "Not an identifier of a Dagster deployment: %r (expected the JSON object "
                "`deployed_flow.name` holds)" % (identifier,)
            ) from None

    @classmethod
    def for_plan(cls, plan, definitions_file: str, flow_file: str, cwd: str
                 ) -> "RegisteredDeployment":
        return cls(
            definitions_file=os.path.abspath(definitions_file),
            flow_name=plan.flow_name,
            job_name=plan.job_name,
            flow_file=flow_file,
            cwd=cwd,
            dagster_home=resolve_home(),
            dagster_url=os.environ.get(DAGSTER_URL_ENV) or None,
            branch_name=plan.project.get("branch_name"),
            end_step=plan.end_step,
        )

    def _registry_path(self) -> Optional[str]:
        if not self.dagster_home:
            return None
        key = hashlib.sha1(self.definitions_file.encode()).hexdigest()[:12]
        return os.path.join(self.dagster_home, REGISTRY_DIR, "%s-%s.json" % (self.job_name, key))

    def register(self) -> None:
        path = self._registry_path()
        if path is None:
            return
        # The same file may have held another job (e.g. another @project branch).
        forget_deployment(self.definitions_file, self.dagster_home)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomically(path, self.identifier())


def _registry_entries(dagster_home: Optional[str]):
    """(path of the entry, record) for each deployment recorded in the Dagster home."""
    directory = os.path.join(resolve_home(dagster_home), REGISTRY_DIR)
    if not os.path.isdir(directory):
        return
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        with open(path) as f:
            try:
                yield path, RegisteredDeployment.from_identifier(f.read())
            except ValueError:
                continue


def registered_deployments(dagster_home: Optional[str] = None) -> List[RegisteredDeployment]:
    """Deployments recorded in the Dagster home whose definitions file still exists."""
    return [record for _, record in _registry_entries(dagster_home)
            if os.path.isfile(record.definitions_file)]


def forget_deployment(definitions_file: str, dagster_home: Optional[str] = None) -> None:
    """Remove the records of the deployment whose definitions file this is."""
    definitions_file = os.path.abspath(definitions_file)
    for path, record in list(_registry_entries(dagster_home)):
        if record.definitions_file == definitions_file:
            os.unlink(path)


def record_deployment(plan, definitions_file: str, flow_file: str, cwd: str, metadata: str,
                      deployer_attribute_file: Optional[str] = None) -> RegisteredDeployment:
    """Called by `dagster create` (in the flow's directory `cwd`): record the
    deployment and, for the Deployer API, hand its identifier back through the
    attribute file."""
    record = RegisteredDeployment.for_plan(plan, definitions_file, flow_file, cwd)
    record.register()
    if deployer_attribute_file:
        with open(deployer_attribute_file, "w", encoding="utf-8") as f:
            json.dump({"name": record.identifier(), "flow_name": plan.flow_name,
                       "metadata": metadata}, f)
    return record
