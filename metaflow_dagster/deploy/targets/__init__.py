"""Where the user's commands send runs. Each target answers the same questions:
launch a run, terminate it, tag it (suspend), the state of a run and of its
steps, what its failed steps said, its event log, the runs of a flow.

- the embedded default: the Dagster instance of the Dagster home (DAGSTER_HOME,
  or the default one; home.py, embedded.py);
- a running Dagster deployment reached through its GraphQL API (graphql.py).
"""

import os
from typing import Optional

from ... import naming
from .embedded import EmbeddedTarget
from .graphql import GraphQLTarget


def target_for(dagster_url: Optional[str] = None, dagster_home: Optional[str] = None):
    """The GraphQL target if a URL is given (or METAFLOW_DAGSTER_URL is set), else
    the embedded instance of the Dagster home."""
    url = dagster_url or os.environ.get(naming.DAGSTER_URL_ENV)
    if url:
        return GraphQLTarget(url)
    return EmbeddedTarget(dagster_home)
