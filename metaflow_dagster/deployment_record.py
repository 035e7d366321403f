"""The record `dagster create` keeps of each deployment in the flow's datastore
(its owner and production token, as Metaflow's Airflow integration keeps its
own): written by the CLI, read back by the ops at run time. Works on any of
Metaflow's datastore storages (`flow_datastore._storage_impl`)."""

import json
import os
from io import BytesIO
from typing import Optional, Tuple

from .naming import DEPLOYMENTS_STORAGE_ROOT


def record_path(job_name: str) -> str:
    return os.path.join(DEPLOYMENTS_STORAGE_ROOT, job_name)


def read_record(storage, job_name: str) -> Optional[Tuple[str, str]]:
    """(owner, production token) of the deployment of `job_name`, or None."""
    path = record_path(job_name)
    if not storage.is_file([path])[0]:
        return None
    with storage.load_bytes([path]) as results:
        for _, local_path, _ in results:
            if local_path is not None:
                return _owner_and_token(local_path)
    return None


def read_local_record(datastore_root: str, job_name: str) -> Optional[Tuple[str, str]]:
    """read_record of a local datastore, without Metaflow: its storage keeps the record
    as the file itself (LocalStorage.save_bytes)."""
    path = os.path.join(datastore_root, record_path(job_name))
    return _owner_and_token(path) if os.path.isfile(path) else None


def _owner_and_token(path: str) -> Tuple[str, str]:
    with open(path) as f:
        data = json.load(f)
    return data["owner"], data["production_token"]


def write_record(storage, job_name: str, owner: str, token: str) -> None:
    record = json.dumps({"production_token": token, "owner": owner}).encode("utf-8")
    storage.save_bytes([(record_path(job_name), BytesIO(record))], overwrite=True)
