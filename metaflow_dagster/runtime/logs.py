"""Saves a task's stdout and stderr into its Metaflow datastore, where the Client
API (`Task(...).stdout`) and `python flow.py logs` find them, as after
`python flow.py run`. (Metaflow's own runtime does the same for its workers.)"""

from ..plan import FlowPlan
from .datastore import plan_datastore


def save_task_logs(plan: FlowPlan, pathspec, attempt, stdout, stderr):
    run_id, step, task_id = pathspec.split("/")
    task_ds = plan_datastore(plan).get_task_datastore(
        run_id, step, task_id, attempt=attempt, mode="w"
    )
    # After plan_datastore, which imports metaflow (see datastore.py).
    from metaflow.mflog import TASK_LOG_SOURCE
    from metaflow.mflog.mflog import decorate

    def as_log(data: bytes) -> bytes:
        return b"".join(decorate(TASK_LOG_SOURCE, line) for line in data.splitlines(True))

    task_ds.save_logs(TASK_LOG_SOURCE, {"stdout": as_log(stdout), "stderr": as_log(stderr)})
