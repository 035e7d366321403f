"""Every graph shape compiles, runs on Dagster with real step subprocesses, and
leaves a complete Metaflow run behind."""

import pytest
from harness import compile_flow, execute, metaflow_run, output_metadata, step_statuses

pytestmark = pytest.mark.e2e


def run_shape(tmp_path, dagster_home, name, run_config=None):
    compiled = compile_flow(tmp_path, name)
    result = execute(compiled, dagster_home, run_config)
    assert result.success, result.output[-3000:]
    run = metaflow_run(compiled, result)
    assert run.successful and run.finished
    return compiled, result, run


def test_linear(tmp_path, dagster_home):
    _, result, run = run_shape(tmp_path, dagster_home, "linear_flow")
    assert run["end"].task.data.trail == ["start", "a", "b", "end"]
    assert set(step_statuses(result)) == {"start", "a", "b", "end"}
    # Every task's output is kept as its Metaflow log, as after `flow.py run`.
    assert "trail so far: ['start', 'a']" in run["a"].task.stdout


def test_static_branch_runs_branches_in_parallel(tmp_path, dagster_home):
    _, result, run = run_shape(tmp_path, dagster_home, "branch_flow")
    assert run["join"].task.data.values == [11, 12, 13]
    spans = sorted((result.steps[s].start_time, result.steps[s].end_time) for s in "abc")
    overlaps = [a_end > b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])]
    assert any(overlaps), spans


def test_split_nested_inside_a_branch(tmp_path, dagster_home):
    _, _, run = run_shape(tmp_path, dagster_home, "nested_branch_flow")
    assert run["join"].task.data.labels == ["a1", "a2", "b"]


def test_foreach_one_step_body(tmp_path, dagster_home):
    _, result, run = run_shape(tmp_path, dagster_home, "foreach_flow",
                               {"ops": {"start": {"config": {"n": 4}}}})
    body_tasks = sorted(t.id for t in run["body"])
    assert body_tasks == ["t-0", "t-1", "t-2", "t-3"]
    assert [k for k in result.steps if k.startswith("body[")] != []


def test_foreach_multi_step_body(tmp_path, dagster_home):
    _, _, run = run_shape(tmp_path, dagster_home, "foreach_multistep_flow")
    assert run["join"].task.data.paths == ["a/body1/body2", "b/body1/body2", "c/body1/body2"]


def test_foreach_inside_a_branch(tmp_path, dagster_home):
    _, _, run = run_shape(tmp_path, dagster_home, "foreach_in_branch_flow")
    assert run["join"].task.data.results == {"fjoin": [2, 4, 6], "b": ["b"]}


def test_nested_foreach_two_levels(tmp_path, dagster_home):
    _, result, run = run_shape(tmp_path, dagster_home, "nested_foreach_flow")
    assert run["outer_join"].task.data.results == ["x1", "x2", "x3", "y1", "y2", "y3"]
    # The inner level runs inside one op per outer split, as real tasks.
    assert sorted(t.id for t in run["inner"]) == ["t-%d-%d" % (i, j) for i in (0, 1)
                                                  for j in (0, 1, 2)]
    # Each split is named after its item.
    assert sorted(k for k in result.steps if k.startswith("outer[")) == [
        "outer[0_x]", "outer[1_y]"]
    # The region op's output shows the task where it ends, the inner join.
    region = output_metadata(dagster_home, result.dagster_run_id)[("outer[1_y]", None)]
    assert region["metaflow_pathspec"] == "NestedForeachFlow/%s/inner_join/t-1" % (
        result.metaflow_run_id)
    assert "| `labels` | list | 31 B | `['y1', 'y2', 'y3']` |" in region["artifacts"]


def test_nested_foreach_three_levels(tmp_path, dagster_home):
    _, _, run = run_shape(tmp_path, dagster_home, "nested_foreach3_flow")
    expected = sorted(a + b + c for a in "ab" for b in "cd" for c in "ef")
    assert run["j1"].task.data.results == expected
    assert len(list(run["l3"])) == 8


