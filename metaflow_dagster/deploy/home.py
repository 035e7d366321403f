"""Which Dagster home the user's commands work in."""

import os

from .errors import CommandError


def dagster_home(explicit=None) -> str:
    """DAGSTER_HOME (or `explicit`): an absolute path to an existing directory."""
    home = explicit or os.environ.get("DAGSTER_HOME")
    if not home:
        raise CommandError(
            "DAGSTER_HOME is not set. Set it to the Dagster home to run in (the one "
            "`dagster dev` uses), or pass --dagster-url to submit to a running Dagster."
        )
    if not os.path.isabs(home) or not os.path.isdir(home):
        raise CommandError(
            "DAGSTER_HOME=%s must be an absolute path to an existing directory." % home
        )
    return home
