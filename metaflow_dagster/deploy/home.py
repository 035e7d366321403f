"""Which Dagster home the user's commands work in.

DAGSTER_HOME when it is set; otherwise one default home, the same for every
command (`trigger`, `status`, `resume`, `terminate`, `suspend`, `send-event`...)
and the Deployer API: ~/.metaflow_dagster/dagster_home (naming.DEFAULT_DAGSTER_HOME;
`python -m metaflow_dagster home` prints it), so
`DAGSTER_HOME=$(python -m metaflow_dagster home) dagster dev -f FILE` shows their runs.

A home that does not exist yet, the default or an explicit DAGSTER_HOME, is
created on first use with a dagster.yaml: telemetry off (no banner in our
commands' output) and run monitoring on (a `dagster dev` on it monitors runs).
The command that creates it says where it is, once.
"""

import os
import shutil
import sys
import tempfile
from typing import Optional

from ..naming import DEFAULT_DAGSTER_HOME
from .errors import CommandError

DAGSTER_YAML = """\
# Written by metaflow-dagster when it created this Dagster home.
telemetry:
  enabled: false
run_monitoring:
  enabled: true
"""


def default_home() -> str:
    return os.path.expanduser(DEFAULT_DAGSTER_HOME)


def dagster_home(explicit: Optional[str] = None) -> str:
    """The Dagster home (`explicit`, else DAGSTER_HOME, else the default) as an
    absolute path to an existing directory, created if need be."""
    home = os.path.expanduser(explicit or os.environ.get("DAGSTER_HOME") or default_home())
    if not os.path.isabs(home):
        # Dagster itself (`dagster dev`, `dagster job execute`) refuses it.
        raise CommandError("DAGSTER_HOME=%s must be an absolute path, e.g. %s."
                           % (home, os.path.abspath(home)))
    if not os.path.isdir(home):
        if os.path.exists(home):
            raise CommandError("DAGSTER_HOME=%s is not a directory." % home)
        if create_home(home):
            sys.stderr.write(
                "Created the Dagster home %s (runs and deployments are recorded there; "
                "point `dagster dev` at it with DAGSTER_HOME=%s).\n" % (home, home))
    return home


def create_home(home: str) -> bool:
    """Create the Dagster home `home` with our dagster.yaml, whole: it is built
    beside its place and renamed there, so no process sees it without its
    dagster.yaml. False if another process created it first."""
    parent = os.path.dirname(home)
    try:
        os.makedirs(parent, exist_ok=True)
        building = tempfile.mkdtemp(dir=parent, prefix=".%s-" % os.path.basename(home))
    except OSError as error:
        raise CommandError("Could not create the Dagster home %s: %s" % (home, error)) from None
    with open(os.path.join(building, "dagster.yaml"), "w", encoding="utf-8") as f:
        f.write(DAGSTER_YAML)
    try:
        os.rename(building, home)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if os.path.isdir(home):
            return False
        raise
    return True
