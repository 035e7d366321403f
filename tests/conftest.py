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
