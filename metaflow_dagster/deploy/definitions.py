"""A definitions file written by `dagster create`, loaded in the user's process."""

import importlib.util
import os

from ..plan import FlowPlan
from .errors import CommandError


class DefinitionsFile:
    """The plan, the Dagster `Definitions` and the job of a definitions file."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            raise CommandError(
                "No definitions file at %s. Write it with `python <flow>.py dagster create`, "
                "or pass --definitions-file." % self.path
            )
        module = self._load_module()
        flow = getattr(module, "FLOW", None)
        if flow is None or not isinstance(getattr(flow, "plan", None), FlowPlan):
            raise CommandError("%s is not a definitions file of metaflow-dagster." % self.path)
        self.plan: FlowPlan = flow.plan
        self.definitions_attr, self.definitions = _find_definitions(module, self.path)

    def _load_module(self):
        name = "metaflow_dagster_definitions_%x" % abs(
            hash((self.path, os.path.getmtime(self.path))))
        spec = importlib.util.spec_from_file_location(name, self.path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # a stale or hand-edited file: say which and why
            raise CommandError("Could not load %s: %s" % (self.path, error)) from error
        return module

    @property
    def directory(self) -> str:
        """Where the file is: the working directory its runs are executed in."""
        return os.path.dirname(self.path)

    @property
    def job_name(self) -> str:
        return self.plan.job_name

    def job_def(self):
        return self.definitions.get_job_def(self.job_name)

    def recon_job(self):
        from dagster._core.definitions.reconstruct import ReconstructableRepository

        repo = ReconstructableRepository.for_file(
            self.path, self.definitions_attr, working_directory=self.directory
        )
        return repo.get_reconstructable_job(self.job_name)

    def remote_origin(self):
        """The origin `dagster dev -f <this file>` gives the job's runs: with it, the
        UI finds the job of a run started here, e.g. to re-execute it."""
        from dagster._core.remote_origin import RemoteRepositoryOrigin
        from dagster._core.workspace.load import location_origin_from_python_file

        location = location_origin_from_python_file(self.path, None, self.directory)
        return RemoteRepositoryOrigin(location, "__repository__").get_job_origin(self.job_name)


def _find_definitions(module, path):
    from dagster import Definitions

    for attr, value in vars(module).items():
        if isinstance(value, Definitions):
            return attr, value
    raise CommandError("%s holds no Dagster Definitions." % path)
