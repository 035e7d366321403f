"""Plan -> the text of the definitions file: deterministic, readable, lint-clean.

The file reads like the flow: one op per step whose decorator shows the step's
policies and whose body is one call into the runtime, then a job wiring the ops
the way the flow's `self.next(...)` calls do, then the plan itself.
"""

import shlex
import textwrap
from typing import Dict, List

from .. import __version__
from ..naming import (
    TAG_FOREACH,
    TAG_MAX_RETRIES,
    TAG_OP_TIMEOUT,
    TAG_PRIORITY,
    TAG_RETRY_STRATEGY,
    TAG_TITLE,
    flow_asset_key,
)
from ..plan import FlowPlan, OpPlan

MAX_COLUMNS = 88
# A pod's deadline comes this long after the step's @timeout: the op's own kill comes
# first (5 s after Metaflow's, then SIGKILL 10 s later); the rest lets the pod start.
K8S_DEADLINE_MARGIN_SECONDS = 120
CONFIG_TYPES = {"str": "str", "int": "int", "float": "float", "bool": "bool", "json": "str"}
# Each notification channel's Dagster resource: (module, class, the field its secret goes in).
CHANNEL_RESOURCES = {
    "msteams": ("dagster_msteams", "MSTeamsResource", "hook_url"),
    "pagerduty": ("dagster_pagerduty", "PagerDutyService", "routing_key"),
    "slack": ("metaflow_dagster.runtime", "SlackWebhook", "url"),
}
# Resource keys of the channels (runtime/notifications.py RESOURCE_KEYS).
CHANNEL_KEYS = {"msteams": "notify_msteams", "pagerduty": "notify_pagerduty",
                "slack": "notify_slack"}


def render(plan: FlowPlan, regenerate_command: str) -> str:
    parts = [
        _header(plan, regenerate_command),
        # isort wants one blank line between the imports and a statement.
        "\n\n".join([_imports(plan)] + _description(plan)),
        *[_op(plan, op) for op in plan.ops],
        *_exit_hooks(plan),
        _job(plan),
        _definitions(plan),
        # The plan holds paths and values as they are; long lines are expected there.
        "FLOW = FlowRuntime.from_json(\n    r'''\n%s\n'''  # noqa: E501\n)\n" % plan.to_json(),
    ]
    return "\n\n\n".join(parts)


def _py(value, indent: int = 0, lead: int = 0) -> str:
    """A Python literal for value (dict keys sorted) that stays within 88 columns:
    `indent` is the indentation of the line it starts on, `lead` the width of what
    stands before it on that line. Too-long dicts and lists get one item a line,
    too-long strings are split into implicitly joined pieces."""
    flat = _flat(value)
    if indent + lead + len(flat) <= MAX_COLUMNS:
        return flat
    inner, pad = indent + 4, " " * (indent + 4)
    if isinstance(value, dict) and value:
        items = ["%s%r: %s," % (pad, k, _py(v, inner, len(repr(k)) + 3))
                 for k, v in sorted(value.items())]
    elif isinstance(value, list) and value:
        items = ["%s%s," % (pad, _py(v, inner, 1)) for v in value]
    elif isinstance(value, str) and len(value) > 20:
        size = max(20, MAX_COLUMNS - inner - 4)
        pieces = [value[i:i + size] for i in range(0, len(value), size)]
        return "(\n%s\n%s)" % ("\n".join(pad + repr(p) for p in pieces), " " * indent)
    else:
        return flat
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return "%s\n%s\n%s%s" % (opening, "\n".join(items), " " * indent, closing)


