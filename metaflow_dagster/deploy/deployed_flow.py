"""The objects Metaflow's Deployer API hands out for Dagster deployments.

`DagsterDeployedFlow` (returned by `Deployer(...).dagster().create()`) triggers
and resumes runs by running `python flow.py dagster trigger | resume`, as the
Argo Workflows deployer runs its CLI; `DagsterTriggeredRun.status` asks Dagster
directly (the instance of the Dagster home, or the webserver's GraphQL API) and
answers in Metaflow's words (PENDING, RUNNING, SUCCEEDED, FAILED, TIMED_OUT,
ABORTED); Dagster's own is `dagster_status`.

`DeployedFlow.from_deployment(identifier, impl="dagster")` rebuilds a deployment
in any process (Metaflow's own `DeployedFlow` picks its implementation with `impl`,
Argo Workflows by default).
"""

import json
import os
import sys
import time
from typing import ClassVar, Iterator, Optional

from metaflow.client.core import get_metadata
from metaflow.runner.deployer import DeployedFlow, Deployer, TriggeredRun
from metaflow.runner.utils import get_lower_level_group, handle_timeout, temporary_fifo

from ..naming import DAGSTER_URL_ENV
from . import runs
from .registry import RegisteredDeployment, registered_deployments


def _target(deployer):
    """Where the deployer's commands send runs: what their environment says."""
    from .targets import target_for

    env = deployer.env_vars
    return target_for(env.get(DAGSTER_URL_ENV) or None, env.get("DAGSTER_HOME") or None)


def _end_step(deployer) -> Optional[str]:
    """The flow's end step, as the deployment's identifier (the deployer's name) has
    it; None if it does not say."""
    try:
        return RegisteredDeployment.from_identifier(deployer.name).end_step
    except ValueError:
        return None


def _run_command(deployer, command_name: str, with_attributes: bool, extra_args=(),
                 **kwargs):
    """Run `python flow.py [top-level options] dagster <command> ... [extra_args]` the
    way the Argo deployer runs its commands; return what the command wrote to the
    attribute file (or None), raise if the command failed."""
    group = get_lower_level_group(
        deployer.api, deployer.top_level_kwargs, deployer.TYPE, deployer.deployer_kwargs
    )
    if not with_attributes:
        command = getattr(group, command_name)(**kwargs)
        pid = deployer.spm.run_command([sys.executable, *command, *extra_args],
                                       env=deployer.env_vars, cwd=deployer.cwd,
                                       show_output=deployer.show_output)
        command_obj = deployer.spm.get(pid)
        command_obj.sync_wait()
        if command_obj.process.returncode != 0:
            raise RuntimeError("`dagster %s` failed for %s" % (command_name, deployer.flow_file))
        return None
    with temporary_fifo() as (attribute_file_path, attribute_file_fd):
        command = getattr(group, command_name)(
            deployer_attribute_file=attribute_file_path, **kwargs)
        pid = deployer.spm.run_command([sys.executable, *command, *extra_args],
                                       env=deployer.env_vars, cwd=deployer.cwd,
                                       show_output=deployer.show_output)
        command_obj = deployer.spm.get(pid)
        content = handle_timeout(attribute_file_fd, command_obj, deployer.file_read_timeout)
        command_obj.sync_wait()
        if command_obj.process.returncode == 0:
            return content
    raise RuntimeError("`dagster %s` failed for %s" % (command_name, deployer.flow_file))


def _cli_values(kwargs: dict) -> dict:
    """Parameter values as the command line takes them: JSON for structures (the
    click API would turn a list into a repeated option)."""
    return {k: json.dumps(v) if isinstance(v, (dict, list, tuple)) else v
            for k, v in kwargs.items()}


