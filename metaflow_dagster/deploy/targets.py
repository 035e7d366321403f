"""Where the user's commands send runs. Each target answers the same questions:
launch a run, terminate it, the state of a run and of its steps, the runs of a
flow.

- the embedded default: the Dagster instance of DAGSTER_HOME (embedded.py);
- a running Dagster deployment reached through its GraphQL API (graphql.py).
"""

import os
from typing import Optional

from .. import naming
from .embedded import EmbeddedTarget
from .graphql import GraphQLTarget


def target_for(dagster_url: Optional[str] = None, dagster_home: Optional[str] = None):
    """The GraphQL target if a URL is given (or METAFLOW_DAGSTER_URL is set), else
    the embedded instance of DAGSTER_HOME."""
    url = dagster_url or os.environ.get(naming.DAGSTER_URL_ENV)
    if url:
        return GraphQLTarget(url)
    return EmbeddedTarget(dagster_home)
