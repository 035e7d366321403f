"""The production token of a deployment, read at run time from where `dagster create`
keeps it: the flow's datastore (as Metaflow's Airflow integration keeps its own),
never the definitions file. Tasks get it as METAFLOW_PRODUCTION_TOKEN, which
Metaflow turns into the run's `production:<token>` namespace."""

import threading
from typing import Dict, Tuple

from ...deployment_record import read_local_record, read_record, record_path
from ...naming import sysroot_env
from ...plan import FlowPlan
from ..datastore import plan_datastore
from . import DeploymentUnavailable
from .settings import datastore_location, setting_source


class TokenMissing(DeploymentUnavailable):
    """The deployment's record is not in the datastore the tasks use."""


_tokens: Dict[Tuple[str, str, str], str] = {}
_lock = threading.Lock()


def production_token(plan: FlowPlan) -> str:
    """The deployment's token, read once per process (a redeployment that changes it
    writes a new definitions file, which Dagster loads in new processes)."""
    ds_type, ds_root = datastore_location(plan)
    key = (ds_type, ds_root, plan.job_name)
    with _lock:
        if key not in _tokens:
            if ds_type == "local" and ds_root:
                record = read_local_record(ds_root, plan.job_name)
            else:
                flow_ds = plan_datastore(plan)
                ds_root = flow_ds.datastore_root
                record = read_record(flow_ds._storage_impl, plan.job_name)
            if record is None:
                raise TokenMissing(
                    "The deployment of %s has no record (%s) in the datastore %s, so its "
                    "production token is unknown. Check %s, or run `dagster create` again."
                    % (plan.job_name, record_path(plan.job_name), ds_root,
                       setting_source(plan, sysroot_env(ds_type))))
            _tokens[key] = record[1]
        return _tokens[key]
