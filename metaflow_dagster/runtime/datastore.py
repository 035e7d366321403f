"""The Metaflow datastore the tasks of a plan write to, opened once per process."""

import threading
from functools import lru_cache

from ..plan import FlowPlan
from .launch.settings import apply_to_process, datastore_location


@lru_cache(maxsize=None)
def flow_datastore(flow_name: str, ds_type: str, ds_root: str):
    from ..task.datastore import open_flow_datastore  # imports metaflow

    return open_flow_datastore(flow_name, ds_type, ds_root)


# The threads of several ops may all be first to need Metaflow.
# Importing it from two threads at once can hand one of them a partly initialised
# module (metaflow's package imports are circular), so the first open, which
# imports it, happens under this lock: the runtime opens the datastore before it
# imports anything else from metaflow. Metaflow reads its configuration at that
# import, so the plan's settings are applied to the process just before.
_first_open = threading.Lock()


def plan_datastore(plan: FlowPlan):
    with _first_open:
        apply_to_process(plan)
        return flow_datastore(plan.flow_name, *datastore_location(plan))


def task_is_done(plan: FlowPlan, run_id: str, step: str, task_id: str) -> bool:
    """Whether an attempt of the task finished (Metaflow's DONE marker) in the datastore."""
    from metaflow.datastore.exceptions import DataException

    try:
        plan_datastore(plan).get_task_datastore(run_id, step, task_id)
    except DataException:
        return False
    return True