@pytest.mark.parametrize("value,taken,skipped", [(10, "high", "low"), (1, "low", "high")])
def test_switch_runs_only_the_taken_branch(tmp_path, dagster_home, value, taken, skipped):
    _, result, run = run_shape(tmp_path, dagster_home, "switch_flow",
                               {"ops": {"start": {"config": {"value": value}}}})
    statuses = step_statuses(result)
    assert statuses[taken] == "SUCCESS" and statuses[skipped] == "SKIPPED"
    assert [s.id for s in run if s.id in ("high", "low")] == [taken]
    assert run["end"].task.data.branch_taken == taken


# Wherever a switch's cases meet, the meeting step runs with the one case that ran,
# and so do the steps after it, the end too (a linear meeting step: test above).
def _taken_case(tmp_path, dagster_home, name, config, taken, not_taken):
    _, result, run = run_shape(tmp_path, dagster_home, name, {"ops": {"start": {"config": config}}})
    statuses = {}  # op -> the statuses of its steps (a mapped op has one a split)
    for key, status in step_statuses(result).items():
        statuses.setdefault(key.split("[")[0], set()).add(status)
    # (The body of a foreach that was skipped has no step at all: it never mapped.)
    assert {s: statuses.get(s, {"SKIPPED"}) for s in not_taken} == {
        s: {"SKIPPED"} for s in not_taken}
    assert {s: statuses[s] for s in taken} == {s: {"SUCCESS"} for s in taken}
    assert {s.id for s in run} == set(taken) | {"start", "end"}
    assert run["end"].task.successful
    return run


@pytest.mark.parametrize("optional_mode,fan_mode,trail", [
    ("skip", "run", ["start", "fan_gate", "fan_out", "join_step", "end"]),
    ("run", "skip", ["start", "optional_step", "fan_gate", "end"]),
])
def test_switch_cases_meet_at_a_switch(tmp_path, dagster_home, optional_mode, fan_mode, trail):
    steps = ["optional_step", "fan_gate", "fan_out", "fan_step", "join_step"]
    taken = [s for s in steps if s in trail or (s == "fan_step" and "fan_out" in trail)]
    run = _taken_case(tmp_path, dagster_home, "switch_meets_at_switch_flow",
                      {"optional_mode": optional_mode, "fan_mode": fan_mode},
                      taken, [s for s in steps if s not in taken])
    assert run["end"].task.data.trail == trail
    if fan_mode == "run":
        assert run["join_step"].task.data.doubled == [2, 4]


def test_switch_cases_meet_at_a_foreach(tmp_path, dagster_home):
    run = _taken_case(tmp_path, dagster_home, "switch_meets_at_foreach_flow", {"route": "b"},
                      ["b", "fan", "body", "join"], ["a"])
    assert run["join"].task.data.labels == ["b1", "b2", "b3"]
    assert len(list(run["body"])) == 3
    assert run["end"].task.data.branch == "b"


def test_switch_cases_meet_at_a_split(tmp_path, dagster_home):
    run = _taken_case(tmp_path, dagster_home, "switch_meets_at_split_flow", {"route": "a"},
                      ["a", "fork", "x", "y", "join"], ["b"])
    assert run["join"].task.data.labels == ["ax", "ay"]
    assert run["end"].task.data.branch == "a"


def test_switch_cases_meet_at_the_end(tmp_path, dagster_home):
    run = _taken_case(tmp_path, dagster_home, "switch_meets_at_end_flow", {"route": "b"},
                      ["b"], ["a"])
    assert run["end"].task.data.result == "ended after b"


def test_switch_inside_a_foreach(tmp_path, dagster_home):
    _, _, run = run_shape(tmp_path, dagster_home, "switch_in_foreach_flow")
    assert run["join"].task.data.records == [(1, "small"), (3, "small"), (7, "big"),
                                             (9, "big")]
    assert len(list(run["big"])) == 2 and len(list(run["small"])) == 2


def test_custom_start_and_end_steps(tmp_path, dagster_home):
    _, result, run = run_shape(tmp_path, dagster_home, "custom_start_end_flow")
    assert {"begin", "finish"} <= set(step_statuses(result))
    assert run.end_task.path_components[2] == "finish"


def test_single_step_flow(tmp_path, dagster_home):
    _, result, run = run_shape(tmp_path, dagster_home, "single_step_flow")
    assert len(result.steps) == 1
    assert len(list(run)) == 1
