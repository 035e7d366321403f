"""An executor that runs another executor's work with something around it (the
run's supervision, the end-step check): Dagster asks it for the inner one's retry
mode and step dependencies."""

from dagster._core.executor.base import Executor


class WrappingExecutor(Executor):
    """Subclasses override `execute`, calling `self.inner.execute` inside."""

    def __init__(self, inner: Executor):
        self.inner = inner

    @property
    def retries(self):
        return self.inner.retries

    @property
    def step_dependency_config(self):
        return self.inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        yield from self.inner.execute(plan_context, execution_plan)
