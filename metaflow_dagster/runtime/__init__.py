"""Runs inside Dagster: what generated definitions files import, and everything
their ops, executor, hooks and sensors call. Never imports the CLI or the compiler.

This package's names are the one import surface of generated files (kept for files
written by earlier releases: tests/integration/test_runtime_import_surface.py). Inside,
a room per concern: executors/, launch/ (starting a task process), report/ (what
Dagster shows), triggers/ (sensors and events), and at the top what an op does
during a run.
"""

from .executors.multiprocess import metaflow_multiprocess_executor
from .executors.selector import flow_executor
from .executors.threads import metaflow_task_executor
from .ops import FlowRuntime
from .outputs import task_paths_io_manager
from .triggers.notifications import SlackWebhook, notification_sensors
from .triggers.sensors import event_sensor, finish_sensor

__all__ = [
    "FlowRuntime", "SlackWebhook", "event_sensor", "finish_sensor", "flow_executor",
    "metaflow_multiprocess_executor", "metaflow_task_executor", "notification_sensors",
    "task_paths_io_manager",
]
