"""The check every task makes before it runs: is the flow's graph the one its job was
compiled for? (task/graph_check.py; the e2e test in tests/e2e/test_faults.py runs it.)"""

import json
import types

import pytest

from metaflow_dagster import naming
from metaflow_dagster.plan import graph_fingerprint, graph_shape
from metaflow_dagster.task.graph_check import GraphChanged, check_graph, differences

LINEAR = [("start", "start", ["a"]), ("a", "linear", ["end"]), ("end", "end", [])]


def graph_of(steps):
    """What check_graph reads of a Metaflow FlowGraph: its nodes."""
    return [types.SimpleNamespace(name=n, type=t, out_funcs=list(o)) for n, t, o in steps]


@pytest.fixture
def compiled_for(monkeypatch):
    """Set the environment the runtime gives a task of a job compiled for `steps`."""
    def set_env(steps):
        shape = graph_shape(steps)
        monkeypatch.setenv(naming.GRAPH_ENV, json.dumps(
            {"fingerprint": graph_fingerprint(shape), "steps": shape}))
    return set_env


def test_the_same_graph_passes(compiled_for):
    compiled_for(LINEAR)
    check_graph("LinearFlow", graph_of(LINEAR), "/somewhere/linear_flow.py")


def test_branch_order_is_not_a_change():
    assert graph_shape([("s", "split", ["b", "a"])]) == graph_shape([("s", "split", ["a", "b"])])


def test_an_inserted_step_names_the_flow_the_steps_and_the_command(compiled_for):
    compiled_for(LINEAR)
    now = [("start", "start", ["a"]), ("a", "linear", ["new"]), ("new", "linear", ["end"]),
           ("end", "end", [])]
    with pytest.raises(GraphChanged) as raised:
        check_graph("LinearFlow", graph_of(now), "/somewhere/linear_flow.py")
    message = str(raised.value)
    assert message.startswith("The graph of flow LinearFlow has changed since its Dagster "
                              "definitions file was generated: step 'new' is new; step 'a' "
                              "now goes to new (was end).")
    assert "Regenerate the definitions file with `python linear_flow.py dagster create`" \
        in message


def test_every_kind_of_difference():
    before = graph_shape([("start", "start", ["a"]), ("a", "linear", ["end"]),
                          ("b", "linear", ["end"]), ("end", "end", [])])
    after = graph_shape([("start", "start", ["a"]), ("a", "foreach", ["c"]),
                         ("c", "linear", ["end"]), ("end", "end", [])])
    assert differences(before, after) == [
        "step 'c' is new",
        "step 'b' is gone (renamed or removed)",
        "step 'a' is now a foreach step (was linear)",
        "step 'a' now goes to c (was end)",
    ]


def test_a_task_not_launched_by_the_runtime_is_not_checked(monkeypatch):
    monkeypatch.delenv(naming.GRAPH_ENV, raising=False)
    check_graph("LinearFlow", graph_of([("only", "start", [])]), "linear_flow.py")
