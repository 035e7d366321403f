"""Saves a task's stdout and stderr into its Metaflow datastore (task/metaflow_logs.py):
through the task template when the run's tasks are forked from one, where Metaflow
is imported already; here otherwise.

A task that Metaflow's compute layer ran saves its own logs from its container;
what the op saw there is the launcher's (`kubernetes step`) output, saved as the
runtime's log source, as Metaflow's runtime saves its workers' output."""

from ...plan import FlowPlan
from ..datastore import plan_datastore
from ..launch.task_template import save_logs_in_template


def save_task_logs(plan: FlowPlan, pathspec, attempt, stdout, stderr, launcher_only=False):
    source = "runtime" if launcher_only else "task"
    if save_logs_in_template(plan, pathspec, attempt, stdout, stderr, source):
        return
    flow_datastore = plan_datastore(plan)
    # After plan_datastore, which imports metaflow (see datastore.py).
    from ...task.metaflow_logs import save_logs

    save_logs(flow_datastore, pathspec, attempt, stdout, stderr, source)
