"""Plan -> the arguments of every Dagster object its definitions hold, as plain data.

The one mapping from a plan to Dagster: render.py writes these arguments into the
definitions file, and the dg component (component/definitions.py) passes them to the
same Dagster constructors, so both front doors build the same definitions. Pure: no
Metaflow, no Dagster.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..naming import (
    NOTIFY_RESOURCE_KEYS,
    TAG_FOREACH,
    TAG_MAX_RETRIES,
    TAG_OP_TIMEOUT,
    TAG_PRIORITY,
    TAG_RETRY_STRATEGY,
    TAG_TITLE,
    flow_asset_key,
)
from ..plan import FlowPlan, OpPlan, ParameterPlan

# A pod's deadline comes this long after the step's @timeout: the op's own kill comes
# first (5 s after Metaflow's, then SIGKILL 10 s later); the rest lets the pod start.
K8S_DEADLINE_MARGIN_SECONDS = 120
# Dagster config type of each Parameter type (JSON Parameters are given as text).
CONFIG_TYPES = {"str": "str", "int": "int", "float": "float", "bool": "bool", "json": "str"}
# Each notification channel's Dagster resource: (module, class, the field its secret goes in).
CHANNEL_RESOURCES = {
    "msteams": ("dagster_msteams", "MSTeamsResource", "hook_url"),
    "pagerduty": ("dagster_pagerduty", "PagerDutyService", "routing_key"),
    "slack": ("metaflow_dagster.runtime", "SlackWebhook", "url"),
}


def op_input_names(op: OpPlan) -> List[str]:
    if op.fan_in:
        return ["branches"]
    if op.collects:
        return ["splits"]
    return list(op.inputs)


def op_description(plan: FlowPlan, op: OpPlan) -> str:
    """The step's docstring; a region also says which steps it runs."""
    parts = [plan.step(op.step).doc or ""]
    if op.kind == "region":
        parts.append("Runs the steps %s as one op." % ", ".join(op.steps))
    return "\n\n".join(p for p in parts if p)


def op_switch_cases(plan: FlowPlan, op: OpPlan) -> List[str]:
    """A switch op's outputs, one per case (each optional)."""
    return sorted(set(plan.step(op.step).switch_cases.values())) if op.kind == "switch" else []


def op_retry(plan: FlowPlan, op: OpPlan) -> Optional[Tuple[int, int]]:
    """(max_retries, delay in seconds) of the op's RetryPolicy; None for no policy (a
    region retries its tasks itself)."""
    step = plan.step(op.step)
    if op.kind == "region" or not step.total_retries:
        return None
    return step.total_retries, step.retry_delay_seconds


def config_parameters(plan: FlowPlan, op: OpPlan) -> List[ParameterPlan]:
    """The Parameters that are the op's config fields: the start op's only."""
    return list(plan.parameters) if op.step == plan.start_step else []


def op_tags(plan: FlowPlan, op: OpPlan) -> Dict[str, object]:
    tags: Dict[str, object] = {}
    timeouts = [plan.step(s).timeout_seconds for s in op.steps if plan.step(s).timeout_seconds]
    if op.kind != "region" and timeouts:
        tags[TAG_OP_TIMEOUT] = str(timeouts[0])
    step = plan.step(op.step)
    for key, value in step.resources.items():
        tags["metaflow-resources/%s" % key] = value
    # A step on Metaflow's compute layer gets its resources there; its op only waits.
    k8s = {} if step.compute else _k8s_config(plan, op)
    if k8s:
        tags["dagster-k8s/config"] = k8s
    if op.mapped_by:
        tags[TAG_FOREACH] = op.mapped_by
    return tags


def _k8s_resources(resources: Dict[str, str]) -> dict:
    """@resources as Kubernetes requests, for Dagster's k8s executor, in the units
    Metaflow's @kubernetes uses: memory and disk (ephemeral storage) in MB, and
    shared_memory (MiB) as a memory-backed /dev/shm volume."""
    requests = {}
    if "cpu" in resources:
        requests["cpu"] = resources["cpu"]
    if "memory" in resources:
        requests["memory"] = "%sM" % resources["memory"]
    if "disk" in resources:
        requests["ephemeral-storage"] = "%sM" % resources["disk"]
    limits = {"nvidia.com/gpu": resources["gpu"]} if "gpu" in resources else {}
    spec = {"requests": requests}
    if limits:
        spec["limits"] = limits
    config = {"container_config": {"resources": spec}}
    if "shared_memory" in resources:
        config["container_config"]["volume_mounts"] = [{"name": "dshm", "mount_path": "/dev/shm"}]
        config["pod_spec_config"] = {"volumes": [{"name": "dshm", "empty_dir": {
            "medium": "Memory", "size_limit": "%sMi" % resources["shared_memory"]}}]}
    return config


def _k8s_config(plan: FlowPlan, op: OpPlan) -> dict:
    """The op's pod under Dagster's k8s executor: the step's @resources, its
    @kubernetes image, and a deadline after its @timeout."""
    step = plan.step(op.step)
    config = _k8s_resources(step.resources) if step.resources else {}
    if op.kind != "region" and step.timeout_seconds:
        deadline = step.timeout_seconds + K8S_DEADLINE_MARGIN_SECONDS
        config["job_spec_config"] = {"active_deadline_seconds": deadline}
    return config


