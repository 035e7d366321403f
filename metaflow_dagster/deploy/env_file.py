"""The `.env` file beside a definitions file, where `dagster create --notify-secrets-to-env-file`
keeps the secrets given on its command line. Dagster's CLI (`dagster dev`, `dagster-daemon
run`, the webserver) loads `.env` from the directory it starts in into the environment of
the code servers, where the notification sensors resolve their `EnvVar`s."""

import os
from typing import Dict

from ..files import write_atomically

ENV_FILE = ".env"


def save_secrets(directory: str, secrets: Dict[str, str]) -> str:
    """Set `secrets` (name -> value) in directory/.env, keeping its other lines; the
    file's path. Written whole or not at all, readable by its owner only."""
    path = os.path.join(directory, ENV_FILE)
    lines = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f
                     if line.split("=", 1)[0].strip() not in secrets]
    lines += ["%s='%s'" % (name, value) for name, value in sorted(secrets.items())]
    # Single quotes: python-dotenv reads the value as is (create refuses quotes in it).
    write_atomically(path, "\n".join(lines) + "\n")  # mkstemp: mode 0600
    return path
