"""What `dagster create` refuses, in one table, with every problem reported at once."""

import keyword
from typing import List

from ..plan import reachable
from . import notifications
from .errors import CreateError
from .job_options import job_option_problems, job_options_of

# Dagster's DISALLOWED_NAMES (dagster._core.definitions.utils), spelled out so that
# compiling never imports dagster (slow, bench/README.md); a unit test checks the two sets agree.
DAGSTER_DISALLOWED_NAMES = frozenset(keyword.kwlist) | {
    "arg_dict", "bool", "conf", "config", "context", "dict", "float", "input",
    "input_arg_dict", "int", "meta", "output", "output_arg_dict", "str", "type",
}
# Op input names also carry step names, and the generated job body binds
# `<step>_task` variables; these names would clash with Dagster's own.
RESERVED_STEP_NAMES = DAGSTER_DISALLOWED_NAMES | {"job", "op", "Definitions"}


class NotSupported(CreateError):
    """Constructs of the flow that no Dagster job can run, all of them at once."""

    def __init__(self, flow_name: str, problems: List[str]):
        self.flow_name = flow_name
        self.problems = problems
        lines = "\n".join("  - " + p for p in problems)
        super().__init__(
            "Flow *%s* cannot be compiled for Dagster:\n%s" % (flow_name, lines)
        )


def _parallel_steps(flow, graph, options):
    for node in graph:
        if node.parallel_foreach or node.parallel_step:
            yield (
                "Step *%s*: @parallel and num_parallel foreach are not supported on "
                "Dagster. Use a regular foreach instead." % node.name
            )


def _recursive_switches(flow, graph, options):
    for node in graph:
        if node.type != "split-switch":
            continue
        if _reaches(graph, node.out_funcs, node.name):
            yield (
                "Step *%s*: a recursive switch (a case that leads back to the switch) "
                "is not supported on Dagster. Unroll the loop into distinct steps."
                % node.name
            )
        elif not _branches_meet(graph, node):
            yield (
                "Step *%s*: the cases of this switch never meet again, which is not "
                "supported on Dagster. Lead every case to a common step." % node.name
            )


def _reserved_names(flow, graph, options):
    for node in graph:
        if node.name in RESERVED_STEP_NAMES:
            yield (
                "Step *%s*: this step name is not supported on Dagster, which reserves "
                "it. Rename the step." % node.name
            )


def _options(flow, graph, options):
    yield from job_option_problems(job_options_of(options))
    if options.run_retries < 0:
        yield "--run-retries must be at least 0 (got %d)." % options.run_retries
    yield from notifications.problems(options.notify_on_error, options.notify_on_success,
                                      options.notify_channels,
                                      options.notify_secrets_to_env_file)


CHECKS = [_parallel_steps, _recursive_switches, _reserved_names, _options]


def validate(flow, graph, options) -> None:
    problems = [problem for check in CHECKS for problem in check(flow, graph, options)]
    if problems:
        raise NotSupported(graph.name, problems)


def _successors(graph) -> dict:
    return {node.name: node.out_funcs for node in graph}


def _reaches(graph, starts, target) -> bool:
    return target in reachable(_successors(graph), starts)


def _branches_meet(graph, node) -> bool:
    successors = _successors(graph)
    return bool(set.intersection(*[reachable(successors, [t]) for t in set(node.out_funcs)]))
