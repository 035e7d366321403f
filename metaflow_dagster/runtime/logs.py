"""Saves a task's stdout and stderr into its Metaflow datastore, where the Client
API (`Task(...).stdout`) and `python flow.py logs` find them, as after
`python flow.py run`. (Metaflow's own runtime does the same for its workers.)"""

from functools import lru_cache


@lru_cache(maxsize=None)
def _flow_datastore(flow_name: str, ds_type: str, ds_root: str):
    from metaflow.datastore import FlowDataStore
    from metaflow.plugins import DATASTORES

    storage = next(d for d in DATASTORES if d.TYPE == ds_type)
    return FlowDataStore(flow_name, None, storage_impl=storage, ds_root=ds_root or None)


def save_task_logs(flow_name, ds_type, ds_root, pathspec, attempt, stdout, stderr):
    from metaflow.mflog import TASK_LOG_SOURCE
    from metaflow.mflog.mflog import decorate

    run_id, step, task_id = pathspec.split("/")
    task_ds = _flow_datastore(flow_name, ds_type, ds_root).get_task_datastore(
        run_id, step, task_id, attempt=attempt, mode="w"
    )

    def as_log(data: bytes) -> bytes:
        return b"".join(decorate(TASK_LOG_SOURCE, line) for line in data.splitlines(True))

    task_ds.save_logs(TASK_LOG_SOURCE, {"stdout": as_log(stdout), "stderr": as_log(stderr)})
