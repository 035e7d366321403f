"""Opening the embedded instance (deploy/home.open_instance): the dagster.yaml it
writes in a home that has none, and what a damaged instance says."""

import sqlite3
import subprocess

from harness import FLOWS, PYTHON, copy_flow, env_for

from metaflow_dagster.deploy.targets.home import open_instance


def test_a_new_home_gets_run_monitoring_and_run_retries(tmp_path):
    with open_instance(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["poll_interval_seconds"] == 30
        # Only jobs made with `create --run-retries` have retries (dagster/max_retries).
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 0


def test_a_damaged_instance_names_its_directory_and_what_to_do(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with open_instance(str(home)):
        pass
    # What concurrent first use left behind before the lock: two alembic heads.
    with sqlite3.connect(home / "history" / "runs.db") as db:
        db.execute("INSERT INTO alembic_version VALUES ('0123456789ab')")
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    proc = subprocess.run([PYTHON, flow_file.name, "dagster", "status"], cwd=flow_file.parent,
                          capture_output=True, text=True, env=env_for(home))
    assert proc.returncode == 1, proc.stderr
    assert "The Dagster instance in %s is damaged and cannot be opened" % home in proc.stderr
    assert "more than one head" in proc.stderr
    assert "move its storage aside" in proc.stderr
    assert "Internal error" not in proc.stderr