def _text(value: str, indent: int, lead: int) -> str:
    """A string literal for `value` (a docstring) within 88 columns: as is when it fits,
    else one implicitly joined piece a line, broken at the text's own line ends and
    between words."""
    flat = repr(value)
    if indent + lead + len(flat) <= MAX_COLUMNS:
        return flat
    pad = " " * (indent + 4)
    width = MAX_COLUMNS - indent - 4 - 8  # room for quotes and escapes
    pieces = []
    for line in value.splitlines(True):
        pieces += textwrap.wrap(line, width, expand_tabs=False, replace_whitespace=False,
                                drop_whitespace=False, break_on_hyphens=False) or [line]
    lines = [pad + repr(p) for p in pieces]
    if any(len(line) > MAX_COLUMNS for line in lines):  # escapes ran long: cut shorter
        lines = [pad + repr(value[i:i + width // 2]) for i in range(0, len(value), width // 2)]
    return "(\n%s\n%s)" % ("\n".join(lines), " " * indent)


def _flat(value) -> str:
    if isinstance(value, dict):
        return "{%s}" % ", ".join("%r: %s" % (k, _flat(v)) for k, v in sorted(value.items()))
    if isinstance(value, list):
        return "[%s]" % ", ".join(_flat(v) for v in value)
    return repr(value)


def _header(plan: FlowPlan, regenerate_command: str) -> str:
    command = _shell_lines(regenerate_command, "    ")
    # Raw: the lines of a long command end in a backslash, as the shell reads them. A
    # single argument too long for a line (a description) makes one too long for lint.
    prefix = "r" if "\n" in command else ""
    noqa = "  # noqa: E501" if any(len(line) > MAX_COLUMNS for line in command.splitlines()) \
        else ""
    return '%s"""Dagster job for the Metaflow flow %s.\n\nFlow file: %s\n' \
        "Generated by metaflow-dagster %s. Do not edit; regenerate with:\n%s\n" \
        '"""%s' % (prefix, plan.flow_name, plan.flow_file, __version__, command, noqa)


def _shell_lines(command: str, indent: str) -> str:
    """The command within 88 columns where it can be: broken between its arguments, each
    line but the last ending in ` \\`."""
    words = []
    for arg in shlex.split(command):
        # An option and its value stay on one line (which only changes where lines break).
        if words and words[-1].startswith("--") and " " not in words[-1] and \
                "=" not in words[-1] and not arg.startswith("-"):
            words[-1] += " " + shlex.quote(arg)
        else:
            words.append(shlex.quote(arg))
    lines = [indent]
    for word in words:
        if lines[-1].strip() and len(lines[-1]) + 1 + len(word) + 2 > MAX_COLUMNS:
            lines[-1] += " \\"
            lines.append(indent + "    ")
        lines[-1] += (" " if lines[-1].strip() else "") + word
    return "\n".join(lines)


def _imports(plan: FlowPlan) -> str:
    names = {"AssetSpec", "Definitions", "job", "op"}
    for op in plan.ops:
        step = plan.step(op.step)
        if op.kind == "foreach":
            names.add("DynamicOut")
        if op.kind == "switch":
            names.add("Out")
        if op.kind != "region" and step.total_retries:
            names.add("RetryPolicy")
    if plan.parameters:
        names.add("Field")
    if plan.schedule:
        names |= {"DefaultScheduleStatus", "ScheduleDefinition"}
    if plan.exit_hooks.get("on_success"):
        names.add("success_hook")
    if plan.exit_hooks.get("on_error"):
        names.add("failure_hook")
    ours = {"FlowRuntime", "flow_executor"}
    if plan.triggers.get("events"):
        ours.add("event_sensor")
    if plan.triggers.get("flows"):
        ours.add("finish_sensor")
    libraries = []
    for channel in plan.notifications.get("channels", {}):
        module, cls, _ = CHANNEL_RESOURCES[channel]
        names.add("EnvVar")
        ours.add("notification_sensors")
        if module == "metaflow_dagster.runtime":
            ours.add(cls)
        else:
            libraries.append(_import_line(module, [cls]))
    return "\n".join([_import_line("dagster", names)] + sorted(libraries) +
                     [_import_line("metaflow_dagster.runtime", ours)])


def _import_line(module: str, names) -> str:
    """isort's order (constants, classes, then functions), wrapped when long."""
    ordered = sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    line = "from %s import %s" % (module, ", ".join(ordered))
    if len(line) <= 88:
        return line
    return "from %s import (\n%s\n)" % (module, "\n".join("    %s," % n for n in ordered))


def _op(plan: FlowPlan, op: OpPlan) -> str:
    args = _op_args(plan, op)
    decorator = "@op" if not args else "@op(\n%s\n)" % ",\n".join("    " + a for a in args)
    params = ["context"] + _input_names(op)
    call = ", ".join(['context', repr(op.name)] + _input_names(op))
    return "%s\ndef %s(%s):\n    yield from FLOW.run_op(%s)" % (
        decorator, op.name, ", ".join(params), call)


def _input_names(op: OpPlan) -> List[str]:
    if op.fan_in:
        return ["branches"]
    if op.collects:
        return ["splits"]
    return list(op.inputs)


def _op_args(plan: FlowPlan, op: OpPlan) -> List[str]:
    step = plan.step(op.step)
    args = []
    description = _op_description(plan, op)
    if description:
        args.append("description=%s" % _text(description, 4, len("description=") + 1))
    if op.kind == "foreach":
        args.append("out=DynamicOut(str)")
    elif op.kind == "switch":
        cases = sorted(set(step.switch_cases.values()))
        args.append("out={%s}" % ", ".join("%r: Out(str, is_required=False)" % c for c in cases))
    if op.kind != "region" and step.total_retries:
        delay = ", delay=%d" % step.retry_delay_seconds if step.retry_delay_seconds else ""
        args.append("retry_policy=RetryPolicy(max_retries=%d%s)" % (step.total_retries, delay))
    if op.step == plan.start_step and plan.parameters:
        args.append("config_schema=%s" % _config_schema(plan))
    if plan.pool:
        args.append("pool=%r" % plan.pool)
    tags = _op_tags(plan, op)
    if tags:
        args.append("tags=%s" % _py(tags, 4, len("tags=") + 1))
    return args


def _op_description(plan: FlowPlan, op: OpPlan) -> str:
    """The step's docstring; a region also says which steps it runs."""
    parts = [plan.step(op.step).doc or ""]
    if op.kind == "region":
        parts.append("Runs the steps %s as one op." % ", ".join(op.steps))
    return "\n\n".join(p for p in parts if p)


def _description(plan: FlowPlan) -> List[str]:
    """The flow's docstring, once: the job's and the flow asset's description."""
    if not plan.description:
        return []
    return ["DESCRIPTION = %s" % _text(plan.description, 0, len("DESCRIPTION = "))]


def _op_tags(plan: FlowPlan, op: OpPlan) -> Dict[str, object]:
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


def _config_schema(plan: FlowPlan) -> str:
    fields = []
    for param in plan.parameters:
        args = [CONFIG_TYPES[param.type]]
        if param.default is not None:
            args.append("default_value=%s" % _py(param.default, 12, len("default_value=") + 1))
        else:
            args.append("is_required=%r" % param.required)
        if param.help:
            args.append("description=%s" % _py(param.help, 12, len("description=") + 1))
        line = "        %r: Field(%s)," % (param.field, ", ".join(args))
        if len(line) > MAX_COLUMNS:
            line = "        %r: Field(\n%s\n        )," % (
                param.field, "\n".join("            %s," % a for a in args))
        fields.append(line)
    return "{\n%s\n    }" % "\n".join(fields)


def _job(plan: FlowPlan) -> str:
    executor = _executor(plan)
    tags = _py(_job_tags(plan), 4, len("tags=") + 1)
    body = _job_body(plan, [op for op in plan.ops if op.mapped_by is None], indent="    ")
    hooks = "    hooks={on_error},\n" if plan.exit_hooks.get("on_error") else ""
    description = "    description=DESCRIPTION,\n" if plan.description else ""
    return "%s\n\n\n@job(\n    name=%r,\n%s    tags=%s,\n    executor_def=EXECUTOR,\n%s)\n" \
        "def %s():\n%s" % (executor, plan.job_name, description, tags, hooks,
                            _job_function(plan), "\n".join(body))


def _job_function(plan: FlowPlan) -> str:
    names = set(plan.step_names())
    return plan.job_name if plan.job_name not in names else plan.job_name + "_job"


def _executor(plan: FlowPlan) -> str:
    """The executor --executor chose, switchable in run config (execution: config:
    {celery: {...}}); whichever runs, --max-workers caps each foreach, and the job's
    pool gets --pool-limit (runtime/flow_executor.py)."""
    args = {"default": plan.executor, "foreach_limit": plan.max_workers}
    if plan.pool_limit:
        args.update(pool=plan.pool, pool_limit=plan.pool_limit)
    lines = ["    %s=%s," % (k, _py(v, 4, len(k) + 2)) for k, v in args.items()]
    return "EXECUTOR = flow_executor(\n%s\n)" % "\n".join(lines)


def _job_tags(plan: FlowPlan) -> Dict[str, str]:
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


def _job_body(plan: FlowPlan, ops: List[OpPlan], indent: str) -> List[str]:
    lines = []
    for op in ops:
        if op.kind == "foreach" and not op.mapped_by:
            lines.append("%s%s_task = %s(%s)" % (indent, op.name, op.name, _invoke_args(plan, op)))
            body_ops = [o for o in plan.ops if o.mapped_by == op.name]
            lines.append("")
            lines.append("%sdef each_%s(%s_split):" % (indent, op.name, op.name))
            inner = _job_body(plan, body_ops, indent + "    ")
            inner[-1] = inner[-1].replace("%s_task = " % body_ops[-1].name, "return ", 1)
            lines.extend(inner)
            lines.append("")
            continue
        consumed = any(op.name in other.inputs for other in plan.ops)
        target = "%s_task = " % op.name if consumed else ""
        callee = op.name
        if op.step == plan.end_step and plan.exit_hooks.get("on_success"):
            callee = "%s.with_hooks({on_success})" % op.name
        lines.append("%s%s%s(%s)" % (indent, target, callee, _invoke_args(plan, op)))
    return lines


def _invoke_args(plan: FlowPlan, op: OpPlan) -> str:
    if op.collects:
        foreach = plan.step(op.step).joins
        return "%s_task.map(each_%s).collect()" % (foreach, foreach)
    refs = [_ref(plan, op, parent, output) for parent, output in zip(op.inputs, op.input_outputs)]
    if op.fan_in:
        return "[%s]" % ", ".join(refs)
    return ", ".join(refs)


def _ref(plan: FlowPlan, op: OpPlan, parent: str, output) -> str:
    parent_op = plan.op(parent)
    if parent_op.kind == "foreach" and op.mapped_by == parent:
        return "%s_split" % parent
    return "%s_task.%s" % (parent, output) if output else "%s_task" % parent


def _exit_hooks(plan: FlowPlan) -> List[str]:
    """@exit_hook: success hook on the end op, failure hook on every op."""
    hooks = []
    for kind, decorator in (("on_success", "success_hook"), ("on_error", "failure_hook")):
        if plan.exit_hooks.get(kind):
            hooks.append("@%s\ndef %s(context):\n    FLOW.run_exit_hooks(context, %r)"
                         % (decorator, kind, kind))
    return hooks


def _sensors(plan: FlowPlan, job: str) -> List[str]:
    start = plan.op(plan.start_step).name
    sensors = []
    if plan.triggers.get("events"):
        fields = {p.name: p.field for p in plan.parameters}
        sensors.append(_call("event_sensor", [job, repr(start), plan.triggers["events"], fields]))
    if plan.triggers.get("flows"):
        sensors.append(_call("finish_sensor", [job, repr(start), plan.triggers["flows"]]))
    if plan.notifications:
        sensors.append("*" + _call("notification_sensors", [
            job, plan.notifications["events"], sorted(plan.notifications["channels"])]))
    return sensors


def _call(function: str, args: list, indent: int = 8) -> str:
    """`function(` then one argument a line; strings in args are code, the rest literals."""
    pad = " " * (indent + 4)
    lines = [pad + (a if isinstance(a, str) else _py(a, indent + 4, 1)) + "," for a in args]
    return "%s(\n%s\n%s)" % (function, "\n".join(lines), " " * indent)


def _flow_asset(plan: FlowPlan) -> str:
    """The flow as an asset of the Catalog: the end op records a materialization of it
    after each successful run; the upstream flows of @trigger_on_finish are its deps."""
    key = flow_asset_key(plan.flow_name, plan.project.get("project_name"),
                         plan.project.get("branch_name"))
    deps = [flow_asset_key(f["flow"], f.get("project"), f.get("branch"))
            for f in plan.triggers.get("flows", [])]
    args = [_py(key, 12, 1)]
    if plan.description:
        args.append("description=DESCRIPTION")
    if deps:
        args.append("deps=%s" % _py(deps, 12, len("deps=") + 1))
    args.append("kinds={'metaflow'}")
    return "AssetSpec(\n%s\n        )" % "\n".join("            %s," % a for a in args)


def _definitions(plan: FlowPlan) -> str:
    job = _job_function(plan)
    args = ["jobs=[%s]" % job, "assets=[\n        %s,\n    ]" % _flow_asset(plan)]
    if plan.schedule:
        args.append(
            "schedules=[\n        ScheduleDefinition(\n            job=%s,\n"
            "            cron_schedule=%r,\n            execution_timezone=%r,\n"
            "            default_status=DefaultScheduleStatus.%s,\n        )\n    ]"
            % (job, plan.schedule["cron"], plan.schedule["timezone"],
               plan.schedule.get("status", "RUNNING"))
        )
    sensors = _sensors(plan, job)
    if sensors:
        args.append("sensors=[\n%s,\n    ]" % ",\n".join("        " + s for s in sensors))
    if plan.notifications:
        args.append("resources=%s" % _notification_resources(plan))
    return "defs = Definitions(\n%s\n)" % ",\n".join("    " + a for a in args)


def _notification_resources(plan: FlowPlan) -> str:
    """Each channel's resource, its secret read from the environment variable `create`
    was given (the daemon resolves it when a sensor sends)."""
    lines = []
    for channel, env in sorted(plan.notifications["channels"].items()):
        _, cls, secret = CHANNEL_RESOURCES[channel]
        line = "        %r: %s(%s=EnvVar(%r))," % (CHANNEL_KEYS[channel], cls, secret, env)
        if len(line) > MAX_COLUMNS:
            argument = "            %s=EnvVar(%r)," % (secret, env)
            if len(argument) > MAX_COLUMNS:  # a long job name makes a long variable name
                argument += "  # noqa: E501"
            line = "        %r: %s(\n%s\n        )," % (CHANNEL_KEYS[channel], cls, argument)
        lines.append(line)
    return "{\n%s\n    }" % "\n".join(lines)
