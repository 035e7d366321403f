"""Run a flow class's decorators the way Metaflow's CLI does before any command
(`set_parameter_context`, then `_init_flow_decorators`), so tests see `deco.triggers`
etc. exactly as the compiler will."""

from metaflow import FlowSpec, current, step
from metaflow.decorators import _init_flow_decorators
from metaflow.parameters import set_parameter_context

PROJECT_KEYS = (
    "project_name",
    "branch_name",
    "is_user_branch",
    "is_production",
    "project_flow_name",
)

# Flow decorators are shared by all instances of a flow class, and
# TriggerOnFinishDecorator.flow_init is not re-entrant (it overwrites its class-level
# CLI `options` with the user's options dict), so each class is initialised once.
_initialised = {}


class _Metadata:
    """@project registers sticky tags on the metadata provider; nothing else is used."""

    def add_sticky_tags(self, sys_tags=None, tags=None):
        pass


class _Datastore:
    TYPE = "local"


def _echo(*args, **kwargs):
    pass


def init_flow(flow_cls):
    if flow_cls not in _initialised:
        flow = flow_cls(use_cli=False)
        set_parameter_context(flow.name, _echo, _Datastore(), {})
        _init_flow_decorators(flow, flow._graph, None, None, _Metadata(), None, _echo, {})
        _initialised[flow_cls] = flow
    return _initialised[flow_cls]


def clear_project():
    """Undo what @project's flow_init put on the `current` singleton."""
    for key in PROJECT_KEYS:
        if key in type(current).__dict__:
            delattr(type(current), key)


class TwoStepFlow(FlowSpec):
    """start -> end, nothing else: a base for flows that only add Parameters or
    decorators."""

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
