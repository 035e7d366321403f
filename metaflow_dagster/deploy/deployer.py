"""Metaflow's Deployer API on Dagster: `Deployer("flow.py").dagster().create()`.

The same contract as Metaflow's Argo Workflows deployer: `create` runs
`python flow.py [top-level options] dagster create --deployer-attribute-file F`,
which writes the deployment's identifier to F (a FIFO the deployer reads).

A deployment is a definitions file (see registry.py for its identifier); the
objects the deployer hands out are in deployed_flow.py.

This module is imported whenever Metaflow loads its plugins: keep it light.
"""

import os
from typing import Any, ClassVar, Dict, Optional

from metaflow.runner.deployer_impl import DeployerImpl

from ..naming import DAGSTER_URL_ENV


class DagsterDeployer(DeployerImpl):
    """
    Deployer implementation for Dagster.

    Parameters
    ----------
    dagster_url : str, optional, default None
        URL of a running Dagster webserver (`dagster dev`, or webserver + daemon) to
        submit runs to. Without it, runs execute in the Dagster instance of the
        Dagster home.
    dagster_home : str, optional, default None
        DAGSTER_HOME for the deployment's commands (default: the environment's, or
        ~/.metaflow_dagster/dagster_home when it is unset; created if missing).
    """

    TYPE: ClassVar[Optional[str]] = "dagster"

    def __init__(self, deployer_kwargs: Dict[str, str], **kwargs):
        deployer_kwargs = dict(deployer_kwargs)
        self.dagster_url = deployer_kwargs.pop("dagster_url", None)
        self.dagster_home = deployer_kwargs.pop("dagster_home", None)
        if deployer_kwargs:
            raise TypeError(
                "Unknown options for the Dagster deployer: %s (known: dagster_url, "
                "dagster_home)" % ", ".join(sorted(deployer_kwargs))
            )
        super().__init__(**kwargs)
        # The commands the deployer runs learn the target from their environment.
        if self.dagster_url:
            self.env_vars[DAGSTER_URL_ENV] = self.dagster_url
        if self.dagster_home:
            self.env_vars["DAGSTER_HOME"] = os.path.abspath(self.dagster_home)

    @property
    def deployer_kwargs(self) -> Dict[str, Any]:
        # Options of the `dagster` command group itself: it has none.
        return {}

    @staticmethod
    def deployed_flow_type():
        from .deployed_flow import DagsterDeployedFlow

        return DagsterDeployedFlow

    def from_deployment(self, identifier: str, metadata: Optional[str] = None):
        """
        The deployed flow of an identifier, looked up in this deployer's Dagster home
        (see `DagsterDeployedFlow.from_deployment`). Its commands run with this
        deployer's `show_output`, `profile`, `env` and `file_read_timeout`; the flow
        file, its directory and @project branch are the deployment's.

        Parameters
        ----------
        identifier : str
            `deployed_flow.name`, the path of the definitions file, or the job name
            (`project.branch.FlowName` for an @project flow).
        metadata : str, optional
            Metaflow metadata of the runs (default: the current one).

        Returns
        -------
        DagsterDeployedFlow
            The deployed flow.
        """
        from .deployed_flow import DagsterDeployedFlow

        return DagsterDeployedFlow.from_deployment(
            identifier, metadata, dagster_home=self.env_vars.get("DAGSTER_HOME") or None,
            show_output=self.show_output, profile=self.profile, env=self.env,
            file_read_timeout=self.file_read_timeout)

    def create(self, **kwargs):
        """
        Compile the flow into a Dagster definitions file.

        Parameters
        ----------
        file : str, optional
            Where to write the definitions file (default: <job name>_dagster.py in
            the deployer's working directory, the job name being the flow name
            prefixed by @project name and branch).
        name : str, optional
            Job name (default: the flow name, prefixed by the @project name).
        tags : List[str], optional
            Metaflow tags for every task of every run.
        namespace : str, optional
            Metaflow namespace of the tasks.
        decospecs : List[str], optional
            Step decorators to add to every step (as `--with`).
        max_workers : int, optional, default 100
            Most tasks of one foreach running at once.
        workflow_timeout : int, optional
            Fail a run once it has run this many seconds.
        workflow_priority : int, optional
            Every run's place in the run queue (dagster/priority, higher first).
        workflow_title : str, optional
            Every run's title (the metaflow/title tag).
        workflow_description : str, optional
            The job's description, before the flow's docstring.
        run_retries : int, optional, default 0
            Re-execute a failed run from its failure up to this many times.
        notify_on_error, notify_on_success : bool, optional, default False
            Notify the channels below when a run fails for good / succeeds.
        notify_slack_webhook_url, notify_msteams_webhook_url,
        notify_pager_duty_integration_key : str, optional
            "env:NAME": the environment variable of the Dagster daemon holding the secret.

        Returns
        -------
        DagsterDeployedFlow
            The flow, deployed to Dagster.
        """
        from .deployed_flow import DagsterDeployedFlow

        return self._create(DagsterDeployedFlow, **kwargs)
