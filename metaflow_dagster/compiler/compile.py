"""Flow + graph + options -> plan. Pure: no click objects, no file I/O."""

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..plan import FlowPlan, StepPlan
from .compute_layer import compute_layer
from .layout import layout_ops
from .notifications import notification_plan
from .parameters import parameter_plans
from .validate import validate


@dataclass(frozen=True)
class CompileOptions:
    # The flow file, relative to the root of the code package (its directory).
    flow_file: str
    job_name: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    namespace: Optional[str] = None
    max_workers: int = 100
    executor: str = "metaflow"
    pool: Optional[str] = None
    pool_limit: Optional[int] = None
    workflow_timeout_seconds: Optional[int] = None
    top_level_args: List[str] = field(default_factory=list)
    project: Dict[str, str] = field(default_factory=dict)
    schedule: Optional[Dict[str, str]] = None
    triggers: Dict[str, list] = field(default_factory=dict)
    # Non-secret Metaflow settings of the tasks (see plan.FlowPlan.settings).
    settings: Dict[str, str] = field(default_factory=dict)
    exit_hooks: Dict[str, List[str]] = field(default_factory=dict)
    workflow_title: Optional[str] = None
    workflow_description: Optional[str] = None
    workflow_priority: Optional[int] = None
    run_retries: int = 0
    notify_on_error: bool = False
    notify_on_success: bool = False
    # Channel name (notifications.CHANNEL_OPTIONS) -> the option's value, `env:NAME`.
    notify_channels: Dict[str, Optional[str]] = field(default_factory=dict)
    # A literal secret is kept in `.env` (the CLI writes it), the plan names its variable.
    notify_secrets_to_env_file: bool = False


def compile_flow(flow, graph, options: CompileOptions) -> FlowPlan:
    """Raises validate.NotSupported listing every problem found."""
    validate(flow, graph, options)
    steps = [step_plan(graph, graph[name]) for name in graph.sorted_nodes]
    job_name = options.job_name or job_name_for(graph.name, options.project)
    return FlowPlan(
        flow_name=graph.name,
        flow_file=options.flow_file,
        job_name=job_name,
        start_step=graph.start_step,
        end_step=graph.end_step,
        steps=steps,
        ops=layout_ops(steps),
        parameters=parameter_plans(flow),
        top_level_args=list(options.top_level_args),
        tags=list(options.tags),
        namespace=options.namespace,
        max_workers=options.max_workers,
        executor=options.executor,
        pool=options.pool or job_name,
        pool_limit=options.pool_limit,
        workflow_timeout_seconds=options.workflow_timeout_seconds,
        project=dict(options.project),
        schedule=options.schedule,
        triggers=dict(options.triggers),
        settings=dict(options.settings),
        exit_hooks=dict(options.exit_hooks),
        description=_description(options.workflow_description, graph.doc),
        title=(options.workflow_title or "").strip() or None,
        priority=options.workflow_priority,
        run_retries=options.run_retries,
        notifications=notification_plan(job_name, options.notify_on_error,
                                        options.notify_on_success, options.notify_channels),
    )


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