class DagsterTriggeredRun(TriggeredRun):
    """A run of a Dagster deployment: the latest Dagster run of this Metaflow run
    (a re-execution continues the Metaflow run)."""

    def __init__(self, deployer, content: str):
        super().__init__(deployer=deployer, content=content)
        self._dagster_run_id = json.loads(content).get("dagster_run_id")

    def _state(self):
        from .errors import CommandError

        target = _target(self.deployer)
        flow_name, run_id = self.pathspec.split("/")
        try:
            return target, runs.find_run(target, flow_name, run_id)
        except CommandError:
            if self._dagster_run_id:
                return target, target.run_state(self._dagster_run_id)
            return target, None

    def _statuses(self):
        """(Metaflow's word, Dagster's, finished) for the run (Nones if Dagster does
        not know it). Asked each time: a re-execution continues the Metaflow run."""
        target, state = self._state()
        if state is None:
            return None, None, False
        return (runs.metaflow_status(target, state, _end_step(self.deployer)), state.status,
                state.finished)

    @property
    def dagster_run_id(self) -> Optional[str]:
        _, state = self._state()
        return state.run_id if state else self._dagster_run_id

    @property
    def status(self) -> Optional[str]:
        """
        The run's state, in the words of Metaflow's other schedulers: PENDING (not
        started yet), RUNNING, SUCCEEDED, FAILED, TIMED_OUT (failed on its
        --workflow-timeout) or ABORTED (terminated); None if Dagster does not
        know the run.
        """
        return self._statuses()[0]

    @property
    def dagster_status(self) -> Optional[str]:
        """The Dagster run's own status: QUEUED, NOT_STARTED, STARTING, STARTED,
        SUCCESS, FAILURE, CANCELING or CANCELED."""
        return self._statuses()[1]

    @property
    def is_running(self) -> bool:
        """True until the run has ended. A run being terminated is ABORTED at once,
        and running until its tasks have stopped."""
        status, _, finished = self._statuses()
        return status is not None and not finished

    def wait_for_completion(self, check_interval: int = 5, timeout: Optional[int] = None):
        """Wait until the run has ended (`status` is then SUCCEEDED, FAILED,
        TIMED_OUT or ABORTED).

        Raises TimeoutError after `timeout` seconds."""
        started = time.time()
        while self.is_running:
            if timeout is not None and time.time() - started > timeout:
                raise TimeoutError("Run %s did not finish within %s seconds."
                                   % (self.pathspec, timeout))
            time.sleep(check_interval)

    def _run_id_command(self, command_name: str, **kwargs) -> bool:
        try:
            _run_command(self.deployer, command_name, False,
                         run_id=self.pathspec.split("/")[1], **kwargs)
        except RuntimeError:
            return False
        return True

    def terminate(self, **kwargs) -> bool:
        """
        Terminate the run (`python flow.py dagster terminate`): its running tasks are
        stopped and it ends ABORTED.

        Parameters
        ----------
        authorize : str, optional, default None
            Authorize the termination with the deployment's production token (needed
            unless you deployed the flow, as on Argo Workflows).

        Returns
        -------
        bool
            True if the command was successful, False otherwise.
        """
        return self._run_id_command("terminate", **kwargs)

    def suspend(self, **kwargs) -> bool:
        """
        Suspend the run (`python flow.py dagster suspend`): its running tasks finish,
        no new task starts until `unsuspend()`.

        Parameters
        ----------
        authorize : str, optional, default None
            Authorize the suspension with the deployment's production token.

        Returns
        -------
        bool
            True if the command was successful, False otherwise.
        """
        return self._run_id_command("suspend", **kwargs)

    def unsuspend(self, **kwargs) -> bool:
        """
        Let a suspended run start new tasks again.

        Parameters
        ----------
        authorize : str, optional, default None
            Authorize the unsuspension with the deployment's production token.

        Returns
        -------
        bool
            True if the command was successful, False otherwise.
        """
        return self._run_id_command("unsuspend", **kwargs)

    def resume(self, step_to_rerun: Optional[str] = None, **kwargs) -> "DagsterTriggeredRun":
        """Start a new run that clones what succeeded in this one, with these
        Parameter values (see `DagsterDeployedFlow.resume`)."""
        return DagsterDeployedFlow(self.deployer).resume(
            origin_run_id=self.pathspec.split("/")[1], step_to_rerun=step_to_rerun, **kwargs)


