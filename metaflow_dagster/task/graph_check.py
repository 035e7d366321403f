"""The graph a definitions file was compiled for against the graph of the code a
task runs. A definitions file older than its flow would otherwise run whatever the
flow file says now: a renamed step fails half-way, an inserted step is silently
skipped. Every task process checks first (the dagster_internal decorator's
step_init), so the first task of a run fails at once, on any executor."""

import json
import os
from typing import Dict, List

from ..naming import GRAPH_ENV
from ..plan import graph_fingerprint, graph_shape


class GraphChanged(Exception):
    pass


def check_graph(flow_name: str, graph, flow_file: str) -> None:
    """Raise GraphChanged if the graph of the running code is not the one the
    runtime says the definitions file was compiled for (GRAPH_ENV)."""
    expected = os.environ.get(GRAPH_ENV)
    if not expected:
        return  # not launched by our runtime (e.g. `python flow.py resume`)
    expected = json.loads(expected)
    actual = graph_shape((node.name, node.type, node.out_funcs) for node in graph)
    if graph_fingerprint(actual) == expected["fingerprint"]:
        return
    changes = differences(expected["steps"], actual)
    raise GraphChanged(
        "The graph of flow %s has changed since its Dagster definitions file was generated: "
        "%s. The job would not run this flow's steps as they are now, so this task does not "
        "run. Regenerate the definitions file with `python %s dagster create` (its header "
        "has the exact command)." % (
            flow_name, "; ".join(changes) or "its steps differ", os.path.basename(flow_file)))


def differences(expected: Dict[str, list], actual: Dict[str, list]) -> List[str]:
    """What differs between two graph shapes (plan.graph_shape), step by step."""
    changes = []
    for name in sorted(set(actual) - set(expected)):
        changes.append("step '%s' is new" % name)
    for name in sorted(set(expected) - set(actual)):
        changes.append("step '%s' is gone (renamed or removed)" % name)
    for name in sorted(set(expected) & set(actual)):
        (was_type, was_next), (now_type, now_next) = expected[name], actual[name]
        if was_type != now_type:
            changes.append("step '%s' is now a %s step (was %s)" % (name, now_type, was_type))
        if was_next != now_next:
            changes.append("step '%s' now goes to %s (was %s)" % (
                name, ", ".join(now_next) or "nothing", ", ".join(was_next) or "nothing"))
    return changes
