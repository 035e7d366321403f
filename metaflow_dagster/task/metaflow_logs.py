"""How a task's stdout and stderr become its Metaflow logs, where the Client API
(`Task(...).stdout`) and `python flow.py logs` find them, as after `python flow.py
run` (Metaflow's own runtime saves its workers' output the same way).

Called with the output the op captured, in the op's process (runtime/report/metaflow_logs.py) or
in a process forked from the task template (task/template.py), which has
imported Metaflow already. Importing this module imports Metaflow.
"""

from metaflow.datastore import FlowDataStore
from metaflow.mflog import RUNTIME_LOG_SOURCE, TASK_LOG_SOURCE
from metaflow.mflog.mflog import decorate

# Metaflow's log sources: what the task printed, or what its launcher printed (a
# compute layer's `kubernetes step`, whose task saves its own logs remotely).
SOURCES = {"task": TASK_LOG_SOURCE, "runtime": RUNTIME_LOG_SOURCE}


def save_logs(flow_datastore: FlowDataStore, pathspec: str, attempt: int, stdout: bytes,
              stderr: bytes, source: str = "task") -> None:
    """Save the logs of attempt `attempt` of the task `run_id/step/task_id`."""
    run_id, step, task_id = pathspec.split("/")
    task_ds = flow_datastore.get_task_datastore(run_id, step, task_id, attempt=attempt,
                                                mode="w")

    def as_log(data: bytes) -> bytes:
        return b"".join(decorate(SOURCES[source], line) for line in data.splitlines(True))

    task_ds.save_logs(SOURCES[source], {"stdout": as_log(stdout), "stderr": as_log(stderr)})