class DagsterDeployedFlow(DeployedFlow):
    """A flow compiled into a Dagster definitions file."""

    TYPE: ClassVar[Optional[str]] = "dagster"

    @property
    def record(self) -> RegisteredDeployment:
        return RegisteredDeployment.from_identifier(self.deployer.name)

    @property
    def definitions_file(self) -> str:
        return self.record.definitions_file

    @property
    def job_name(self) -> str:
        return self.record.job_name

    @property
    def production_token(self) -> Optional[str]:
        """The deployment's production token (its runs are in the Metaflow namespace
        `production:<token>`), as its ops read it from the flow's datastore; None once
        the definitions file or the deployment's record is gone."""
        from ..runtime.launch.production_token import TokenMissing, production_token
        from .definitions import DefinitionsFile
        from .errors import CommandError

        try:
            return production_token(DefinitionsFile(self.definitions_file).plan)
        except (CommandError, TokenMissing):
            return None

    def trigger(self, **kwargs) -> DagsterTriggeredRun:
        """
        Start a run of the deployed flow.

        Parameters
        ----------
        **kwargs : Any
            Values of the flow's Parameters; and `workflow_priority` (int) and
            `run_title` (str), this run's own priority and title.

        Returns
        -------
        DagsterTriggeredRun
            The triggered run.
        """
        content = _run_command(self.deployer, "trigger", True,
                               definitions_file=self.definitions_file, **_cli_values(kwargs))
        return DagsterTriggeredRun(deployer=self.deployer, content=content)

    def resume(self, origin_run_id: str, step_to_rerun: Optional[str] = None, **kwargs
               ) -> DagsterTriggeredRun:
        """
        Start a new run that clones the tasks that succeeded in an earlier run and runs
        the others (and, with `step_to_rerun`, that step and everything after it).

        Parameters
        ----------
        origin_run_id : str
            The Metaflow run id (or a Dagster run id) of the run to resume.
        step_to_rerun : str, optional
            Run this step and all steps after it again.
        **kwargs : Any
            Values of the flow's Parameters for the new run; the others keep the origin
            run's values. The steps that run read the new values; a cloned task keeps
            the artifacts (Parameters included) of its origin task, so give
            `step_to_rerun` to run again a step that read a Parameter you change.

        Returns
        -------
        DagsterTriggeredRun
            The new run.
        """
        # Given after the command's own options: `resume` takes any of the flow's
        # Parameters, none of them required, none defaulted (see run_commands.py).
        extra_args = _parameter_args(self.record.definitions_file, kwargs, "resume")
        content = _run_command(self.deployer, "resume", True, extra_args,
                               definitions_file=self.definitions_file,
                               origin_run_id=origin_run_id, step_to_rerun=step_to_rerun)
        return DagsterTriggeredRun(deployer=self.deployer, content=content)

    def delete(self, **kwargs) -> bool:
        """Delete the deployment (its definitions file). True if it worked."""
        try:
            _run_command(self.deployer, "delete", False, definitions_file=self.definitions_file)
        except RuntimeError:
            return False
        return True

    @classmethod
    def from_deployment(cls, identifier: str, metadata: Optional[str] = None,
                        dagster_home: Optional[str] = None, **deployer_options
                        ) -> "DagsterDeployedFlow":
        """
        The deployed flow of an identifier, in any process.

        Parameters
        ----------
        identifier : str
            The deployment's identifier (`deployed_flow.name`); or, looked up among the
            deployments of the Dagster home, the path of its definitions file or its job
            name: the flow name, `project.branch.FlowName` for an @project flow (as
            `current.project_flow_name` gives it, e.g. `myproj.test.b1.MyFlow`; in any
            case), or the name given to `create --name`.
        metadata : str, optional
            Metaflow metadata of the runs (default: the current one).
        dagster_home : str, optional
            The Dagster home whose deployments a name is looked up in (default:
            DAGSTER_HOME, or ~/.metaflow_dagster/dagster_home when it is unset).
        **deployer_options
            `show_output`, `profile`, `env`, `file_read_timeout` of the Deployer that
            runs the deployment's commands.
        """
        record = _record(identifier, dagster_home)
        deployer = Deployer(record.flow_file, cwd=record.cwd, **deployer_options,
                            **_project_kwargs(record.branch_name)).dagster(
            dagster_url=record.dagster_url, dagster_home=record.dagster_home)
        deployer.name = record.identifier()
        deployer.flow_name = record.flow_name
        deployer.metadata = metadata if metadata is not None else get_metadata()
        deployer.additional_info = {}
        return cls(deployer=deployer)

    @classmethod
    def list_deployed_flows(cls, flow_name: Optional[str] = None
                            ) -> Iterator["DagsterDeployedFlow"]:
        """
        The deployments recorded in the Dagster home (DAGSTER_HOME, or the default
        one) whose definitions files still exist.

        Parameters
        ----------
        flow_name : str, optional
            Only the deployments of this flow.
        """
        for record in registered_deployments():
            if flow_name is None or record.flow_name == flow_name:
                yield cls.from_deployment(record.identifier())

    @classmethod
    def get_triggered_run(cls, identifier: str, run_id: str, metadata: Optional[str] = None
                          ) -> DagsterTriggeredRun:
        """
        A run of the deployment, by Metaflow run id (or Dagster run id).
        """
        from .runs import metaflow_run_of

        deployed = cls.from_deployment(identifier, metadata)
        run_id = metaflow_run_of(_target(deployed.deployer), deployed.flow_name, run_id)
        content = json.dumps({
            "metadata": deployed.deployer.metadata,
            "pathspec": "%s/%s" % (deployed.flow_name, run_id),
            "name": run_id,
        })
        return DagsterTriggeredRun(deployer=deployed.deployer, content=content)


