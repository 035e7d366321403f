"""Saves a task's stdout and stderr into its Metaflow datastore, where the Client
API (`Task(...).stdout`) and `python flow.py logs` find them, as after
`python flow.py run`. (Metaflow's own runtime does the same for its workers.)

A task that Metaflow's compute layer ran saves its own logs from its container;
what the op saw there is the launcher's (`kubernetes step`) output, saved as the
runtime's log source, as Metaflow's runtime saves its workers' output."""

from ..plan import FlowPlan
from .datastore import plan_datastore


def save_task_logs(plan: FlowPlan, pathspec, attempt, stdout, stderr, launcher_only=False):
    run_id, step, task_id = pathspec.split("/")
    task_ds = plan_datastore(plan).get_task_datastore(
        run_id, step, task_id, attempt=attempt, mode="w"
    )
    # After plan_datastore, which imports metaflow (see datastore.py).
    from metaflow.mflog import RUNTIME_LOG_SOURCE, TASK_LOG_SOURCE
    from metaflow.mflog.mflog import decorate

    source = RUNTIME_LOG_SOURCE if launcher_only else TASK_LOG_SOURCE

    def as_log(data: bytes) -> bytes:
        return b"".join(decorate(source, line) for line in data.splitlines(True))

    task_ds.save_logs(source, {"stdout": as_log(stdout), "stderr": as_log(stderr)})
