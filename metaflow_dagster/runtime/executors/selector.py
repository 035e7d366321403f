"""The executor of every compiled job: one of Dagster's executors, chosen in run config.

A Dagster job has one executor definition, but that definition's config is run
config. So the job's executor is a selector over four stock executors, with
the one `dagster create --executor` chose as the default:

    execution:
      config:
        celery: {broker: "redis://...", backend: "redis://..."}

- metaflow: ops as threads of the run process (threads.py);
- multiprocess: Dagster's multiprocess executor (forkserver by default);
- celery: dagster-celery's workers (celery.py);
- k8s: dagster-k8s's k8s_job_executor (the instance must use K8sRunLauncher).

Whatever the choice, the executor gets the per-foreach cap (--max-workers) as a
tag concurrency limit, the job's pool gets its limit (--pool-limit) on the
instance if it has none yet, a run whose end step was skipped fails
(end_check.py), and the run worker sends Metaflow's run heartbeat while the run
executes, if the tasks use a metadata service (run_heartbeat.py). Unknown or
misspelt keys are rejected, never ignored: by Dagster when the run is submitted
(metaflow, multiprocess and the create-time choice), or when the run starts,
before any step (the other optional executors, whose packages are imported only
when used: importing dagster-k8s alone takes seconds).
"""

import importlib.util
from typing import Optional

from dagster import (
    Field,
    InitExecutorContext,
    Permissive,
    Selector,
    executor,
    multiple_process_executor_requirements,
    multiprocess_executor,
)
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError

from ... import naming
from ..ops import FlowRuntime
from .end_check import EndMustRun
from .multiprocess import metaflow_multiprocess_executor
from .run_heartbeat import HeartbeatingExecutor
from .threads import metaflow_task_executor

PRELOADED = ["dagster", "metaflow_dagster.runtime"]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _optional_schema(choice: str):
    """The config schema of an optional executor, importing its package."""
    if choice == "celery":
        from .celery import celery_config_schema

        return celery_config_schema()
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.config_schema.as_field().config_type


def _branches(default: str) -> dict:
    branches = {
        "metaflow": metaflow_task_executor.config_schema.as_field(),
        "multiprocess": multiprocess_executor.config_schema.as_field(),
    }
    for choice in naming.EXECUTOR_PACKAGES:
        if choice == default:
            branches[choice] = Field(_optional_schema(choice), is_required=False)
        else:
            branches[choice] = Field(
                Permissive(), is_required=False,
                description="Checked when the run starts (needs %s)."
                % naming.EXECUTOR_PACKAGES[choice][0].replace("_", "-"))
    return branches


def flow_executor(default: str, foreach_limit: int, pool: Optional[str] = None,
                  pool_limit: Optional[int] = None):
    """The executor definition of a compiled job (see the module docstring)."""
    missing = naming.executor_package_missing(default, _installed)
    if missing:
        raise ImportError(missing)

    @executor(
        name="metaflow_flow",
        config_schema=Field(Selector(_branches(default)), default_value={default: {}},
                            description="The executor that runs the job's ops: one of %s."
                            % ", ".join(naming.EXECUTORS)),
        requirements=multiple_process_executor_requirements(),
    )
    def metaflow_flow_executor(init_context):
        (choice, config), = init_context.executor_config.items()
        if choice in naming.EXECUTOR_PACKAGES and choice != default:
            config = _checked(choice, config)
        config = _with_foreach_limit(config, foreach_limit)
        _ensure_pool_limit(init_context.instance, pool, pool_limit)
        # Metaflow's run heartbeat, from the run worker whatever the executor.
        return EndMustRun(HeartbeatingExecutor(_create(choice, config, init_context),
                                               FlowRuntime.plan_of_job))

    return metaflow_flow_executor


def _checked(choice: str, config: dict) -> dict:
    missing = naming.executor_package_missing(choice, _installed)
    if missing:
        raise DagsterInvalidConfigError(
            "Error in config for the %s executor: %s" % (choice, missing), [], config)
    result = process_config(Field(_optional_schema(choice)).config_type, config)
    if not result.success:
        raise DagsterInvalidConfigError(
            "Error in config for the %s executor" % choice, result.errors, config)
    return result.value


def _with_foreach_limit(config: dict, limit: int) -> dict:
    """At most `limit` mapped ops of one foreach at once, per run (unless the run
    config sets its own limit on the same tag)."""
    limits = list(config.get("tag_concurrency_limits") or [])
    if not any(item["key"] == naming.TAG_FOREACH for item in limits):
        limits.append({"key": naming.TAG_FOREACH, "value": {"applyLimitPerUniqueValue": True},
                       "limit": limit})
    return dict(config, tag_concurrency_limits=limits)


def _ensure_pool_limit(instance, pool: Optional[str], limit: Optional[int]) -> None:
    """Give the job's pool its limit on the instance, unless someone already set one
    (`dagster instance concurrency set`, the UI): the instance's value wins."""
    storage = instance.event_log_storage
    if not pool or not limit or not storage.supports_global_concurrency_limits:
        return
    if pool not in storage.get_concurrency_keys():
        storage.set_concurrency_slots(pool, limit)


def _create(choice: str, config: dict, init_context):
    if choice == "celery":
        from .celery import celery_step_executor

        return celery_step_executor(config)
    if choice == "metaflow":
        definition = metaflow_task_executor
    elif choice == "multiprocess":
        definition = metaflow_multiprocess_executor  # Dagster's, with the run supervised
        if not config.get("start_method"):
            # About 2x faster op start than spawn on a 2-core box.
            config = dict(config, start_method={"forkserver": {"preload_modules": PRELOADED}})
    else:
        from dagster_k8s import K8sRunLauncher, k8s_job_executor

        if not isinstance(init_context.instance.run_launcher, K8sRunLauncher):
            raise DagsterInvalidConfigError(
                "The k8s executor needs an instance whose run launcher is K8sRunLauncher "
                "(dagster.yaml: run_launcher: {module: dagster_k8s, class: K8sRunLauncher}); "
                "this instance uses %s." % type(init_context.instance.run_launcher).__name__,
                [], config)
        definition = k8s_job_executor
    return definition.executor_creation_fn(InitExecutorContext(
        job=init_context.job, executor_def=definition, executor_config=config,
        instance=init_context.instance))
