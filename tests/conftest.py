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
