"""The options of `dagster create` that shape the job but not the flow: what each must
be, and how it changes a plan. Pure: no flow, no Metaflow, no Dagster.

The CLI checks them with the flow's other problems (validate.py); the dg component
checks each YAML field with the same function, so both say the same thing, and applies
them to a stored plan when its definitions are loaded (a changed option needs no new
state).
"""

import importlib.util
from dataclasses import field, fields, make_dataclass, replace
from typing import List, Optional

from ..naming import executor_package_missing
from ..plan import FlowPlan, option_fields

SCHEDULE_STATUSES = ("running", "stopped")


# The plan's fields these options set (with the plan's types and defaults; `pool`
# left unset is the job name), and the @schedule's status.
JOB_FIELDS = ("tags", "namespace", "max_workers", "executor", "pool", "pool_limit",
              "workflow_timeout_seconds")
JobOptions = make_dataclass(
    "JobOptions",
    option_fields(JOB_FIELDS) + [("schedule_status", str, field(default="running"))],
    frozen=True)
JobOptions.__module__ = __name__
JobOptions.__doc__ = "The options that shape the job but not the flow."


def job_options_of(options) -> JobOptions:
    """The job options among a compile's options (compile.CompileOptions)."""
    return JobOptions(**{f.name: getattr(options, f.name) for f in fields(JobOptions)})


def max_workers_problem(value: int) -> str:
    return "--max-workers must be at least 1 (got %d)." % value if value < 1 else ""


def workflow_timeout_problem(value: Optional[int]) -> str:
    if value is not None and value <= 0:
        return "--workflow-timeout must be a positive number of seconds."
    return ""


def pool_limit_problem(value: Optional[int]) -> str:
    if value is not None and value < 1:
        return "--pool-limit must be at least 1 (got %d)." % value
    return ""


def pool_problem(value: Optional[str]) -> str:
    if value is not None and (not value or any(c.isspace() for c in value)):
        return "--pool must be a name without spaces (got %r)." % value
    return ""


def executor_problem(value: str) -> str:
    """An executor whose package is not installed (the choice itself is checked by the
    front door: click.Choice, the YAML schema, both from naming.EXECUTORS)."""
    return executor_package_missing(value, module_found)


def job_option_problems(options: JobOptions) -> List[str]:
    """Every problem of these options, each as the CLI words it."""
    problems = [
        max_workers_problem(options.max_workers),
        workflow_timeout_problem(options.workflow_timeout_seconds),
        pool_limit_problem(options.pool_limit),
        pool_problem(options.pool),
    ]
    return [p for p in problems if p]


def apply_job_options(plan: FlowPlan, options: JobOptions) -> FlowPlan:
    """The plan with these options (the flow's part of the plan is left as it is)."""
    schedule = plan.schedule
    if schedule:
        schedule = dict(schedule, status=options.schedule_status.upper())
    return replace(
        plan,
        tags=list(options.tags),
        namespace=options.namespace,
        max_workers=options.max_workers,
        executor=options.executor,
        pool=options.pool or plan.job_name,
        pool_limit=options.pool_limit,
        workflow_timeout_seconds=options.workflow_timeout_seconds,
        schedule=schedule,
    )


def module_found(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
