import os
import sys
from pathlib import Path

import pytest

# Metaflow refuses to run without a user name; CI and these machines run as root.
os.environ.setdefault("METAFLOW_USER", "tester")
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def dagster_home(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    return home


@pytest.fixture(autouse=True)
def token_home(tmp_path, monkeypatch):
    """`dagster create` keeps production tokens in METAFLOW_TOKEN_HOME (~/.metaflowconfig by
    default): give each test its own, for every process the harness starts."""
    monkeypatch.setenv("METAFLOW_TOKEN_HOME", str(tmp_path / "tokens"))


@pytest.fixture(autouse=True)
def user_home(tmp_path, monkeypatch):
    """A home directory of the test's own, for every process the harness starts: the
    commands' default Dagster home (~/.metaflow_dagster/dagster_home, when DAGSTER_HOME
    is unset) goes there, not into the home of whoever runs the tests."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))


@pytest.fixture(autouse=True, scope="session")
def no_stray_datastore(tmp_path_factory):
    """Metaflow's local datastore is the first `.metaflow` folder found walking up from a
    flow's directory: one left above the tests' temporary directories (e.g. /tmp/.metaflow,
    from a flow once run in /tmp) would take every test's runs, and the Client reading
    from a test's own folder would find none of them. Refuse to start instead."""
    folder = tmp_path_factory.getbasetemp().resolve()
    for parent in folder.parents:
        stray = parent / ".metaflow"
        if stray.is_dir():
            pytest.exit("%s would hold the datastore of every test's flows (Metaflow looks "
                        "for .metaflow in each parent folder): remove it, or run pytest "
                        "with --basetemp elsewhere." % stray, returncode=2)
