"""How the steps of a flow become Dagster ops (pure functions of the steps).

Every step is its own op, except where Dagster cannot express the flow:
- Dagster cannot nest dynamic fan-out, so a foreach inside a foreach becomes a
  *region*: one op that runs the inner foreach, its body and its join as real
  per-task subprocesses, concurrently.
- Fan-in lists cannot follow a dynamic output, so a switch inside a foreach
  (whose branches meet again) is a region too; so is a switch whose branches
  meet at a join, which Dagster's optional outputs cannot feed.
A top-level switch becomes an op with one optional output per case; only the
taken case's ops run, the others are skipped, and the step where the branches
meet takes a fan-in list that holds the one branch that ran, whatever that step
is (linear, a split, a foreach, another switch, the end): Dagster skips an op
with separate inputs as soon as one of them is missing, and an op with a fan-in
list only when all are. A join's inputs all run, so they stay separate.
"""

from typing import Dict, List, Optional

from ..plan import OpPlan, StepPlan, reachable


def layout_ops(steps: List[StepPlan]) -> List[OpPlan]:
    """The ops of the job, in topological order (`steps` is in topological order)."""
    by_name = {s.name: s for s in steps}
    order = [s.name for s in steps]
    region_of = _find_regions(by_name, order)

    def op_name(step: str) -> str:
        return region_of.get(step, step)

    ops = []
    for step in steps:
        if step.name in region_of and region_of[step.name] != step.name:
            continue
        members = [s for s in order if region_of.get(s) == step.name] or [step.name]
        parent_ops = _unique([op_name(p) for p in step.parents])
        input_outputs = [_switch_output(by_name, region_of, p, step.name) for p in parent_ops]
        dagster_stack = [f for f in step.foreach_stack if f not in region_of]
        ops.append(
            OpPlan(
                name=step.name,
                kind=_op_kind(step, step.name in region_of),
                step=step.name,
                steps=members,
                inputs=parent_ops,
                input_outputs=input_outputs,
                fan_in=len(parent_ops) > 1 and step.type != "join",
                mapped_by=dagster_stack[-1] if dagster_stack else None,
                collects=step.type == "join"
                and by_name[step.joins].type == "foreach"
                and step.joins not in region_of,
            )
        )
    return ops


def _op_kind(step: StepPlan, is_region: bool) -> str:
    if is_region:
        return "region"
    return {"foreach": "foreach", "split-switch": "switch"}.get(step.type, "step")


def _switch_output(by_name, region_of, parent_op: str, child: str) -> Optional[str]:
    """The output of a switch op that leads to `child` (outputs are named after
    the step each case leads to); None for ops with a single output."""
    if parent_op in region_of or by_name[parent_op].type != "split-switch":
        return None
    return child


def _find_regions(by_name, order) -> Dict[str, str]:
    """Maps each step that runs inside a region op to the region's entry step."""
    region_of: Dict[str, str] = {}
    for name in order:
        if name in region_of:
            continue
        step = by_name[name]
        in_map = bool(step.foreach_stack)
        if step.type == "foreach" and in_map:
            members = _foreach_region(by_name, order, name)
        elif step.type == "split-switch" and (
            in_map or by_name[switch_merge(by_name, order, name)].type == "join"
        ):
            members = _switch_region(by_name, order, name)
        else:
            continue
        for member in members:
            region_of[member] = name
    return region_of


def _foreach_region(by_name, order, foreach: str) -> List[str]:
    inside = [s for s in order if foreach in by_name[s].foreach_stack]
    return [foreach] + inside + [by_name[foreach].matching_join]


def _reachable(by_name, start: str) -> set:
    return reachable({name: step.next for name, step in by_name.items()}, [start])


def switch_merge(by_name, order, switch: str) -> str:
    """The first step that every case of the switch reaches: where its branches meet."""
    reach = [_reachable(by_name, target) for target in set(by_name[switch].switch_cases.values())]
    common = set.intersection(*reach)
    return next(s for s in order if s in common)


def _switch_region(by_name, order, switch: str) -> List[str]:
    merge = switch_merge(by_name, order, switch)
    after_merge = _reachable(by_name, merge)
    branches = set()
    for target in set(by_name[switch].switch_cases.values()):
        branches |= _reachable(by_name, target) - after_merge
    return [switch] + [s for s in order if s in branches]


def _unique(items: List[str]) -> List[str]:
    return list(dict.fromkeys(items))
