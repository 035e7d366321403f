"""Dagster's own multiprocess executor (each step in a process of its own), with
the run supervised as under our executor: the run worker is recorded and, if it
dies, the run's tasks are stopped and the run is failed (workers.py). Same config
as `dagster.multiprocess_executor`."""

from dagster import executor, multiple_process_executor_requirements
from dagster._core.definitions.executor_definition import (
    MULTI_PROC_CONFIG,
    _core_multiprocess_executor_creation,
)

from .workers import supervised_run
from .wrapping import WrappingExecutor


class SupervisedExecutor(WrappingExecutor):
    """Another executor's work, inside supervised_run."""

    def execute(self, plan_context, execution_plan):
        with supervised_run(plan_context):
            yield from self.inner.execute(plan_context, execution_plan)


@executor(name="multiprocess", config_schema=MULTI_PROC_CONFIG,
          requirements=multiple_process_executor_requirements())
def metaflow_multiprocess_executor(init_context):
    """Dagster's multiprocess executor, with the run worker supervised."""
    return SupervisedExecutor(_core_multiprocess_executor_creation(init_context.executor_config))
