"""@trigger / @trigger_on_finish -> plain data the compiler puts in the plan.

Pure: no Dagster, no I/O. Call it after Metaflow ran the flow decorators' `flow_init` (which
builds `deco.triggers`); deploy-time values (callables, `namespaced_event_name`) are evaluated
here through the decorators' own `format_deploytime_value()`, as Argo Workflows does. The rules
mirror `ArgoWorkflows._process_triggers` so a flow triggers the same way on both:

- parameter names in event mappings are case-insensitive and must name a flow Parameter
  (Config parameters cannot come from a payload), each at most once across all events;
- a single event without a mapping maps every parameter to the payload field of the same
  (lower-cased) name;
- an upstream flow without project/branch inherits the flow's own @project namespace, and
  project and branch must then both be known.
"""

from metaflow import current

from ..naming import EVENT_NAME_RE
from .errors import CreateError
from .parameters import flow_parameters


class TriggerNotSupported(CreateError, ValueError):
    """A @trigger / @trigger_on_finish form this integration cannot deploy."""


def trigger_specs(flow, project: "str | None" = None, branch: "str | None" = None) -> dict:
    """{"events": [{"name", "parameters": {param: payload_field}}], "flows": [{"flow",
    "project", "branch"}]} for the flow's trigger decorators.

    `project` / `branch` default to the flow's own @project namespace (`current`), which
    upstream flows without an explicit namespace inherit.
    """
    decos = flow._flow_decorators
    event_decos = decos.get("trigger") or []
    finish_decos = decos.get("trigger_on_finish") or []
    if event_decos and finish_decos:
        raise TriggerNotSupported(
            "@trigger and @trigger_on_finish on the same flow are not supported "
            "(Argo Workflows refuses them too). Keep one of the two."
        )
    specs = {"events": [], "flows": []}
    if event_decos:
        specs["events"] = _event_specs(event_decos[0], flow)
    if finish_decos:
        project = project or current.get("project_name")
        branch = branch or current.get("branch_name")
        specs["flows"] = _flow_specs(finish_decos[0], project, branch)
    return specs


def _event_specs(deco, flow) -> list:
    deco.format_deploytime_value()
    _reject_options(deco)
    params = _flow_parameters(flow)
    seen = set()
    specs = []
    for event in deco.triggers:
        name = _event_name(event["name"], specs)
        mapping = {}
        for key, field in event.get("parameters", {}).items():
            param = _resolve_parameter(key, params, name)
            if param in seen:
                raise TriggerNotSupported(
                    "Parameter %r is mapped more than once in @trigger; map each parameter "
                    "from one event field only." % param
                )
            seen.add(param)
            mapping[param] = field
        specs.append({"name": name, "parameters": mapping})
    if len(specs) == 1 and not specs[0]["parameters"]:
        specs[0]["parameters"] = {param: lower for lower, param in params.items()}
    return specs


def _flow_parameters(flow) -> dict:
    """{lower-cased name: declared name} of the parameters an event payload can set."""
    return {param.name.lower(): param.name for _, param in flow_parameters(flow)}


def _event_name(name, specs: list) -> str:
    if not isinstance(name, str) or not EVENT_NAME_RE.match(name):
        raise TriggerNotSupported(
            "Event name %r in @trigger is not supported: use letters, digits, '_', '-' "
            "and '.' only." % (name,)
        )
    if any(spec["name"] == name for spec in specs):
        raise TriggerNotSupported("Event %r is listed twice in @trigger." % name)
    return name


def _resolve_parameter(key: str, params: dict, event_name: str) -> str:
    param = params.get(key.lower())
    if param is None:
        raise TriggerNotSupported(
            "@trigger maps event %r to parameter %r, which the flow does not define "
            "(Config parameters cannot be set from events)." % (event_name, key)
        )
    return param


def _flow_specs(deco, project: "str | None", branch: "str | None") -> list:
    deco.format_deploytime_value()
    _reject_options(deco)
    specs = []
    for upstream in deco.triggers:
        spec = {
            "flow": upstream["flow"],
            "project": upstream.get("project") or project,
            "branch": upstream.get("branch") or branch,
        }
        if bool(spec["project"]) != bool(spec["branch"]):
            raise TriggerNotSupported(
                "@trigger_on_finish on flow %r names only one of project and branch, which is "
                "not supported: give both ('project' and 'project_branch', or "
                "'project.branch.Flow'), or use @project on this flow." % spec["flow"]
            )
        specs.append(spec)
    return specs


def _reject_options(deco) -> None:
    """`options` tune one backend's eventing (Argo's `reset_at`); none apply to Dagster."""
    options = deco.attributes.get("options")
    if options:
        raise TriggerNotSupported(
            "@%s(options=%r) is not supported on Dagster; remove the options."
            % (deco.name, options)
        )
