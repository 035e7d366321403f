"""Flow + graph + options -> plan. Pure: no click objects, no file I/O."""

import copy
import re
from dataclasses import field, make_dataclass
from typing import Dict, List, Optional

from ..plan import FlowPlan, StepPlan, option_fields
from .compute_layer import compute_layer
from .job_options import apply_job_options, job_options_of
from .layout import layout_ops
from .notifications import notification_plan
from .parameters import parameter_plans
from .validate import validate

# The plan's fields that `dagster create`'s options (and the Deployer's, and the
# component's) give as they are; the compiler derives the others from the flow.
FROM_OPTIONS = (
    "flow_file", "job_name", "tags", "namespace", "max_workers", "executor", "pool",
    "pool_limit", "workflow_timeout_seconds", "top_level_args", "project", "schedule",
    "triggers", "settings", "exit_hooks", "run_retries",
)
# Left unset, these come from the flow: the job is named after the flow (and its
# @project), and its pool after the job.
FROM_FLOW_UNLESS_GIVEN = ("job_name", "pool")


# Options the compiler turns into plan fields of other names or shapes (title,
# description, priority, notifications).
OTHER_OPTIONS = [
    # The @schedule's status (its cron and timezone are the plan's `schedule`).
    ("schedule_status", str, field(default="running")),
    ("workflow_title", Optional[str], field(default=None)),
    ("workflow_description", Optional[str], field(default=None)),
    ("workflow_priority", Optional[int], field(default=None)),
    ("notify_on_error", bool, field(default=False)),
    ("notify_on_success", bool, field(default=False)),
    # Channel name (notifications.CHANNEL_OPTIONS) -> the option's value, `env:NAME`.
    ("notify_channels", Dict[str, Optional[str]], field(default_factory=dict)),
    # A literal secret is kept in `.env` (the CLI writes it), the plan names its variable.
    ("notify_secrets_to_env_file", bool, field(default=False)),
]

CompileOptions = make_dataclass(
    "CompileOptions",
    [(spec[0], Optional[str], field(default=None)) if spec[0] in FROM_FLOW_UNLESS_GIVEN
     else spec for spec in option_fields(FROM_OPTIONS)] + OTHER_OPTIONS,
    frozen=True)
CompileOptions.__module__ = __name__
CompileOptions.__doc__ = """The options of a compile: the plan's fields in FROM_OPTIONS
(flow_file, relative to the root of the code package, is the one without a default),
then OTHER_OPTIONS."""


def compile_flow(flow, graph, options: CompileOptions) -> FlowPlan:
    """Raises validate.NotSupported listing every problem found."""
    validate(flow, graph, options)
    steps = [step_plan(graph, graph[name]) for name in graph.sorted_nodes]
    given = {name: copy.copy(getattr(options, name)) for name in FROM_OPTIONS}
    given["job_name"] = options.job_name or job_name_for(graph.name, options.project)
    given["pool"] = options.pool or given["job_name"]
    plan = FlowPlan(
        flow_name=graph.name,
        start_step=graph.start_step,
        end_step=graph.end_step,
        steps=steps,
        ops=layout_ops(steps),
        parameters=parameter_plans(flow),
        description=_description(options.workflow_description, graph.doc),
        title=(options.workflow_title or "").strip() or None,
        priority=options.workflow_priority,
        notifications=notification_plan(given["job_name"], options.notify_on_error,
                                        options.notify_on_success, options.notify_channels),
        **given,
    )
    # The same function applies them to a stored plan (the dg component).
    return apply_job_options(plan, job_options_of(options))


def _description(given: Optional[str], docstring: Optional[str]) -> Optional[str]:
    """`--workflow-description`, then the flow's docstring (Argo shows the given one
    instead of the docstring; a Dagster job has room for both)."""
    parts = [text.strip() for text in (given, docstring) if text and text.strip()]
    return "\n\n".join(parts) or None


def job_name_for(flow_name: str, project: Dict[str, str]) -> str:
    """The flow name, prefixed by project and branch as Metaflow's
    project_flow_name does, made a valid Dagster name."""
    name = project.get("project_flow_name") or flow_name
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def step_plan(graph, node) -> StepPlan:
    decos = {d.name: d for d in node.decorators}
    user_retries = error_retries = 0
    for deco in node.decorators:
        user, error = deco.step_task_retry_count()
        user_retries += user
        error_retries += error
    compute = compute_layer(node)
    return StepPlan(
        name=node.name,
        type=node.type,
        next=list(node.out_funcs),
        parents=sorted(node.in_funcs),
        joins=node.split_parents[-1] if node.type == "join" and node.split_parents else None,
        matching_join=node.matching_join,
        foreach_stack=foreach_stack(graph, node),
        switch_cases=dict(node.switch_cases or {}),
        user_code_retries=user_retries,
        error_retries=error_retries,
        # A compute layer's command waits between retries itself (`kubernetes step`
        # sleeps minutes_between_retries), as under Metaflow's runtime.
        retry_delay_seconds=0 if compute else _retry_delay(decos.get("retry")),
        timeout_seconds=_timeout_seconds(decos.get("timeout")),
        env={k: str(v) for k, v in _attr(decos.get("environment"), "vars", {}).items()},
        resources=_resources(decos.get("resources")),
        decospecs=[
            d.make_decorator_spec()
            for d in node.decorators
            if not d.statically_defined and d.inserted_by is None
        ],
        doc=node.doc or None,
        cards=sum(1 for d in node.decorators if d.name == "card"),
        compute=compute,
        decorators=sorted({d.name for d in node.decorators}),
    )


def foreach_stack(graph, node) -> List[str]:
    """The foreach steps whose splits this step runs in (a foreach's own join
    runs outside it)."""
    return [
        p
        for p in node.split_parents
        if graph[p].type == "foreach" and graph[p].matching_join != node.name
    ]


def _attr(deco, name, default):
    if deco is None:
        return default
    value = deco.attributes.get(name)
    return default if value is None else value


def _retry_delay(deco) -> int:
    """Seconds between retries. Only a delay the user wrote counts: seed 000
    documents `@retry(times=3)` as retrying at once (Metaflow's own local
    runtime does not wait either)."""
    if deco is None or "minutes_between_retries" not in deco._user_defined_attributes:
        return 0
    return int(round(float(_attr(deco, "minutes_between_retries", 0)) * 60))


def _timeout_seconds(deco) -> Optional[int]:
    if deco is None:
        return None
    seconds = (
        float(_attr(deco, "seconds", 0))
        + 60 * float(_attr(deco, "minutes", 0))
        + 3600 * float(_attr(deco, "hours", 0))
    )
    return int(seconds) or None


def _resources(deco) -> Dict[str, str]:
    if deco is None:
        return {}
    return {k: str(v) for k, v in sorted(deco.attributes.items()) if v not in (None, "", 0)}
