"""A throwaway persistent Dagster instance (SQLite under a temp DAGSTER_HOME)."""

import contextlib
import tempfile

from dagster import DagsterInstance


@contextlib.contextmanager
def temp_instance():
    """Yield (dagster_home, instance); telemetry is off so nothing prints a banner."""
    with tempfile.TemporaryDirectory() as home:
        with open("%s/dagster.yaml" % home, "w") as f:
            f.write("telemetry:\n  enabled: false\n")
        instance = DagsterInstance.from_config(home)
        try:
            yield home, instance
        finally:
            instance.dispose()
