"""@trigger / @trigger_on_finish -> trigger_specs(), as Metaflow's decorators parse them."""

import pytest
from _flow_init import TwoStepFlow, clear_project, init_flow
from metaflow import (
    Config,
    Parameter,
    current,
    project,
    trigger,
    trigger_on_finish,
)

from metaflow_dagster.compiler.triggers import TriggerNotSupported, trigger_specs


@pytest.fixture(autouse=True)
def _no_project_leaks():
    """@project's flow_init writes the `current` singleton; keep tests independent."""
    clear_project()
    yield
    clear_project()


class _Base(TwoStepFlow):
    alpha = Parameter("alpha", default="a")
    beta = Parameter("Beta", default=1)
    learning_rate = Parameter("learning-rate", default=0.1)
    cfg = Config("cfg", default_value={"x": 1})


@trigger(event="data.ready")
class OneEventFlow(_Base):
    pass


@trigger(event={"name": "data.ready", "parameters": {"alpha": "table", "BETA": "rows"}})
class MappedEventFlow(_Base):
    pass


@trigger(event={"name": "data.ready", "parameters": ["alpha", ("learning-rate", "lr")]})
class ListMappedEventFlow(_Base):
    pass


@trigger(events=["a.b", {"name": "c-d", "parameters": {"alpha": "x"}}])
class TwoEventsFlow(_Base):
    pass


@trigger(events=["first", "second"])
class TwoUnmappedEventsFlow(_Base):
    pass


@trigger(event=lambda ctx: {"name": "deploy.time", "parameters": {"alpha": "f"}})
class DeployTimeEventFlow(_Base):
    pass


@trigger(events=lambda ctx: ["x1", "x2"])
class DeployTimeEventsFlow(_Base):
    pass


@trigger(event={"name": "e", "parameters": {"nope": "f"}})
class UnknownParamFlow(_Base):
    pass


@trigger(event={"name": "e", "parameters": {"cfg": "f"}})
class ConfigParamFlow(_Base):
    pass


@trigger(
    events=[
        {"name": "e1", "parameters": {"alpha": "f"}},
        {"name": "e2", "parameters": {"ALPHA": "g"}},
    ]
)
class DuplicateParamFlow(_Base):
    pass


@trigger(event="bad name!")
class BadNameFlow(_Base):
    pass


@trigger(event="e", options={"reset_at": {"cron": "0 0 * * *"}})
class OptionsFlow(_Base):
    pass


@trigger_on_finish(flow="Upstream")
class OneFlowFlow(_Base):
    pass


@trigger_on_finish(
    flows=["Up1", "proj.prod.Up2", {"name": "Up3", "project": "p", "project_branch": "b"}]
)
class ThreeFlowsFlow(_Base):
    pass


@trigger_on_finish(flow=lambda ctx: "other.test.bob.Upstream")
class DeployTimeFlowFlow(_Base):
    pass


@project(name="myproj")
@trigger_on_finish(flows=["Up1", {"name": "Up2", "project_branch": "prod"}, "o.b.Up3"])
class ProjectFlow(_Base):
    pass


@trigger_on_finish(flow={"name": "Up", "project_branch": "prod"})
class HalfNamespaceFlow(_Base):
    pass


@trigger(event="e")
@trigger_on_finish(flow="Up")
class BothFlow(_Base):
    pass


class PlainFlow(_Base):
    pass


@pytest.mark.parametrize(
    "flow_cls, events",
    [
        # One event without a mapping: every (non-Config) parameter from its lower-cased name.
        (
            OneEventFlow,
            [
                {
                    "name": "data.ready",
                    "parameters": {
                        "alpha": "alpha",
                        "Beta": "beta",
                        "learning-rate": "learning-rate",
                    },
                }
            ],
        ),
        # Mapping keys are matched case-insensitively, and reported by declared name.
        (
            MappedEventFlow,
            [{"name": "data.ready", "parameters": {"alpha": "table", "Beta": "rows"}}],
        ),
        (
            ListMappedEventFlow,
            [{"name": "data.ready", "parameters": {"alpha": "alpha", "learning-rate": "lr"}}],
        ),
        (
            TwoEventsFlow,
            [{"name": "a.b", "parameters": {}}, {"name": "c-d", "parameters": {"alpha": "x"}}],
        ),
        # Several events: no automatic mapping.
        (
            TwoUnmappedEventsFlow,
            [{"name": "first", "parameters": {}}, {"name": "second", "parameters": {}}],
        ),
        (DeployTimeEventFlow, [{"name": "deploy.time", "parameters": {"alpha": "f"}}]),
        (
            DeployTimeEventsFlow,
            [{"name": "x1", "parameters": {}}, {"name": "x2", "parameters": {}}],
        ),
    ],
)
def test_event_specs(flow_cls, events):
    assert trigger_specs(init_flow(flow_cls)) == {"events": events, "flows": []}


def test_trigger_specs_can_be_called_twice():
    flow = init_flow(DeployTimeEventFlow)
    assert trigger_specs(flow) == trigger_specs(flow)


def test_no_trigger_decorators():
    assert trigger_specs(init_flow(PlainFlow)) == {"events": [], "flows": []}


@pytest.mark.parametrize(
    "flow_cls, flows",
    [
        (OneFlowFlow, [{"flow": "Upstream", "project": None, "branch": None}]),
        (
            ThreeFlowsFlow,
            [
                {"flow": "Up1", "project": None, "branch": None},
                {"flow": "Up2", "project": "proj", "branch": "prod"},
                {"flow": "Up3", "project": "p", "branch": "b"},
            ],
        ),
        # "project.branch.Flow": the branch itself may contain dots.
        (DeployTimeFlowFlow, [{"flow": "Upstream", "project": "other", "branch": "test.bob"}]),
    ],
)
def test_flow_specs(flow_cls, flows):
    assert trigger_specs(init_flow(flow_cls)) == {"events": [], "flows": flows}


def test_upstream_flows_inherit_this_flows_project_namespace():
    flow = init_flow(ProjectFlow)
    branch = current.branch_name  # "user.<name>", set by @project's flow_init
    assert branch.startswith("user.")
    specs = trigger_specs(flow)
    assert specs["flows"] == [
        {"flow": "Up1", "project": "myproj", "branch": branch},
        {"flow": "Up2", "project": "myproj", "branch": "prod"},
        {"flow": "Up3", "project": "o", "branch": "b"},
    ]


def test_explicit_namespace_arguments_override_current():
    specs = trigger_specs(init_flow(OneFlowFlow), project="p", branch="prod")
    assert specs["flows"] == [{"flow": "Upstream", "project": "p", "branch": "prod"}]


@pytest.mark.parametrize(
    "flow_cls, words",
    [
        (UnknownParamFlow, ["'nope'", "does not define"]),
        (ConfigParamFlow, ["'cfg'", "Config parameters"]),
        (DuplicateParamFlow, ["'alpha'", "more than once"]),
        (BadNameFlow, ["'bad name!'", "not supported"]),
        (OptionsFlow, ["reset_at", "not supported"]),
        (HalfNamespaceFlow, ["'Up'", "not supported", "project"]),
        (BothFlow, ["@trigger and @trigger_on_finish", "not supported"]),
    ],
)
def test_unsupported_forms_are_refused_clearly(flow_cls, words):
    with pytest.raises(TriggerNotSupported) as e:
        trigger_specs(init_flow(flow_cls))
    for word in words:
        assert word in str(e.value)
