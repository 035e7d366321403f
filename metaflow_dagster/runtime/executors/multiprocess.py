"""Dagster's own multiprocess executor (each step in a process of its own), with
the run supervised as under our executor: the run worker is recorded and, if it
dies, the run's tasks are stopped and the run is failed (workers.py). Same config
as `dagster.multiprocess_executor`."""

from dagster import executor, multiple_process_executor_requirements
from dagster._core.definitions.executor_definition import (
    MULTI_PROC_CONFIG,
    _core_multiprocess_executor_creation,
)
from dagster._core.executor.base import Executor

from .workers import supervised_run


class SupervisedExecutor(Executor):
    """Another executor's work, inside supervised_run."""

    def __init__(self, inner: Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        with supervised_run(plan_context):
            yield from self._inner.execute(plan_context, execution_plan)


@executor(name="multiprocess", config_schema=MULTI_PROC_CONFIG,
          requirements=multiple_process_executor_requirements())
def metaflow_multiprocess_executor(init_context):
    """Dagster's multiprocess executor, with the run worker supervised."""
    return SupervisedExecutor(_core_multiprocess_executor_creation(init_context.executor_config))
