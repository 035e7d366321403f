"""Plan -> Dagster Definitions, in memory: what the definitions file `dagster create`
writes would build from the same plan, and nothing else.

Every argument comes from compiler/dagster_args.py, the mapping render.py writes into
the file, and every op, hook, executor and sensor calls the same runtime the file
imports. Never imports Metaflow or the CLI (a code server loading a dg project stays
as light as one loading generated files).
"""

import builtins
import importlib
from inspect import Parameter, Signature
from typing import Callable, Dict, List

from dagster import (
    AssetSpec,
    DefaultScheduleStatus,
    Definitions,
    DynamicOut,
    EnvVar,
    Field,
    Out,
    RetryPolicy,
    ScheduleDefinition,
    failure_hook,
    job,
    op,
    success_hook,
)

from ..compiler.dagster_args import (
    CONFIG_TYPES,
    Argument,
    Invocation,
    config_parameters,
    event_sensor_args,
    executor_args,
    finish_sensor_args,
    flow_asset,
    job_body,
    job_tags,
    notification_resources,
    notification_sensor_args,
    op_description,
    op_input_names,
    op_retry,
    op_switch_cases,
    op_tags,
    start_op_name,
)
from ..plan import FlowPlan, OpPlan
from ..runtime import (
    FlowRuntime,
    event_sensor,
    finish_sensor,
    flow_executor,
    notification_sensors,
    task_paths_io_manager,
)


def flow_definitions(plan: FlowPlan) -> Definitions:
    runtime = FlowRuntime(plan)
    ops = {o.name: _op(runtime, plan, o) for o in plan.ops}
    hooks = _exit_hooks(runtime, plan)
    flow_job = _job(plan, ops, hooks)
    key, deps = flow_asset(plan)
    asset = AssetSpec(key, description=plan.description, deps=deps or None, kinds={"metaflow"})
    schedules = []
    if plan.schedule:
        schedules.append(ScheduleDefinition(
            job=flow_job,
            cron_schedule=plan.schedule["cron"],
            execution_timezone=plan.schedule["timezone"],
            default_status=DefaultScheduleStatus[plan.schedule.get("status", "RUNNING")],
        ))
    resources = {key: _resource(module, cls, secret, env)
                 for key, module, cls, secret, env in notification_resources(plan)}
    return Definitions(jobs=[flow_job], assets=[asset], schedules=schedules or None,
                       sensors=_sensors(plan, flow_job) or None, resources=resources or None)


def _resource(module: str, cls: str, secret: str, env: str):
    """A notification channel's resource, its secret read from the environment."""
    return getattr(importlib.import_module(module), cls)(**{secret: EnvVar(env)})


def _op(runtime: FlowRuntime, plan: FlowPlan, op_plan: OpPlan):
    inputs = op_input_names(op_plan)

    def compute(context, **values):
        yield from runtime.run_op(context, op_plan.name, *(values[n] for n in inputs))

    # Dagster reads an op's inputs from its function's signature; the generated file
    # names them in its `def`.
    compute.__signature__ = Signature(
        [Parameter(n, Parameter.POSITIONAL_OR_KEYWORD) for n in ["context"] + inputs])
    compute.__name__ = op_plan.name
    args = {"name": op_definition_name(plan, op_plan),
            "description": op_description(plan, op_plan) or None,
            "tags": op_tags(plan, op_plan) or None, "pool": plan.pool or None}
    if op_plan.kind == "foreach":
        args["out"] = DynamicOut(str)
    elif op_plan.kind == "switch":
        args["out"] = {c: Out(str, is_required=False) for c in op_switch_cases(plan, op_plan)}
    retry = op_retry(plan, op_plan)
    if retry:
        args["retry_policy"] = RetryPolicy(max_retries=retry[0], delay=retry[1] or None)
    parameters = config_parameters(plan, op_plan)
    if parameters:
        args["config_schema"] = {p.field: _config_field(p) for p in parameters}
    return op(**args)(compute)


def op_definition_name(plan: FlowPlan, op_plan: OpPlan) -> str:
    """A dg project merges the definitions of all its components into one repository,
    where op definitions need names unique over all jobs (each flow has a `start`); the
    job invokes each as its op's name, so nodes, step keys and logs are the file's."""
    return "%s__%s" % (plan.job_name, op_plan.name)


def _config_field(parameter) -> Field:
    config_type = getattr(builtins, CONFIG_TYPES[parameter.type])
    if parameter.default is not None:
        return Field(config_type, default_value=parameter.default,
                     description=parameter.help)
    return Field(config_type, is_required=parameter.required, description=parameter.help)


def _exit_hooks(runtime: FlowRuntime, plan: FlowPlan) -> dict:
    hooks = {}
    for kind, decorator in (("on_success", success_hook), ("on_error", failure_hook)):
        if plan.exit_hooks.get(kind):
            hooks[kind] = decorator(name=kind)(_hook_function(runtime, kind))
    return hooks


def _hook_function(runtime: FlowRuntime, kind: str) -> Callable:
    def run_hooks(context):
        runtime.run_exit_hooks(context, kind)
    return run_hooks


def _job(plan: FlowPlan, ops: Dict[str, object], hooks: dict):
    def wire():
        _invoke(job_body(plan), ops, hooks, {}, {})

    wire.__name__ = plan.job_name
    return job(
        name=plan.job_name,
        description=plan.description,
        tags=job_tags(plan),
        executor_def=flow_executor(**executor_args(plan)),
        resource_defs={"io_manager": task_paths_io_manager},
        hooks={hooks["on_error"]} if "on_error" in hooks else None,
    )(wire)


def _invoke(invocations: List[Invocation], ops: dict, hooks: dict, results: dict,
            each: dict):
    """Invoke the ops as the generated job's body does; the last invocation's result.
    `results`: op name -> the result of its invocation (or its split, in a foreach's
    body); `each`: foreach op name -> the function its splits are mapped with."""
    result = None
    for invocation in invocations:
        callee = ops[invocation.op].alias(invocation.op)
        if invocation.success_hook:
            callee = callee.with_hooks({hooks["on_success"]})
        values = [_value(a, results, each) for a in invocation.arguments]
        result = callee(values) if invocation.fan_in else callee(*values)
        results[invocation.op] = result
        if invocation.each:
            each[invocation.op] = _each(invocation, ops, hooks, results, each)
    return result


def _each(invocation: Invocation, ops: dict, hooks: dict, results: dict, each: dict):
    """The function a foreach's splits are mapped with; like the generated file's
    `each_<foreach>`, it sees the results of the ops invoked before the map."""
    def each_split(split):
        scope = dict(results)
        scope[_split(invocation.op)] = split
        return _invoke(invocation.each, ops, hooks, scope, each)
    return each_split


def _split(op_name: str) -> str:
    return "%s[split]" % op_name


def _value(argument: Argument, results: dict, each: dict):
    if argument.kind == "collect":
        return results[argument.op].map(each[argument.op]).collect()
    if argument.kind == "split":
        return results[_split(argument.op)]
    value = results[argument.op]
    return getattr(value, argument.output) if argument.output else value


def _sensors(plan: FlowPlan, flow_job) -> list:
    start = start_op_name(plan)
    sensors = []
    events = event_sensor_args(plan)
    if events:
        sensors.append(event_sensor(flow_job, start, *events))
    flows = finish_sensor_args(plan)
    if flows:
        sensors.append(finish_sensor(flow_job, start, flows))
    notifications = notification_sensor_args(plan)
    if notifications:
        sensors.extend(notification_sensors(flow_job, *notifications))
    return sensors
