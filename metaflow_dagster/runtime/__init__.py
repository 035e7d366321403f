"""Runs inside Dagster: what generated definitions files import, and everything
their ops, executor, hooks and sensors call. Never imports the CLI or the compiler.

This package's names are the one import surface of generated files.
"""

from .executor import metaflow_task_executor
from .flow_executor import flow_executor
from .multiprocess import metaflow_multiprocess_executor
from .notifications import SlackWebhook, notification_sensors
from .ops import FlowRuntime
from .outputs import task_paths_io_manager
from .sensors import event_sensor, finish_sensor

__all__ = [
    "FlowRuntime", "SlackWebhook", "event_sensor", "finish_sensor", "flow_executor",
    "metaflow_multiprocess_executor", "metaflow_task_executor", "notification_sensors",
    "task_paths_io_manager",
]
