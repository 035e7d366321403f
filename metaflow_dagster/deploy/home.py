"""Which Dagster home the user's commands work in."""

import fcntl
import os
from contextlib import contextmanager

from ..files import write_atomically
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


# Where our commands keep their own files inside a Dagster home.
OUR_DIR = "metaflow_dagster"
# Held (fcntl) by every command of ours while it opens the instance: the first
# opening creates the SQLite storage, which two processes at once can damage.
INSTANCE_LOCK = os.path.join(OUR_DIR, "instance.lock")
# What a dagster.yaml we write holds: run monitoring, so that a daemon (`dagster
# dev`) fails runs stuck starting or cancelling and enforces dagster/max_runtime.
# (Runs whose worker dies are failed by the runs' own reaper, runtime/workers.py.)
DAGSTER_YAML = "run_monitoring:\n  enabled: true\n  poll_interval_seconds: 30\n"


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