def _parameter_args(definitions_file: str, kwargs: dict, method: str) -> list:
    """`--<parameter> <value>` for each Parameter given by its Python name (as the click
    API names options: dashes as underscores), checked against the Parameters the
    deployment was compiled with."""
    from .definitions import DefinitionsFile

    if not kwargs:
        return []
    known = {p.name.replace("-", "_").lower(): p
             for p in DefinitionsFile(definitions_file).plan.parameters}
    args = []
    for key, value in kwargs.items():
        param = known.get(key.lower())
        if param is None:
            raise TypeError("%s() got an unexpected keyword argument %r: the flow's "
                            "Parameters are %s" % (method, key, ", ".join(sorted(known))
                                                   or "none"))
        if value is None:
            continue
        if param.type == "json" and not isinstance(value, str):
            value = json.dumps(value)
        args += ["--" + param.name, str(value)]
    return args


def _project_kwargs(branch_name: Optional[str]) -> dict:
    """The Deployer's options that give an @project branch, as Argo's from_deployment
    derives them (a user branch is the current user's)."""
    if not branch_name:
        return {}
    if branch_name == "prod":
        return {"production": True}
    for prefix, kwargs in (("prod.", {"production": True}), ("test.", {})):
        if branch_name.startswith(prefix):
            return dict(kwargs, branch=branch_name[len(prefix):])
    return {}


def _record(identifier: str, dagster_home: Optional[str] = None) -> RegisteredDeployment:
    """The deployment of an identifier; of the path of a definitions file or of a job
    name, among those recorded in the Dagster home."""
    if identifier.lstrip().startswith("{"):
        return RegisteredDeployment.from_identifier(identifier)
    from ..compiler.compile import job_name_for
    from .targets.home import dagster_home as resolve_home

    records = registered_deployments(dagster_home)
    if os.path.isfile(identifier):
        path = os.path.abspath(identifier)
        matches = [r for r in records if r.definitions_file == path]
    else:
        # `project.branch.Flow` is the job name before it is made a Dagster name; Argo's
        # template names are the same, lower-cased.
        job_name = job_name_for(identifier, {}).lower()
        matches = [r for r in records if r.job_name.lower() == job_name]
    if len(matches) == 1:
        return matches[0]
    home = resolve_home(dagster_home)
    if not matches:
        raise ValueError(
            "No Dagster deployment %r in the Dagster home %s (its deployments: %s). Give "
            "`deployed_flow.name`, the path of the definitions file, or the job name "
            "(`project.branch.FlowName` for an @project flow), with the Dagster home "
            "`dagster create` used." % (identifier, home, ", ".join(
                sorted(r.job_name for r in records)) or "none"))
    raise ValueError(
        "%r names %d Dagster deployments in %s: %s. Give `deployed_flow.name` or the path "
        "of the definitions file." % (identifier, len(matches), home, ", ".join(
            sorted(r.definitions_file for r in matches))))