def job_tags(plan: FlowPlan) -> Dict[str, str]:
    tags = {"metaflow/flow_name": plan.flow_name}
    for key in ("project_name", "branch_name"):
        if plan.project.get(key):
            tags["metaflow/%s" % key] = plan.project[key]
    if plan.workflow_timeout_seconds:
        tags["dagster/max_runtime"] = str(plan.workflow_timeout_seconds)
    if plan.title:
        tags[TAG_TITLE] = plan.title
    if plan.priority is not None:
        tags[TAG_PRIORITY] = str(plan.priority)
    if plan.run_retries:
        # From the failure: the retry continues the Metaflow run of its root run,
        # reusing what succeeded (runtime/resume.py), as "Re-execute from failure" does.
        tags[TAG_MAX_RETRIES] = str(plan.run_retries)
        tags[TAG_RETRY_STRATEGY] = "FROM_FAILURE"
    return tags


def executor_args(plan: FlowPlan) -> Dict[str, object]:
    """flow_executor's arguments: the executor --executor chose, switchable in run
    config (execution: config: {celery: {...}}); whichever runs, --max-workers caps
    each foreach, and the job's pool gets --pool-limit (runtime/flow_executor.py)."""
    args: Dict[str, object] = {"default": plan.executor, "foreach_limit": plan.max_workers}
    if plan.pool_limit:
        args.update(pool=plan.pool, pool_limit=plan.pool_limit)
    return args


@dataclass(frozen=True)
class Argument:
    """What an op invocation passes for one input: the result of an op invoked before
    ("op", a switch's case output when `output` is set), the split of the enclosing
    foreach ("split"), or a foreach's splits, mapped and collected ("collect")."""

    op: str
    kind: str = "op"
    output: Optional[str] = None


@dataclass(frozen=True)
class Invocation:
    """One op invoked in the job's body, in the order the flow's steps run."""

    op: str
    arguments: List[Argument]
    # The arguments are passed as one list (a switch's branches meeting again).
    fan_in: bool = False
    # A later invocation uses its result.
    kept: bool = False
    # The @exit_hook success hook is attached to this invocation (the end op).
    success_hook: bool = False
    # For a foreach op: what runs for each of its splits; the last one's result is
    # what the foreach's join collects.
    each: List["Invocation"] = field(default_factory=list)


def job_body(plan: FlowPlan, mapped_by: Optional[str] = None) -> List[Invocation]:
    """How the job wires its ops, as the flow's `self.next(...)` calls do."""
    invocations = []
    for op in [o for o in plan.ops if o.mapped_by == mapped_by]:
        foreach = op.kind == "foreach" and not op.mapped_by
        invocations.append(Invocation(
            op=op.name,
            arguments=_arguments(plan, op),
            fan_in=op.fan_in,
            kept=foreach or any(op.name in other.inputs for other in plan.ops),
            success_hook=op.step == plan.end_step and bool(plan.exit_hooks.get("on_success")),
            each=job_body(plan, op.name) if foreach else [],
        ))
    return invocations


def _arguments(plan: FlowPlan, op: OpPlan) -> List[Argument]:
    if op.collects:
        return [Argument(plan.step(op.step).joins, "collect")]
    arguments = []
    for parent, output in zip(op.inputs, op.input_outputs):
        if plan.op(parent).kind == "foreach" and op.mapped_by == parent:
            arguments.append(Argument(parent, "split"))
        else:
            arguments.append(Argument(parent, "op", output))
    return arguments


def flow_asset(plan: FlowPlan) -> Tuple[List[str], List[List[str]]]:
    """(key, deps) of the flow as an asset of the Catalog: the end op records a
    materialization of it after each successful run; the upstream flows of
    @trigger_on_finish are its deps."""
    key = flow_asset_key(plan.flow_name, plan.project.get("project_name"),
                         plan.project.get("branch_name"))
    deps = [flow_asset_key(f["flow"], f.get("project"), f.get("branch"))
            for f in plan.triggers.get("flows", [])]
    return key, deps


def start_op_name(plan: FlowPlan) -> str:
    return plan.op(plan.start_step).name


def event_sensor_args(plan: FlowPlan) -> Optional[Tuple[list, Dict[str, str]]]:
    """(events, Parameter name -> config field) of the @trigger sensor, or None."""
    if not plan.triggers.get("events"):
        return None
    return plan.triggers["events"], {p.name: p.field for p in plan.parameters}


def finish_sensor_args(plan: FlowPlan) -> Optional[list]:
    """The upstream flows of the @trigger_on_finish sensor, or None."""
    return plan.triggers.get("flows") or None


def notification_sensor_args(plan: FlowPlan) -> Optional[Tuple[list, list]]:
    """(events, channels) of the `--notify-*` run-status sensors, or None."""
    if not plan.notifications:
        return None
    return plan.notifications["events"], sorted(plan.notifications["channels"])


def notification_resources(plan: FlowPlan) -> List[Tuple[str, str, str, str, str]]:
    """(resource key, module, class, secret field, environment variable) of each channel,
    its secret read from the variable `create` was given."""
    return [(NOTIFY_RESOURCE_KEYS[channel],) + CHANNEL_RESOURCES[channel] + (env,)
            for channel, env in sorted(plan.notifications.get("channels", {}).items())]
