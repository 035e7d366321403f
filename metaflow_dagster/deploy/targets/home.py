"""Which Dagster home the user's commands work in.

DAGSTER_HOME when it is set; otherwise one default home, the same for every
command (`trigger`, `status`, `resume`, `terminate`, `suspend`, `send-event`...)
and the Deployer API: ~/.metaflow_dagster/dagster_home (naming.DEFAULT_DAGSTER_HOME;
`python -m metaflow_dagster home` prints it), so
`DAGSTER_HOME=$(python -m metaflow_dagster home) dg dev -f FILE` shows their runs.

A home that does not exist yet, the default or an explicit DAGSTER_HOME, is
created on first use with a dagster.yaml: telemetry off (no banner in our
commands' output) and run monitoring on (a `dg dev` on it monitors runs).
The command that creates it says where it is, once.
"""

import fcntl
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from typing import Optional

from ...files import write_atomically
from ...naming import DEFAULT_DAGSTER_HOME
from ..errors import CommandError

# What a dagster.yaml we write holds: no telemetry (no banner in our commands'
# output), and run monitoring, so that a daemon (`dg dev`) fails runs stuck
# starting or cancelling and enforces dagster/max_runtime. (Runs whose worker dies
# are failed by the runs' own reaper, runtime/executors/workers.py.) Run retries, so that
# the daemon retries the runs of jobs made with `create --run-retries` (the others have no
# dagster/max_retries tag and are not retried).
DAGSTER_YAML = """\
# Written by metaflow-dagster when it created this Dagster home.
telemetry:
  enabled: false
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
run_retries:
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
                "point `dg dev` at it with DAGSTER_HOME=%s).\n" % (home, home))
    return home


# Where our commands keep their own files inside a Dagster home.
OUR_DIR = "metaflow_dagster"
# Held (fcntl) by every command of ours while it opens the instance: the first
# opening creates the SQLite storage, which two processes at once can damage.
INSTANCE_LOCK = os.path.join(OUR_DIR, "instance.lock")


@contextmanager
def open_instance(home: str):
    """The Dagster instance of `home`, opened (its storage created, the first time)
    under a lock in the home; a damaged instance is a CommandError saying what to do."""
    from dagster import DagsterInstance

    os.makedirs(os.path.join(home, OUR_DIR), exist_ok=True)
    with open(os.path.join(home, INSTANCE_LOCK), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not os.path.exists(os.path.join(home, "dagster.yaml")):
                write_atomically(os.path.join(home, "dagster.yaml"), DAGSTER_YAML)
            instance = DagsterInstance.from_config(home)
        except Exception as error:
            if not _is_storage_error(error):
                raise
            raise CommandError(
                "The Dagster instance in %s is damaged and cannot be opened (%s). If no "
                "Dagster process is using it, move its storage aside (the directories history, "
                "storage and schedules in %s; the run history they hold is then gone from "
                "Dagster, not from Metaflow) and run the command again, or set DAGSTER_HOME to "
                "another directory." % (home, str(error).splitlines()[0], home)) from None
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    with instance:
        yield instance


def _is_storage_error(error: Exception) -> bool:
    import sqlite3

    from alembic.util.exc import CommandError as AlembicError
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(error, (SQLAlchemyError, AlembicError, sqlite3.Error))


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
