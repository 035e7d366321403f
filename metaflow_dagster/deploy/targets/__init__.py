"""Where the user's commands send runs. Each target answers the same questions:
launch a run, terminate it, tag it (suspend), the state of a run and of its
steps, what its failed steps said, its event log, the runs of a flow.

- the embedded default: the Dagster instance of the Dagster home (DAGSTER_HOME,
  or the default one; home.py, embedded.py);
- a running Dagster deployment reached through its GraphQL API (graphql.py).
"""

import os
from typing import Dict, List, Optional, Protocol

from ... import naming
from ..definitions import DefinitionsFile
from ..runs import RunState
from .embedded import EmbeddedTarget
from .graphql import GraphQLTarget


class Target(Protocol):
    """What the user's commands ask of wherever runs go."""

    def describe(self) -> str:
        """Where runs go, for messages ("the Dagster instance at ...")."""

    def queue_warning(self) -> Optional[str]:
        """Why a run just launched may stay queued, if it may."""

    def prepare_launch(self, directory: str) -> None:
        """Get ready to launch a run of a job whose definitions file is in `directory`
        (the embedded target starts the process that will execute it)."""

    def launch(self, job: DefinitionsFile, config: dict, tags: Dict[str, str]) -> str:
        """Start a run of the job; its Dagster run id."""

    def run_state(self, run_id: str) -> Optional[RunState]:
        """The run and its steps; None if there is no such run."""

    def terminate(self, run_id: str) -> None:
        """Stop the run and its tasks."""

    def flow_runs(self, flow_name: str, limit: int,
                  job_name: Optional[str] = None) -> List[RunState]:
        """Runs of the flow (of one job of it), newest first, without step states."""

    def tag_run(self, run_id: str, tags: Dict[str, str]) -> None:
        """Add tags to the run (suspend, unsuspend)."""

    def failure_messages(self, run_id: str) -> List[str]:
        """What the failed steps of the run said."""

    def run_events(self, run_id: str, cursor: Optional[str] = None):
        """The run's event log after `cursor`: ([(timestamp, level, step key, event
        type, message)], the next cursor)."""


def target_for(dagster_url: Optional[str] = None,
               dagster_home: Optional[str] = None) -> Target:
    """The GraphQL target if a URL is given (or METAFLOW_DAGSTER_URL is set), else
    the embedded instance of the Dagster home."""
    url = dagster_url or os.environ.get(naming.DAGSTER_URL_ENV)
    if url:
        return GraphQLTarget(url)
    return EmbeddedTarget(dagster_home)
